import FerryCore
import FerryStore
import Foundation
import GRDB
import Synchronization

/// The standard's indicators, computed per unit and period and summed up the org tree, kept
/// in `report.db` next to the hub's replica.
///
/// Each indicator has two parts, numerator (`n`) and denominator (`d`); each part is a
/// count or sum of one table's rows, per unit and per period of the row's date (or under
/// the label `*` when the part has no date: the rows as they are now). `unit_facts` holds
/// a unit's parts; `org_facts` holds the sums for every org node above it, overall
/// (industry `''`) and per industry. A figure is then one lookup of the two parts.
///
/// `refresh` is incremental: it reads which (table, unit) pairs changed since the last
/// watermark in the replica's change sequence, recomputes only those units' affected
/// indicators, and adds the differences to every ancestor. It falls back to a full
/// recompute when the standard or the shape of the org tree changed.
public final class IndicatorFacts: Sendable {
    let db: DatabasePool
    public let standard: Standard
    /// Indicators by the tables whose changes can move them (counted, summed, or dated through).
    let dependents: [String: [IndicatorDefinition]]
    private let refreshing = Mutex(())
    /// The report's indexes on the replica were checked (once per instance: a table rebuilt
    /// by a standard upgrade comes with a restart, hence a new instance).
    private let indexesChecked = Mutex(false)

    public init(path: String, standard: Standard) throws {
        // Figures per unit are the units' data: private like the replica (see `FilePermissions`).
        try FilePermissions.preparePrivateFile(path)
        var config = Configuration()
        config.busyMode = .timeout(30)
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        db = try DatabasePool(path: path, configuration: config)
        self.standard = standard
        var deps: [String: [IndicatorDefinition]] = [:]
        for i in standard.indicators {
            var tables: Set<String> = []
            for m in [i.numerator] + (i.denominator.map { [$0] } ?? []) {
                tables.insert(m.table)
                if let d = m.dateColumn, let (refTable, _) = Self.reference(standard, m.table, d) { tables.insert(refTable) }
            }
            for t in tables { deps[t, default: []].append(i) }
        }
        dependents = deps
        var m = DatabaseMigrator()
        m.registerMigration("v1-facts") { db in
            try db.execute(
                sql: """
                    CREATE TABLE unit_facts (
                        unit_id TEXT NOT NULL, indicator TEXT NOT NULL, part TEXT NOT NULL, period TEXT NOT NULL, value REAL NOT NULL,
                        PRIMARY KEY (unit_id, indicator, part, period)) STRICT, WITHOUT ROWID;
                    CREATE TABLE org_facts (
                        org_id TEXT NOT NULL, industry TEXT NOT NULL, indicator TEXT NOT NULL, part TEXT NOT NULL,
                        period TEXT NOT NULL, value REAL NOT NULL,
                        PRIMARY KEY (org_id, industry, indicator, part, period)) STRICT, WITHOUT ROWID;
                    CREATE TABLE report_state (key TEXT PRIMARY KEY NOT NULL, value ANY) STRICT;
                    """)
        }
        try m.migrate(db)
    }

    public func close() throws { try db.close() }

    /// What one refresh did.
    public struct Refresh: Sendable, Equatable {
        public var full: Bool
        /// Units whose facts were recomputed.
        public var units: Int
        /// The replica's change sequence the facts now reflect.
        public var watermark: Int64
    }

