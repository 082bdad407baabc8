import FerryCore
import FerryStore
import FerryWire
import Foundation

/// One indicator at one org node for one period, with the sums behind it and its recent history.
public struct IndicatorFigure: Sendable, Equatable, Codable {
    public struct Point: Sendable, Equatable, Codable {
        public var period: String
        public var value: Double?
        /// Judged as the figure itself is (the same goal and direction; a period still
        /// running and below its goal is `inProgress`), so a bar's colour matches the table.
        public var status: TargetStatus
    }
    public var id: String
    public var labelZh: String
    public var labelEn: String
    public var unitText: String
    public var period: String
    public var value: Double?
    public var numerator: Double
    public var denominator: Double?
    /// The goal at this level: the standard's target, times the number of units for a plain sum.
    public var target: Double?
    public var status: TargetStatus
    /// This period and the ones before it, oldest first.
    public var series: [Point]
    /// Days in the period, and which of them is the hub's today (all of them for a period
    /// that has ended; 0 for one not begun).
    public var days: Int
    public var daysElapsed: Int
    /// The period has begun and not ended by the hub's today: its figures are still growing.
    public var inProgress: Bool

    public init(
        id: String, labelZh: String, labelEn: String, unitText: String, period: String, value: Double?, numerator: Double, denominator: Double?,
        target: Double?, status: TargetStatus, series: [Point], days: Int, daysElapsed: Int, inProgress: Bool
    ) {
        self.id = id
        self.labelZh = labelZh
        self.labelEn = labelEn
        self.unitText = unitText
        self.period = period
        self.value = value
        self.numerator = numerator
        self.denominator = denominator
        self.target = target
        self.status = status
        self.series = series
        self.days = days
        self.daysElapsed = daysElapsed
        self.inProgress = inProgress
    }
}

/// A row of a breakdown: one child org node, or one industry, with every indicator's value.
public struct BreakdownRow: Sendable, Equatable, Codable {
    public var id: String
    public var name: String
    public var level: String
    public var units: Int
    public var silentUnits: Int
    /// Indicator id → value (absent: nothing to measure).
    public var values: [String: Double]
}

/// Silent units of one industry in one county (or whatever node sits above the units):
/// "12 schools in county X silent for 9 days".
public struct SilentGroup: Sendable, Equatable, Codable {
    public var orgID: String
    public var orgName: String
    public var industry: String
    public var units: Int
    /// The shortest silence among them, whole days: all have been silent at least this long.
    public var days: Int
}

/// The indicator page of one org node.
public struct IndicatorReport: Sendable, Equatable, Codable {
    public var org: OrgUnit
    /// From the viewer's root down to `org`.
    public var path: [OrgUnit]
    public var at: String
    public var industry: String?
    public var units: Int
    public var silentUnits: Int
    public var silentAfterDays: Int
    public var figures: [IndicatorFigure]
    public var children: [BreakdownRow]
    public var industries: [BreakdownRow]
    public var silentGroups: [SilentGroup]
    /// When `org` is a unit: how it keeps in touch (its page shows this, not counts of one).
    public var unit: UnitFreshness?
}

/// How one unit keeps in touch.
public struct UnitFreshness: Sendable, Equatable, Codable {
    public var unitID: String
    public var name: String
    /// The node above the unit (usually its county).
    public var parentID: String?
    public var parentName: String?
    public var industry: String?
    public var nodes: Int
    /// ms since the epoch.
    public var lastSyncAt: UInt64?
    public var lastContactAt: UInt64?
    public var pendingRows: Int?
    public var standardVersion: String?
    public var clockSkewMillis: Int64?
    public var contact: UnitContact
    /// Whole days since the last sync (or enrolment), when known.
    public var daysSinceSync: Int?
}

/// How a screen names a record: the unit it belongs to, the standard's labels for its
/// table and column, and the record's own title (a member's name), beside the raw ids.
public struct RecordNames: Sendable, Equatable, Codable {
    public var unitName: String?
    public var tableZh: String
    public var tableEn: String
    public var columnZh: String
    public var columnEn: String
    /// The value of the table's title column at the hub (`TableDefinition.titleColumn`),
    /// when it has one and holds the row.
    public var record: String?
}

/// A conflict as a supervisor reviews it: both sides, their origins and times.
public struct ConflictItem: Sendable, Equatable, Codable {
    public var id: Int64
    public var table: String
    public var key: String
    public var column: String
    public var unitID: String?
    public var names: RecordNames
    public var kind: String
    public var status: String
    public var policy: String
    public var currentValue: String?
    public var currentOrigin: String?
    /// ms since the epoch, from the version's hybrid logical clock.
    public var currentTime: UInt64?
    public var otherValue: String
    public var otherOrigin: String
    public var otherTime: UInt64
    public var recordedAt: UInt64
}

