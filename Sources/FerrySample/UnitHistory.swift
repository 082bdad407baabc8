import FerryCore

/// The kinds of organisational-life meeting and how often a branch holds each.
enum MeetingKind: String, CaseIterable {
    case branchCongress = "branch_congress"
    case committeeMeeting = "committee_meeting"
    case groupMeeting = "group_meeting"
    case partyLecture = "party_lecture"
    case themeDay = "theme_day"
    case democraticLife = "democratic_life"

    /// Two characters in meeting ids; a group meeting's names its party group.
    func code(group: Int) -> String {
        switch self {
        case .branchCongress: return "bc"
        case .committeeMeeting: return "cm"
        case .groupMeeting: return "g\(group + 1)"
        case .partyLecture: return "pl"
        case .themeDay: return "td"
        case .democraticLife: return "dl"
        }
    }
}

/// A meeting a branch holds (or, for `group`, one of its party groups).
struct PlannedMeeting {
    var kind: MeetingKind
    var day: SampleDay
    var group = 0
}

/// One unit of a sample province: its roster, and the generators of its history and of a
/// day of changes after it.
///
/// Each kind of record is drawn from a generator keyed by what it belongs to (a branch and
/// month for meetings, a member and month for study and service, a directive for its
/// response), so any part can be regenerated alone: the day of changes finds the rows it
/// corrects or deletes without replaying five years.
struct UnitSample {
    let unit: OrgUnit
    let province: SampleProvince
    let window: SampleWindow
    let seed: UInt64
    let profile: IndustryProfile
    let roster: UnitRoster
    /// How reliably the unit holds its meetings (0.8–1) and how well they are attended.
    let diligence: Double
    let attendanceRate: Double
    let themeDayOfMonth: Int

    init(province: SampleProvince, unitID: String) {
        guard let unit = province.unit(unitID) else {
            preconditionFailure("SampleProvince has no unit '\(unitID)'; use an id from `units`")
        }
        self.unit = unit
        self.province = province
        window = province.window
        seed = SampleRandom.mix([province.shape.seed, stableHash(unitID)])
        profile = IndustryProfile.of(unit.sampleIndustry ?? .other)
        roster = UnitRoster(unit: unit, shape: province.shape, window: window, seed: seed, profile: profile)
        var rng = SampleRandom(seed, SampleStream.roster.rawValue, 1)
        diligence = 0.8 + 0.2 * rng.unit()
        attendanceRate = 0.86 + 0.11 * rng.unit()
        themeDayOfMonth = rng.int(5...25)
    }

    var unitValue: Value { .text(unit.id) }

    // MARK: The history

    /// A month's statements, each with the day it happened, sorted by day before they are
    /// handed out (stable, so a row is always created before what refers to it that day).
    struct MonthLog {
        var entries: [(day: Int, seq: Int, statement: SQLStatement)] = []
        mutating func add(_ day: SampleDay, _ sql: String, _ arguments: [Value]) {
            entries.append((day.number, entries.count, SQLStatement(sql, arguments)))
        }
        func sorted() -> [SQLStatement] {
            entries.sorted { ($0.day, $0.seq) < ($1.day, $1.seq) }.map(\.statement)
        }
    }

    func history(_ chunk: ([SQLStatement]) throws -> Void) rethrows {
        try chunk(setup())
        let plans = responsePlans()
        for month in window.months {
            try chunk(monthStatements(month, responses: plans))
        }
    }

    /// The branches, the roll on the first day, each branch's secretary, the service posts.
    func setup() -> [SQLStatement] {
        var out: [SQLStatement] = []
        let start = window.start
        for b in roster.branches {
            out.append(
                SQLStatement(
                    SampleSQL.insertBranch, [.text(b.id), unitValue, .text(b.name), .text(b.kind), .null, .text(b.established.text)]))
        }
        for m in roster.members where m.addedOn == start {
            out.append(memberInsert(m, on: start))
        }
        for (b, branch) in roster.branches.enumerated() {
            if let s = roster.secretary(of: b, on: start) {
                out.append(SQLStatement(SampleSQL.updateBranchSecretary, [.text(roster.members[s].id), .text(branch.id)]))
            }
        }
        for p in roster.posts where p.from == start {
            out.append(postInsert(p))
        }
        return out
    }

