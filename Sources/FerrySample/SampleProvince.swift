import FerryCore

/// One SQL statement with its bound values, ready for `ReplicaStore.execute(_:_:)`.
public struct SQLStatement: Sendable, Hashable {
    public var sql: String
    public var arguments: [Value]

    public init(sql: String, arguments: [Value]) {
        self.sql = sql
        self.arguments = arguments
    }

    init(_ sql: String, _ arguments: [Value]) {
        self.sql = sql
        self.arguments = arguments
    }
}

/// A unit's line of work, as the standard's `org_unit.industry` names it.
public enum Industry: String, Sendable, Hashable, CaseIterable {
    case education, medical, research, culture
    case publicService = "public_service"
    case other
}

/// The share of units in one industry, in percent of all units.
public struct IndustryShare: Sendable, Hashable {
    public var industry: Industry
    public var percent: Int

    public init(_ industry: Industry, _ percent: Int) {
        self.industry = industry
        self.percent = percent
    }

    /// Public institutions below a county: schools first, then hospitals and public-service
    /// offices, a few research institutes and cultural centres.
    public static let typical: [IndustryShare] = [
        .init(.education, 35), .init(.medical, 20), .init(.research, 10), .init(.culture, 10), .init(.publicService, 20),
        .init(.other, 5),
    ]
}

/// The size and seed of a sample province.
///
/// The default is about 200 units (3 cities × 3 counties × 22 units) with five years of
/// history ending on 2026-11-30; `large` is about 2,000 units for benchmarks.
public struct ProvinceShape: Sendable, Hashable {
    public var cities = 3
    public var countiesPerCity = 3
    /// Units under each county (at most 999).
    public var unitsPerCounty = 22
    /// Whole years of history ending on `endDate`.
    public var years = 5
    /// Every value of the sample follows from this seed.
    public var seed: UInt64 = 2026
    /// The last day of history, `YYYY-MM-DD`.
    public var endDate = "2026-11-30"
    /// Members on a unit's roll when its history starts; most units are near the low end.
    public var membersPerUnit: ClosedRange<Int> = 20...120
    /// How units are spread over industries (in every county, rounded to whole units).
    public var industryMix: [IndustryShare] = IndustryShare.typical

    public init(
        cities: Int = 3, countiesPerCity: Int = 3, unitsPerCounty: Int = 22, years: Int = 5, seed: UInt64 = 2026,
        endDate: String = "2026-11-30", membersPerUnit: ClosedRange<Int> = 20...120,
        industryMix: [IndustryShare] = IndustryShare.typical
    ) {
        self.cities = cities
        self.countiesPerCity = countiesPerCity
        self.unitsPerCounty = unitsPerCounty
        self.years = years
        self.seed = seed
        self.endDate = endDate
        self.membersPerUnit = membersPerUnit
        self.industryMix = industryMix
    }

    /// About 2,000 units (10 cities × 9 counties × 22 units), for benchmarks.
    public static func large(seed: UInt64 = 2026) -> ProvinceShape {
        ProvinceShape(cities: 10, countiesPerCity: 9, seed: seed)
    }
}

/// The sample's typed reading of an org unit's fields (`OrgUnit` is FerryCore's one org type).
extension OrgUnit {
    /// Set for units only.
    var sampleIndustry: Industry? { industry.flatMap(Industry.init(rawValue:)) }
    /// 6 digits for the province, cities and counties; 12 (statistical code) for units.
    var regionCode: String { region ?? "" }
}

struct SampleCourse: Sendable, Hashable {
    var id: String
    var title: String
    var category: String
    var minutes: Int
    var year: Int
}

struct SampleDirective: Sendable, Hashable {
    var id: String
    /// nil: addressed to every unit.
    var target: String?
    var issuedBy: String
    var issuedOn: SampleDay
    var title: String
    var body: String
    var dueOn: SampleDay?
    var urgent: Bool
}

/// A deterministic sample province: its organisation tree, the hub's reference data, and
/// years of records for any of its units, as SQL statements with bound values.
///
/// Everything follows from `shape.seed`: the same shape gives the same statements, byte
/// for byte, in every run. Ids are stable text (`u-390102-007-m0042`). Each unit's history
/// is drawn from generators keyed by the unit's id, so one unit can be generated alone,
/// and month by month, so even a large unit streams in bounded memory.
///
/// ```swift
/// let province = SampleProvince(shape: ProvinceShape(cities: 1, countiesPerCity: 1, unitsPerCounty: 3))
/// try hub.executeAll(province.hubStatements().map { ($0.sql, $0.arguments) })
/// try province.unitStatements(province.units[0].id) { chunk in
///     try node.executeAll(chunk.map { ($0.sql, $0.arguments) })
/// }
/// ```
public struct SampleProvince: Sendable {
    public let shape: ProvinceShape
    /// The whole tree, parents before children: the province, cities, counties and units.
    public let orgUnits: [OrgUnit]
    /// The units only (the leaves of the tree).
    public let units: [OrgUnit]
    let window: SampleWindow
    let coursesByYear: [Int: [SampleCourse]]
    let directives: [SampleDirective]
    /// Indices into `directives` of those sent to every unit, and of those naming each unit.
    let broadcastDirectives: [Int]
    let targetedDirectives: [String: [Int]]
    let unitsByID: [String: OrgUnit]

    /// The province's two-digit code: one no real province uses, so sample data is never
    /// mistaken for a real place.
    static let provinceCode = "39"

