import FerryCore
import FerryDemo
import FerryHub
import FerrySample
import FerryStore
import FerryTestSupport
import FerryTestTraits
import FerryWire
import Foundation
import GRDB
import Synchronization
import Testing

/// The indicators the hub shows, checked against a second computation that shares no code
/// with it: rows read one by one, placed in periods by `ReportPeriod` in Swift, summed per
/// org node by walking the tree.
struct IndicatorOracle {
    let standard: Standard
    let tree: OrgTree
    /// unit → indicator → (part, period) → value
    var facts: [String: [String: [String: Double]]] = [:]

    init(hubDB: String, standard: Standard, tree: OrgTree) throws {
        self.standard = standard
        self.tree = tree
        let db = try DatabaseQueue(path: hubDB)
        defer { try? db.close() }
        try db.read { db in
            for i in standard.indicators {
                for (part, m) in [("n", i.numerator)] + (i.denominator.map { [("d", $0)] } ?? []) {
                    let t = standard.table(named: m.table)!
                    var refDates: [String: String] = [:]
                    var dateColumn = m.dateColumn
                    if let d = m.dateColumn, d.contains(".") {
                        let parts = d.split(separator: ".").map(String.init)
                        let ref = t.column(named: parts[0])!.references!
                        for r in try Row.fetchAll(db, sql: "SELECT \"\(ref.column)\", \"\(parts[1])\" FROM \"\(ref.table)\"") {
                            refDates[r[0] as String] = r[1] as String?
                        }
                        dateColumn = nil
                    }
                    for r in try Row.fetchAll(db, sql: "SELECT * FROM \"\(t.name)\"") {
                        guard let unit = r[t.scopeColumn!] as String? else { continue }
                        var keep = true
                        for (c, values) in m.filter where !values.contains(Value(r[c] as DatabaseValue)) { keep = false }
                        guard keep else { continue }
                        var label = ReportPeriod.current
                        if let d = dateColumn {
                            guard let date = r[d] as String?, let p = ReportPeriod(kind: i.period, containing: date) else { continue }
                            label = p.label
                        } else if let d = m.dateColumn {
                            let refColumn = String(d.split(separator: ".")[0])
                            guard let key = r[refColumn] as String?, let date = refDates[key] ?? nil,
                                let p = ReportPeriod(kind: i.period, containing: date)
                            else { continue }
                            label = p.label
                        } else if let pc = m.periodColumn {
                            let v = Value(r[pc] as DatabaseValue)
                            switch v {
                            case .integer(let y): label = String(y)
                            case .text(let s): label = s
                            default: continue
                            }
                        }
                        let add: Double = m.sumColumn.map { Double(r[$0] as Double? ?? 0) } ?? 1
                        facts[unit, default: [:]][i.id, default: [:]]["\(part)|\(label)", default: 0] += add
                    }
                }
            }
        }
    }

    /// The figure of `indicator` for `org` over the period containing `day`.
    func totals(_ i: IndicatorDefinition, org: String, day: String) -> IndicatorTotals {
        let period = ReportPeriod(kind: i.period, containing: day)!.label
        var t = IndicatorTotals()
        for u in tree.units(under: org) {
            let f = facts[u.id]?[i.id] ?? [:]
            t.numerator += f["n|\(i.numerator.isPeriodic ? period : ReportPeriod.current)"] ?? 0
            if let d = i.denominator { t.denominator += f["d|\(d.isPeriodic ? period : ReportPeriod.current)"] ?? 0 }
        }
        return t
    }
}

@Suite("The supervisor's view: indicators, freshness, scopes, resolutions", .tags(.slow), .offThePool)
struct SupervisorViewTests {
    static let shape = ProvinceShape(cities: 2, countiesPerCity: 1, unitsPerCounty: 3, years: 1, seed: 7)
    static let now: UInt64 = 1_795_996_800_000  // 2026-11-30 00:00 UTC

    func sampleHub(_ dir: TemporaryDirectory, silentEvery: Int = 4) throws -> SampleHub.Summary {
        try SampleHub.build(directory: dir.file("hub"), shape: Self.shape, silentEvery: silentEvery, now: Self.now)
    }

    func view(_ dir: TemporaryDirectory, silentAfterDays: Int = 7) throws -> SupervisorView {
        var settings = HubSettings()
        settings.silentAfterDays = silentAfterDays
        let hub = try Hub(directory: dir.file("hub"), settings: settings, clock: ManualClock(Self.now))
        return try SupervisorView(hub: hub, silentAfterDays: silentAfterDays)
    }

