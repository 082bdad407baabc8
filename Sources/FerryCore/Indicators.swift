/// How often an indicator is measured.
public enum IndicatorPeriod: String, Sendable, Hashable, CaseIterable {
    case month, quarter, year
}

/// Rows of one table counted or summed for an indicator, within a period by a date column.
public struct IndicatorMeasure: Sendable, Hashable {
    public var table: String
    /// Counts rows when nil; sums this numeric column otherwise.
    public var sumColumn: String?
    /// The date column that places a row in a period; nil (and no `periodColumn`): the rows
    /// as they are now (e.g. the current members), not bound to a period.
    public var dateColumn: String?

    /// True when rows fall into periods (by a date or a period column).
    public var isPeriodic: Bool { dateColumn != nil || periodColumn != nil }
    /// Instead of a date: a column that names the row's period itself, either as text in the
    /// form of `ReportPeriod.label` ("2026-Q1" for a quarterly indicator) or as an integer
    /// year (for a yearly one), e.g. the year an appraisal covers.
    public var periodColumn: String?
    /// Only rows whose column holds one of the listed values.
    public var filter: [String: [Value]]

    public init(table: String, sumColumn: String? = nil, dateColumn: String? = nil, periodColumn: String? = nil, filter: [String: [Value]] = [:]) {
        self.table = table
        self.sumColumn = sumColumn
        self.dateColumn = dateColumn
        self.periodColumn = periodColumn
        self.filter = filter
    }
}

/// An indicator of the standard: a numerator over an optional denominator, per unit and
/// period, rolled up by summing numerators and denominators separately (so a rate of
/// rates is never an average of rates).
///
/// Example: attendance rate = count(attendance where status = present) / count(attendance).
public struct IndicatorDefinition: Sendable, Hashable {
    public var id: String
    public var label: Label?
    /// Unit of the value for display, e.g. "%", "次/支部", "小时/人".
    public var unitText: String
    public var period: IndicatorPeriod
    public var numerator: IndicatorMeasure
    public var denominator: IndicatorMeasure?
    /// Multiplier for display (100 for a percentage).
    public var scale: Double
    /// The value a unit should reach per period (supervisors change it in the standard).
    public var target: Double?
    /// Lower is better (e.g. response time).
    public var lowerIsBetter: Bool

    public init(
        id: String, label: Label? = nil, unitText: String = "", period: IndicatorPeriod, numerator: IndicatorMeasure,
        denominator: IndicatorMeasure? = nil, scale: Double = 1, target: Double? = nil, lowerIsBetter: Bool = false
    ) {
        self.id = id
        self.label = label
        self.unitText = unitText
        self.period = period
        self.numerator = numerator
        self.denominator = denominator
        self.scale = scale
        self.target = target
        self.lowerIsBetter = lowerIsBetter
    }
}

/// An optional part of a standard that only some units enable (e.g. research projects).
public struct ModuleDefinition: Sendable, Hashable {
    public var name: String
    public var label: Label?
    /// The industries that enable it by default (empty: only units that ask for it).
    public var industries: [String]
    public init(name: String, label: Label? = nil, industries: [String] = []) {
        self.name = name
        self.label = label
        self.industries = industries
    }
}

extension Standard {
    func validateIndicator(_ i: IndicatorDefinition) throws(CoreError) {
        func fail(_ s: String) -> CoreError { CoreError(.invalidStandard, "indicator '\(i.id)': \(s)") }
        guard Standard.isIdentifier(i.id) else { throw fail("the id must be a–z, 0–9 and _, starting with a letter") }
        for (what, m) in [("numerator", i.numerator)] + (i.denominator.map { [("denominator", $0)] } ?? []) {
            guard let t = table(named: m.table) else { throw fail("\(what) counts table '\(m.table)', which is not defined") }
            if let c = m.sumColumn {
                guard let col = t.column(named: c) else { throw fail("\(what) sums '\(m.table).\(c)', which is not defined") }
                guard col.type == .integer || col.type == .real else { throw fail("\(what) sums '\(m.table).\(c)', which is not numeric") }
            }
            if let d = m.dateColumn {
                // "meeting_id.held_on": follow the reference in meeting_id to the meeting's date.
                let parts = d.split(separator: ".").map(String.init)
                if parts.count == 2 {
                    guard let ref = t.column(named: parts[0])?.references, let target = table(named: ref.table),
                        target.column(named: parts[1])?.type == .date
                    else {
                        throw fail("\(what) periods by '\(d)': '\(parts[0])' must reference a table whose '\(parts[1])' is a date column")
                    }
                } else {
                    guard t.column(named: d)?.type == .date else { throw fail("\(what) periods by '\(m.table).\(d)', which is not a date column") }
                }
            }
            if let p = m.periodColumn {
                guard m.dateColumn == nil else { throw fail("\(what) names both 'date' and 'period_column'; use one") }
                guard let col = t.column(named: p) else { throw fail("\(what) periods by '\(m.table).\(p)', which is not defined") }
                guard col.type == .text || (col.type == .integer && i.period == .year) else {
                    throw fail("\(what) periods by '\(m.table).\(p)': a period column holds text labels (\"2026-Q1\"), or an integer year for a yearly indicator")
                }
            }
            for (c, values) in m.filter {
                guard let col = t.column(named: c) else { throw fail("\(what) filters on '\(m.table).\(c)', which is not defined") }
                for v in values where col.problem(with: v) != nil {
                    throw fail("\(what) filters '\(m.table).\(c)' on \(v), which the column can never hold")
                }
            }
        }
    }
}
