import FerryCore

extension UnitSample {
    /// One day of a clerk's work after the history: see `SampleProvince.dayOfChanges`.
    func dayOfChanges(_ day: SampleDay, seed daySeed: UInt64) -> [SQLStatement] {
        let end = window.end
        precondition(day > end, "dayOfChanges: the day \(day.text) must come after the history, which ends on \(end.text)")
        var rng = SampleRandom(seed, SampleStream.day.rawValue, daySeed, UInt64(day.number))
        let active = roster.members.indices.filter { roster.members[$0].isActive(on: end) }
        var out: [SQLStatement] = []

        // A few meetings held today, with their attendance.
        var log = MonthLog()
        let working = roster.branches.indices.filter { !roster.branches[$0].retirees }
        var held = Set<String>()
        for _ in 0..<rng.int(2...4) {
            let b = rng.pick(working.isEmpty ? Array(roster.branches.indices) : working)
            let kind = rng.pick([MeetingKind.committeeMeeting, .groupMeeting, .themeDay, .partyLecture])
            let planned = PlannedMeeting(kind: kind, day: day, group: rng.below(roster.branches[b].groups))
            guard kind != .committeeMeeting || roster.branches[b].hasCommittee else { continue }
            guard held.insert(meetingID(planned, branch: b)).inserted else { continue }
            meeting(planned, branch: b, rng: &rng, into: &log)
        }
        out.append(contentsOf: log.sorted())

        // The study platform's export for the last few days: most members, once or twice.
        for i in active {
            let m = roster.members[i]
            let sessions = rng.chance(m.retired ? 0.35 : 0.8) ? (rng.chance(0.2) ? 2 : 1) : 0
            for k in 0..<sessions {
                let studied = day.advanced(by: -rng.int(0...3))
                out.append(
                    studyRecord(id: "\(unit.id)-st\(day.compact)-m\(padded(m.number, 4))-\(k + 1)", member: m, on: studied, rng: &rng))
            }
        }

        // Service given today.
        for i in active where rng.chance(0.05) {
            let m = roster.members[i]
            if let s = serviceRecord(id: "\(unit.id)-sv\(day.compact)-m\(padded(m.number, 4))-1", member: m, on: day, rng: &rng) {
                out.append(s)
            }
        }

        // Member records brought up to date, one or two columns each.
        var candidates = active
        rng.shuffle(&candidates)
        for i in candidates.prefix(max(3, active.count / 40)) {
            let m = roster.members[i]
            let id = Value.text(m.id)
            switch rng.weighted([35, 25, 15, 10, 15]) {
            case 1 where !m.retired:
                out.append(SQLStatement(SampleSQL.updateMemberPosition, [.text(rng.pick(profile.positions)), id]))
            case 2 where !m.retired:
                out.append(
                    SQLStatement(
                        SampleSQL.updateMemberEducationPosition,
                        [.text(rng.pick(Array(Vocabulary.educations.prefix(3)))), .text(rng.pick(profile.positions)), id]))
            case 3 where !m.retired && working.count > 1:
                let to = rng.pick(working.filter { $0 != m.branch })
                out.append(
                    SQLStatement(
                        SampleSQL.updateMemberBranchPosition, [.text(roster.branches[to].id), .text(rng.pick(profile.positions)), id]))
            case 4 where m.status(on: end) == "probationary":
                out.append(SQLStatement(SampleSQL.updateMemberStatus, [.text("full"), id]))
            default:
                out.append(SQLStatement(SampleSQL.updateMemberPhone, [.text(ChinesePeople.mobile(&rng)), id]))
            }
        }

        // A branch completes the minutes of its last meeting.
        let month = end.month
        if let b = working.first, let last = meetingPlan(branch: b, month: month).last,
            let chair = roster.secretary(of: b, on: last.day)
        {
            out.append(
                SQLStatement(
                    SampleSQL.updateMeetingMinutes,
                    [
                        .text("会议由\(roster.members[chair].name)主持。补记：会后已将会议精神传达至未到会党员，并督促其完成补学。"),
                        .text(meetingID(last, branch: b)),
                    ]))
        }

        // A directive still in progress is reported complete.
        if let plan = responsePlans().first(where: {
            !$0.notApplicable && $0.inProgress <= end && ($0.completed.map { $0 > end } ?? true)
        }) {
            out.append(completion(.text(plan.id), on: day, sessions: rng.int(1...3)))
        }

        // Duplicates the clerk spots in last month's records and deletes.
        let span = window.span(of: month)
        var lastMonth = roster.members.filter { $0.isActive(throughout: span) }
        rng.shuffle(&lastMonth)
        for m in lastMonth.prefix(rng.int(2...4)) {
            let records = studyRecords(m, month: month)
            out.append(SQLStatement(SampleSQL.deleteStudy, [records[rng.below(records.count)].statement.arguments[0]]))
        }
        if let record = lastMonth.dropFirst(4).lazy.compactMap({ serviceRecords($0, month: month).first }).first {
            out.append(SQLStatement(SampleSQL.deleteService, [record.statement.arguments[0]]))
        }

        out.append(SQLStatement(SampleSQL.insertNote, [.text("\(unit.id)-nt\(day.compact)"), .text(rng.pick(Vocabulary.noteBodies))]))
        return out
    }
}