    func expectClose(_ a: Double, _ b: Double, _ what: @autoclosure () -> String) {
        #expect(abs(a - b) <= 1e-6 * max(1, abs(b)), "\(what()): \(a) vs \(b)")
    }

    @Test("on the hub's today a running period's figures are 'in progress', day N of M, never a miss; an ended period's shortfall is a miss")
    func periodsInProgress() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        _ = try sampleHub(dir)
        let view = try view(dir)  // the hub's today: 2026-11-30, the last day of November
        let root = try view.tree().roots[0]
        let now = try view.report(org: root, root: root)
        #expect(!now.figures.isEmpty)
        for f in now.figures {
            let period = try #require(ReportPeriod(label: f.period))
            #expect(f.days == period.dayCount && f.inProgress, "\(f.id) \(f.period)")
            #expect(f.status != .missed, "\(f.id): below target on day \(f.daysElapsed) of \(f.days) is not a miss")
            if period.kind == .month { #expect(f.daysElapsed == 30 && f.days == 30, "\(f.id)") }
            if period.kind == .quarter { #expect(f.daysElapsed == 61 && f.days == 92, "\(f.id)") }
            if period.kind == .year { #expect(f.daysElapsed == 334 && f.days == 365, "\(f.id)") }
        }
        #expect(now.figures.contains { $0.status == .inProgress }, "some indicator is below target so far: \(now.figures.map { "\($0.id)=\($0.status)" })")
        let past = try view.report(org: root, root: root, at: "2026-06-15")
        for f in past.figures where ReportPeriod(label: f.period)!.kind != .year {
            #expect(!f.inProgress && f.daysElapsed == f.days && f.status != .inProgress, "\(f.id) \(f.period)")
        }
        #expect(ReportPeriod(kind: .month, year: 2024, index: 2).dayCount == 29 && ReportPeriod(kind: .month, year: 2100, index: 2).dayCount == 28)
        #expect(ReportPeriod(kind: .quarter, year: 2026, index: 4).dayNumber(of: "2026-12-01") == 62)
        #expect(ReportPeriod(kind: .year, year: 2026, index: 1).lastDay == "2026-12-31")
    }

    @Test("every indicator at every org node and in several periods equals an independent count of the rows")
    func indicatorsMatchIndependentCount() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        _ = try sampleHub(dir)
        let view = try view(dir)
        let tree = try view.tree()
        let oracle = try IndicatorOracle(hubDB: dir.file("hub/hub.db"), standard: view.hub.store.standard, tree: tree)
        let root = tree.roots[0]
        var checked = 0
        for day in ["2026-11-15", "2026-06-30", "2026-01-01"] {
            for org in tree.nodes.keys.sorted() {
                let report = try view.report(org: org, root: root, at: day)
                for i in view.hub.store.standard.indicators {
                    let f = report.figures.first { $0.id == i.id }!
                    let want = oracle.totals(i, org: org, day: day)
                    expectClose(f.numerator, want.numerator, "\(i.id) numerator at \(org) on \(day)")
                    if i.denominator != nil { expectClose(f.denominator ?? -1, want.denominator, "\(i.id) denominator at \(org) on \(day)") }
                    checked += 1
                }
            }
        }
        #expect(checked == 3 * tree.nodes.count * view.hub.store.standard.indicators.count)
        // The sample has activity: a check on zeros alone would prove little.
        let busy = try view.report(org: root, root: root, at: "2026-11-15").figures
        #expect(busy.filter { $0.numerator > 0 }.count >= 7, "\(busy.map { "\($0.id)=\($0.numerator)" })")
    }

    @Test("after edits, deletes, moved meetings and a unit moving county, the incremental refresh equals a full recompute")
    func incrementalEqualsFull() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        _ = try sampleHub(dir)
        let view = try view(dir)
        let first = try view.refresh()
        #expect(first.full)
        let store = view.hub.store
        let units = try view.tree().units(under: view.tree().roots[0]).map(\.id)
        var random = SeededRandom(seed: 11)
        for round in 0..<4 {
            let u = units[Int(random.next() % UInt64(units.count))]
            let v = units[Int(random.next() % UInt64(units.count))]
            try store.executeAll([
                (sql: "DELETE FROM service_record WHERE id IN (SELECT id FROM service_record WHERE unit_id = ? LIMIT 25)", arguments: [.text(u)]),
                (sql: "UPDATE meeting SET held_on = '2026-11-0\(round + 1)' WHERE id IN (SELECT id FROM meeting WHERE unit_id = ? LIMIT 3)", arguments: [.text(v)]),
                (sql: "UPDATE study_record SET minutes = minutes + 7, completed = 1 WHERE id IN (SELECT id FROM study_record WHERE unit_id = ? LIMIT 40)", arguments: [.text(u)]),
                (sql: "UPDATE member SET status = 'transferred_out' WHERE id IN (SELECT id FROM member WHERE unit_id = ? AND status = 'full' LIMIT 2)", arguments: [.text(v)]),
            ])
            let r = try view.refresh()
            #expect(!r.full && r.units >= 1 && r.units <= 2, "round \(round): \(r)")
        }
        // A unit moves to the other city's county: its sums leave one branch and join another.
        let tree = try view.tree()
        let mover = tree[units[0]]!
        let otherCounty = tree.nodes.values.first { $0.level == .county && $0.id != mover.parentID }!
        try view.hub.registry.addUnit(
            OrgUnit(id: mover.id, name: mover.name, parentID: otherCounty.id, level: .unit, industry: mover.industry, region: nil), now: Self.now)
        // Nothing changed in the replica, so nothing is recomputed; the sums are regrouped.
        #expect(try view.refresh().units == 0)
        let fresh = try IndicatorFacts(path: dir.file("full.db"), standard: store.standard)
        #expect(try fresh.refresh(from: store, tree: try view.tree()).full)
        let orgs = try view.tree().nodes.keys.sorted()
        for industry in [nil, "education", "medical"] as [String?] {
            let a = try view.facts.parts(orgs: orgs, industry: industry)
            let b = try fresh.parts(orgs: orgs, industry: industry)
            for org in orgs {
                for (ind, parts) in b[org] ?? [:] {
                    for (part, periods) in parts {
                        for (period, want) in periods {
                            expectClose(a[org]?[ind]?[part]?[period] ?? 0, want, "\(org) \(industry ?? "all") \(ind) \(part) \(period)")
                        }
                    }
                }
                // Nothing extra either (a cleared fact may linger as 0 in the incremental sums).
                for (ind, parts) in a[org] ?? [:] {
                    for (part, periods) in parts {
                        for (period, got) in periods where b[org]?[ind]?[part]?[period] == nil {
                            expectClose(got, 0, "\(org) \(ind) \(part) \(period) only in the incremental facts")
                        }
                    }
                }
            }
        }
    }

