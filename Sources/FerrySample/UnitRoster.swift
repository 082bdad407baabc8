import FerryCore
/// A unit's branches, members and service posts over the whole window, with the dates
/// every one of them changes. Drawn first and cheaply (O(members)), so the history and a
/// day of changes after it agree on who was on the roll when.
struct UnitRoster {
    struct Branch {
        var id: String
        var name: String
        var kind: String
        var established: SampleDay
        var retirees: Bool
        /// Whether the branch is large enough to elect a committee (seven members or more).
        var hasCommittee: Bool
        /// Party groups (党小组) of about ten members; a member's is fixed by number.
        var groups: Int
    }

    struct Member {
        var number: Int
        var id: String
        var branch: Int
        var name: String
        var female: Bool
        var birth: SampleDay
        var joinedOn: SampleDay
        /// When the clerk enters the member: the window's start for the initial roll.
        var addedOn: SampleDay
        /// Probationary until this day (one year after joining); nil when full on entry.
        var fullOn: SampleDay?
        var leftOn: SampleDay?
        var leftAs = "transferred_out"
        var position: String?
        var promotion: (day: SampleDay, position: String)?
        var phone: String?
        var phoneChange: (day: SampleDay, phone: String)?
        var idCard: String?
        var education: String?
        var retired: Bool

        func isActive(on d: SampleDay) -> Bool { addedOn <= d && (leftOn.map { d < $0 } ?? true) }

        /// On the roll on every day of `span`.
        func isActive(throughout span: ClosedRange<SampleDay>) -> Bool {
            addedOn <= span.lowerBound && (leftOn.map { $0 > span.upperBound } ?? true)
        }

        func status(on d: SampleDay) -> String {
            if let l = leftOn, d >= l { return leftAs }
            if let f = fullOn, d < f { return "probationary" }
            return "full"
        }

        /// A dated change that happens while the member is on the roll.
        func happens(_ day: SampleDay) -> Bool { day > addedOn && (leftOn.map { day < $0 } ?? true) }
    }

    struct Post {
        var id: String
        var branch: Int
        var name: String
        var kind: IndustryProfile.Post
        var from: SampleDay
        var until: SampleDay?

        func isActive(on d: SampleDay) -> Bool { from <= d && (until.map { d < $0 } ?? true) }
    }

    var branches: [Branch] = []
    var members: [Member] = []
    /// Indices into `members` per branch, in member-number order.
    var membersByBranch: [[Int]] = []
    var posts: [Post] = []

