import FerryCore
import FerryTestTraits
import Testing

@Suite("Reporting periods, org trees and roll-up arithmetic", .offThePool)
struct ReportingTests {
    @Test("a date falls in the month, quarter and year a supervisor would name")
    func periodsOfDates() throws {
        #expect(ReportPeriod(kind: .month, containing: "2026-11-29")?.label == "2026-11")
        #expect(ReportPeriod(kind: .quarter, containing: "2026-11-29")?.label == "2026-Q4")
        #expect(ReportPeriod(kind: .quarter, containing: "2026-03-31")?.label == "2026-Q1")
        #expect(ReportPeriod(kind: .quarter, containing: "2026-04-01")?.label == "2026-Q2")
        #expect(ReportPeriod(kind: .year, containing: "2026-01-01")?.label == "2026")
        #expect(ReportPeriod(kind: .month, containing: "2026-13-01") == nil)
        #expect(ReportPeriod(kind: .month, containing: "yesterday") == nil)
    }

    @Test("labels parse back to the same period, and stepping back crosses year ends")
    func labelsAndSteps() throws {
        for label in ["2026-11", "2026-Q4", "2026", "2025-01", "2025-Q1"] {
            #expect(ReportPeriod(label: label)?.label == label)
        }
        #expect(ReportPeriod(label: "2026-Q5") == nil && ReportPeriod(label: "26-01") == nil && ReportPeriod(label: "2026-1") == nil)
        let q = ReportPeriod(label: "2026-Q1")!
        #expect(q.back(1).label == "2025-Q4" && q.back(5).label == "2024-Q4" && q.back(-3).label == "2026-Q4")
        #expect(ReportPeriod(label: "2026-02")!.trailing(3).map(\.label) == ["2025-12", "2026-01", "2026-02"])
        #expect(ReportPeriod(label: "2026-Q3")!.firstDay == "2026-07-01")
    }

    let tree = OrgTree([
        .init(id: "p", name: "省", parentID: nil, level: .province, industry: nil),
        .init(id: "c1", name: "甲市", parentID: "p", level: .city, industry: nil),
        .init(id: "c2", name: "乙市", parentID: "p", level: .city, industry: nil),
        .init(id: "k1", name: "一县", parentID: "c1", level: .county, industry: nil),
        .init(id: "u1", name: "一中", parentID: "k1", level: .unit, industry: "education"),
        .init(id: "u2", name: "县医院", parentID: "k1", level: .unit, industry: "medical"),
        .init(id: "u3", name: "二中", parentID: "c2", level: .unit, industry: "education"),
    ])

    @Test("the tree walks up for roll-ups and down for scopes, and never sideways")
    func treeScopes() {
        #expect(tree.path(to: "u1").map(\.id) == ["u1", "k1", "c1", "p"])
        #expect(tree.units(under: "p").map(\.id) == ["u1", "u2", "u3"])
        #expect(tree.units(under: "c1").map(\.id) == ["u1", "u2"])
        #expect(tree.contains("u2", within: "c1") && tree.contains("c1", within: "c1"))
        #expect(!tree.contains("u3", within: "c1") && !tree.contains("p", within: "c1"))
        #expect(tree.roots == ["p"])
        let moved = OrgTree(tree.nodes.values.map { $0.id == "u3" ? OrgUnit(id: "u3", name: "二中", parentID: "k1", level: .unit, industry: "education") : $0 })
        #expect(moved.shapeDigest != tree.shapeDigest)
        #expect(OrgTree(Array(tree.nodes.values).reversed()).shapeDigest == tree.shapeDigest)
    }

    @Test("a roll-up divides summed numerators by summed denominators, never averaging rates")
    func rateOfRates() {
        let rate = IndicatorDefinition(
            id: "attendance", period: .quarter, numerator: .init(table: "a"), denominator: .init(table: "a"), scale: 100, target: 90)
        let small = IndicatorTotals(numerator: 1, denominator: 10)  // 10 %
        let large = IndicatorTotals(numerator: 990, denominator: 1000)  // 99 %
        let county = small + large
        #expect(county.value(of: rate)! > 98.1 && county.value(of: rate)! < 98.2)  // 991 / 1010, not (10 + 99) / 2
        #expect(IndicatorTotals(numerator: 3, denominator: 0).value(of: rate) == nil)
        #expect(TargetStatus.of(county.value(of: rate), indicator: rate, units: 2) == .met)
        #expect(TargetStatus.of(small.value(of: rate), indicator: rate, units: 1) == .missed)
        #expect(TargetStatus.of(nil, indicator: rate, units: 1) == .noData)
        // A plain sum's target is per unit: 3 units need 3 × the target.
        let served = IndicatorDefinition(id: "served", period: .quarter, numerator: .init(table: "s", sumColumn: "n"), target: 100)
        #expect(TargetStatus.of(250, indicator: served, units: 3) == .missed && TargetStatus.of(300, indicator: served, units: 3) == .met)
        let time = IndicatorDefinition(id: "days", period: .quarter, numerator: .init(table: "d"), denominator: .init(table: "d"), target: 5, lowerIsBetter: true)
        #expect(TargetStatus.of(4, indicator: time, units: 1) == .met && TargetStatus.of(6, indicator: time, units: 1) == .missed)
    }

    @Test("a unit is silent after the threshold without a successful sync, counted from enrolment if it never synced")
    func silence() {
        let day: UInt64 = 86_400_000
        let now = 100 * day
        #expect(UnitContact.judge(lastSync: now - 2 * day, enrolledAt: 0, now: now, silentAfterDays: 7) == .current)
        #expect(UnitContact.judge(lastSync: now - 8 * day, enrolledAt: 0, now: now, silentAfterDays: 7) == .silent)
        #expect(UnitContact.judge(lastSync: nil, enrolledAt: now - 9 * day, now: now, silentAfterDays: 7) == .silent)
        #expect(UnitContact.judge(lastSync: nil, enrolledAt: now - day, now: now, silentAfterDays: 7) == .current)
        #expect(UnitContact.judge(lastSync: nil, enrolledAt: nil, now: now, silentAfterDays: 7) == .notEnrolled)
        // A node whose clock ran ahead (a sync "in the future") is not silent.
        #expect(UnitContact.judge(lastSync: now + day, enrolledAt: 0, now: now, silentAfterDays: 7) == .current)
    }
}

@Suite("The terminal's language", .offThePool)
struct TerminalLanguageTests {
    @Test("--lang, else LC_ALL, LC_MESSAGES, LANG: the first one set and not empty")
    func posixOrder() {
        #expect(TerminalLanguage.isChinese(flag: nil, environment: ["LC_ALL": "zh_CN.UTF-8", "LANG": "en_US.UTF-8"]))
        #expect(!TerminalLanguage.isChinese(flag: nil, environment: ["LC_ALL": "", "LC_MESSAGES": "en_US.UTF-8", "LANG": "zh_CN.UTF-8"]))
        #expect(TerminalLanguage.isChinese(flag: nil, environment: ["LANG": "zh_TW.UTF-8"]))
        #expect(!TerminalLanguage.isChinese(flag: nil, environment: [:]))
        #expect(!TerminalLanguage.isChinese(flag: "en", environment: ["LC_ALL": "zh_CN.UTF-8"]))
        #expect(TerminalLanguage.isChinese(flag: "zh", environment: ["LANG": "C.UTF-8"]))
    }
}