    @Test("two connections refreshing one report.db at the same time leave it equal to a full recompute")
    func concurrentRefreshers() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        _ = try sampleHub(dir)
        let view = try view(dir)
        try view.refresh()
        let tree = try view.tree()
        // A second connection to the same file, as `ferry report` beside the server has.
        let other = try IndicatorFacts(path: dir.file("hub/report.db"), standard: view.hub.store.standard)
        let units = tree.units(under: tree.roots[0]).map(\.id)
        for round in 0..<4 {
            try view.hub.store.executeAll(units.map {
                (sql: "UPDATE study_record SET minutes = minutes + \(round + 1) WHERE id IN (SELECT id FROM study_record WHERE unit_id = ? LIMIT 30)", arguments: [.text($0)])
            })
            let errors = Mutex<[String]>([])
            let group = DispatchGroup()
            for facts in [view.facts, other] {
                group.enter()
                Thread {
                    defer { group.leave() }
                    do { try facts.refresh(from: view.hub.store, tree: tree) } catch { errors.withLock { $0.append("\(error)") } }
                }.start()
            }
            group.wait()
            #expect(errors.withLock { $0 }.isEmpty)
        }
        let full = try IndicatorFacts(path: dir.file("full.db"), standard: view.hub.store.standard)
        try full.refresh(from: view.hub.store, tree: tree)
        let root = tree.roots[0]
        let a = try view.facts.parts(org: root)["study_minutes_per_member"]?["n"] ?? [:]
        let b = try full.parts(org: root)["study_minutes_per_member"]?["n"] ?? [:]
        #expect(!b.isEmpty)
        for (period, want) in b { expectClose(a[period] ?? 0, want, "study minutes \(period)") }
    }

    @Test("SQLite places every day of four years in the same period as the Swift value does")
    func sqlPeriodsAgreeWithSwift() throws {
        let db = try DatabaseQueue()
        var day = try #require(Calendar(identifier: .gregorian).date(from: DateComponents(timeZone: .gmt, year: 2024, month: 1, day: 1)))
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = .gmt
        f.dateFormat = "yyyy-MM-dd"
        var n = 0
        try db.read { db in
            while n < 4 * 366 {
                let text = f.string(from: day)
                for kind in IndicatorPeriod.allCases {
                    let sql = try String.fetchOne(db, sql: "SELECT \(ReportPeriod.sqlLabel(kind, of: "d")) FROM (SELECT ? AS d)", arguments: [text])
                    #expect(sql == ReportPeriod(kind: kind, containing: text)?.label, "\(kind) of \(text)")
                }
                day += 86_400
                n += 1
            }
        }
    }

    @Test("freshness flags units silent past the threshold, and silent counts roll up by county and industry")
    func silentUnits() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let summary = try sampleHub(dir, silentEvery: 3)
        let view = try view(dir)
        let tree = try view.tree()
        let root = tree.roots[0]
        let fresh = try view.freshness(org: nil, root: root)
        #expect(Set(fresh.filter { $0.contact == .silent }.map(\.unitID)) == Set(summary.silentUnits))
        #expect(Set(fresh.filter { $0.contact == .notEnrolled }.map(\.unitID)) == Set(summary.notEnrolled))
        #expect(fresh.first?.contact == .silent, "silent units come first")
        let report = try view.report(org: root, root: root, at: "2026-11-15")
        #expect(report.silentUnits == summary.silentUnits.count)
        #expect(report.silentGroups.reduce(0) { $0 + $1.units } == summary.silentUnits.count)
        #expect(report.children.reduce(0) { $0 + $1.silentUnits } == summary.silentUnits.count)
        for g in report.silentGroups { #expect(g.days >= 8, "\(g)") }
        // With a 30-day threshold the same units are back in touch.
        let relaxed = try self.view(dir, silentAfterDays: 30)
        #expect(try relaxed.freshness(org: nil, root: root).filter { $0.contact == .silent }.isEmpty)
    }

    @Test("a county's supervisor sees the county and below, and nothing above or beside it")
    func subtreeScope() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        _ = try sampleHub(dir)
        let view = try view(dir)
        let tree = try view.tree()
        let counties = tree.nodes.values.filter { $0.level == .county }.map(\.id).sorted()
        let mine = counties[0]
        let unit = tree.units(under: mine)[0].id
        #expect(try view.report(org: nil, root: mine, at: "2026-11-15").org.id == mine)
        #expect(try view.report(org: unit, root: mine, at: "2026-11-15").path.map(\.id) == [mine, unit])
        for outside in [tree.roots[0], counties[1], tree.units(under: counties[1])[0].id] {
            #expect { try view.report(org: outside, root: mine) } throws: { ($0 as? WireError)?.code == .forbidden }
            #expect { try view.freshness(org: outside, root: mine) } throws: { ($0 as? WireError)?.code == .forbidden }
            #expect { try view.conflicts(org: outside, root: mine) } throws: { ($0 as? WireError)?.code == .forbidden }
        }
        #expect { try view.report(org: "no-such-node", root: mine) } throws: { ($0 as? WireError)?.code == .notFound }
        #expect(try view.freshness(org: nil, root: mine).allSatisfy { tree.contains($0.unitID, within: mine) })
    }
}