    /// Brings the facts up to the replica's current contents; see the type's summary.
    /// Concurrent callers wait for one another (a refresh is cheap when nothing changed).
    @discardableResult
    public func refresh(from store: ReplicaStore, tree: OrgTree) throws -> Refresh {
        try refreshing.withLock { _ in
            try indexesChecked.withLock { checked in
                if !checked { try ensureIndexes(store) }
                checked = true
            }
            // The hub's own edits (a supervisor's correction, the sqlite3 shell) get their
            // change sequence when stamped; a page view with nothing captured writes nothing.
            if try store.capturedWrites() > 0 { try store.stampPendingChanges() }
            let watermark = try store.latestChangeSequence()
            if try db.read({ db in try self.isCurrent(State(db), watermark: watermark, tree: tree) }) {
                return Refresh(full: false, units: 0, watermark: watermark)
            }
            // One IMMEDIATE transaction from reading the watermark to saving the new one: a
            // second process refreshing the same report.db (`ferry report` beside the
            // server) waits for it instead of adding the same differences twice.
            return try db.writeWithoutTransaction { db in
                var result = Refresh(full: false, units: 0, watermark: 0)
                try db.inTransaction(.immediate) {
                    result = try self.refresh(db, store: store, tree: tree, watermark: watermark)
                    return .commit
                }
                return result
            }
        }
    }

    /// What `report_state` says the facts reflect.
    struct State {
        var watermark: Int64
        var standard: String?
        var tree: String?
        init(_ db: Database) throws {
            let state = try Dictionary(
                uniqueKeysWithValues: Row.fetchAll(db, sql: "SELECT key, value FROM report_state").map { ($0[0] as String, $0[1] as DatabaseValue) })
            watermark = state["watermark"].flatMap { Int64.fromDatabaseValue($0) } ?? -1
            standard = state["standard"].flatMap { String.fromDatabaseValue($0) }
            tree = state["tree"].flatMap { String.fromDatabaseValue($0) }
        }
    }

    func isCurrent(_ state: State, watermark: Int64, tree: OrgTree) -> Bool {
        state.watermark >= 0 && state.watermark >= watermark && state.standard == standard.version.description && state.tree == tree.shapeDigest
    }

    func refresh(_ db: Database, store: ReplicaStore, tree: OrgTree, watermark: Int64) throws -> Refresh {
        let state = try State(db)
        let seen = state.watermark
        let shape = state.tree
        if seen < 0 || state.standard != standard.version.description {
            let facts = try store.read { db in try self.compute(db, units: nil, indicators: self.standard.indicators) }
            try db.execute(sql: "DELETE FROM unit_facts")
            try insert(db, facts)
            try rebuildRollups(db, tree: tree)
            try saveState(db, watermark: watermark, tree: tree)
            return Refresh(full: true, units: Set(facts.map(\.unit)).count, watermark: watermark)
        }
        if shape != tree.shapeDigest {
            // A unit was added or moved: the unit facts stand, their sums are regrouped.
            try rebuildRollups(db, tree: tree)
            try db.execute(sql: "INSERT OR REPLACE INTO report_state (key, value) VALUES ('tree', ?)", arguments: [tree.shapeDigest])
        }
        guard watermark > seen else { return Refresh(full: false, units: 0, watermark: seen) }
        var touched: [String: Set<String>] = [:]  // unit → indicator ids
        var everyUnit: Set<String> = []
        for (table, scope) in try store.changedScopes(after: seen) {
            for i in dependents[table] ?? [] {
                if let s = scope { touched[s, default: []].insert(i.id) } else { everyUnit.insert(i.id) }
            }
        }
        if !everyUnit.isEmpty {
            for u in tree.nodes.values where u.level == .unit { touched[u.id, default: []].formUnion(everyUnit) }
        }
        // Batches of units keep each read of the replica short.
        let units = touched.keys.sorted()
        for start in stride(from: 0, to: units.count, by: 200) {
            let batch = Array(units[start..<min(start + 200, units.count)])
            let ids = Set(batch.flatMap { touched[$0]! })
            let indicators = standard.indicators.filter { ids.contains($0.id) }
            let fresh = try store.read { db in try self.compute(db, units: batch, indicators: indicators) }
            for unit in batch {
                try replace(db, unit: unit, indicators: touched[unit]!, with: fresh.filter { $0.unit == unit }, tree: tree)
            }
        }
        try saveState(db, watermark: watermark, tree: tree)
        return Refresh(full: false, units: units.count, watermark: watermark)
    }

