import FerryCore
import FerryDemo
import FerryHub
import FerryReports
@testable import FerryHubServer
import FerrySample
import FerryTestSupport
import FerryTestTraits
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// The dashboard's screens as an analyst reads them, rendered by the hub's routes
/// in-process (HummingbirdTesting) over a sample province whose units left the supervisor
/// a conflict and a quarantined value to decide.
@Suite("Dashboard screens in-process", .serialized, .offThePool)
struct DashboardScreensTests {
    static let now: UInt64 = 1_795_996_800_000  // 2026-11-30 00:00 UTC
    static let password = "a long enough password"
    let dir: TemporaryDirectory
    let hub: Hub
    let server: HubServer
    let root: String
    let units: [String]

    init() throws {
        dir = try TemporaryDirectory()
        let shape = ProvinceShape(cities: 1, countiesPerCity: 1, unitsPerCounty: 4, years: 1, seed: 11, membersPerUnit: 6...6)
        _ = try SampleHub.build(directory: dir.file("hub"), shape: shape, silentEvery: 5, now: Self.now)
        hub = try Hub(directory: dir.file("hub"), clock: ManualClock(Self.now))
        let tree = try SupervisorView(hub: hub).tree()
        root = try #require(tree.roots.first)
        units = tree.units(under: root).map(\.id).sorted()
        try hub.registry.setAdmin(name: "analyst", password: Self.password, orgID: root, now: Self.now)
        server = try HubServer(hub: hub, port: 0)
    }