@Suite("A supervisor's decisions sync down", .offThePool)
struct SupervisorDecisionTests {
    let dir: TemporaryDirectory
    let clock = ManualClock(SupervisorViewTests.now)
    let hub: Hub
    let view: SupervisorView
    let unit: ReplicaStore
    let unitID: String
    let root: String

    init() throws {
        dir = try TemporaryDirectory()
        let shape = ProvinceShape(cities: 1, countiesPerCity: 1, unitsPerCounty: 1, years: 1, seed: 3, membersPerUnit: 6...6)
        let province = SampleProvince(shape: shape)
        hub = try Hub(directory: dir.file("hub"), clock: clock)
        for o in province.orgUnits {
            _ = try hub.addUnit(o)
        }
        try hub.store.executeAll(province.hubStatements().filter { !$0.sql.contains("org_unit") }.map { (sql: $0.sql, arguments: $0.arguments) })
        unitID = province.units[0].id
        root = province.orgUnits.first { $0.parentID == nil }!.id
        unit = try ReplicaStore(
            path: dir.file("unit.db"), standard: hub.store.standard, identity: ReplicaIdentity(node: NodeID(unchecked: "\(unitID)-n1"), role: .unit(unitID)),
            clock: clock)
        view = try SupervisorView(hub: hub)
        try pull()
        try unit.executeAll(province.unitStatements(unitID).map { (sql: $0.sql, arguments: $0.arguments) })
        try push()
    }

    func push(tamper: ((inout Changeset) -> Void)? = nil) throws {
        while var cs = try unit.extract(for: Peer(id: hub.nodeID, direction: .upstream), maxBytes: 1 << 20) {
            tamper?(&cs)
            try hub.store.apply(cs, sender: .unit(unitID), quarantine: true)
            try unit.acknowledge(cs.batch, from: hub.nodeID)
        }
    }