    /// Forgets every fact; the next refresh recomputes from scratch.
    public func invalidate() throws {
        try db.write { db in try db.execute(sql: "DELETE FROM report_state WHERE key = 'watermark'") }
    }

    // MARK: Reading

    /// The two parts of every indicator for `org` (a unit or any node above), overall or
    /// for one industry, keyed by indicator id, part and period label.
    public func parts(org: String, industry: String? = nil) throws -> [String: [String: [String: Double]]] {
        try parts(orgs: [org], industry: industry)[org] ?? [:]
    }

    /// `parts(org:industry:)` for several org nodes in one read.
    public func parts(orgs: [String], industry: String? = nil) throws -> [String: [String: [String: [String: Double]]]] {
        try db.read { db in
            var out: [String: [String: [String: [String: Double]]]] = [:]
            let marks = orgs.map { _ in "?" }.joined(separator: ", ")
            let rows = try Row.fetchCursor(
                db, sql: "SELECT org_id, indicator, part, period, value FROM org_facts WHERE industry = ? AND org_id IN (\(marks))",
                arguments: StatementArguments([industry ?? ""] + orgs))
            while let r = try rows.next() {
                out[r[0] as String, default: [:]][r[1] as String, default: [:]][r[2] as String, default: [:]][r[3] as String] = r[4]
            }
            return out
        }
    }

    /// The totals of `indicator` for one period, from parts read with `parts(org:)`.
    public func totals(_ indicator: IndicatorDefinition, period: ReportPeriod, in parts: [String: [String: [String: Double]]]) -> IndicatorTotals {
        let p = parts[indicator.id] ?? [:]
        func part(_ name: String, _ m: IndicatorMeasure?) -> Double {
            guard let m else { return 0 }
            return p[name]?[m.isPeriodic ? period.label : ReportPeriod.current] ?? 0
        }
        return IndicatorTotals(numerator: part("n", indicator.numerator), denominator: part("d", indicator.denominator))
    }

    /// Periods that have any data for `indicator` at `org`, newest first (for choosing one).
    public func periods(org: String) throws -> [String] {
        try db.read { db in
            try String.fetchAll(db, sql: "SELECT DISTINCT period FROM org_facts WHERE org_id = ? AND industry = '' AND period != '*' ORDER BY period DESC", arguments: [org])
        }
    }

    // MARK: Computing

    struct Fact: Hashable {
        var unit: String
        var indicator: String
        var part: String
        var period: String
        var value: Double
    }

    static func reference(_ standard: Standard, _ table: String, _ dateColumn: String) -> (String, String)? {
        let parts = dateColumn.split(separator: ".").map(String.init)
        guard parts.count == 2, let ref = standard.table(named: table)?.column(named: parts[0])?.references else { return nil }
        return (ref.table, ref.column)
    }