    public init(shape: ProvinceShape) {
        precondition(shape.cities >= 1 && shape.cities <= 99, "ProvinceShape.cities must be 1…99")
        precondition(shape.countiesPerCity >= 1 && shape.countiesPerCity <= 80, "ProvinceShape.countiesPerCity must be 1…80")
        precondition(shape.unitsPerCounty >= 1 && shape.unitsPerCounty <= 999, "ProvinceShape.unitsPerCounty must be 1…999")
        precondition(shape.membersPerUnit.lowerBound >= 2, "ProvinceShape.membersPerUnit must start at 2 or more")
        precondition(shape.industryMix.contains { $0.percent > 0 }, "ProvinceShape.industryMix needs a positive share")
        self.shape = shape
        window = SampleWindow(endDate: shape.endDate, years: shape.years)
        let tree = OrgTreeBuilder.build(shape)
        orgUnits = tree.all
        units = tree.all.filter { $0.level == .unit }
        unitsByID = Dictionary(uniqueKeysWithValues: units.map { ($0.id, $0) })
        coursesByYear = HubReference.courses(seed: shape.seed, window: window)
        directives = HubReference.directives(seed: shape.seed, window: window, tree: tree)
        var broadcast: [Int] = []
        var targeted: [String: [Int]] = [:]
        for (i, d) in directives.enumerated() {
            if let t = d.target { targeted[t, default: []].append(i) } else { broadcast.append(i) }
        }
        broadcastDirectives = broadcast
        targetedDirectives = targeted
    }

    /// The unit with this id, if the province has it.
    public func unit(_ id: String) -> OrgUnit? { unitsByID[id] }

    /// Hub-side reference data: the organisation tree, the course catalogue of every year of
    /// history, and the directives (most to every unit, some to named units), in that order.
    public func hubStatements() -> [SQLStatement] {
        var out: [SQLStatement] = []
        for o in orgUnits {
            out.append(
                SQLStatement(
                    SampleSQL.insertOrgUnit,
                    [
                        .text(o.id), o.parentID.map(Value.text) ?? .null, .text(o.level.rawValue), .text(o.name),
                        o.industry.map(Value.text) ?? .null, .text(o.regionCode),
                    ]))
        }
        for year in coursesByYear.keys.sorted() {
            for c in coursesByYear[year]! {
                out.append(
                    SQLStatement(
                        SampleSQL.insertCourse,
                        [.text(c.id), .text(c.title), .text(c.category), .integer(Int64(c.minutes)), .integer(Int64(c.year))]))
            }
        }
        for d in directives {
            out.append(
                SQLStatement(
                    SampleSQL.insertDirective,
                    [
                        .text(d.id), d.target.map(Value.text) ?? .null, .text(d.issuedBy), .text(d.issuedOn.text), .text(d.title),
                        .text(d.body), d.dueOn.map { .text($0.text) } ?? .null, .text(d.urgent ? "urgent" : "normal"),
                    ]))
        }
        return out
    }

    /// Everything one unit records over the shape's years, in the order a clerk would have
    /// entered it: first the branches, the member roll and the service posts, then one chunk
    /// per month (meetings with their attendance, study and service records, roll changes,
    /// evaluations each January, surveys each quarter, directive responses, notes).
    ///
    /// Every statement obeys the standard's allowed values, NOT NULL rules, dates, bounds and
    /// lengths, and names rows that earlier statements created.
    public func unitStatements(_ unitID: String, chunk: ([SQLStatement]) throws -> Void) rethrows {
        try UnitSample(province: self, unitID: unitID).history(chunk)
    }

    /// All of a unit's statements at once; for small shapes (tests, demos).
    public func unitStatements(_ unitID: String) -> [SQLStatement] {
        var all: [SQLStatement] = []
        unitStatements(unitID) { all.append(contentsOf: $0) }
        return all
    }

    /// One day of a clerk's work after the history ends (`day` after the shape's end date):
    /// a few new meetings with attendance, hundreds of study records for a large unit, some
    /// service records, member updates touching one or two columns, a corrected meeting
    /// record, a completed directive, and a few deleted duplicates (study and service
    /// records only: never rows of append-only tables, nor rows others refer to).
    ///
    /// Apply it after `unitStatements(unitID)`. Call it once per day: its ids include the day.
    public func dayOfChanges(_ unitID: String, day: String, seed: UInt64) -> [SQLStatement] {
        guard let d = SampleDay(parsing: day) else {
            preconditionFailure("dayOfChanges: day '\(day)' is not a calendar date in YYYY-MM-DD form")
        }
        return UnitSample(province: self, unitID: unitID).dayOfChanges(d, seed: seed)
    }

    /// The benchmarks' reference shape: one unit (a county hospital) of 300 members with
    /// five years of history.
    public static func referenceUnitShape(seed: UInt64 = 2026) -> ProvinceShape {
        ProvinceShape(
            cities: 1, countiesPerCity: 1, unitsPerCounty: 1, years: 5, seed: seed, membersPerUnit: 300...300,
            industryMix: [IndustryShare(.medical, 100)])
    }

    /// The province of `referenceUnitShape(seed:)`.
    public static func reference(seed: UInt64 = 2026) -> SampleProvince {
        SampleProvince(shape: referenceUnitShape(seed: seed))
    }

    /// The first unit; in the reference province, the 300-member reference unit.
    public func referenceUnit() -> OrgUnit { units[0] }
}