/// A value the hub refused, held with its reason.
public struct QuarantineItem: Sendable, Equatable, Codable {
    public var id: Int64
    public var table: String
    public var key: String
    public var column: String
    public var unitID: String?
    public var names: RecordNames
    public var origin: String
    public var value: String
    public var reason: String
    public var reasonZh: String
    public var receivedAt: UInt64
    public var status: String
}

/// What a supervisor decides about a conflict.
public enum ConflictResolution: Sendable, Equatable {
    /// Keep the current value.
    case keep
    /// Put the other side's value back.
    case takeOther
    /// Write a value of the supervisor's own.
    case edit(String)
}

/// The supervisor's view of a hub: indicators rolled up the org tree, the freshness of
/// every unit, and the conflicts and quarantined values to settle. Every query names the
/// viewer's root; asking about anything outside it is refused.
public final class SupervisorView: Sendable {
    public let hub: Hub
    public let facts: IndicatorFacts
    public let silentAfterDays: Int
    /// How many periods each figure's history shows.
    public let seriesLength = 6

    public init(hub: Hub, silentAfterDays: Int = FerryDefaults.Hub.silentAfterDays) throws {
        self.hub = hub
        self.silentAfterDays = silentAfterDays
        facts = try IndicatorFacts(path: "\(hub.directory)/report.db", standard: hub.store.standard)
    }

    public func tree() throws -> OrgTree {
        OrgTree(try hub.registry.units())
    }

    /// Brings indicator facts up to date with what has been synced (incremental).
    @discardableResult
    public func refresh() throws -> IndicatorFacts.Refresh {
        try facts.refresh(from: hub.store, tree: try tree())
    }

    /// The org root a viewer sees when none is named: the account's node, or the top of the tree.
    public func defaultRoot(_ tree: OrgTree) -> String? { tree.roots.first }

    func check(_ org: String, within root: String, _ tree: OrgTree) throws(WireError) {
        guard tree[org] != nil else {
            throw WireError(.notFound, "org node '\(org)' is not in the org tree", zh: "机构 '\(org)' 不在组织树中")
        }
        guard tree.contains(org, within: root) else {
            throw WireError(.forbidden, "org node '\(org)' is outside '\(root)', the part of the tree this account covers", zh: "机构 '\(org)' 不在本账号的管辖范围（\(root)）内")
        }
    }

    func wrap<T>(_ body: () throws -> T) throws(WireError) -> T {
        do { return try body() } catch let e as WireError { throw e } catch let e as HubError {
            throw WireError(.badRequest, e.description)
        } catch let e as StoreError {
            throw WireError(.badRequest, e.description)
        } catch {
            throw WireError(.unavailable, "the hub could not read its data (\(error)); try again")
        }
    }

    // MARK: Indicators