    /// Facts of `indicators` for `units` (nil: every unit) from the replica's tables.
    func compute(_ db: Database, units: [String]?, indicators: [IndicatorDefinition]) throws -> [Fact] {
        // Measures that read the same rows the same way (table, join, period) share one
        // scan: each becomes one conditional sum of the query, so the attendance rate's
        // numerator and denominator, or the three study measures, cost one pass.
        struct Scan: Hashable {
            var table: String
            var from: String
            var period: String
            var conditions: [String]
        }
        var scans: [Scan: [(indicator: String, part: String, value: String)]] = [:]
        var order: [Scan] = []
        let q = SchemaSQL.quote
        for i in indicators {
            for (part, measure) in [("n", i.numerator)] + (i.denominator.map { [("d", $0)] } ?? []) {
                guard let t = standard.table(named: measure.table), t.scopeColumn != nil else { continue }
                var from = "\(q(t.name)) AS t"
                var period = "'\(ReportPeriod.current)'"
                var conditions: [String] = []
                if let d = measure.dateColumn {
                    var dateExpr = "t.\(q(d))"
                    if let (refTable, refColumn) = Self.reference(standard, t.name, d) {
                        let parts = d.split(separator: ".").map(String.init)
                        from += " JOIN \(q(refTable)) AS r ON r.\(q(refColumn)) = t.\(q(parts[0]))"
                        dateExpr = "r.\(q(parts[1]))"
                    }
                    period = ReportPeriod.sqlLabel(i.period, of: dateExpr)
                    conditions.append("\(dateExpr) IS NOT NULL")
                } else if let p = measure.periodColumn {
                    period = "CAST(t.\(q(p)) AS TEXT)"
                    conditions.append("t.\(q(p)) IS NOT NULL")
                }
                let filter = measure.filter.sorted(by: { $0.key < $1.key }).map { column, values in
                    "t.\(q(column)) IN (\(values.map(SchemaSQL.literal).joined(separator: ", ")))"
                }
                let amount = measure.sumColumn.map { "t.\(q($0))" } ?? "1"
                let value = filter.isEmpty ? "total(\(amount))" : "total(CASE WHEN \(filter.joined(separator: " AND ")) THEN \(amount) END)"
                let scan = Scan(table: t.name, from: from, period: period, conditions: conditions)
                if scans[scan] == nil { order.append(scan) }
                scans[scan, default: []].append((i.id, part, value))
            }
        }
        var out: [Fact] = []
        for scan in order {
            let t = standard.table(named: scan.table)!
            let scope = t.scopeColumn!
            var conditions = scan.conditions
            var arguments: [DatabaseValue] = []
            if let units {
                conditions.append("t.\(q(scope)) IN (\(units.map { _ in "?" }.joined(separator: ", ")))")
                arguments = units.map(\.databaseValue)
            }
            let measures = scans[scan]!
            let sql = """
                SELECT t.\(q(scope)), \(scan.period), \(measures.map(\.value).joined(separator: ", ")) FROM \(scan.from)
                \(conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND "))
                GROUP BY 1, 2
                """
            let rows = try Row.fetchCursor(db, sql: sql, arguments: StatementArguments(arguments))
            while let r = try rows.next() {
                guard let unit = r[0] as String?, let p = r[1] as String? else { continue }
                for (n, m) in measures.enumerated() {
                    let v: Double = r[n + 2]
                    // A group where this measure matched nothing holds no fact, as if counted alone.
                    if v != 0 { out.append(Fact(unit: unit, indicator: m.indicator, part: m.part, period: p, value: v)) }
                }
            }
        }
        return out
    }