    func memberInsert(_ m: UnitRoster.Member, on day: SampleDay) -> SQLStatement {
        SQLStatement(
            SampleSQL.insertMember,
            [
                .text(m.id), unitValue, .text(roster.branches[m.branch].id), .text(m.name), .text(m.female ? "female" : "male"),
                .text(m.birth.text), .text(m.status(on: day)), .text(m.joinedOn.text), optionalText(m.position),
                optionalText(m.phone), optionalText(m.idCard), optionalText(m.education),
            ])
    }

    func postInsert(_ p: UnitRoster.Post) -> SQLStatement {
        SQLStatement(
            SampleSQL.insertPost,
            [.text(p.id), unitValue, .text(roster.branches[p.branch].id), .text(p.name), .text(p.kind.area), .integer(1)])
    }

    func monthStatements(_ month: SampleMonth, responses: [ResponsePlan]) -> [SQLStatement] {
        let span = window.span(of: month)
        var log = MonthLog()
        var rng = SampleRandom(seed, SampleStream.monthly.rawValue, UInt64(month.index))
        rosterChanges(in: span, into: &log)
        for b in roster.branches.indices {
            for planned in meetingPlan(branch: b, month: month) {
                meeting(planned, branch: b, rng: &rng, into: &log)
            }
        }
        for m in roster.members where m.isActive(throughout: span) {
            for s in studyRecords(m, month: month) { log.add(s.day, s.statement.sql, s.statement.arguments) }
            for s in serviceRecords(m, month: month) { log.add(s.day, s.statement.sql, s.statement.arguments) }
        }
        if month.month == 1 { evaluations(of: month.year - 1, in: month, rng: &rng, into: &log) }
        if month.month % 3 == 1 { surveys(in: month, rng: &rng, into: &log) }
        for plan in responses {
            for event in plan.events where span.contains(event.day) { log.add(event.day, event.statement.sql, event.statement.arguments) }
        }
        if rng.chance(0.25) {
            let day = rng.day(in: span)
            log.add(day, SampleSQL.insertNote, [.text("\(unit.id)-nt\(day.compact)"), .text(rng.pick(Vocabulary.noteBodies))])
        }
        return log.sorted()
    }

    /// Members joining, becoming full members, leaving, changing post or phone; branch
    /// secretaries succeeding those who leave; service posts retired and opened.
    func rosterChanges(in span: ClosedRange<SampleDay>, into log: inout MonthLog) {
        let start = window.start
        for m in roster.members {
            if m.addedOn != start && span.contains(m.addedOn) {
                log.add(m.addedOn, SampleSQL.insertMember, memberInsert(m, on: m.addedOn).arguments)
            }
            if let f = m.fullOn, span.contains(f), m.happens(f) {
                log.add(f, SampleSQL.updateMemberStatus, [.text("full"), .text(m.id)])
            }
            if let p = m.promotion, span.contains(p.day), m.happens(p.day) {
                log.add(p.day, SampleSQL.updateMemberPosition, [.text(p.position), .text(m.id)])
            }
            if let c = m.phoneChange, span.contains(c.day), m.happens(c.day) {
                log.add(c.day, SampleSQL.updateMemberPhone, [.text(c.phone), .text(m.id)])
            }
            if let l = m.leftOn, span.contains(l) {
                log.add(l, SampleSQL.updateMemberStatus, [.text(m.leftAs), .text(m.id)])
                let before = roster.secretary(of: m.branch, on: l.advanced(by: -1))
                let after = roster.secretary(of: m.branch, on: l)
                if before != after {
                    log.add(
                        l, SampleSQL.updateBranchSecretary,
                        [after.map { .text(roster.members[$0].id) } ?? .null, .text(roster.branches[m.branch].id)])
                }
            }
        }
        for p in roster.posts {
            if p.from != start && span.contains(p.from) { log.add(p.from, postInsert(p).sql, postInsert(p).arguments) }
            if let u = p.until, span.contains(u) { log.add(u, SampleSQL.retirePost, [.text(p.id)]) }
        }
    }

