import FerryCore
import FerryTestSupport
import FerryTestTraits
import FerryTrust
import FerryWire
import Foundation
import Testing

/// A real hub and three real nodes as separate processes on loopback.
@Suite("Hub and nodes over HTTP", .serialized, .tags(.slow), .offThePool)
struct HubAndNodesTests {
    @Test("records written with the sqlite3 shell reach the hub; hub edits reach the unit; units see only their own rows")
    func recordsFlowBothWaysWithinScope() throws {
        let p = try Province(units: ["u-a", "u-b", "u-c"])
        defer { p.shutdown() }
        for u in ["u-a", "u-b", "u-c"] {
            let r = try SQLiteShell.run(p.unitDB(u), """
                INSERT INTO member (id, unit_id, name, phone, id_card) VALUES ('\(u)-m1', '\(u)', '张三', '13912345678', '110101199001011234');
                INSERT INTO member (id, unit_id, name) VALUES ('\(u)-m2', '\(u)', '李四');
                """)
            #expect(r.status == 0, "\(r.error)")
            try p.sync(u)
        }
        let atHub = try p.query(p.hubDB, "SELECT id, unit_id, phone, coalesce(id_card, 'none') FROM member ORDER BY id;")
        #expect(atHub.count == 6)
        #expect(atHub.first == ["u-a-m1", "u-a", "*******5678", "none"], "masked at the hub, local never left")

        // A supervisor's correction at the hub reaches the unit.
        _ = try SQLiteShell.run(p.hubDB, "UPDATE member SET note = '已核实' WHERE id = 'u-a-m1';")
        try p.sync("u-a")
        #expect(try p.query(p.unitDB("u-a"), "SELECT note, phone FROM member WHERE id = 'u-a-m1';") == [["已核实", "13912345678"]])
        // Pulls never return another unit's rows.
        for u in ["u-a", "u-b", "u-c"] {
            #expect(try p.query(p.unitDB(u), "SELECT count(*) FROM member WHERE unit_id != '\(u)';") == [["0"]])
        }
        // Reference data written at the hub reaches every unit.
        _ = try SQLiteShell.run(p.hubDB, "INSERT INTO org (id, name, industry) VALUES ('o1', '卫健委', 'medical');")
        try p.sync("u-b")
        #expect(try p.query(p.unitDB("u-b"), "SELECT name FROM org;") == [["卫健委"]])
        let status = try p.ferry(["status", "--dir", p.nodeDir("u-b"), "--lang", "en"])
        #expect(status.stdout.contains("Waiting to go up: 0 rows"))
        // The hub's metrics count what it applied, without per-node labels.
        let metrics = try runCommand("/usr/bin/curl", ["-s", "http://127.0.0.1:\(p.metricsPort)/metrics"])
        #expect(metrics.stdout.contains("ferry_hub_rows_applied_total 6"), "\(metrics.stdout)")
        #expect(!metrics.stdout.contains("u-a"))
    }

