import FerryCore
import FerryHub
import FerryTestSupport
import FerryTestTraits
import FerryWire
import Foundation
import GRDB
import Testing

@Suite("The registry's audit log", .offThePool)
struct AuditLogTests {
    func hub(_ dir: TemporaryDirectory, clock: ManualClock) throws -> Hub {
        let hub = try Hub(directory: dir.file("hub"), clock: clock)
        _ = try hub.addUnit(OrgUnit(id: "prov", name: "省", parentID: nil, level: .province, industry: nil, region: nil))
        try hub.registry.setAdmin(name: "analyst", password: "a long enough password", orgID: "prov", now: clock.nowMillis())
        return hub
    }

    func badLink(_ hub: Hub, from client: String) {
        _ = try? hub.registry.redeem(ticket: "not-a-ticket", client: client, now: hub.now(), lifetimeSeconds: 3600)
    }

    @Test("logins and login links are audited with the client's address; repeats within a minute fold into one row with a count")
    func rowsCarryTheClientAndFold() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let clock = ManualClock()
        let hub = try hub(dir, clock: clock)
        for _ in 0..<3 { _ = try? hub.registry.login(name: "analyst", password: "wrong", client: "192.0.2.1", now: hub.now(), lifetimeSeconds: 60) }
        _ = try hub.registry.login(name: "analyst", password: "a long enough password", client: "2001:db8::5", now: hub.now(), lifetimeSeconds: 60)
        for _ in 0..<50 { badLink(hub, from: "192.0.2.1") }
        var log = try hub.registry.auditLog()
        #expect(log.count == 3, "\(log)")
        let refused = try #require(log.first { $0.outcome == "refused" })
        #expect(refused.client == "192.0.2.1" && refused.attempts == 3 && refused.detail == "analyst" && refused.lastAt != nil)
        #expect(log.contains { $0.outcome == "ok" && $0.client == "2001:db8::5" && $0.attempts == 1 && $0.lastAt == nil })
        #expect(log.first { $0.outcome == "bad_link" }?.attempts == 50)
        // A minute on, the next one starts a row of its own.
        clock.advance(by: 61_000)
        badLink(hub, from: "192.0.2.1")
        log = try hub.registry.auditLog()
        #expect(log.filter { $0.outcome == "bad_link" }.map(\.attempts) == [1, 50])
    }

    @Test("beyond 600 rows a minute from all addresses together, further ones fold into one row with client *")
    func manyAddressesFoldTogether() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let clock = ManualClock()
        let hub = try hub(dir, clock: clock)
        for n in 0..<700 { badLink(hub, from: "10.0.\(n / 256).\(n % 256)") }
        let log = try hub.registry.auditLog(limit: 10_000)
        #expect(log.count == 601)
        #expect(log.first?.client == HubRegistry.manyClients && log.first?.attempts == 100)
        #expect(log.reduce(0) { $0 + $1.attempts } == 700)
    }

    @Test("the audit migration keeps release 1's rows, with one attempt each and no client")
    func migrationOnRelease1() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try FileManager.default.copyItem(atPath: Repository.path("Tests/Fixtures/release-1/hub/registry.db"), toPath: dir.file("registry.db"))
        let before = try DatabaseQueue(path: dir.file("registry.db")).read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM audit") ?? 0 }
        #expect(before > 0, "release 1's registry has audit rows to carry over")
        let registry = try HubRegistry(path: dir.file("registry.db"))
        let log = try registry.auditLog(limit: 100_000)
        #expect(log.count == before)
        #expect(log.allSatisfy { $0.attempts == 1 && $0.client == nil && $0.lastAt == nil })
    }
}