    /// Indicators of `org` (as seen by a viewer whose root is `root`), each over its own
    /// period containing `at` (`YYYY-MM-DD`; default: today by the hub's clock).
    public func report(org: String?, root: String, at: String? = nil, industry: String? = nil, refresh: Bool = true) throws(WireError) -> IndicatorReport {
        let tree = try wrap { try self.tree() }
        let org = org ?? root
        try check(org, within: root, tree)
        let today = Self.day(hub.now())
        let day = at ?? today
        guard ReportPeriod(kind: .month, containing: day) != nil else {
            throw WireError(.badRequest, "at='\(day)' is not a date; write it as YYYY-MM-DD", zh: "日期格式应为 YYYY-MM-DD")
        }
        if refresh { _ = try wrap { try self.facts.refresh(from: self.hub.store, tree: tree) } }
        let freshness = try freshness(org: org, root: root, tree: tree)
        let silentByUnit = Set(freshness.filter { $0.contact == .silent }.map(\.unitID))
        let node = tree[org]!
        let unitCount = tree.units(under: org).filter { industry == nil || $0.industry == industry }.count
        let parts = try wrap { try self.facts.parts(org: org, industry: industry) }
        let figures = hub.store.standard.indicators.map { i -> IndicatorFigure in
            let period = ReportPeriod(kind: i.period, containing: day)!
            let t = facts.totals(i, period: period, in: parts)
            let value = t.value(of: i)
            // How far the period has run by the hub's today: a miss before it ends is "so far".
            let running = today >= period.firstDay && today <= period.lastDay
            let elapsed = today < period.firstDay ? 0 : today > period.lastDay ? period.dayCount : (period.dayNumber(of: today) ?? period.dayCount)
            var status = TargetStatus.of(value, indicator: i, units: unitCount)
            if status == .missed && running { status = .inProgress }
            return IndicatorFigure(
                id: i.id, labelZh: i.label?.zh ?? i.id, labelEn: i.label?.en ?? i.id, unitText: i.unitText, period: period.label, value: value,
                numerator: t.numerator, denominator: i.denominator == nil ? nil : t.denominator,
                target: i.target.map { i.denominator == nil ? $0 * Double(max(unitCount, 1)) : $0 },
                status: status,
                series: period.trailing(seriesLength).map { p in
                    let v = facts.totals(i, period: p, in: parts).value(of: i)
                    var s = TargetStatus.of(v, indicator: i, units: unitCount)
                    if s == .missed && today >= p.firstDay && today <= p.lastDay { s = .inProgress }
                    return IndicatorFigure.Point(period: p.label, value: v, status: s)
                },
                days: period.dayCount, daysElapsed: elapsed, inProgress: running)
        }
        func values(_ parts: [String: [String: [String: Double]]]) -> [String: Double] {
            var out: [String: Double] = [:]
            for i in hub.store.standard.indicators {
                out[i.id] = facts.totals(i, period: ReportPeriod(kind: i.period, containing: day)!, in: parts).value(of: i)
            }
            return out
        }
        let kids = (tree.children[org] ?? []).compactMap { tree[$0] }
        let kidParts = try wrap { try self.facts.parts(orgs: kids.map(\.id), industry: industry) }
        let children = kids.map { k -> BreakdownRow in
            let units = tree.units(under: k.id).filter { industry == nil || $0.industry == industry }
            return BreakdownRow(
                id: k.id, name: k.name, level: k.level.rawValue, units: units.count, silentUnits: units.filter { silentByUnit.contains($0.id) }.count,
                values: values(kidParts[k.id] ?? [:]))
        }
        var industries: [BreakdownRow] = []
        if industry == nil && node.level != .unit {
            let all = tree.units(under: org)
            for ind in Set(all.compactMap(\.industry)).sorted() {
                let units = all.filter { $0.industry == ind }
                let p = try wrap { try self.facts.parts(org: org, industry: ind) }
                industries.append(
                    BreakdownRow(
                        id: ind, name: ind, level: "industry", units: units.count, silentUnits: units.filter { silentByUnit.contains($0.id) }.count,
                        values: values(p)))
            }
        }
        let path = Array(tree.path(to: org).reversed()).drop { $0.id != root }
        return IndicatorReport(
            org: node, path: Array(path), at: day, industry: industry, units: unitCount,
            silentUnits: freshness.filter { $0.contact == .silent && (industry == nil || $0.industry == industry) }.count,
            silentAfterDays: silentAfterDays, figures: figures, children: children, industries: industries,
            silentGroups: Self.silentGroups(freshness), unit: node.level == .unit ? freshness.first { $0.unitID == org } : nil)
    }

