import FerryCore
import FerryHub
import FerryNode
import FerrySample
import FerryStandardFile
import FerryStore
import FerryTestSupport
import Foundation
import GRDB

/// Anti-entropy on the reference unit (a 300-member county hospital, five years): what the
/// comparison costs when node and hub are equal, when one row differs, and when the clerk
/// puts back yesterday's copy of unit.db. Bytes are counted on the wire by the node's HTTP
/// client (bodies, headers, signatures); each figure is set against the bytes of sending
/// the unit's scope again (the history sync of the same run), which is what a system without
/// anti-entropy would do to be sure, and against the day's own exchange.
enum AntiEntropyBench {
    static func run() async throws {
        let dir = try TemporaryDirectory("ferry-antientropy")
        defer { dir.remove() }
        let (bench, province, _) = try await BenchHub.referenceUnit(directory: dir)
        let unit = province.referenceUnit()
        let (hub, identity, clock) = (bench.hub, bench.identity, bench.clock)
        var store = bench.store
        var connection = try HTTPHubConnection(identity: identity, clock: clock)
        var agent = NodeAgent(store: store, hub: connection, identity: identity, clock: clock, batchBytes: 256 * 1024)
        // The unit first receives the hub's records (its directives: its responses name them).
        _ = try agent.syncOnce()
        try province.unitStatements(unit.id) { chunk in try store.executeAll(chunk.map { ($0.sql, $0.arguments) }) }
        let history = try measure(agent, connection)
        let hubPath = "\(dir.file("hub"))/hub.db"
        let unitRows = try rowCount(hubPath, unit: unit.id)

        // 1. Equal: an exchange with nothing to send; the digests are compared and agree.
        let equal = try measure(agent, connection)
        precondition(equal.report.reconcileRounds == 0 && equal.report.repairedRows == 0, "equal replicas reconciled: \(equal.report)")
        // What the comparison adds to an answer: its digest field (the reconcile rounds are 0).
        let digestField = "\"digest\":\"\(String(try hub.store.digestRoot(unit: unit.id, excluding: []), radix: 16))\",".utf8.count

        // 2. One row differs: a hand edit of hub.db that bypassed capture (a program with
        // Ferry's apply marker attached and its own capture suppressed), found by the hub's scrub.
        try editBypassingCapture(hubPath, unit: unit.id)
        let scrub = try hub.store.scrub()
        precondition(scrub.changed == 1, "the hub's scrub found \(scrub)")
        let one = try measure(agent, connection)
        precondition(one.report.repairedRows >= 1, "one divergent row was not repaired: \(one.report)")
        let afterOne = try measure(agent, connection)
        precondition(afterOne.report.reconcileRounds == 0, "still different after the repair: \(afterOne.report)")

        // 3. A day back: a copy of unit.db taken now, a day of the clerk's work synced, then
        // the copy put back (only unit.db; the epoch file beside it stays) and the node started.
        let backup = dir.file("yesterday.db")
        try store.backup(to: backup)
        let day = province.dayOfChanges(unit.id, day: "2026-12-01", seed: 7)
        try store.executeAll(day.map { ($0.sql, $0.arguments) })
        let dayExchange = try measure(agent, connection)
        try store.close()
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: store.path + suffix) }
        try FileManager.default.copyItem(atPath: backup, toPath: store.path)
        store = try ReplicaStore(
            path: store.path, standard: hub.store.standard, identity: ReplicaIdentity(node: try NodeID(identity.nodeID), role: .unit(unit.id)), clock: clock)
        connection = try HTTPHubConnection(identity: identity, clock: clock)
        agent = NodeAgent(store: store, hub: connection, identity: identity, clock: clock, batchBytes: 256 * 1024)
        let restore = try measure(agent, connection)
        let settled = try measure(agent, connection)
        let mine = try store.digestRoot(unit: nil, excluding: [])
        let theirs = try hub.store.digestRoot(unit: unit.id, excluding: [])
        precondition(mine == theirs, "after the restore the node's digest \(mine) is not the hub's \(theirs)")
        precondition(settled.report.reconcileRounds == 0, "still different after the restore: \(settled.report)")

        let base = Double(history.bytes)
        func row(_ what: String, _ m: Measured) -> String {
            "| \(what) | \(m.bytes) (up \(m.up), down \(m.down)) | \(m.report.exchanges) / \(m.report.reconcileRounds) | \(m.report.repairedRows + m.report.pulledRows) | \(String(format: "%.0f", m.seconds * 1000)) ms | \(String(format: "%.5f×", Double(m.bytes) / base)) |"
        }
        print("Anti-entropy on the reference unit \(unit.id): \(unitRows) rows of its scope at the hub, \(day.count) statements in the day")
        print("")
        print("| case | bytes on the wire | exchanges / reconcile rounds | rows repaired or pulled | time | bytes ÷ sending the scope again |")
        print("| --- | --- | --- | --- | --- | --- |")
        print(row("baseline: the unit's scope sent (the history sync)", history))
        print(row("equal: one exchange, digests compared and equal", equal))
        print(row("one row differs at the hub (found by its scrub)", one))
        print(row("the day's own exchange (for scale)", dayExchange))
        print(row("unit.db put back a day: the first sync after", restore))
        print("")
        print("Anti-entropy's own cost when equal: \(digestField) bytes, the digest field of the answer before gzip, and no reconcile round (goal ≤ 200 bytes).")
        await bench.stop()
    }

    static func rowCount(_ path: String, unit: String) throws -> Int {
        try DatabaseQueue(path: path).read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM ferry_rows WHERE scope = ?", arguments: [unit]) ?? 0
        }
    }

    /// One member's name changed in the database by a program that hid the write from Ferry.
    static func editBypassingCapture(_ path: String, unit: String) throws {
        let db = try DatabaseQueue(path: path)
        try db.writeWithoutTransaction { db in
            try db.execute(sql: "ATTACH DATABASE ':memory:' AS ferry_applying")
            try db.execute(sql: "CREATE TEMP TRIGGER quiet BEFORE INSERT ON main.ferry_capture BEGIN SELECT RAISE(IGNORE); END")
            try db.execute(
                sql: "UPDATE member SET name = name || '（误改）' WHERE rowid = (SELECT rowid FROM member WHERE unit_id = ? ORDER BY id LIMIT 1 OFFSET 150)",
                arguments: [unit])
            try db.execute(sql: "DROP TRIGGER temp.quiet")
            try db.execute(sql: "DETACH DATABASE ferry_applying")
        }
        try db.close()
    }

    struct Measured {
        var report: SyncReport
        var up: Int
        var down: Int
        var seconds: Double
        var bytes: Int { up + down }
    }

    /// One `syncOnce`, with its bytes on the wire and its wall time.
    static func measure(_ agent: NodeAgent, _ connection: HTTPHubConnection) throws -> Measured {
        let before = connection.transferred
        let start = DispatchTime.now().uptimeNanoseconds
        let report = try agent.syncOnce()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let after = connection.transferred
        return Measured(report: report, up: after.sent - before.sent, down: after.received - before.received, seconds: seconds)
    }
}