    /// Indexes on the scope (and date) columns that indicators read, so recomputing one
    /// unit reads that unit's rows only. Created on the hub's replica; a table rebuilt by a
    /// standard upgrade loses them and gets them back here.
    func ensureIndexes(_ store: ReplicaStore) throws {
        var wanted: Set<String> = []
        for i in standard.indicators {
            for m in [i.numerator] + (i.denominator.map { [$0] } ?? []) {
                guard let t = standard.table(named: m.table), let scope = t.scopeColumn else { continue }
                let q = SchemaSQL.quote
                if let d = m.dateColumn ?? m.periodColumn, !d.contains(".") {
                    wanted.insert("CREATE INDEX IF NOT EXISTS \(q("ferry_report_\(t.name)_\(scope)_\(d)")) ON \(q(t.name)) (\(q(scope)), \(q(d)))")
                } else {
                    wanted.insert("CREATE INDEX IF NOT EXISTS \(q("ferry_report_\(t.name)_\(scope)")) ON \(q(t.name)) (\(q(scope)))")
                }
            }
        }
        let existing = try store.read { db in
            Set(try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'ferry_report_%'"))
        }
        let missing = wanted.filter { sql in !existing.contains { sql.contains("\"\($0)\"") } }
        guard !missing.isEmpty else { return }
        try store.executeAll(missing.sorted().map { (sql: $0, arguments: []) })
    }

    func insert(_ db: Database, _ facts: [Fact]) throws {
        let stmt = try db.cachedStatement(sql: "INSERT OR REPLACE INTO unit_facts (unit_id, indicator, part, period, value) VALUES (?, ?, ?, ?, ?)")
        for f in facts { try stmt.execute(arguments: [f.unit, f.indicator, f.part, f.period, f.value]) }
    }

    /// Replaces `unit`'s facts of `indicators` and adds the difference to every ancestor.
    func replace(_ db: Database, unit: String, indicators: Set<String>, with fresh: [Fact], tree: OrgTree) throws {
        struct Key: Hashable {
            var indicator: String
            var part: String
            var period: String
        }
        var delta: [Key: Double] = [:]
        let marks = indicators.map { _ in "?" }.joined(separator: ", ")
        let args = StatementArguments([unit] + Array(indicators))
        for r in try Row.fetchAll(db, sql: "SELECT indicator, part, period, value FROM unit_facts WHERE unit_id = ? AND indicator IN (\(marks))", arguments: args) {
            delta[Key(indicator: r[0], part: r[1], period: r[2]), default: 0] -= r[3] as Double
        }
        try db.execute(sql: "DELETE FROM unit_facts WHERE unit_id = ? AND indicator IN (\(marks))", arguments: args)
        try insert(db, fresh)
        for f in fresh { delta[Key(indicator: f.indicator, part: f.part, period: f.period), default: 0] += f.value }
        let targets = Self.rollupTargets(unit: unit, tree: tree)
        let stmt = try db.cachedStatement(
            sql: """
                INSERT INTO org_facts (org_id, industry, indicator, part, period, value) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT DO UPDATE SET value = value + excluded.value
                """)
        for (k, d) in delta where d != 0 {
            for (org, industry) in targets { try stmt.execute(arguments: [org, industry, k.indicator, k.part, k.period, d]) }
        }
    }

    /// The (org node, industry) sums a unit's facts count towards: the unit itself, and
    /// every ancestor both overall and for the unit's industry.
    static func rollupTargets(unit: String, tree: OrgTree) -> [(String, String)] {
        let path = tree.path(to: unit)
        guard !path.isEmpty else { return [(unit, "")] }
        let industry = path[0].industry
        var out: [(String, String)] = []
        for (i, n) in path.enumerated() {
            out.append((n.id, ""))
            if i > 0, let ind = industry { out.append((n.id, ind)) }
        }
        return out
    }

    func rebuildRollups(_ db: Database, tree: OrgTree) throws {
        struct Key: Hashable {
            var org: String
            var industry: String
            var indicator: String
            var part: String
            var period: String
        }
        var sums: [Key: Double] = [:]
        var targetsByUnit: [String: [(String, String)]] = [:]
        let rows = try Row.fetchCursor(db, sql: "SELECT unit_id, indicator, part, period, value FROM unit_facts")
        while let r = try rows.next() {
            let unit: String = r[0]
            let targets = targetsByUnit[unit] ?? Self.rollupTargets(unit: unit, tree: tree)
            targetsByUnit[unit] = targets
            let value: Double = r[4]
            for (org, industry) in targets {
                sums[Key(org: org, industry: industry, indicator: r[1], part: r[2], period: r[3]), default: 0] += value
            }
        }
        try db.execute(sql: "DELETE FROM org_facts")
        let stmt = try db.cachedStatement(sql: "INSERT INTO org_facts (org_id, industry, indicator, part, period, value) VALUES (?, ?, ?, ?, ?, ?)")
        for (k, v) in sums { try stmt.execute(arguments: [k.org, k.industry, k.indicator, k.part, k.period, v]) }
    }

    func saveState(_ db: Database, watermark: Int64, tree: OrgTree) throws {
        for (k, v) in [("watermark", watermark.databaseValue), ("standard", standard.version.description.databaseValue), ("tree", tree.shapeDigest.databaseValue)] {
            try db.execute(sql: "INSERT OR REPLACE INTO report_state (key, value) VALUES (?, ?)", arguments: [k, v])
        }
    }
}