    static func day(_ millis: UInt64) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "Asia/Shanghai")
        f.dateFormat = "yyyy-MM-dd"
        return f.string(from: Date(timeIntervalSince1970: Double(millis) / 1000))
    }

    // MARK: Freshness

    /// Every unit at or below `org`, with how it keeps in touch; silent units first.
    public func freshness(org: String?, root: String) throws(WireError) -> [UnitFreshness] {
        let tree = try wrap { try self.tree() }
        let org = org ?? root
        try check(org, within: root, tree)
        return try freshness(org: org, root: root, tree: tree)
    }

    func freshness(org: String, root: String, tree: OrgTree) throws(WireError) -> [UnitFreshness] {
        let nodes = try wrap { try self.hub.registry.nodes() }.filter { $0.revokedAt == nil }
        let byUnit = Dictionary(grouping: nodes, by: \.unitID)
        let now = hub.now()
        return tree.units(under: org).map { u -> UnitFreshness in
            let ns = byUnit[u.id] ?? []
            let lastSync = ns.compactMap(\.lastSyncAt).max()
            let enrolled = ns.map(\.enrolledAt).min()
            let newest = ns.max { ($0.lastSeenAt ?? 0) < ($1.lastSeenAt ?? 0) }
            let contact = UnitContact.judge(lastSync: lastSync, enrolledAt: enrolled, now: now, silentAfterDays: silentAfterDays)
            let since = lastSync ?? enrolled
            let parent = u.parentID.flatMap { tree[$0] }
            return UnitFreshness(
                unitID: u.id, name: u.name, parentID: parent?.id, parentName: parent?.name, industry: u.industry, nodes: ns.count,
                lastSyncAt: lastSync, lastContactAt: ns.compactMap(\.lastSeenAt).max(), pendingRows: newest?.pendingRows,
                standardVersion: newest?.standardVersion, clockSkewMillis: newest?.clockSkewMillis, contact: contact,
                daysSinceSync: since.map { now > $0 ? Int((now - $0) / 86_400_000) : 0 })
        }.sorted { a, b in
            let rank: (UnitContact) -> Int = { $0 == .silent ? 0 : $0 == .notEnrolled ? 1 : 2 }
            if rank(a.contact) != rank(b.contact) { return rank(a.contact) < rank(b.contact) }
            if (a.daysSinceSync ?? 0) != (b.daysSinceSync ?? 0) { return (a.daysSinceSync ?? 0) > (b.daysSinceSync ?? 0) }
            return a.unitID < b.unitID
        }
    }

    static func silentGroups(_ freshness: [UnitFreshness]) -> [SilentGroup] {
        struct Key: Hashable {
            var org: String
            var industry: String
        }
        var groups: [Key: (name: String, units: Int, days: Int)] = [:]
        for f in freshness where f.contact == .silent {
            let k = Key(org: f.parentID ?? "", industry: f.industry ?? "other")
            let d = f.daysSinceSync ?? 0
            let g = groups[k] ?? (f.parentName ?? "", 0, Int.max)
            groups[k] = (g.name, g.units + 1, min(g.days, d))
        }
        return groups.map { SilentGroup(orgID: $0.key.org, orgName: $0.value.name, industry: $0.key.industry, units: $0.value.units, days: $0.value.days) }
            .sorted { ($0.units, $1.orgID, $1.industry) > ($1.units, $0.orgID, $0.industry) }
    }

    // MARK: Conflicts and quarantine

    /// Open conflicts (held for review, or overwritten and not yet settled) of units at or below `org`.
    public func conflicts(org: String?, root: String, includeSettled: Bool = false) throws(WireError) -> [ConflictItem] {
        let tree = try wrap { try self.tree() }
        let org = org ?? root
        try check(org, within: root, tree)
        let store = hub.store
        return try wrap {
            let all = try store.conflicts().filter { includeSettled || $0.status == .held || $0.status == .overwritten }
            let scopes = try store.scopes(ofConflicts: all.map(\.id))
            return try all.compactMap { c -> ConflictItem? in
                let unit = c.scope ?? scopes[c.id]
                // Reference data (no unit) belongs to the hub's root.
                guard unit.map({ tree.contains($0, within: org) }) ?? (org == root) else { return nil }
                let current = try store.currentValue(table: c.table, key: c.key, scope: c.scope, column: c.column)
                let version = try store.cellVersion(table: c.table, key: c.key, scope: c.scope, column: c.column)
                return ConflictItem(
                    id: c.id, table: c.table, key: c.key.map(Self.text).joined(separator: ", "), column: c.column, unitID: unit,
                    names: try self.names(table: c.table, key: c.key, scope: c.scope, column: c.column, unit: unit, tree),
                    kind: c.kind.rawValue, status: c.status.rawValue, policy: c.policy.rawValue, currentValue: current.map(Self.text),
                    currentOrigin: version?.origin.rawValue, currentTime: version.map { $0.clock.physicalMillis },
                    otherValue: Self.text(c.lostValue), otherOrigin: c.lostOrigin.rawValue, otherTime: c.lostClock.physicalMillis,
                    recordedAt: c.recordedAt)
            }.reversed()
        }
    }

    /// Settles conflict `id` as `admin` decided; the outcome syncs down like any hub edit,
    /// and the registry's audit log records who did what.
    public func resolve(conflict id: Int64, _ resolution: ConflictResolution, admin: String, root: String) throws(WireError) {
        guard let item = try conflicts(org: root, root: root).first(where: { $0.id == id }) else {
            throw WireError(.notFound, "conflict \(id) is not open, or not within '\(root)'; list open conflicts first", zh: "冲突 \(id) 不存在、已处理或不在管辖范围内")
        }
        let store = hub.store
        if case .keep = resolution {
        } else if let c = store.standard.table(named: item.table)?.column(named: item.column), c.classification != .full {
            // The hub holds a masked column only masked (and a local one not at all): it can
            // neither put a value back nor write one; only the unit's clerk can.
            throw WireError(
                .notWritable,
                "\(item.table).\(item.column) is \(c.classification == .local ? "local" : "masked") at the hub, so only the unit can change it: keep the current value here; the unit's clerk can restore the other with ferry conflicts --restore",
                zh: "\(item.table).\(item.column) 为脱敏字段，上级不能修改，只能保留当前值；如需恢复另一值，请由本单位用 ferry conflicts --restore 处理")
        }
        let detail: String
        switch resolution {
        case .keep:
            try wrap { try store.dismiss(conflict: id) }
            detail = "conflict \(id) \(item.table).\(item.column) [\(item.key)]: kept \(item.currentValue ?? "(deleted)")"
        case .takeOther:
            try wrap { try store.restore(conflict: id) }
            detail = "conflict \(id) \(item.table).\(item.column) [\(item.key)]: took \(item.otherValue) from \(item.otherOrigin)"
        case .edit(let text):
            let value = try parse(text, table: item.table, column: item.column)
            try wrap { try store.resolve(conflict: id, with: value) }
            detail = "conflict \(id) \(item.table).\(item.column) [\(item.key)]: set \(Self.text(value))"
        }
        hub.registry.recordResolution(admin: admin, unit: item.unitID, detail: detail, now: hub.now())
    }

    /// Held quarantined rows of units at or below `org`.
    public func quarantine(org: String?, root: String, includeSettled: Bool = false) throws(WireError) -> [QuarantineItem] {
        let tree = try wrap { try self.tree() }
        let org = org ?? root
        try check(org, within: root, tree)
        return try wrap {
            try self.hub.store.quarantine().filter { q in
                (includeSettled || q.status == "held") && (q.scope.map { tree.contains($0, within: org) } ?? (org == root))
            }.map {
                QuarantineItem(
                    id: $0.id, table: $0.table, key: $0.key.map(Self.text).joined(separator: ", "), column: $0.column, unitID: $0.scope,
                    names: try self.names(table: $0.table, key: $0.key, scope: $0.scope, column: $0.column, unit: $0.scope, tree),
                    origin: $0.origin, value: Self.text($0.value), reason: $0.reason, reasonZh: $0.reasonZh, receivedAt: $0.receivedAt,
                    status: $0.status)
            }.reversed()
        }
    }

    /// Settles a quarantined row: `correction` nil discards it; a value applies the row with
    /// that value, as the supervisor's edit (which syncs down to the unit).
    public func settleQuarantine(_ id: Int64, correction: String?, admin: String, root: String) throws(WireError) {
        guard let item = try quarantine(org: root, root: root).first(where: { $0.id == id }) else {
            throw WireError(.notFound, "quarantined row \(id) is not held, or not within '\(root)'", zh: "隔离记录 \(id) 不存在、已处理或不在管辖范围内")
        }
        let value = try correction.map { text throws(WireError) in try parse(text, table: item.table, column: item.column) }
        try wrap { try self.hub.store.settleQuarantine(id, correction: value) }
        let what = value.map { "corrected to \(Self.text($0))" } ?? "discarded"
        hub.registry.recordResolution(
            admin: admin, unit: item.unitID, detail: "quarantine \(id) \(item.table).\(item.column) [\(item.key)] \(item.value): \(what)", now: hub.now())
    }

    /// The names a screen shows for a record instead of its ids.
    func names(table: String, key: [Value], scope: String?, column: String, unit: String?, _ tree: OrgTree) throws -> RecordNames {
        let t = hub.store.standard.table(named: table)
        let c = t?.column(named: column)
        let record = try t?.titleColumn.flatMap { try hub.store.currentValue(table: table, key: key, scope: scope, column: $0) }
        return RecordNames(
            unitName: unit.flatMap { tree[$0]?.name }, tableZh: t?.label?.zh ?? table, tableEn: t?.label?.en ?? table,
            columnZh: c?.label?.zh ?? column, columnEn: c?.label?.en ?? column, record: record.flatMap { $0.isNull ? nil : Self.text($0) })
    }

    /// Reads a supervisor's typed text as a value of the column's type, checked against the
    /// standard (`ColumnDefinition.value(typed:)`, the parser `ferry record` uses too).
    func parse(_ text: String, table: String, column: String) throws(WireError) -> Value {
        guard let t = hub.store.standard.table(named: table), let c = t.column(named: column) else {
            throw WireError(.unknownSchema, "\(table).\(column) is not in the standard")
        }
        switch c.value(typed: text) {
        case .success(let v): return v
        case .failure(let p):
            throw WireError(.invalidValue, "\(table).\(column) \(p.english)", zh: "\(t.chineseName(of: column)) \(p.chinese)")
        }
    }

    static func text(_ v: Value) -> String {
        switch v {
        case .null: return "∅"
        case .integer(let i): return String(i)
        case .real(let d): return String(d)
        case .text(let s): return s
        case .blob(let b): return "<\(b.count) bytes>"
        }
    }
}
