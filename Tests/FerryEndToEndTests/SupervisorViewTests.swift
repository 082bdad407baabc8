import FerryCore
import FerryDemo
import FerryHub
import FerrySample
import FerryStore
import FerryTestSupport
import FerryWire
import Foundation
import GRDB
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
                        for (c, values) in m.filter where !values.contains(IndicatorOracle.value(r[c] as DatabaseValue)) { keep = false }
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
                            let v = IndicatorOracle.value(r[pc] as DatabaseValue)
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

    static func value(_ v: DatabaseValue) -> Value {
        switch v.storage {
        case .null: return .null
        case .int64(let i): return .integer(i)
        case .double(let d): return .real(d)
        case .string(let t): return .text(t)
        case .blob(let b): return .blob([UInt8](b))
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

@Suite("The supervisor's view: indicators, freshness, scopes, resolutions")
struct SupervisorViewTests {
    static let shape = ProvinceShape(cities: 2, countiesPerCity: 1, unitsPerCounty: 3, years: 1, seed: 7)
    static let now: UInt64 = 1_795_996_800_000  // 2026-12-01 00:00 UTC

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
        let otherCounty = tree.nodes.values.first { $0.level == "county" && $0.id != mover.parentID }!
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
        let counties = tree.nodes.values.filter { $0.level == "county" }.map(\.id).sorted()
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