    // MARK: Meetings

    /// The meetings a branch holds in a month: the committee, each party group and the
    /// theme day monthly, the branch congress in the last month of each quarter, a party
    /// lecture in the middle one, the democratic life meeting in January; a less diligent
    /// unit skips some.
    func meetingPlan(branch b: Int, month: SampleMonth) -> [PlannedMeeting] {
        var rng = SampleRandom(seed, SampleStream.meetings.rawValue, UInt64(b), UInt64(month.index))
        let span = window.span(of: month)
        let branch = roster.branches[b]
        var out: [PlannedMeeting] = []
        func consider(_ kind: MeetingKind, _ day: SampleDay, _ p: Double, group: Int = 0) {
            let held = rng.chance(p)
            if held && span.contains(day) && day > branch.established { out.append(PlannedMeeting(kind: kind, day: day, group: group)) }
        }
        let quarterly = min(1, diligence + 0.06)
        if branch.hasCommittee { consider(.committeeMeeting, month.workday(rng.int(2...7)), diligence) }
        for g in 0..<branch.groups { consider(.groupMeeting, month.workday(rng.int(9...20)), diligence, group: g) }
        consider(.themeDay, month.workday(themeDayOfMonth), diligence)
        if month.month % 3 == 0 { consider(.branchCongress, month.workday(rng.int(18...26)), quarterly) }
        if month.month % 3 == 2 { consider(.partyLecture, month.workday(rng.int(8...20)), quarterly) }
        if month.month == 1 { consider(.democraticLife, month.workday(rng.int(12...26)), quarterly) }
        return out
    }

    func meetingID(_ m: PlannedMeeting, branch b: Int) -> String {
        "\(unit.id)-mt\(m.day.compact)-b\(padded(b + 1, 2))\(m.kind.code(group: m.group))"
    }

    /// A meeting and one attendance row per member expected at it: the committee for a
    /// committee meeting, the party group for a group meeting, otherwise every member of
    /// the branch on the roll that day.
    func meeting(_ planned: PlannedMeeting, branch b: Int, rng: inout SampleRandom, into log: inout MonthLog) {
        let (kind, day) = (planned.kind, planned.day)
        var expected = roster.active(in: b, on: day)
        switch kind {
        case .committeeMeeting: expected = Array(expected.prefix(expected.count >= 30 ? 5 : 3))
        case .groupMeeting: expected = expected.filter { roster.group(of: $0) == planned.group }
        default: break
        }
        guard !expected.isEmpty else { return }
        let id = meetingID(planned, branch: b)
        var rows: [(member: Int, status: String)] = []
        for i in expected {
            let m = roster.members[i]
            var p = attendanceRate - (m.retired ? 0.12 : 0) + (kind == .committeeMeeting ? 0.03 : 0)
            if i == expected[0] { p = 1 }  // the secretary chairs
            let status = rng.chance(p) ? "present" : (rng.chance(0.75) ? "absent_excused" : "absent")
            rows.append((i, status))
        }
        let text = meetingText(planned, attendance: rows, rng: &rng)
        log.add(
            day, SampleSQL.insertMeeting,
            [
                .text(id), unitValue, .text(roster.branches[b].id), .text(kind.rawValue), .text(day.text), .text(text.topic),
                .text(text.place), .text(text.minutes),
            ])
        for r in rows {
            log.add(day, SampleSQL.insertAttendance, [.text(id), .text(roster.members[r.member].id), unitValue, .text(r.status)])
        }
    }

