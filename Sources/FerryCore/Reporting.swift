/// A reporting period: one month, quarter or year, named the way a supervisor writes it
/// ("2026-11", "2026-Q4", "2026").
///
/// Periods are derived from `YYYY-MM-DD` dates as text, so the hub's SQL and this value
/// agree on where a date falls without any calendar library or time zone.
public struct ReportPeriod: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var kind: IndicatorPeriod
    public var year: Int
    /// 1–12 for a month, 1–4 for a quarter, 1 for a year.
    public var index: Int

    public init(kind: IndicatorPeriod, year: Int, index: Int) {
        self.kind = kind
        self.year = year
        self.index = index
    }

    /// The period of `kind` that contains `date` (`YYYY-MM-DD`); nil when it is not such a date.
    public init?(kind: IndicatorPeriod, containing date: String) {
        let parts = date.split(separator: "-")
        guard parts.count == 3, let y = Int(parts[0]), let m = Int(parts[1]), (1...12).contains(m), parts[0].count == 4 else { return nil }
        self.kind = kind
        self.year = y
        switch kind {
        case .month: index = m
        case .quarter: index = (m + 2) / 3
        case .year: index = 1
        }
    }

    /// Parses a label: "2026-11", "2026-Q4" or "2026".
    public init?(label: String) {
        let parts = label.split(separator: "-", omittingEmptySubsequences: false)
        guard let y = Int(parts[0]), parts[0].count == 4 else { return nil }
        year = y
        if parts.count == 1 {
            kind = .year
            index = 1
        } else if parts.count == 2, parts[1].first == "Q", let q = Int(parts[1].dropFirst()), (1...4).contains(q) {
            kind = .quarter
            index = q
        } else if parts.count == 2, parts[1].count == 2, let m = Int(parts[1]), (1...12).contains(m) {
            kind = .month
            index = m
        } else {
            return nil
        }
    }

    public var label: String {
        switch kind {
        case .month: return "\(year)-\(index < 10 ? "0" : "")\(index)"
        case .quarter: return "\(year)-Q\(index)"
        case .year: return "\(year)"
        }
    }
    public var description: String { label }

    /// The first day, `YYYY-MM-DD`.
    public var firstDay: String {
        let month: Int
        switch kind {
        case .month: month = index
        case .quarter: month = (index - 1) * 3 + 1
        case .year: month = 1
        }
        return "\(year)-\(month < 10 ? "0" : "")\(month)-01"
    }

    /// The last day, `YYYY-MM-DD`.
    public var lastDay: String {
        let month: Int
        switch kind {
        case .month: month = index
        case .quarter: month = index * 3
        case .year: month = 12
        }
        return "\(year)-\(month < 10 ? "0" : "")\(month)-\(Self.daysIn(year: year, month: month))"
    }

    /// Days in the period.
    public var dayCount: Int {
        switch kind {
        case .month: return Self.daysIn(year: year, month: index)
        case .quarter: return ((index - 1) * 3 + 1...index * 3).reduce(0) { $0 + Self.daysIn(year: year, month: $1) }
        case .year: return (1...12).reduce(0) { $0 + Self.daysIn(year: year, month: $1) }
        }
    }

    /// Which day of the period `date` (`YYYY-MM-DD`) is, from 1; nil when it is not in it.
    public func dayNumber(of date: String) -> Int? {
        let parts = date.split(separator: "-")
        guard parts.count == 3, let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]), y == year,
            ReportPeriod(kind: kind, containing: date) == self, (1...Self.daysIn(year: y, month: m)).contains(d)
        else { return nil }
        let firstMonth: Int
        switch kind {
        case .month: firstMonth = index
        case .quarter: firstMonth = (index - 1) * 3 + 1
        case .year: firstMonth = 1
        }
        return (firstMonth..<m).reduce(0) { $0 + Self.daysIn(year: y, month: $1) } + d
    }

    /// Gregorian month lengths.
    static func daysIn(year: Int, month: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    var ordinal: Int {
        switch kind {
        case .month: return year * 12 + index - 1
        case .quarter: return year * 4 + index - 1
        case .year: return year
        }
    }

    /// The period `n` steps earlier (negative: later).
    public func back(_ n: Int) -> ReportPeriod {
        let o = ordinal - n
        switch kind {
        case .month: return ReportPeriod(kind: .month, year: o / 12, index: o % 12 + 1)
        case .quarter: return ReportPeriod(kind: .quarter, year: o / 4, index: o % 4 + 1)
        case .year: return ReportPeriod(kind: .year, year: o, index: 1)
        }
    }

    /// This period and the `count - 1` before it, oldest first.
    public func trailing(_ count: Int) -> [ReportPeriod] {
        (0..<max(count, 1)).reversed().map { back($0) }
    }

    public static func < (a: ReportPeriod, b: ReportPeriod) -> Bool {
        (a.kind.rawValue, a.ordinal) < (b.kind.rawValue, b.ordinal)
    }

    /// The SQL expression giving the period label of the `YYYY-MM-DD` text in `date`, for
    /// `kind`; it yields the same text as `label`.
    public static func sqlLabel(_ kind: IndicatorPeriod, of date: String) -> String {
        switch kind {
        case .month: return "substr(\(date), 1, 7)"
        case .quarter: return "substr(\(date), 1, 4) || '-Q' || ((CAST(substr(\(date), 6, 2) AS INTEGER) + 2) / 3)"
        case .year: return "substr(\(date), 1, 4)"
        }
    }

    /// The label facts of measures with no date column are stored under: they count the
    /// rows as they are now, and apply to every period.
    public static let current = "*"
}

