import FerryCore

/// The SQL the sample writes, one constant per statement shape (so a store's statement
/// cache prepares each once).
enum SampleSQL {
    static let insertOrgUnit = "INSERT INTO org_unit (id, parent_id, level, name, industry, region_code) VALUES (?, ?, ?, ?, ?, ?)"
    static let insertCourse = "INSERT INTO course (id, title, category, minutes, year) VALUES (?, ?, ?, ?, ?)"
    static let insertDirective =
        "INSERT INTO directive (id, target_unit_id, issued_by, issued_on, title, body, due_on, priority) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    static let insertBranch = "INSERT INTO branch (id, unit_id, name, kind, secretary_member_id, established_on) VALUES (?, ?, ?, ?, ?, ?)"
    static let updateBranchSecretary = "UPDATE branch SET secretary_member_id = ? WHERE id = ?"
    static let insertMember = """
        INSERT INTO member (id, unit_id, branch_id, name, gender, birth_date, status, joined_on, position, phone, id_card_number, education) \
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """
    static let updateMemberStatus = "UPDATE member SET status = ? WHERE id = ?"
    static let updateMemberPhone = "UPDATE member SET phone = ? WHERE id = ?"
    static let updateMemberPosition = "UPDATE member SET position = ? WHERE id = ?"
    static let updateMemberEducationPosition = "UPDATE member SET education = ?, position = ? WHERE id = ?"
    static let updateMemberBranchPosition = "UPDATE member SET branch_id = ?, position = ? WHERE id = ?"
    static let insertMeeting =
        "INSERT INTO meeting (id, unit_id, branch_id, kind, held_on, topic, place, minutes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    static let updateMeetingMinutes = "UPDATE meeting SET minutes = ? WHERE id = ?"
    static let insertAttendance = "INSERT INTO attendance (meeting_id, member_id, unit_id, status) VALUES (?, ?, ?, ?)"
    static let insertStudy =
        "INSERT INTO study_record (id, unit_id, member_id, course_id, studied_on, minutes, completed) VALUES (?, ?, ?, ?, ?, ?, ?)"
    static let deleteStudy = "DELETE FROM study_record WHERE id = ?"
    static let insertEvaluation = "INSERT INTO evaluation (id, unit_id, member_id, year, rating, comment) VALUES (?, ?, ?, ?, ?, ?)"
    static let insertPost = "INSERT INTO service_post (id, unit_id, branch_id, name, business_area, active) VALUES (?, ?, ?, ?, ?, ?)"
    static let retirePost = "UPDATE service_post SET active = 0 WHERE id = ?"
    static let insertService = """
        INSERT INTO service_record (id, unit_id, post_id, member_id, served_on, hours, beneficiaries, business_ref, note) \
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
        """
    static let deleteService = "DELETE FROM service_record WHERE id = ?"
    static let insertResponse = """
        INSERT INTO directive_response (id, unit_id, directive_id, status, responded_on, report, completed_on) VALUES (?, ?, ?, ?, ?, ?, ?)
        """
    static let updateResponseProgress = "UPDATE directive_response SET status = ?, responded_on = ?, report = ? WHERE id = ?"
    static let updateResponseCompleted =
        "UPDATE directive_response SET status = ?, responded_on = ?, report = ?, completed_on = ? WHERE id = ?"
    static let insertSurvey =
        "INSERT INTO satisfaction_survey (id, unit_id, period, respondent_kind, respondents, score) VALUES (?, ?, ?, ?, ?, ?)"
    static let insertNote = "INSERT INTO local_note (id, body) VALUES (?, ?)"
}

/// The organisation tree: a province, its cities, their counties (districts first, as
/// administrative codes number them) and the units under each county.
struct SampleTree {
    struct County {
        var id: String
        var code: String
        var name: String
        var cityID: String
        var units: [OrgUnit]
    }

    var all: [OrgUnit] = []
    var provinceID = ""
    var counties: [County] = []
}

enum OrgTreeBuilder {
    static func build(_ shape: ProvinceShape) -> SampleTree {
        var rng = SampleRandom(shape.seed, SampleStream.tree.rawValue)
        var taken = Set<String>()
        var tree = SampleTree()
        let p = SampleProvince.provinceCode
        tree.provinceID = "p-\(p)0000"
        tree.all.append(
            OrgUnit(
                id: tree.provinceID, name: ChinesePeople.placeName(&rng, taken: &taken) + "省", parentID: nil, level: .province,
                industry: nil, region: "\(p)0000"))
        for c in 1...shape.cities {
            let cityCode = p + padded(c, 2)
            let city = OrgUnit(
                id: "c-\(cityCode)00", name: ChinesePeople.placeName(&rng, taken: &taken) + "市", parentID: tree.provinceID,
                level: .city, industry: nil, region: cityCode + "00")
            tree.all.append(city)
            for k in 1...shape.countiesPerCity {
                // Codes 01–20 are a city's districts, 21–80 its counties.
                let district = k <= 2
                let code = cityCode + padded(district ? k + 1 : k + 18, 2)
                let countyName = ChinesePeople.placeName(&rng, taken: &taken) + (district ? "区" : "县")
                let county = OrgUnit(
                    id: "k-\(code)", name: countyName, parentID: city.id, level: .county, industry: nil, region: code)
                tree.all.append(county)
                let units = countyUnits(&rng, shape: shape, county: county)
                tree.all.append(contentsOf: units)
                tree.counties.append(SampleTree.County(id: county.id, code: code, name: countyName, cityID: city.id, units: units))
            }
        }
        return tree
    }

