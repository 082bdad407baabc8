import FerryCore
import FerryNode
import FerryTestSupport
import FerryTestTraits
import Foundation
import Testing

extension Province {
    /// Puts a fault proxy between `unit`'s node and the hub.
    func throughProxy(_ unit: String, _ plan: FaultPlan) throws -> FaultProxy {
        let proxy = try FaultProxy(upstreamPort: port, plan: plan)
        var id = try identity(unit)
        id.hubURL = "http://127.0.0.1:\(proxy.port)"
        try id.save(directory: nodeDir(unit))
        return proxy
    }

    /// Runs `ferry sync` until it succeeds; returns the number of attempts.
    func syncUntilDone(_ unit: String, extra: [String] = [], maxAttempts: Int = 60) throws -> Int {
        for attempt in 1...maxAttempts {
            let r = try ferry(["sync", "--dir", nodeDir(unit), "--lang", "en"] + extra, expectFailure: true)
            if r.status == 0 { return attempt }
        }
        throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "\(unit) did not sync in \(maxAttempts) attempts"])
    }

    /// A day of changes at a unit: members, evaluations, responses and attendance, with
    /// updates and deletes, written with the sqlite3 shell.
    func writeDay(_ unit: String, members: Int = 120, tag: String = "d1") throws {
        var sql = "BEGIN;\n"
        for i in 0..<members {
            sql += "INSERT INTO member (id, unit_id, name, note) VALUES ('\(unit)-\(tag)-m\(i)', '\(unit)', '党员\(i)', '学习记录 \(i * 7919 % 104729) 第\(i % 13)组 \(String(i, radix: 36))');\n"
            sql += "INSERT INTO attendance (meeting_id, member_id, unit_id, present) VALUES ('\(tag)-mt1', '\(unit)-\(tag)-m\(i)', '\(unit)', \(i % 5 == 0 ? 0 : 1));\n"
        }
        for i in 0..<members / 4 {
            sql += "INSERT INTO evaluation (id, unit_id, rating, year) VALUES ('\(unit)-\(tag)-e\(i)', '\(unit)', 'qualified', 2025);\n"
            sql += "INSERT INTO response (id, unit_id, status, report) VALUES ('\(unit)-\(tag)-r\(i)', '\(unit)', 'received', '已收到');\n"
        }
        sql += "UPDATE member SET note = '已更新' WHERE id LIKE '\(unit)-\(tag)-m1%';\n"
        sql += "DELETE FROM member WHERE id IN ('\(unit)-\(tag)-m2', '\(unit)-\(tag)-m3');\n"
        sql += "COMMIT;"
        let r = try SQLiteShell.run(unitDB(unit), sql)
        guard r.status == 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: r.error]) }
    }

    /// The unit's rows of every unit table, at the hub and at the unit, in one comparable form.
    func contents(_ db: String, unit: String) throws -> [[String]] {
        var out: [[String]] = []
        for (table, order) in [("member", "id"), ("attendance", "meeting_id, member_id"), ("evaluation", "id"), ("response", "id")] {
            let cols = table == "member" ? "id, unit_id, name, status, note" : "*"
            out += try query(db, "SELECT '\(table)', \(cols) FROM \(table) WHERE unit_id = '\(unit)' ORDER BY \(order);")
        }
        return out
    }
}

/// Weak links, crashes and skew (issue: weak links). Real hub and node processes; the
/// fault proxy between them on loopback.
@Suite("Weak links, crashes and skew", .serialized, .tags(.slow), .offThePool)
struct WeakLinkTests {
    @Test("three units push a day of changes over 64 kbit/s, 300 ms, cut every ~20 KB: everything arrives exactly once")
    func dayOfChangesOverACuttingLink() throws {
        let units = ["u-a", "u-b", "u-c"]
        let p = try Province(units: units)
        defer { p.shutdown() }
        var proxies: [FaultProxy] = []
        for (i, u) in units.enumerated() {
            try p.writeDay(u, members: 900)
            proxies.append(try p.throughProxy(u, FaultPlan(latencyMillis: 300, bytesPerSecond: 8_000, cutAfterBytes: 10_000...30_000, seed: UInt64(100 + i))))
        }
        defer { proxies.forEach { $0.stop() } }
        for u in units {
            // One `ferry sync` carries on through the cuts by itself.
            let attempts = try p.syncUntilDone(u, extra: ["--batch-bytes", "8192"])
            #expect(attempts == 1, "\(u) needed \(attempts) runs of ferry sync, seed \(proxies[0].plan.seed)")
            #expect(try p.contents(p.hubDB, unit: u) == p.contents(p.unitDB(u), unit: u), "seed \(proxies[0].plan.seed)")
            let status = try p.ferry(["status", "--dir", p.nodeDir(u), "--lang", "en"])
            #expect(status.stdout.contains("Waiting to go up: 0 rows"))
        }
        #expect(proxies.map(\.stats.cuts).reduce(0, +) > 0, "the link was cut at least once")
        #expect(try p.query(p.hubDB, "SELECT count(*) FROM ferry_conflicts;") == [["0"]])
    }

