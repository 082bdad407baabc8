import FerryCore
import FerrySample
import FerryStandardFile
import FerryStore
import FerryTestSupport
import FerryTestTraits
import Foundation
import GRDB
import Testing

@Suite("Sample province", .offThePool)
struct SampleProvinceTests {
    /// Two counties of four units, two years: small enough to load into real replicas.
    static let tiny = ProvinceShape(cities: 1, countiesPerCity: 2, unitsPerCounty: 4, years: 2, seed: 7, membersPerUnit: 25...110)

    @Test("the hub's reference data and two units' histories and days are accepted by the replicas' checks and triggers")
    func statementsAreAcceptedByReplicas() throws {
        let standard = try StandardFile.builtIn()
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let clock = ManualClock()
        let province = SampleProvince(shape: Self.tiny)

        let hub = try ReplicaStore(
            path: dir.file("hub.db"), standard: standard, identity: .init(node: NodeID(unchecked: "hub"), role: .hub), clock: clock)
        try hub.executeAll(province.hubStatements().map { ($0.sql, $0.arguments) })
        #expect(try hub.stampPendingChanges() > 0)
        try hub.close()
        let hubDB = try DatabaseQueue(path: dir.file("hub.db"))
        let (orgUnits, courses, directives) = try hubDB.read { db in
            (
                try Int.fetchOne(db, sql: "SELECT count(*) FROM org_unit")!, Set(try String.fetchAll(db, sql: "SELECT id FROM course")),
                Set(try String.fetchAll(db, sql: "SELECT id FROM directive"))
            )
        }
        #expect(orgUnits == province.orgUnits.count)
        #expect(courses.count > 20 && directives.count > 10)

        // The largest unit (several branches) and the smallest (one branch).
        let sized = province.units.map { u in
            (u, province.unitStatements(u.id).filter { $0.sql.hasPrefix("INSERT INTO member ") }.count)
        }.sorted { $0.1 < $1.1 }
        for (unit, _) in [sized.last!, sized.first!] {
            let path = dir.file("\(unit.id).db")
            let node = try ReplicaStore(
                path: path, standard: standard, identity: .init(node: NodeID(unchecked: "node-\(unit.id)"), role: .unit(unit.id)),
                clock: clock)
            // The directives a unit answers reach it from the hub first, as they would by sync.
            let hubAgain = try ReplicaStore(
                path: dir.file("hub.db"), standard: standard, identity: .init(node: NodeID(unchecked: "hub"), role: .hub), clock: clock)
            let peer = Peer(id: NodeID(unchecked: "node-\(unit.id)"), direction: .downstream(unit: unit.id))
            while let cs = try hubAgain.extract(for: peer, maxBytes: 1 << 20) {
                try node.apply(cs, sender: .trusted)
                try hubAgain.acknowledge(cs.batch, from: peer.id)
            }
            try hubAgain.close()
            try province.unitStatements(unit.id) { chunk in try node.executeAll(chunk.map { ($0.sql, $0.arguments) }) }
            #expect(try node.stampPendingChanges() > 0)
            try node.close()

            let unitTables = standard.tables.filter { $0.module == nil && $0.scopeColumn == "unit_id" }.map(\.name)
            let db = try DatabaseQueue(path: path)
            try db.read { db in
                for table in unitTables {
                    let rows = try Int.fetchOne(db, sql: "SELECT count(*) FROM \(table)")!
                    let foreign = try Int.fetchOne(db, sql: "SELECT count(*) FROM \(table) WHERE unit_id IS NOT ?", arguments: [unit.id])!
                    #expect(rows > 0, "\(unit.id) has no \(table) rows")
                    #expect(foreign == 0, "\(table) rows of another unit")
                }
                #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM local_note")! > 0)
                if unit == sized.last!.0 {
                    #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM branch")! >= 2, "the largest unit has several branches")
                }
                let strangers = try Int.fetchOne(
                    db,
                    sql: """
                        SELECT count(*) FROM attendance a JOIN meeting g ON g.id = a.meeting_id JOIN member m ON m.id = a.member_id
                        WHERE m.branch_id IS NOT g.branch_id OR m.joined_on > g.held_on
                        """)!
                #expect(strangers == 0, "attendance only by members of the meeting's branch who had joined")
                for card in try String.fetchAll(db, sql: "SELECT id_card_number FROM member WHERE id_card_number IS NOT NULL") {
                    #expect(Self.isWellFormedIdentityCard(card), "\(card)")
                }
                for phone in try String.fetchAll(db, sql: "SELECT phone FROM member WHERE phone IS NOT NULL") {
                    #expect(phone.count == 11 && phone.hasPrefix("1") && phone.allSatisfy(\.isASCII) && Int(phone) != nil, "\(phone)")
                }
                let responded = Set(try String.fetchAll(db, sql: "SELECT directive_id FROM directive_response"))
                #expect(!responded.isEmpty && responded.isSubset(of: directives), "responses answer directives the hub issued")
                let studied = Set(try String.fetchAll(db, sql: "SELECT course_id FROM study_record WHERE course_id IS NOT NULL"))
                #expect(studied.isSubset(of: courses), "study records name catalogue courses")
            }
            try db.close()

            // A day of changes on top of the history is accepted too.
            let reopened = try ReplicaStore(
                path: path, standard: standard, identity: .init(node: NodeID(unchecked: "node-\(unit.id)"), role: .unit(unit.id)),
                clock: clock)
            let day = province.dayOfChanges(unit.id, day: "2026-12-01", seed: 1)
            try reopened.executeAll(day.map { ($0.sql, $0.arguments) })
            #expect(try reopened.stampPendingChanges() > day.count / 2, "the day's writes are captured")
            try reopened.close()
        }
        try hubDB.close()
    }