    /// A county's units: industries apportioned to the shape's mix (largest remainder,
    /// ties broken at random so counties differ a little), named after the county seat or
    /// one of its towns.
    static func countyUnits(
        _ rng: inout SampleRandom, shape: ProvinceShape, county: OrgUnit
    ) -> [OrgUnit] {
        let n = shape.unitsPerCounty
        let total = shape.industryMix.reduce(0) { $0 + max(0, $1.percent) }
        var counts = [Int](repeating: 0, count: shape.industryMix.count)
        var remainders: [(Double, Int)] = []
        for (i, s) in shape.industryMix.enumerated() {
            let quota = Double(n * max(0, s.percent)) / Double(total)
            counts[i] = Int(quota)
            if s.percent > 0 { remainders.append((quota - Double(counts[i]) + rng.unit() * 0.35, i)) }
        }
        remainders.sort { $0.0 > $1.0 }
        for r in remainders.prefix(n - counts.reduce(0, +)) { counts[r.1] += 1 }
        var industries: [Industry] = []
        for (i, s) in shape.industryMix.enumerated() {
            industries.append(contentsOf: repeatElement(s.industry, count: counts[i]))
        }
        rng.shuffle(&industries)

        // Towns: the seat's subdistrict is 001; towns are numbered from 101.
        var townNames = Set<String>()
        let towns = (0..<12).map { _ in ChinesePeople.placeName(&rng, taken: &townNames) + "镇" }
        var used: [Industry: Int] = [:]
        var out: [OrgUnit] = []
        for (k, industry) in industries.enumerated() {
            let profile = IndustryProfile.of(industry)
            let i = used[industry, default: 0]
            used[industry] = i + 1
            let name: String
            let township: Int
            // The first few of an industry sit in the county seat, then the towns get theirs
            // (a township school, a health centre), then the seat's remaining names.
            let t = i - profile.seatFirst
            if i < profile.seatFirst {
                name = county.name + profile.seatNames[i]
                township = 1
            } else if t < towns.count {
                name = towns[t] + profile.townName
                township = 101 + t
            } else if profile.seatFirst + t - towns.count < profile.seatNames.count {
                name = county.name + profile.seatNames[profile.seatFirst + t - towns.count]
                township = 1
            } else {
                name = county.name + "第" + ChinesePeople.numeral(i - towns.count - profile.seatNames.count + 1) + profile.ordinalName
                township = 1
            }
            out.append(
                OrgUnit(
                    id: "u-\(county.regionCode)-\(padded(k + 1, 3))", name: name, parentID: county.id, level: .unit,
                    industry: industry.rawValue, region: county.regionCode + padded(township, 3) + "000"))
        }
        return out
    }
}

/// The hub's reference data: the yearly course catalogue and the directives.
enum HubReference {
    static let courseBases: [(category: String, titles: [String], count: Int)] = [
        ("theory", ["习近平新时代中国特色社会主义思想专题学习", "马克思主义基本原理专题", "《习近平谈治国理政》导读", "党的创新理论专题讲座"], 6),
        ("policy", ["党的二十大报告解读", "中央经济工作会议精神解读", "全面深化改革政策解读", "乡村振兴战略解读", "健康中国战略解读", "教育强国建设规划纲要解读"], 5),
        ("history", ["中国共产党简史", "新中国史专题", "改革开放史专题", "社会主义发展史专题", "红色家书诵读"], 4),
        ("discipline", ["《中国共产党纪律处分条例》逐章解读", "中央八项规定精神解读", "廉洁从业警示教育", "《中国共产党党员权利保障条例》解读"], 5),
        ("skills", ["支部书记履职能力提升", "党务工作实务", "发展党员工作流程", "党费收缴使用管理", "智慧党建平台操作"], 4),
    ]