    func meetingText(
        _ planned: PlannedMeeting, attendance: [(member: Int, status: String)], rng: inout SampleRandom
    ) -> (topic: String, place: String, minutes: String) {
        let c = planned.day.civil
        let chair = roster.members[attendance[0].member].name
        let present = attendance.filter { $0.status == "present" }
        let excused = attendance.filter { $0.status == "absent_excused" }.count
        let speakers = present.dropFirst().prefix(2).map { roster.members[$0.member].name }
        let speaking = speakers.isEmpty ? chair : speakers.joined(separator: "、")
        var place = rng.pick(Vocabulary.places)
        let topic: String
        let body: String
        switch planned.kind {
        case .branchCongress:
            let agenda = rng.pick(Vocabulary.congressAgendas)
            topic = "\(c.year)年第\(ChinesePeople.numeral((c.month - 1) / 3 + 1))季度党员大会：\(agenda)"
            body = "会议\(agenda)，与会党员进行了认真讨论，形成一致意见。"
        case .committeeMeeting:
            let agenda = rng.pick(Vocabulary.committeeAgendas)
            topic = "\(c.month)月支委会：\(agenda)"
            body = "支委会\(agenda)，明确了责任分工和完成时限。"
        case .groupMeeting:
            if rng.chance(0.6) {
                let reading = rng.pick(Vocabulary.readings)
                topic = "第\(ChinesePeople.numeral(planned.group + 1))党小组会：学习\(reading)"
                body = "会议集体学习了\(reading)，\(speaking)结合本职工作交流了学习体会。"
            } else {
                let campaign = Vocabulary.campaign(c.year)
                topic = "第\(ChinesePeople.numeral(planned.group + 1))党小组会：围绕\(campaign)开展交流研讨"
                body = "围绕\(campaign)，\(speaking)联系思想和工作实际作了交流发言。"
            }
        case .partyLecture:
            let lecture = rng.chance(0.4) ? rng.pick(profile.lectureTopics) : rng.pick(Vocabulary.lectureTopics)
            topic = "专题党课：\(lecture)"
            body = "\(chair)以“\(lecture)”为题讲授专题党课，结合\(Vocabulary.campaign(c.year))作了深入阐述。"
        case .themeDay:
            let activity = rng.chance(0.35) ? rng.pick(profile.themeActivities) : Vocabulary.themeByMonth[c.month - 1]
            topic = "\(c.month)月主题党日：\(activity)"
            if rng.chance(0.35) { place = rng.pick(Vocabulary.outingPlaces) }
            body = "全体党员参加“\(activity)”活动，\(speaking)分享了活动体会。"
        case .democraticLife:
            topic = "\(c.year - 1)年度组织生活会暨民主评议党员"
            body = "会议通报了\(c.year - 1)年度支部工作情况，党员逐一开展批评和自我批评，并进行了民主评议。"
        }
        var minutes = "会议由\(chair)主持，应到\(attendance.count)人，实到\(present.count)人"
        if excused > 0 { minutes += "，请假\(excused)人" }
        minutes += "。" + body + "会议强调，要" + rng.pick(Vocabulary.exhortations) + "。"
        return (topic, place, minutes)
    }

    // MARK: Study and service

    /// A member's study in one month: two to six sessions (one to three for retirees), most
    /// on a course of the year's catalogue, the rest self-directed.
    func studyRecords(_ m: UnitRoster.Member, month: SampleMonth) -> [(day: SampleDay, statement: SQLStatement)] {
        var rng = SampleRandom(seed, SampleStream.study.rawValue, UInt64(m.number), UInt64(month.index))
        let span = window.span(of: month)
        let count = m.retired ? rng.int(1...3) : rng.int(2...6)
        var out: [(day: SampleDay, statement: SQLStatement)] = []
        out.reserveCapacity(count)
        for k in 1...count {
            let day = rng.day(in: span)
            out.append((day, studyRecord(id: "\(unit.id)-st\(month.compact)-m\(padded(m.number, 4))-\(k)", member: m, on: day, rng: &rng)))
        }
        return out
    }

