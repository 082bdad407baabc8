import FerryCore
import FerryHub
import FerryHubServer
import FerryNode
import FerrySample
import FerryStandardFile
import FerryStore
import FerryTestSupport
import FerryTrust
import FerryWire
import Foundation
import GRDB
import Hummingbird

/// The reference unit (a 300-member county hospital with five years of history) syncs its
/// history, then one day of changes; the day's bytes on the wire are compared with SQLite's
/// own changeset of the same change (`sqldiff --changeset` between a plain copy of the
/// database before and after the day), raw and gzip'd, measured in the same run.
enum DayBench {
    static func run() async throws {
        let dir = try TemporaryDirectory("ferry-daybench")
        defer { dir.remove() }
        let (bench, province, _) = try await BenchHub.referenceUnit(directory: dir)
        let unit = province.referenceUnit()
        let (hub, identity, store, clock) = (bench.hub, bench.identity, bench.store, bench.clock)

        // A plain SQLite database with the same tables and no Ferry, for sqldiff.
        let plainPath = dir.file("plain.db")
        let plain = try DatabaseQueue(path: plainPath)
        try plainWrite(plain) { db in for t in hub.store.standard.tables { try db.execute(sql: StandardSQL.createTable(t)) } }

        var historyRows = 0
        let connection = try HTTPHubConnection(identity: identity, clock: clock)
        let agent = NodeAgent(store: store, hub: connection, identity: identity, clock: clock, batchBytes: 256 * 1024)
        // The unit first receives the hub's records (its directives: its responses name them).
        _ = try agent.syncOnce()
        try province.unitStatements(unit.id) { chunk in
            historyRows += chunk.count
            try store.executeAll(chunk.map { ($0.sql, $0.arguments) })
            try plainWrite(plain) { db in for st in chunk { try db.execute(sql: st.sql, arguments: StatementArguments(st.arguments.map(\.databaseValue))) } }
        }
        let history = try agent.syncOnce()
        try plain.close()
        try FileManager.default.copyItem(atPath: plainPath, toPath: dir.file("before.db"))

        let day = province.dayOfChanges(unit.id, day: "2026-12-01", seed: 7)
        try store.executeAll(day.map { ($0.sql, $0.arguments) })
        let plainAfter = try DatabaseQueue(path: plainPath)
        try plainWrite(plainAfter) { db in for st in day { try db.execute(sql: st.sql, arguments: StatementArguments(st.arguments.map(\.databaseValue))) } }
        try plainAfter.close()

        let before = connection.transferred
        let report = try agent.syncOnce()
        let after = connection.transferred
        let wireUp = after.sent - before.sent
        let wireDown = after.received - before.received

        let changesetFile = dir.file("day.changeset")
        let diff = try runCommand("/usr/bin/sqldiff", ["--changeset", changesetFile, dir.file("before.db"), plainPath])
        guard diff.status == 0, let sqlite = FileManager.default.contents(atPath: changesetFile) else {
            throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "sqldiff failed (install sqlite3-tools): \(diff.stderr)"])
        }
        let sqliteGz = try gzipSize([UInt8](sqlite))
        let ferry = wireUp + wireDown
        print("Reference day: unit \(unit.id) (\(historyRows) history statements, \(history.pushedRows) rows synced first); \(day.count) statements in the day")
        print("")
        print("| measure | bytes | vs sqldiff --changeset gzip -6 |")
        print("| --- | --- | --- |")
        print("| Ferry, whole exchange on the wire (up \(wireUp) + down \(wireDown); gzip bodies, headers, signatures, clocks) | \(ferry) | \(String(format: "%.2f×", Double(ferry) / Double(sqliteGz))) |")
        print("| Ferry changeset bodies before gzip (\(report.pushedRows) rows in \(report.pushedBatches) batches) | \(report.pushedBytes) | \(String(format: "%.2f×", Double(report.pushedBytes) / Double(sqliteGz))) |")
        print("| sqldiff --changeset, raw | \(sqlite.count) | \(String(format: "%.2f×", Double(sqlite.count) / Double(sqliteGz))) |")
        print("| sqldiff --changeset, gzip -6 | \(sqliteGz) | 1.00× |")
        print("")

        // An idle sync: nothing changed on either side since the last one. Counted by a
        // clean proxy, so every byte of the HTTP heads (curl's and the hub's) is in it.
        let clean = try FaultProxy(upstreamPort: bench.port)
        var quiet = identity
        quiet.hubURL = "http://127.0.0.1:\(clean.port)"
        let quietAgent = NodeAgent(store: store, hub: try HTTPHubConnection(identity: quiet, clock: clock), identity: quiet, clock: clock)
        _ = try quietAgent.syncOnce()  // a new agent's first sync also asks who it is (HTTP.md)
        let idleBefore = clean.stats
        let idle = try quietAgent.syncOnce()
        let idleUp = clean.stats.bytesToServer - idleBefore.bytesToServer
        let idleDown = clean.stats.bytesToClient - idleBefore.bytesToClient
        clean.stop()
        let perDay = 86_400 / FerryDefaults.Node.syncIntervalSeconds
        print("An idle sync (nothing changed either side), every byte on the wire:")
        print("")
        print("| measure | value | goal |")
        print("| --- | --- | --- |")
        print("| exchanges (requests) | \(idle.exchanges) | 1 |")
        print("| bytes per idle sync (up \(idleUp) + down \(idleDown)) | \(idleUp + idleDown) | ≤ 200 |")
        print("| an idle unit-day at the default interval (\(perDay) syncs of \(FerryDefaults.Node.syncIntervalSeconds) s) | \(String(format: "%.0f", Double((idleUp + idleDown) * perDay) / 1000)) KB | ≤ 20 KB |")
        print("")

        // The next day through a weak link: 64 kbit/s, 300 ms each way, connections cut at
        // random (seeded) so that about one batch in ten is lost and resent.
        let rate = 8_000
        let proxy = try FaultProxy(upstreamPort: bench.port, plan: FaultPlan(latencyMillis: 300, bytesPerSecond: rate, cutAfterBytes: 6_000...60_000, seed: 11))
        var weak = identity
        weak.hubURL = "http://127.0.0.1:\(proxy.port)"
        let weakConnection = try HTTPHubConnection(identity: weak, clock: clock)
        let weakAgent = NodeAgent(store: store, hub: weakConnection, identity: weak, clock: clock)
        let day2 = province.dayOfChanges(unit.id, day: "2026-12-02", seed: 8)
        try store.executeAll(day2.map { ($0.sql, $0.arguments) })
        let started = Date()
        let attempts = try syncUntilDone(weakAgent)
        let seconds = Date().timeIntervalSince(started)
        let moved = weakConnection.transferred.sent + weakConnection.transferred.received
        let floor = Double(moved) / Double(rate)
        let dbFile = try gzipSize([UInt8](FileManager.default.contents(atPath: store.path) ?? Data()))
        print("The next day over 64 kbit/s with 300 ms latency each way and random cuts (\(proxy.stats.cuts) cuts, \(attempts) attempts):")
        print("")
        print("| measure | value |")
        print("| --- | --- |")
        print("| wall time of the exchange | \(String(format: "%.1f", seconds)) s |")
        print("| floor: bytes on the wire (\(moved)) ÷ link rate | \(String(format: "%.1f", floor)) s |")
        print("| wall time ÷ floor | \(String(format: "%.2f×", seconds / floor)) (goal ≤ 1.5×) |")
        proxy.stop()
        print("| one upload of the whole database file, gzip'd (\(dbFile) bytes), at the same rate | \(String(format: "%.0f", Double(dbFile) / Double(rate))) s (\(String(format: "%.0f×", Double(dbFile) / Double(rate) / seconds)) Ferry's time) |")
        print("")
        await bench.stop()
    }

    static func syncUntilDone(_ agent: NodeAgent) throws -> Int {
        for attempt in 1...50 {
            do {
                _ = try agent.syncOnce()
                return attempt
            } catch {
                if !error.isRetryable { throw error }
            }
        }
        throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "no success in 50 attempts"])
    }

    /// GRDB's synchronous write, called from this async function on purpose (a benchmark step).
    static func plainWrite(_ q: DatabaseQueue, _ body: (Database) throws -> Void) throws {
        try q.inDatabase { db in try db.inTransaction { try body(db); return .commit } }
    }
}