    func pull() throws {
        let peer = NodeID(unchecked: "\(unitID)-n1")
        while let cs = try hub.store.extract(for: Peer(id: peer, direction: .downstream(unit: unitID)), maxBytes: 1 << 20) {
            try unit.apply(cs, sender: .trusted)
            try hub.store.acknowledge(cs.batch, from: peer)
        }
    }

    func memberName(_ store: ReplicaStore, _ id: String) throws -> Value? {
        try store.currentValue(table: "member", key: [.text(id)], column: "name")
    }

    @Test("a conflict settled with a new value reaches the unit, and the audit log names who decided")
    func conflictEditSyncsDown() throws {
        defer { dir.remove() }
        let member = try #require(try unit.read { db in try String.fetchOne(db, sql: "SELECT id FROM member ORDER BY id LIMIT 1") })
        // The supervisor corrects a name while the clerk edits it too (member is supervisor-wins).
        try hub.store.execute("UPDATE member SET name = '王建国' WHERE id = ?", [.text(member)])
        clock.advance(by: 1000)
        try unit.execute("UPDATE member SET name = '王建华' WHERE id = ?", [.text(member)])
        try push()
        let open = try view.conflicts(org: nil, root: root)
        let c = try #require(open.first { $0.table == "member" && $0.column == "name" })
        #expect(c.currentValue == "王建国" && c.otherValue == "王建华" && c.unitID == unitID)
        #expect(c.otherOrigin == "\(unitID)-n1" && c.currentOrigin == hub.nodeID.rawValue)
        // A value the standard refuses changes nothing.
        #expect { try view.resolve(conflict: c.id, .edit(String(repeating: "名", count: 500)), admin: "analyst", root: root) } throws: {
            ($0 as? WireError)?.code == .invalidValue
        }
        try view.resolve(conflict: c.id, .edit("王建民"), admin: "analyst", root: root)
        #expect(try view.conflicts(org: nil, root: root).contains { $0.id == c.id } == false)
        try pull()
        #expect(try memberName(unit, member) == .text("王建民"))
        #expect(try memberName(hub.store, member) == .text("王建民"))
        let audit = try hub.registry.auditLog(limit: 5)
        #expect(audit.contains { $0.action == "resolve" && ($0.detail ?? "").contains("analyst") && ($0.detail ?? "").contains("王建民") })
        // Settled once: a second decision on it is refused.
        #expect { try view.resolve(conflict: c.id, .keep, admin: "analyst", root: root) } throws: { ($0 as? WireError)?.code == .notFound }
    }

    @Test("a quarantined value corrected by the supervisor is applied at the hub and replaces the unit's")
    func quarantineCorrectionSyncsDown() throws {
        defer { dir.remove() }
        let member = try #require(try unit.read { db in try String.fetchOne(db, sql: "SELECT id FROM member WHERE status = 'full' ORDER BY id LIMIT 1") })
        try unit.execute("UPDATE member SET status = 'probationary', name = '李四' WHERE id = ?", [.text(member)])
        // The value arrives damaged (as from a node on a standard the hub never published).
        try push { cs in
            for t in cs.tables.indices where cs.tables[t].name == "member" {
                for r in cs.tables[t].rows.indices {
                    cs.tables[t].rows[r].cells = cs.tables[t].rows[r].cells.map {
                        $0.column == "status" ? CellChange(column: "status", value: .text("retired"), version: $0.version) : $0
                    }
                }
            }
        }
        let held = try view.quarantine(org: nil, root: root)
        let q = try #require(held.first { $0.table == "member" })
        #expect(q.value == "retired" && q.column == "status" && q.unitID == unitID)
        #expect(try hub.store.currentValue(table: "member", key: [.text(member)], column: "name") != .text("李四"), "the held row is not applied")
        #expect { try view.settleQuarantine(q.id, correction: "retired", admin: "analyst", root: root) } throws: { ($0 as? WireError)?.code == .invalidValue }
        try view.settleQuarantine(q.id, correction: "full", admin: "analyst", root: root)
        #expect(try hub.store.currentValue(table: "member", key: [.text(member)], column: "status") == .text("full"))
        #expect(try hub.store.currentValue(table: "member", key: [.text(member)], column: "name") == .text("李四"))
        try pull()
        #expect(try unit.currentValue(table: "member", key: [.text(member)], column: "status") == .text("full"))
        #expect(try view.quarantine(org: nil, root: root).isEmpty)
        #expect(try hub.registry.auditLog(limit: 3).contains { $0.action == "resolve" && ($0.detail ?? "").contains("corrected to full") })
    }
}