    @Test("every value of every unit's statements passes the standard's column checks")
    func everyValueObeysTheStandard() throws {
        let standard = try StandardFile.builtIn()
        let province = SampleProvince(shape: Self.tiny)
        var checked = 0
        var problems: [String] = []
        let check = { (s: SQLStatement) in
            guard let (table, columns) = Self.columns(of: s.sql) else { return }
            let definition = try #require(standard.table(named: table), "\(table) is not in the standard")
            try #require(columns.count == s.arguments.count, "\(s.sql)")
            for (name, value) in zip(columns, s.arguments) {
                let column = try #require(definition.columns.first { $0.name == name }, "\(table).\(name)")
                if let p = column.problem(with: value), problems.count < 20 { problems.append("\(table).\(name) = \(value): \(p.english)") }
                checked += 1
            }
        }
        for s in province.hubStatements() { try check(s) }
        for unit in province.units {
            try province.unitStatements(unit.id) { chunk in for s in chunk { try check(s) } }
            for s in province.dayOfChanges(unit.id, day: "2026-12-01", seed: 9) { try check(s) }
        }
        #expect(problems.isEmpty, "\(problems)")
        #expect(checked > 100_000)
    }

    @Test("the same seed gives identical statements and a different seed different ones")
    func generationIsDeterministic() {
        let a = SampleProvince(shape: Self.tiny)
        let b = SampleProvince(shape: Self.tiny)
        var other = Self.tiny
        other.seed = 8
        let c = SampleProvince(shape: other)
        let unit = a.units[2].id
        #expect(a.orgUnits == b.orgUnits)
        #expect(a.hubStatements() == b.hubStatements())
        #expect(a.unitStatements(unit) == b.unitStatements(unit))
        #expect(a.dayOfChanges(unit, day: "2026-12-01", seed: 3) == b.dayOfChanges(unit, day: "2026-12-01", seed: 3))
        #expect(a.dayOfChanges(unit, day: "2026-12-01", seed: 3) != a.dayOfChanges(unit, day: "2026-12-01", seed: 4))
        #expect(a.hubStatements() != c.hubStatements())
        #expect(a.unitStatements(unit) != c.unitStatements(unit))
        // Ids are the same whatever the seed: only the contents differ.
        #expect(a.units.map(\.id) == c.units.map(\.id))
        #expect(a.units[0].id == "u-390102-001")
    }

    @Test("a unit's history does not depend on which other units are generated or on the province's size")
    func unitHistoryIsIndependentOfOtherUnits() {
        var wider = Self.tiny
        wider.cities = 2
        let small = SampleProvince(shape: Self.tiny)
        let large = SampleProvince(shape: wider)
        let unit = small.units[1].id
        let statements = small.unitStatements(unit)
        // Directive responses differ (the larger province issues other targeted directives),
        // the roll and its records do not.
        let roll = { (s: [SQLStatement]) in s.filter { $0.sql.hasPrefix("INSERT INTO member ") } }
        #expect(roll(statements) == roll(large.unitStatements(unit)))
    }

    @Test("the statements are the same in every run and on every toolchain (pinned digest)")
    func digestIsPinned() {
        let province = SampleProvince(shape: Self.tiny)
        var statements = province.hubStatements()
        statements += province.unitStatements(province.units[0].id)
        statements += province.dayOfChanges(province.units[0].id, day: "2026-12-01", seed: 1)
        let digest = Self.digest(statements)
        // If this fails after an intended change to the generator, update the value; if not,
        // something nondeterministic (Hasher, Date, Double formatting) crept in.
        #expect(digest == Self.pinnedDigest, "digest \(String(digest, radix: 16))")
    }
    /// FNV-1a of the tiny province's hub statements, first unit and its day (seed 1).
    static let pinnedDigest: UInt64 = 0x5546_7F46_8FDA_5627