    /// About two dozen courses for each calendar year the window touches.
    static func courses(seed: UInt64, window: SampleWindow) -> [Int: [SampleCourse]] {
        var out: [Int: [SampleCourse]] = [:]
        for year in window.start.year...window.end.year {
            var rng = SampleRandom(seed, SampleStream.courses.rawValue, UInt64(year))
            var list: [SampleCourse] = []
            var lectures: [String: Int] = [:]
            for base in courseBases {
                for _ in 0..<base.count {
                    let title = rng.pick(base.titles)
                    let n = lectures[title, default: 0] + 1
                    lectures[title] = n
                    let minutes = [30, 45, 60, 90, 120][rng.weighted([3, 4, 5, 2, 1])]
                    list.append(
                        SampleCourse(
                            id: "crs-\(year)-\(padded(list.count + 1, 2))",
                            title: "\(year)年度\(title)（第\(ChinesePeople.numeral(n))讲）", category: base.category,
                            minutes: minutes, year: year))
                }
            }
            out[year] = list
        }
        return out
    }

    static let provinceNotices: [(month: Int, urgent: Bool, title: @Sendable (Int) -> String)] = [
        (1, false, { "关于做好\($0 - 1)年度基层党组织组织生活会和民主评议党员工作的通知" }),
        (2, false, { "关于印发《\($0)年全省党建工作要点》的通知" }),
        (3, false, { "关于深入开展\(Vocabulary.campaign($0))的通知" }),
        (4, false, { "关于报送\($0)年第一季度党建工作情况的通知" }),
        (6, false, { "关于开展庆祝中国共产党成立\($0 - 1921)周年系列活动的通知" }),
        (7, false, { "关于做好\($0)年度党费收缴使用管理工作的通知" }),
        (8, true, { _ in "关于立即开展党员信息核查工作的紧急通知" }),
        (9, false, { "关于开展\($0)年度党员教育培训示范点评选工作的通知" }),
        (11, false, { "关于做好\($0 + 1)年度发展党员计划申报工作的通知" }),
    ]

    static let targetedNotices: [@Sendable (String) -> String] = [
        { "关于\($0)党建工作督查反馈问题整改的通知" },
        { "关于督促\($0)按期召开组织生活会的通知" },
        { "关于\($0)党组织按期换届的提醒函" },
        { "关于\($0)党员信息采集不完整问题的通报" },
        { "关于\($0)做好“三会一课”记录规范化工作的通知" },
    ]

    static func body(issuer: String, due: SampleDay?) -> String {
        let c = due?.civil
        return "各有关党组织：\n为贯彻落实上级有关部署，现将有关事项通知如下：\n"
            + "一、提高思想认识，加强组织领导，明确责任分工。\n二、结合实际制定工作方案，扎实推进各项任务落实。\n"
            + (c.map { "三、请于\($0.year)年\($0.month)月\($0.day)日前将落实情况报送\(issuer)。" } ?? "三、请将落实情况及时报送\(issuer)。")
    }

    static func directives(seed: UInt64, window: SampleWindow, tree: SampleTree) -> [SampleDirective] {
        var out: [SampleDirective] = []
        let names = Dictionary(uniqueKeysWithValues: tree.all.map { ($0.id, $0.name) })
        let provinceName = names[tree.provinceID]!
        for year in window.start.year...window.end.year {
            var rng = SampleRandom(seed, SampleStream.directives.rawValue, UInt64(year))
            for (n, notice) in provinceNotices.enumerated() {
                let issued = SampleMonth(year: year, month: notice.month).workday(rng.int(3...25))
                let due: SampleDay? = rng.chance(0.85) ? issued.advanced(by: notice.urgent ? rng.int(5...10) : rng.int(20...60)) : nil
                guard window.contains(issued) else { continue }
                let title = notice.title(year)
                out.append(
                    SampleDirective(
                        id: "d-\(year)-p-\(padded(n + 1, 2))", target: nil, issuedBy: tree.provinceID, issuedOn: issued,
                        title: title, body: body(issuer: provinceName + "委组织部", due: due), dueOn: due,
                        urgent: notice.urgent))
            }
            for county in tree.counties {
                let count = rng.int(1...3)
                for n in 1...count {
                    let issued = SampleDay(number: SampleDay(year: year, month: 1, day: 10).number + rng.below(340))
                    let fromCity = rng.chance(0.3)
                    let issuer = fromCity ? county.cityID : county.id
                    let template = rng.pick(targetedNotices)
                    let due: SampleDay? = issued.advanced(by: rng.int(15...45))
                    let urgent = rng.chance(0.15)
                    var targets = county.units
                    rng.shuffle(&targets)
                    for unit in targets.prefix(rng.int(1...min(3, targets.count))) where window.contains(issued) {
                        let title = template(unit.name)
                        out.append(
                            SampleDirective(
                                id: "d-\(year)-\(county.code)-\(padded(n, 2))-\(unit.id.suffix(3))", target: unit.id,
                                issuedBy: issuer, issuedOn: issued, title: title,
                                body: body(issuer: names[issuer]! + "委组织部", due: due), dueOn: due, urgent: urgent))
                    }
                }
            }
        }
        out.sort { ($0.issuedOn, $0.id) < ($1.issuedOn, $1.id) }
        return out
    }
}