    @Test("concurrent edits at the hub and a unit converge by the table's policy")
    func concurrentEditsConverge() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        _ = try SQLiteShell.run(p.unitDB("u-a"), "INSERT INTO evaluation (id, unit_id, rating, year) VALUES ('e1', 'u-a', 'qualified', 2025);")
        try p.sync("u-a")
        _ = try SQLiteShell.run(p.hubDB, "UPDATE evaluation SET rating = 'basic' WHERE id = 'e1';")
        _ = try SQLiteShell.run(p.unitDB("u-a"), "UPDATE evaluation SET rating = 'excellent' WHERE id = 'e1';")
        try p.sync("u-a")
        // supervisor-wins: the hub's concurrent correction stands on both sides.
        #expect(try p.query(p.hubDB, "SELECT rating FROM evaluation;") == [["basic"]])
        #expect(try p.query(p.unitDB("u-a"), "SELECT rating FROM evaluation;") == [["basic"]])
        let conflicts = try p.ferry(["conflicts", "--dir", p.nodeDir("u-a"), "--lang", "en"])
        #expect(conflicts.stdout.contains("'excellent'"))
    }

    @Test("forged, replayed, revoked and out-of-scope requests are refused with nothing applied")
    func untrustedRequestsAreRefused() throws {
        let p = try Province(units: ["u-a", "u-b"])
        defer { p.shutdown() }
        let a = try p.identity("u-a")
        let cs = Changeset(
            origin: try NodeID(a.nodeID), standardVersion: StandardVersion(1, 0, 0),
            batch: BatchPosition(sequence: 1, through: 1, isFinal: true),
            tables: [TableChanges(name: "member", rows: [row("x1", unit: "u-a", node: a.nodeID)])])
        let body = ExchangeEnvelope(
            header: [UInt8](try JSONEncoder().encode(ExchangeRequest(maxBytes: 65536, standardVersion: "1.0.0", pendingRows: 0, clockMillis: 0, epoch: 0))),
            changeset: ChangesetCodec.encode(cs)
        ).encode()

        // Forged: signed with a key that is not the node's.
        let forger = SigningKey()
        let forged = try forger.signedHeaders(node: a.nodeID, method: "POST", path: "/v1/exchange", body: body, nowMillis: UInt64(Date().timeIntervalSince1970 * 1000))
        let f = try p.post(path: "/v1/exchange", body: body, headers: forged + [("Content-Type", WireMediaType.exchange)])
        #expect(f.0 == 401 && f.1.contains("bad_signature"))

        // Genuine once, then replayed byte for byte.
        let first = try p.signedPost("u-a", path: "/v1/exchange", body: body)
        #expect(first.status == 200)
        let replay = try p.post(path: "/v1/exchange", body: body, headers: first.headers + [("Content-Type", WireMediaType.exchange)])
        #expect(replay.0 == 401 && replay.1.contains("replayed"))

        // Another unit's row inside u-a's batch: refused whole.
        var mixed = cs
        mixed.tables[0].rows = [row("x2", unit: "u-a", node: a.nodeID), row("b-9", unit: "u-b", node: a.nodeID)]
        let oos = try p.exchange("u-a", pushing: ChangesetCodec.encode(mixed))
        #expect(oos.status == 422 && oos.body.contains("out_of_scope") && oos.body.contains("b-9"))
        #expect(try p.query(p.hubDB, "SELECT id FROM member ORDER BY id;") == [["x1"]])
        let audit = try p.query("\(p.hubDir)/registry.db", "SELECT outcome FROM audit WHERE action = 'push' ORDER BY id;")
        #expect(audit.contains(["out_of_scope"]))

        // A revoked node is cut off at once.
        try p.ferry(["hub", "node", "revoke", "--dir", p.hubDir, try p.identity("u-b").nodeID])
        _ = try SQLiteShell.run(p.unitDB("u-b"), "INSERT INTO member (id, unit_id, name) VALUES ('b1', 'u-b', 'x');")
        let refused = try p.sync("u-b", expectFailure: true)
        #expect(refused.status != 0 && refused.stderr.contains("revoked"))
        #expect(try p.query(p.hubDB, "SELECT count(*) FROM member WHERE unit_id = 'u-b';") == [["0"]])

        // An unenrolled caller is told how to enrol.
        let anon = try p.post(path: "/v1/exchange", body: Array("{}".utf8), headers: [("Content-Type", "application/json")])
        #expect(anon.0 == 401 && anon.1.contains("ferry node init"))
    }

    @Test("killing the hub in the middle of a push loses nothing and duplicates nothing")
    func hubCrashMidPush() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        var sql = "BEGIN;\n"
        for i in 0..<12000 { sql += "INSERT INTO member (id, unit_id, name, note) VALUES ('m\(i)', 'u-a', '党员\(i)', '\(String(repeating: "备注", count: 20))');\n" }
        sql += "COMMIT;"
        #expect(try SQLiteShell.run(p.unitDB("u-a"), sql).status == 0)
        let syncing = try ChildProcess(FerryBinary.path, ["sync", "--dir", p.nodeDir("u-a"), "--lang", "en", "--batch-bytes", "1024"])
        // Let a few batches land, then pull the plug on the hub.
        _ = try syncing.waitFor("sent batch (3)", timeout: 60)
        p.hub.crash()
        syncing.process.waitUntilExit()
        #expect(syncing.process.terminationStatus != 0)
        let landed = Int(try p.query(p.hubDB, "SELECT count(*) FROM member;")[0][0])!
        #expect(landed > 0 && landed < 12000)
        try p.startHub()
        try p.sync("u-a")
        #expect(try p.query(p.hubDB, "SELECT count(*), count(DISTINCT id) FROM member;") == [["12000", "12000"]])
        #expect(try p.query(p.hubDB, "SELECT count(*) FROM ferry_conflicts;") == [["0"]])
        let status = try p.ferry(["status", "--dir", p.nodeDir("u-a"), "--lang", "en"])
        #expect(status.stdout.contains("Waiting to go up: 0 rows"))
    }
}

func row(_ id: String, unit: String, node: String) -> RowChange {
    let v = CellVersion(generation: 1, clock: HLCTimestamp(physicalMillis: UInt64(Date().timeIntervalSince1970 * 1000), counter: 0), origin: NodeID(unchecked: node))
    return RowChange(
        key: [.text(id)], scope: unit, causalLength: 1,
        cells: [
            CellChange(column: "id", value: .text(id), version: v), CellChange(column: "unit_id", value: .text(unit), version: v),
            CellChange(column: "name", value: .text("x"), version: v), CellChange(column: "status", value: .text("full"), version: v),
        ])
}

@Suite("Node daemon", .serialized, .offThePool)
struct NodeDaemonTests {
    @Test("the node daemon syncs soon after a local write, and stops on SIGTERM")
    func daemonSyncsAfterLocalWrite() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        let daemon = try ChildProcess(FerryBinary.path, ["node", "run", "--dir", p.nodeDir("u-a"), "--interval", "3600", "--debounce", "1"])
        defer { daemon.stop() }
        Thread.sleep(forTimeInterval: 1)
        _ = try SQLiteShell.run(p.unitDB("u-a"), "INSERT INTO member (id, unit_id, name) VALUES ('d1', 'u-a', '守护');")
        let deadline = Date().addingTimeInterval(20)
        var arrived = false
        while Date() < deadline && !arrived {
            arrived = (try? p.query(p.hubDB, "SELECT name FROM member WHERE id = 'd1';")) == [["守护"]]
            if !arrived { Thread.sleep(forTimeInterval: 0.25) }
        }
        #expect(arrived)
        daemon.stop(grace: 10)
        #expect(daemon.process.terminationReason == .exit, "stopped by itself on SIGTERM, not killed")
    }
}