    init(unit: OrgUnit, shape: ProvinceShape, window: SampleWindow, seed: UInt64, profile: IndustryProfile) {
        var rng = SampleRandom(seed, SampleStream.roster.rawValue)
        let range = shape.membersPerUnit
        let u = rng.unit()
        let skewed = min(1, u * u.squareRoot() * profile.sizeFactor)
        let size = range.lowerBound + Int((Double(range.upperBound - range.lowerBound) * skewed).rounded())
        let years = Double(shape.years)
        let start = window.start
        let region = String(unit.regionCode.prefix(6))

        // Branches: one for a small unit; about forty members each for a larger one, the
        // last of three or more for retired members.
        let count = size < 60 ? 1 : min(Int((Double(size) / 40).rounded()), profile.branches.count + 1)
        let hasRetirees = count >= 3
        for b in 0..<count {
            let retirees = hasRetirees && b == count - 1
            let name: String
            var kind = "branch"
            if count == 1 {
                if size >= 45 {
                    name = unit.name + "党总支"
                    kind = "general_branch"
                } else if (unit.sampleIndustry == .other || unit.sampleIndustry == .culture) && size < 30 && rng.chance(0.5) {
                    name = unit.name + "联合党支部"
                    kind = "joint_branch"
                } else {
                    name = unit.name + "党支部"
                }
            } else {
                name = retirees ? Vocabulary.retireeBranch : profile.branches[b]
            }
            branches.append(
                Branch(
                    id: "\(unit.id)-b\(padded(b + 1, 2))", name: name, kind: kind, established: start.advanced(by: -rng.int(400...9000)),
                    retirees: retirees, hasCommittee: true, groups: 1))
        }
        membersByBranch = Array(repeating: [], count: count)

        // The initial roll, branch by branch; each branch's first member is its secretary.
        let retireeCount = hasRetirees ? max(3, Int((Double(size) * 0.12).rounded())) : 0
        let working = branches.indices.filter { !branches[$0].retirees }
        var sizes = [Int](repeating: 0, count: count)
        if hasRetirees { sizes[count - 1] = retireeCount }
        let weights = working.map { _ in rng.int(8...12) }
        let workingTotal = size - retireeCount
        var assigned = 0
        for (i, b) in working.enumerated() {
            sizes[b] = i == working.count - 1 ? workingTotal - assigned : workingTotal * weights[i] / weights.reduce(0, +)
            assigned += sizes[b]
        }
        for b in 0..<count {
            branches[b].hasCommittee = sizes[b] >= 7
            branches[b].groups = min(9, max(1, (sizes[b] + 5) / 10))
            for j in 0..<sizes[b] {
                let retired = branches[b].retirees
                let age = retired ? rng.int(60...86) : (j == 0 ? rng.int(38...55) : rng.int(24...59))
                var m = makeMember(
                    &rng, unit: unit, branch: b, region: region, profile: profile, retired: retired, age: age, on: start)
                let joinAge = rng.int(19...min(age - 2, 40))
                m.joinedOn = min(m.birth.addingYears(joinAge).advanced(by: rng.below(300)), start.advanced(by: -rng.int(400...900)))
                if !retired && j > 0 && rng.chance(0.04) {
                    m.joinedOn = start.advanced(by: -rng.int(30...360))
                    m.fullOn = m.joinedOn.addingYears(1)
                }
                m.addedOn = start
                if j == 0 && !retired { m.education = Vocabulary.educations[rng.weighted(profile.leaderEducation)] }
                if j == 0 && b == 0 && !retired {
                    // The first secretary also leads the unit's party organisation.
                    m.position = count >= 3 ? "党委书记" : (count == 2 ? "党总支书记" : profile.leaderPosition)
                }
                members.append(m)
            }
        }

        // Newcomers join as probationary members through the years.
        var newcomers: [Member] = []
        let newcomerCount = Int((Double(size - retireeCount) * 0.03 * years).rounded())
        for _ in 0..<newcomerCount {
            let day = rng.day(in: start.advanced(by: 1)...window.end)
            var m = makeMember(
                &rng, unit: unit, branch: rng.pick(working), region: region, profile: profile, retired: false, age: rng.int(24...38),
                on: day)
            m.joinedOn = day
            m.addedOn = day
            m.fullOn = day.addingYears(1)
            newcomers.append(m)
        }
        newcomers.sort { $0.addedOn < $1.addedOn }
        members.append(contentsOf: newcomers)

        // Numbers in entry order, then the changes each member goes through.
        for i in members.indices {
            members[i].number = i + 1
            members[i].id = "\(unit.id)-m\(padded(i + 1, 4))"
            membersByBranch[members[i].branch].append(i)
            let m = members[i]
            let from = m.addedOn.advanced(by: 30)
            guard from < window.end else { continue }
            if m.retired {
                if rng.chance(0.015 * years) {
                    members[i].leftOn = rng.day(in: from...window.end)
                    members[i].leftAs = "deceased"
                }
            } else if rng.chance(0.025 * years) {
                members[i].leftOn = rng.day(in: from...window.end)
            }
            if !m.retired && rng.chance(0.05 * years) {
                members[i].promotion = (rng.day(in: from...window.end), rng.pick(profile.positions))
            }
            if m.phone != nil && rng.chance(0.04 * years) {
                members[i].phoneChange = (rng.day(in: from...window.end), ChinesePeople.mobile(&rng))
            }
        }

        // Service posts: one or two per working branch, one for the retirees; now and then
        // a post is retired (its flag cleared, its records kept) and another opened.
        for b in 0..<count {
            let kinds = branches[b].retirees ? [Vocabulary.retireePost] : profile.posts
            let n = branches[b].retirees ? 1 : (sizes[b] >= 30 ? 2 : 1)
            for k in 0..<n {
                let kind = kinds[(b + k) % kinds.count]
                posts.append(
                    Post(
                        id: "\(unit.id)-p\(padded(posts.count + 1, 2))", branch: b, name: postName(kind, branch: b), kind: kind, from: start
                    ))
            }
        }
        let replaceable = posts.indices.filter { !branches[posts[$0].branch].retirees }
        if rng.chance(0.4), !replaceable.isEmpty {
            let i = rng.pick(replaceable)
            let day = rng.day(in: start.advanced(by: 180)...max(start.advanced(by: 180), window.end.advanced(by: -90)))
            if window.contains(day) {
                posts[i].until = day
                let b = posts[i].branch
                let replaced = posts[i].kind.name
                let kind = profile.posts.first { $0.name != replaced && !posts.map(\.kind.name).contains($0.name) } ?? posts[i].kind
                posts.append(
                    Post(id: "\(unit.id)-p\(padded(posts.count + 1, 2))", branch: b, name: postName(kind, branch: b), kind: kind, from: day)
                )
            }
        }
    }