    @Test("industries follow the typical mix and the tree is well formed")
    func provinceTreeIsWellFormed() {
        let province = SampleProvince(shape: ProvinceShape())
        #expect((190...210).contains(province.units.count))
        let share = { (i: Industry) in Double(province.units.filter { $0.industry == i.rawValue }.count) / Double(province.units.count) * 100 }
        for s in IndustryShare.typical {
            #expect(abs(share(s.industry) - Double(s.percent)) <= 3, "\(s.industry): \(share(s.industry))%")
        }
        var seen = Set<String>()
        for o in province.orgUnits {
            if let parent = o.parentID {
                #expect(seen.contains(parent), "\(o.id)'s parent comes first")
            } else {
                #expect(o.level == .province)
            }
            #expect(seen.insert(o.id).inserted)
            let region = o.region ?? ""
            #expect(region.count == (o.level == .unit ? 12 : 6) && region.allSatisfy(\.isNumber))
            #expect((o.industry != nil) == (o.level == .unit))
        }
        for county in province.orgUnits where county.level == .county {
            let names = province.units.filter { $0.parentID == county.id }.map(\.name)
            #expect(Set(names).count == names.count, "unit names are unique within \(county.name)")
        }
    }

    @Test("the reference unit starts with 300 members and its day touches several tables, deleting only where the policy allows")
    func referenceDayTouchesSeveralTables() throws {
        let standard = try StandardFile.builtIn()
        let province = SampleProvince.reference()
        let unit = province.referenceUnit()
        #expect(province.units.count == 1 && unit.industry == Industry.medical.rawValue)
        struct FirstChunkOnly: Error {}
        var initialRoll = 0
        do {
            try province.unitStatements(unit.id) { chunk in
                initialRoll = chunk.filter { $0.sql.hasPrefix("INSERT INTO member ") }.count
                throw FirstChunkOnly()
            }
        } catch is FirstChunkOnly {}
        #expect(initialRoll == 300)

        let day = province.dayOfChanges(unit.id, day: "2026-12-01", seed: 1)
        var touched: [String: Set<String>] = [:]
        for s in day {
            let words = s.sql.split(separator: " ")
            let (verb, table) = (String(words[0]), String(words[0] == "UPDATE" ? words[1] : words[2]))
            touched[table, default: []].insert(verb)
            if verb != "INSERT" {
                #expect(standard.table(named: table)?.policy != .appendOnly, "\(verb) on append-only \(table)")
            }
        }
        #expect(touched.count >= 6, "\(touched)")
        #expect(touched.values.contains { $0.contains("UPDATE") } && touched.values.contains { $0.contains("DELETE") })
        #expect(touched["member"] == ["UPDATE"])
        #expect(touched["attendance"] == ["INSERT"] && touched["meeting"]?.contains("INSERT") == true)
        #expect(day.filter { $0.sql.hasPrefix("INSERT INTO study_record") }.count >= 100, "hundreds of study records")
        let memberUpdates = day.filter { $0.sql.hasPrefix("UPDATE member") }
        #expect(memberUpdates.allSatisfy { (2...3).contains($0.arguments.count) }, "member updates touch one or two columns")
    }

    // MARK: Helpers

    /// GB 11643: 17 digits and the ISO 7064 MOD 11-2 check character, with a real birth date.
    static func isWellFormedIdentityCard(_ s: String) -> Bool {
        let chars = Array(s)
        guard chars.count == 18, chars.prefix(17).allSatisfy(\.isNumber) else { return false }
        let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
        let sum = zip(chars.prefix(17), weights).reduce(0) { $0 + Int(String($1.0))! * $1.1 }
        guard chars[17] == Array("10X98765432")[sum % 11] else { return false }
        guard let y = Int(String(chars[6..<10])), let m = Int(String(chars[10..<12])), let d = Int(String(chars[12..<14])),
            (1900...2026).contains(y), (1...12).contains(m)
        else { return false }
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
        return (1...[31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]).contains(d)
    }

    /// The table and the columns an INSERT or UPDATE binds, in argument order (nil for DELETE).
    static func columns(of sql: String) -> (String, [String])? {
        let words = sql.split(separator: " ")
        switch words[0] {
        case "INSERT":
            let list = sql.split(separator: "(")[1].split(separator: ")")[0]
            return (String(words[2]), list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        case "UPDATE":
            let set = sql.components(separatedBy: " SET ")[1].components(separatedBy: " WHERE ")
            // Only `column = ?` binds an argument (`active = 0` is a literal).
            let assigned = set[0].split(separator: ",").filter { $0.hasSuffix("?") }.map {
                $0.split(separator: "=")[0].trimmingCharacters(in: .whitespaces)
            }
            return (String(words[1]), assigned + [set[1].split(separator: " ")[0].description])
        default:
            return nil
        }
    }

    /// FNV-1a over every statement's SQL and arguments.
    static func digest(_ statements: [SQLStatement]) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        func feed(_ s: String) {
            for b in s.utf8 {
                h ^= UInt64(b)
                h &*= 0x0000_0100_0000_01B3
            }
            h ^= 0xFF
            h &*= 0x0000_0100_0000_01B3
        }
        for s in statements {
            feed(s.sql)
            for a in s.arguments {
                switch a {
                case .null: feed("∅")
                case .integer(let i): feed("i\(i)")
                case .real(let d): feed("r\(d)")
                case .text(let t): feed("t" + t)
                case .blob(let b): feed("b\(b)")
                }
            }
        }
        return h
    }
}