    /// Logs in through the form; returns the session cookie.
    func login(_ client: some TestClientProtocol) async throws -> String {
        let body = ByteBuffer(string: "name=analyst&password=\(Self.password.replacingOccurrences(of: " ", with: "+"))")
        return try await client.execute(
            uri: "/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"], body: body
        ) { r in
            #expect(r.status == .seeOther)
            let cookie = try #require(r.headers[values: .setCookie].first { $0.hasPrefix(SupervisorHTTP.cookie + "=") })
            return String(cookie.prefix { $0 != ";" })
        }
    }

    func page(_ client: some TestClientProtocol, _ uri: String, cookie: String, method: HTTPRequest.Method = .get, form: String? = nil) async throws -> (HTTPResponse.Status, String) {
        var headers: HTTPFields = [.cookie: cookie]
        if form != nil { headers[.contentType] = "application/x-www-form-urlencoded" }
        return try await client.execute(uri: uri, method: method, headers: headers, body: form.map { ByteBuffer(string: $0) }) { r in
            (r.status, String(buffer: r.body))
        }
    }

    /// The table row that `marker` (an attribute) opens, up to its end.
    func row(_ html: String, _ marker: String) -> String {
        guard let r = html.range(of: marker) else { return "" }
        return String(html[r.lowerBound...].components(separatedBy: "</tr>")[0])
    }

    func field(_ html: String, _ name: String) -> String? {
        guard let r = html.range(of: "name=\"\(name)\" value=\"") else { return nil }
        return String(html[r.upperBound...].prefix { $0 != "\"" })
    }

    @Test("conflicts and quarantine name the unit, the record (a member's name) and the column by the standard's Chinese labels, with Chinese reasons and policies, never raw ids alone or English words")
    func decisionsAreNamedAsPeopleNameThem() async throws {
        defer { dir.remove() }
        let conflicts = try SupervisorView(hub: hub).conflicts(org: nil, root: root)
        let c = try #require(conflicts.first { $0.table == "member" && $0.column == "position" }, "the sample leaves a conflict to decide")
        let q = try #require(try SupervisorView(hub: hub).quarantine(org: nil, root: root).first { $0.table == "member" && $0.column == "status" })
        guard case .text(let memberName)? = try hub.store.currentValue(table: "member", key: [.text(c.key)], column: "name") else {
            Issue.record("the conflicted member has no name at the hub")
            return
        }
        let unitID = try #require(c.unitID)
        let unitName = try #require(try SupervisorView(hub: hub).tree()[unitID]?.name)
        try await server.application().test(.router) { client in
            let cookie = try await login(client)
            let (s1, list) = try await page(client, "/dashboard/conflicts?org=\(root)&lang=zh", cookie: cookie)
            #expect(s1 == .ok)
            let crow = self.row(list, "data-conflict=\"\(c.id)\"")
            #expect(crow.contains("党员 · <b>职务</b>"), "\(crow)")
            #expect(crow.contains(memberName) && crow.contains(unitName), "\(crow)")
            #expect(crow.contains("上级为准"))
            // The winning side was a supervisor's edit here, the losing one the unit's node.
            #expect(crow.contains("上级（本级）") && crow.contains("单位节点 \(c.otherOrigin)"), "\(crow)")
            for english in ["member.position", "supervisor-wins", "overwritten", ">member<"] { #expect(!crow.contains(english), "\(english) in \(crow)") }

            let (s2, held) = try await page(client, "/dashboard/quarantine?org=\(root)&lang=zh", cookie: cookie)
            #expect(s2 == .ok)
            let qrow = self.row(held, "data-quarantine=\"\(q.id)\"")
            #expect(qrow.contains("党员 · <b>党员状态</b>") && qrow.contains("「党员」的「党员状态」(member.status)的值"), "\(qrow)")
            #expect(qrow.contains("不是允许的取值") && !qrow.contains("is not one of the allowed values"))

            // A correction the standard refuses: the same list, the reason above it, the value kept.
            let csrf = try #require(field(held, "csrf"))
            let (s3, refused) = try await page(
                client, "/dashboard/quarantine?lang=zh", cookie: cookie, method: .post, form: "csrf=\(csrf)&org=\(root)&id=\(q.id)&action=correct&value=retired")
            #expect(s3 == .unprocessableContent || s3 == .badRequest, "\(s3)")
            #expect(refused.contains("id=\"decision-error\"") && refused.contains("data-quarantine=\"\(q.id)\" class=\"refused\""), "\(refused.prefix(400))")
            #expect(refused.contains("value=\"retired\""), "the typed value is kept in its field")
            #expect(try SupervisorView(hub: hub).quarantine(org: nil, root: root).contains { $0.id == q.id }, "nothing was settled")
        }
        // The CSV says the same in Chinese.
        let csv = ReportTables.conflicts([c], .zh)
        #expect(csv.rows[0].contains("党员") && csv.rows[0].contains("职务") && csv.rows[0].contains(unitName))
    }

    @Test("each trend bar is coloured by its period's own state, as the table's status is; the chart has a scale, period names and a legend")
    func chartsMeanWhatTheTableSays() async throws {
        defer { dir.remove() }
        try await server.application().test(.router) { client in
            let cookie = try await login(client)
            let (status, html) = try await page(client, "/dashboard?org=\(root)&at=2026-10-15&lang=zh", cookie: cookie)
            #expect(status == .ok)
            #expect(html.contains("id=\"chart-legend\"") && html.contains("虚线为目标值"))
            let report = try SupervisorView(hub: hub).report(org: root, root: root, at: "2026-10-15")
            #expect(report.figures.contains { $0.target != nil })
            for f in report.figures {
                let row = self.row(html, "data-indicator=\"\(f.id)\"")
                let bars = row.components(separatedBy: "class=\"bar ").dropFirst().map { String($0.prefix { $0 != "\"" }) }
                #expect(bars == f.series.map(\.status.rawValue), "\(f.id): bars \(bars)")
                // The period shown in the table is the last bar: both say the same.
                #expect(bars.last == f.status.rawValue, "\(f.id): table says \(f.status), its bar \(bars.last ?? "none")")
                for s in f.series where s.status == .met { #expect(row.contains("fill=\"\(DashboardPage.colours[.met]!)\"")) }
                #expect(row.contains("class=\"axis\"") && row.contains(f.series.first!.period) && row.contains(f.series.last!.period))
            }
            #expect(DashboardPage.colours[.met] != DashboardPage.colours[.missed])
        }
    }

    @Test("a unit's own page shows when it last synced and what it said waits, not counts of one unit")
    func aUnitPageShowsItsOwnFreshness() async throws {
        defer { dir.remove() }
        let unit = try #require(units.first)
        let fresh = try #require(try SupervisorView(hub: hub).freshness(org: unit, root: root).first)
        try await server.application().test(.router) { client in
            let cookie = try await login(client)
            let (status, html) = try await page(client, "/dashboard?org=\(unit)&lang=zh", cookie: cookie)
            #expect(status == .ok)
            #expect(html.contains("id=\"unit-contact\"") && html.contains("id=\"unit-last-sync\""))
            #expect(html.contains(ReportFormat.time(fresh.lastSyncAt)))
            #expect(!html.contains("id=\"unit-count\"") && !html.contains("id=\"silent-count\""))
            let (_, county) = try await page(client, "/dashboard?org=\(root)&lang=zh", cookie: cookie)
            #expect(county.contains("id=\"unit-count\"") && !county.contains("id=\"unit-contact\""))
        }
    }
}