    func studyRecord(id: String, member m: UnitRoster.Member, on day: SampleDay, rng: inout SampleRandom) -> SQLStatement {
        let catalogue = province.coursesByYear[min(day.year, window.end.year)] ?? []
        if !catalogue.isEmpty && rng.chance(0.78) {
            let course = rng.pick(catalogue)
            let completed = rng.chance(0.9)
            let minutes = completed ? course.minutes : rng.int(5...course.minutes - 1)
            return SQLStatement(
                SampleSQL.insertStudy,
                [
                    .text(id), unitValue, .text(m.id), .text(course.id), .text(day.text), .integer(Int64(minutes)),
                    .integer(completed ? 1 : 0),
                ])
        }
        return SQLStatement(
            SampleSQL.insertStudy,
            [.text(id), unitValue, .text(m.id), .null, .text(day.text), .integer(Int64(5 * rng.int(4...24))), .integer(1)])
    }

    /// A member's service at the branch's posts in one month: none to three sessions.
    func serviceRecords(_ m: UnitRoster.Member, month: SampleMonth) -> [(day: SampleDay, statement: SQLStatement)] {
        var rng = SampleRandom(seed, SampleStream.service.rawValue, UInt64(m.number), UInt64(month.index))
        let span = window.span(of: month)
        let count = rng.weighted(m.retired ? [70, 25, 5, 0] : [45, 38, 14, 3])
        var out: [(day: SampleDay, statement: SQLStatement)] = []
        for k in 0..<count {
            let day = rng.day(in: span)
            if let s = serviceRecord(id: "\(unit.id)-sv\(month.compact)-m\(padded(m.number, 4))-\(k + 1)", member: m, on: day, rng: &rng) {
                out.append((day, s))
            }
        }
        return out
    }

    func serviceRecord(id: String, member m: UnitRoster.Member, on day: SampleDay, rng: inout SampleRandom) -> SQLStatement? {
        let posts = roster.posts.filter { $0.branch == m.branch && $0.isActive(on: day) }
        let hours = Double(rng.int(1...(m.retired ? 6 : 12))) / 2
        let draw = rng.next()
        guard !posts.isEmpty else { return nil }
        let post = posts[Int(draw % UInt64(posts.count))]
        let note: Value = rng.chance(0.35) ? .text(rng.pick(post.kind.notes)) : .null
        return SQLStatement(
            SampleSQL.insertService,
            [
                .text(id), unitValue, .text(post.id), .text(m.id), .text(day.text), .real(hours),
                .integer(Int64(rng.int(post.kind.beneficiaries))),
                .text(post.kind.referencePrefix + day.compact + padded(rng.int(1...9999), 4)), note,
            ])
    }

    // MARK: Evaluations and surveys

    /// The democratic appraisal of `year`, held in January: every member on the roll at the
    /// end of that year and on the day.
    func evaluations(of year: Int, in month: SampleMonth, rng: inout SampleRandom, into log: inout MonthLog) {
        let day = month.workday(rng.int(15...28))
        let yearEnd = SampleDay(year: year, month: 12, day: 31)
        guard window.contains(day) else { return }
        for m in roster.members where m.isActive(on: yearEnd) && m.isActive(on: day) {
            let rating = ["excellent", "qualified", "basically_qualified", "unqualified"][rng.weighted([180, 785, 30, 5])]
            let comment: Value =
                rating == "qualified" && rng.chance(0.5) ? .null : .text(rng.pick(Vocabulary.ratingComments[rating]!))
            log.add(
                day, SampleSQL.insertEvaluation,
                [
                    .text("\(unit.id)-ev\(year)-m\(padded(m.number, 4))"), unitValue, .text(m.id), .integer(Int64(year)), .text(rating),
                    comment,
                ])
        }
    }