    /// A post's name, with its branch's name when the unit has several branches.
    private func postName(_ kind: IndustryProfile.Post, branch b: Int) -> String {
        guard branches.count > 1 else { return kind.name }
        var short = branches[b].name
        if short.hasSuffix("党支部") { short.removeLast(3) }
        return kind.name + "（" + short + "）"
    }

    private func makeMember(
        _ rng: inout SampleRandom, unit: OrgUnit, branch: Int, region: String, profile: IndustryProfile, retired: Bool,
        age: Int, on day: SampleDay
    ) -> Member {
        let female = rng.chance(retired ? 0.45 : profile.femaleShare)
        let birth = day.addingYears(-age).advanced(by: -rng.below(365))
        let education = Vocabulary.educations[rng.weighted(retired ? [0, 0, 4, 5, 7] : profile.education)]
        let position: String? =
            rng.chance(0.08) ? nil : (retired ? rng.pick(Vocabulary.retireePositions) : rng.pick(profile.positions))
        let phone = rng.chance(0.96) ? ChinesePeople.mobile(&rng) : nil
        // Most members were born in the county; some elsewhere in the province.
        let birthRegion =
            rng.chance(0.75) ? region : "\(SampleProvince.provinceCode)\(padded(rng.int(1...20), 2))\(padded(rng.int(21...30), 2))"
        let card = rng.chance(0.97) ? ChinesePeople.identityCardNumber(&rng, region: birthRegion, birth: birth, female: female) : nil
        return Member(
            number: 0, id: "", branch: branch, name: ChinesePeople.name(&rng, female: female), female: female, birth: birth,
            joinedOn: day, addedOn: day, fullOn: nil, leftOn: nil, position: position, promotion: nil, phone: phone,
            phoneChange: nil, idCard: card, education: rng.chance(0.97) ? education : nil, retired: retired)
    }

    /// The branch's secretary on `day`: its longest-standing active member.
    func secretary(of branch: Int, on day: SampleDay) -> Int? {
        membersByBranch[branch].first { members[$0].isActive(on: day) }
    }

    /// The party group of a member (an index into `members`) within its branch.
    func group(of member: Int) -> Int { members[member].number % branches[members[member].branch].groups }

    /// Active members of `branch` on `day`, in number order.
    func active(in branch: Int, on day: SampleDay) -> [Int] {
        membersByBranch[branch].filter { members[$0].isActive(on: day) }
    }
}

extension SampleRandom {
    mutating func day(in range: ClosedRange<SampleDay>) -> SampleDay {
        SampleDay(number: int(range.lowerBound.number...range.upperBound.number))
    }
}