    @Test("corrupted bytes in either direction are detected and retried; nothing corrupt is applied")
    func corruptionIsNeverApplied() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        try p.writeDay("u-a")
        let proxy = try p.throughProxy("u-a", FaultPlan(flipProbability: 0.5, seed: 7))
        defer { proxy.stop() }
        var failures = 0
        for _ in 0..<8 where try p.ferry(["sync", "--dir", p.nodeDir("u-a"), "--retries", "0"], expectFailure: true).status != 0 { failures += 1 }
        #expect(proxy.stats.flips > 0 && failures > 0, "seed \(proxy.plan.seed)")
        proxy.plan = FaultPlan()
        _ = try p.syncUntilDone("u-a")
        #expect(try p.contents(p.hubDB, unit: "u-a") == p.contents(p.unitDB("u-a"), unit: "u-a"), "seed \(proxy.plan.seed)")
        #expect(try p.query(p.hubDB, "SELECT count(*) FROM ferry_quarantine;") == [["0"]])
    }

    @Test("a stalled hub does not hang a node: the low-speed limit ends the attempt, and the next one resumes")
    func stalledHubDoesNotHang() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        try p.writeDay("u-a")
        let proxy = try p.throughProxy("u-a", FaultPlan(stallAfterBytes: 50, stallSeconds: 120, seed: 3))
        defer { proxy.stop() }
        let started = Date()
        let r = try p.ferry(["sync", "--dir", p.nodeDir("u-a"), "--lang", "en", "--low-speed-seconds", "2", "--low-speed-limit", "1000", "--retries", "0"], expectFailure: true)
        #expect(r.status != 0 && r.stderr.contains("It will be retried"), "\(r.stderr)")
        #expect(Date().timeIntervalSince(started) < 60, "ended by the low-speed limit, not by the stall")
        proxy.plan = FaultPlan()
        _ = try p.syncUntilDone("u-a")
        #expect(try p.contents(p.hubDB, unit: "u-a") == p.contents(p.unitDB("u-a"), unit: "u-a"))
    }

    @Test("clocks three days ahead and behind: merges stay deterministic, the hub bounds the future clock, status warns")
    func clockSkew() throws {
        let p = try Province(units: ["u-a", "u-b"])
        defer { p.shutdown() }
        let day: Int64 = 86_400_000
        for u in ["u-a", "u-b"] {
            _ = try SQLiteShell.run(p.unitDB(u), "INSERT INTO member (id, unit_id, name) VALUES ('\(u)-m1', '\(u)', 'x');")
        }
        try p.ferry(["sync", "--dir", p.nodeDir("u-a"), "--clock-offset-ms=\(3 * day)"])
        try p.ferry(["sync", "--dir", p.nodeDir("u-b"), "--clock-offset-ms=\(-3 * day)"])
        // Concurrent edits at the hub and each unit of the same cell.
        for u in ["u-a", "u-b"] {
            _ = try SQLiteShell.run(p.hubDB, "UPDATE member SET name = 'hub' WHERE id = '\(u)-m1';")
            _ = try SQLiteShell.run(p.unitDB(u), "UPDATE member SET name = 'unit' WHERE id = '\(u)-m1';")
        }
        try p.ferry(["sync", "--dir", p.nodeDir("u-a"), "--clock-offset-ms=\(3 * day)"])
        try p.ferry(["sync", "--dir", p.nodeDir("u-b"), "--clock-offset-ms=\(-3 * day)"])
        try p.ferry(["sync", "--dir", p.nodeDir("u-a"), "--clock-offset-ms=\(3 * day)"])
        for u in ["u-a", "u-b"] {
            #expect(try p.query(p.hubDB, "SELECT name FROM member WHERE id = '\(u)-m1';") == p.query(p.unitDB(u), "SELECT name FROM member WHERE id = '\(u)-m1';"))
        }
        // The hub's own clock did not jump three days ahead.
        let hlc = UInt64(try p.query(p.hubDB, "SELECT value FROM ferry_state WHERE key = 'hlc';")[0][0])!
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        #expect(HLCTimestamp(rawValue: hlc).physicalMillis < now + 10 * 60 * 1000)
        let status = try p.ferry(["status", "--dir", p.nodeDir("u-a"), "--lang", "en", "--clock-offset-ms=\(3 * day)"])
        #expect(status.stdout.contains("Warning: this box's clock is"), "\(status.stdout)")
        let nodes = try p.ferry(["hub", "nodes", "--dir", p.hubDir])
        #expect(nodes.stdout.contains("259") || nodes.stdout.contains("-259"), "the hub records the skew in seconds: \(nodes.stdout)")
    }

    @Test("a hub whose database is locked answers with a retryable error; the node keeps its changes and succeeds later")
    func lockedHubDatabase() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        p.hub.stop()
        p.hubArguments = ["--busy-timeout", "1"]
        try p.startHub()
        try p.writeDay("u-a")
        let locker = try ChildProcess("/usr/bin/sqlite3", [p.hubDB], stdinText: "BEGIN EXCLUSIVE;\nSELECT 'locked';\n")
        _ = try locker.waitFor("(locked)")
        let refused = try p.ferry(["sync", "--dir", p.nodeDir("u-a"), "--lang", "en", "--retries", "0"], expectFailure: true)
        #expect(refused.status != 0 && refused.stderr.contains("It will be retried"), "\(refused.stderr)")
        locker.closeInput()
        locker.process.waitUntilExit()
        _ = try p.syncUntilDone("u-a")
        #expect(try p.contents(p.hubDB, unit: "u-a") == p.contents(p.unitDB("u-a"), unit: "u-a"))
    }
}