/// The sums behind one indicator for some set of units and one period.
///
/// Roll-ups add numerators and denominators separately and divide once, so a county's
/// attendance rate is (present across the county) / (expected across the county), never
/// the mean of its units' rates.
public struct IndicatorTotals: Sendable, Hashable, Codable {
    public var numerator: Double
    public var denominator: Double
    public init(numerator: Double = 0, denominator: Double = 0) {
        self.numerator = numerator
        self.denominator = denominator
    }

    public static func + (a: IndicatorTotals, b: IndicatorTotals) -> IndicatorTotals {
        IndicatorTotals(numerator: a.numerator + b.numerator, denominator: a.denominator + b.denominator)
    }

    /// The displayed value: numerator × scale ÷ denominator, or the numerator alone when the
    /// indicator has no denominator; nil when the denominator is zero (nothing to measure).
    public func value(of indicator: IndicatorDefinition) -> Double? {
        guard indicator.denominator != nil else { return numerator * indicator.scale }
        guard denominator > 0 else { return nil }
        return numerator * indicator.scale / denominator
    }
}

/// How a figure stands against the indicator's target.
public enum TargetStatus: String, Sendable, Codable {
    /// `inProgress`: below the goal so far, in a period that has not ended yet (on its first
    /// day every figure is 0: not a miss).
    case met, missed, inProgress = "in_progress", noTarget = "no_target", noData = "no_data"

    /// A ratio's target applies as is at every level; a plain sum's target is per unit, so a
    /// county of 12 units is measured against 12 × target.
    public static func of(_ value: Double?, indicator: IndicatorDefinition, units: Int) -> TargetStatus {
        let goal = indicator.target.map { indicator.denominator == nil ? $0 * Double(max(units, 1)) : $0 }
        return of(value, goal: goal, lowerIsBetter: indicator.lowerIsBetter)
    }

    /// `value` against a goal already scaled to the level it is measured at.
    public static func of(_ value: Double?, goal: Double?, lowerIsBetter: Bool = false) -> TargetStatus {
        guard let goal else { return value == nil ? .noData : .noTarget }
        guard let v = value else { return .noData }
        return (lowerIsBetter ? v <= goal : v >= goal) ? .met : .missed
    }
}

/// One place in the supervisor's organisation tree: the province, a city, a county or a
/// unit. The one type for it everywhere: the hub's registry, the org tree, the reports' org
/// and path, and the sample province.
public struct OrgUnit: Sendable, Hashable, Codable {
    public enum Level: String, Sendable, Hashable, Codable, CaseIterable {
        case province, city, county, unit
    }
    public var id: String
    public var name: String
    /// The place above it; nil for a root (the province).
    public var parentID: String?
    public var level: Level
    /// A unit's line of work, as the standard's `org_unit.industry` names it.
    public var industry: String?
    /// The region (statistical) code, when known.
    public var region: String?