    /// Last quarter's satisfaction survey, of members and of the public, early in the
    /// quarter after it.
    func surveys(in month: SampleMonth, rng: inout SampleRandom, into log: inout MonthLog) {
        let day = month.workday(rng.int(5...15))
        let year = month.month == 1 ? month.year - 1 : month.year
        let quarter = month.month == 1 ? 4 : month.quarter - 1
        let members = roster.members.filter { $0.isActive(on: day) }.count
        let memberScore = Double(rng.int(880...995)) / 10
        let memberRespondents = Int(Double(members) * (0.8 + 0.2 * rng.unit()))
        let publicScore = Double(rng.int(820...985)) / 10
        let publicRespondents = rng.int(profile.publicRespondents)
        guard window.contains(day) else { return }
        let period = "\(year)-Q\(quarter)"
        let id = "\(unit.id)-sq\(year)q\(quarter)"
        log.add(
            day, SampleSQL.insertSurvey,
            [.text(id + "-member"), unitValue, .text(period), .text("member"), .integer(Int64(memberRespondents)), .real(memberScore)])
        log.add(
            day, SampleSQL.insertSurvey,
            [.text(id + "-public"), unitValue, .text(period), .text("public"), .integer(Int64(publicRespondents)), .real(publicScore)])
    }

    // MARK: Directive responses

    /// How the unit answers one directive: received within days, in progress soon after,
    /// completed mostly before the deadline, some late, a few never; a few broadcast ones
    /// do not apply.
    struct ResponsePlan {
        var id: String
        var directive: SampleDirective
        var received: SampleDay
        var notApplicable: Bool
        var inProgress: SampleDay
        var completed: SampleDay?
        var events: [(day: SampleDay, statement: SQLStatement)] = []
    }

    func responsePlans() -> [ResponsePlan] {
        let indices = (province.broadcastDirectives + (province.targetedDirectives[unit.id] ?? [])).sorted()
        return indices.map { responsePlan(province.directives[$0]) }
    }

    func responsePlan(_ d: SampleDirective) -> ResponsePlan {
        var rng = SampleRandom(seed, SampleStream.response.rawValue, stableHash(d.id))
        var received = d.issuedOn.advanced(by: rng.int(1...5))
        while received.isWeekend { received = received.advanced(by: 1) }
        let notApplicable = d.target == nil && rng.chance(0.04)
        let inProgress = received.advanced(by: rng.int(2...12))
        let due = d.dueOn ?? d.issuedOn.advanced(by: 60)
        let completed: SampleDay?
        switch rng.weighted([86, 9, 5]) {
        case 0: completed = inProgress.advanced(by: rng.int(1...max(1, inProgress.distance(to: due))))
        case 1: completed = max(due, inProgress).advanced(by: rng.int(3...40))
        default: completed = nil
        }
        let sessions = rng.int(1...4)
        var plan = ResponsePlan(
            id: "\(unit.id)-dr-\(d.id)", directive: d, received: received, notApplicable: notApplicable, inProgress: inProgress,
            completed: completed)
        let id = Value.text(plan.id)
        guard window.contains(received) else { return plan }
        func event(_ day: SampleDay, _ sql: String, _ arguments: [Value]) {
            plan.events.append((day, SQLStatement(sql, arguments)))
        }
        if notApplicable {
            let report = Value.text("经核实，本单位不涉及该项工作。")
            event(
                received, SampleSQL.insertResponse,
                [id, unitValue, .text(d.id), .text("not_applicable"), .text(received.text), report, .null])
            return plan
        }
        event(received, SampleSQL.insertResponse, [id, unitValue, .text(d.id), .text("received"), .text(received.text), .null, .null])
        if window.contains(inProgress) {
            let report = Value.text("已组织传达学习，制定落实方案，明确责任人和完成时限。")
            event(inProgress, SampleSQL.updateResponseProgress, [.text("in_progress"), .text(inProgress.text), report, id])
        }
        if let done = completed, window.contains(done) {
            plan.events.append((done, completion(id, on: done, sessions: sessions)))
        }
        return plan
    }

    func completion(_ id: Value, on day: SampleDay, sessions: Int) -> SQLStatement {
        SQLStatement(
            SampleSQL.updateResponseCompleted,
            [
                .text("completed"), .text(day.text), .text("已按要求完成各项工作，共组织专题学习\(sessions)次，相关材料已归档。"), .text(day.text), id,
            ])
    }

    func optionalText(_ s: String?) -> Value { s.map(Value.text) ?? .null }
}