@Suite("Crashes and long absences", .serialized, .tags(.slow), .offThePool)
struct CrashTests {
    /// FERRY_CRASH_KILLS sets the kills of each side (default 20).
    @Test("kill -9 of the node and of the hub at random points of push, pull and apply loses nothing and applies nothing twice")
    func crashMatrix() throws {
        let kills = Int(ProcessInfo.processInfo.environment["FERRY_CRASH_KILLS"] ?? "") ?? 20
        let seed = UInt64(ProcessInfo.processInfo.environment["FERRY_SEED"] ?? "") ?? 20261129
        var rng = SeededRandom(seed: seed)
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        for round in 0..<(2 * kills) {
            let killHub = round >= kills
            try p.writeDay("u-a", members: 40, tag: "k\(round)")
            // Supervisor corrections, so the pull and the node's apply have work too.
            _ = try SQLiteShell.run(p.hubDB, "UPDATE member SET note = 'hub \(round)' WHERE unit_id = 'u-a' AND id LIKE '%-m5%';")
            let sync = try ChildProcess(FerryBinary.path, ["sync", "--dir", p.nodeDir("u-a"), "--batch-bytes", "1024"])
            Thread.sleep(forTimeInterval: Double.random(in: 0.02...0.6, using: &rng))
            if killHub {
                p.hub.crash()
                sync.process.waitUntilExit()
                try p.startHub()
            } else {
                sync.crash()
            }
        }
        _ = try p.syncUntilDone("u-a")
        #expect(try p.contents(p.hubDB, unit: "u-a") == p.contents(p.unitDB("u-a"), unit: "u-a"), "replay with FERRY_SEED=\(seed)")
        #expect(try p.query(p.hubDB, "SELECT count(*) FROM member;") == [[String(2 * kills * 38)]], "replay with FERRY_SEED=\(seed)")
        #expect(try p.query(p.hubDB, "SELECT count(*) FROM ferry_conflicts;") == [["0"]], "nothing applied twice or out of order; FERRY_SEED=\(seed)")
    }

    @Test("a unit offline for 90 days of changes syncs in one session in bounded memory")
    func ninetyDaysOffline() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        for day in 0..<90 { try p.writeDay("u-a", members: 200, tag: "day\(day)") }
        let rows = Int(try p.query(p.unitDB("u-a"), "SELECT count(*) FROM member;")[0][0])!
        let sync = try ChildProcess(FerryBinary.path, ["sync", "--dir", p.nodeDir("u-a"), "--lang", "en"])
        var peakKB = 0
        while sync.process.isRunning {
            if let status = try? String(contentsOfFile: "/proc/\(sync.process.processIdentifier)/status", encoding: .utf8),
                let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
                let kb = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
            {
                peakKB = max(peakKB, kb)
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        #expect(sync.process.terminationStatus == 0, "\(sync.stderr)")
        #expect(try p.contents(p.hubDB, unit: "u-a") == p.contents(p.unitDB("u-a"), unit: "u-a"))
        // The batches stream: memory stays far below what holding every change would take.
        print("90 days offline: \(rows) member rows, peak RSS \(peakKB / 1024) MiB")
        #expect(peakKB < 80 * 1024, "peak RSS \(peakKB / 1024) MiB for \(rows) rows")
    }
}