    public init(id: String, name: String, parentID: String?, level: Level, industry: String? = nil, region: String? = nil) {
        self.id = id
        self.name = name
        self.parentID = parentID
        self.level = level
        self.industry = industry
        self.region = region
    }
}

/// The supervisor's organisation tree, for walking up (roll-ups) and down (scopes).
public struct OrgTree: Sendable {
    public let nodes: [String: OrgUnit]
    public let children: [String: [String]]
    public let roots: [String]

    public init(_ list: [OrgUnit]) {
        var byID: [String: OrgUnit] = [:]
        for n in list { byID[n.id] = n }
        var kids: [String: [String]] = [:]
        var roots: [String] = []
        for n in list {
            if let p = n.parentID, byID[p] != nil { kids[p, default: []].append(n.id) } else { roots.append(n.id) }
        }
        nodes = byID
        children = kids.mapValues { $0.sorted() }
        self.roots = roots.sorted()
    }

    public subscript(id: String) -> OrgUnit? { nodes[id] }

    /// `id` and its ancestors, nearest first. A cycle (a broken tree) stops the walk.
    public func path(to id: String) -> [OrgUnit] {
        var out: [OrgUnit] = []
        var seen: Set<String> = []
        var cursor: String? = id
        while let c = cursor, let n = nodes[c], seen.insert(c).inserted {
            out.append(n)
            cursor = n.parentID
        }
        return out
    }

    /// True when `id` is `root` or lies below it: what a supervisor scoped to `root` may see.
    public func contains(_ id: String, within root: String) -> Bool {
        path(to: id).contains { $0.id == root }
    }

    /// Every unit (leaf of level "unit") at or below `id`.
    public func units(under id: String) -> [OrgUnit] {
        var out: [OrgUnit] = []
        var stack = [id]
        var seen: Set<String> = []
        while let c = stack.popLast() {
            guard seen.insert(c).inserted, let n = nodes[c] else { continue }
            if n.level == .unit { out.append(n) }
            stack.append(contentsOf: children[c] ?? [])
        }
        return out.sorted { $0.id < $1.id }
    }

    /// A digest of the tree's shape: roll-ups must be rebuilt when a unit moves.
    public var shapeDigest: String {
        var h = FNV1a()
        for id in nodes.keys.sorted() {
            let n = nodes[id]!
            h.add("\(id)|\(n.parentID ?? "")|\(n.level.rawValue)|\(n.industry ?? "");")
        }
        return h.hex
    }
}

/// Whether a unit is keeping in touch, judged from its nodes' last successful sync.
public enum UnitContact: String, Sendable, Codable {
    /// Synced within the threshold.
    case current
    /// No successful sync for longer than the threshold (or enrolled and never synced since).
    case silent
    /// No node enrolled yet.
    case notEnrolled = "not_enrolled"

    /// `lastSync` and `enrolledAt` are ms since the epoch; the threshold is in days.
    public static func judge(lastSync: UInt64?, enrolledAt: UInt64?, now: UInt64, silentAfterDays: Int) -> UnitContact {
        guard let since = lastSync ?? enrolledAt else { return .notEnrolled }
        return now > since && now - since > UInt64(silentAfterDays) * 86_400_000 ? .silent : .current
    }
}

/// The one rule for the language of a terminal's words (`ferry status`, `ferry report`,
/// every command): `--lang` when given, else the locale POSIX names for messages — LC_ALL,
/// then LC_MESSAGES, then LANG, the first one set and not empty. Chinese when it starts
/// with `zh`. (The dashboard, reached from a browser, keeps its own rule: its language
/// switch and cookie, Chinese until one says otherwise.)
public enum TerminalLanguage {
    public static func locale(flag: String?, environment: [String: String]) -> String? {
        if let flag, !flag.isEmpty { return flag }
        return ["LC_ALL", "LC_MESSAGES", "LANG"].lazy.compactMap { environment[$0] }.first { !$0.isEmpty }
    }

    public static func isChinese(flag: String?, environment: [String: String]) -> Bool {
        locale(flag: flag, environment: environment)?.hasPrefix("zh") ?? false
    }
}
