import FerryCore
import FerryTestSupport
import FerryTestTraits
import Foundation
import Synchronization
import Testing

extension Province {
    /// Restarts the hub on the same port from a config file: the data directory and address,
    /// then `extra` (TOML sections).
    func restartHub(config extra: String) throws {
        hub.stop()
        let path = dir.file("hub.toml")
        try "dir = \"\(hubDir)\"\nlisten = \"127.0.0.1:\(port)\"\n\n\(extra)\n".write(toFile: path, atomically: true, encoding: .utf8)
        hubArguments = ["--config", path]
        try startHub()
    }

    /// Writes `count` member rows at `unit` whose notes do not compress (random hex).
    func writeIncompressible(_ unit: String, count: Int, tag: String) throws {
        var sql = "BEGIN;\n"
        for i in 0..<count {
            sql += "INSERT INTO member (id, unit_id, name, note) VALUES ('\(unit)-\(tag)-\(i)', '\(unit)', '党员\(i)', hex(randomblob(300)));\n"
        }
        sql += "COMMIT;"
        let r = try SQLiteShell.run(unitDB(unit), sql)
        guard r.status == 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: r.error]) }
    }

    func count(_ db: String, _ sql: String) throws -> Int { Int(try query(db, sql).first?.first ?? "") ?? -1 }
}

func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

/// The hub's trust boundary against misbehaving clients (issue #12): real hub processes,
/// raw sockets from many loopback addresses.
@Suite("Trust boundary: silent connections, floods, slow links", .serialized, .tags(.slow), .offThePool)
struct TrustBoundaryTests {
    @Test("40 connections that send headers and then nothing, and 100 that send half a head, do not stop a unit's sync; the hub closes them within its timeouts")
    func silentConnectionsDoNotStopSyncs() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        try p.restartHub(config: "[timeouts]\nrequest_head_seconds = 4\nbody_progress_seconds = 4\n")
        // Spread over ten addresses each, so it is the hub's global bounds that hold, not only
        // the per-address ones.
        var silent: [RawConnection] = []
        for i in 0..<40 {
            let c = try RawConnection(port: p.port, source: "127.0.1.\(i % 10 + 1)")
            c.send(
                "POST /v1/exchange HTTP/1.1\r\nHost: hub\r\nContent-Type: application/vnd.ferry.exchange\r\nContent-Length: 262144\r\nFerry-Node: u-a-n1\r\n\r\n")
            silent.append(c)
        }
        var halfHeads: [RawConnection] = []
        for i in 0..<100 {
            let c = try RawConnection(port: p.port, source: "127.0.2.\(i % 10 + 1)")
            c.send("POST /v1/exchange HTTP/1.1\r\nHost: hub\r\nContent-Le")
            halfHeads.append(c)
        }
        // From one address, connections beyond its limit (16) are closed at once.
        var crowd: [RawConnection] = []
        for _ in 0..<30 { crowd.append(try RawConnection(port: p.port, source: "127.0.3.1")) }
        Thread.sleep(forTimeInterval: 0.5)
        #expect(crowd.filter(\.isClosedByPeer).count == 14, "30 from one address: 16 kept, 14 closed at once")

        _ = try SQLiteShell.run(p.unitDB("u-a"), "INSERT INTO member (id, unit_id, name) VALUES ('s1', 'u-a', '坚持');")
        let started = ContinuousClock.now
        try p.sync("u-a")
        let took = ContinuousClock.now - started
        #expect(try p.query(p.hubDB, "SELECT name FROM member WHERE id = 's1';") == [["坚持"]])
        #expect(took < .seconds(4), "the sync took \(took) while 170 connections misbehaved")

        // A request the hub cannot parse gets the error shape too, and the hub's headers.
        let garbled = try RawConnection(port: p.port)
        garbled.send("POST /v1/exchange HTTP/1.1\r\nHost: hub\r\nContent-Length: x\u{1}\r\n\r\n")
        let answer = parseHTTPResponse(garbled.receive(timeout: 5) { RawConnection.isCompleteResponse($0) })
        #expect(answer?.status == 400 && answer?.code == "corrupted", "\(String(describing: answer))")
        #expect(answer?.headers.contains("Ferry-Hub-Time") == true && answer?.headers.contains("Ferry-Standard-Version") == true)

        var latest: Duration = .zero
        for c in silent + halfHeads + crowd {
            let closed = c.waitUntilClosed(timeout: 12)
            #expect(closed != nil, "a silent connection stayed open")
            latest = max(latest, closed ?? .seconds(99))
        }
        #expect(latest < .seconds(8), "every silent connection closed within the 4 s timeout (+ slack), the last after \(latest)")
        print("measured: sync with 170 misbehaving connections open took \(seconds(took)) s; the last silent one was closed after \(seconds(latest)) s")
    }

    @Test("a slow upload that keeps moving (1 KB/s, far longer than the body timeout) still succeeds")
    func slowProgressingUploadSucceeds() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        try p.restartHub(config: "[timeouts]\nrequest_head_seconds = 3\nbody_progress_seconds = 3\n")
        try p.writeIncompressible("u-a", count: 40, tag: "slow")
        let proxy = try p.throughProxy("u-a", FaultPlan(bytesPerSecond: 1_000, directions: [.toServer], seed: 5))
        defer { proxy.stop() }
        let started = ContinuousClock.now
        try p.ferry(["sync", "--dir", p.nodeDir("u-a"), "--lang", "en", "--batch-bytes", "65536"])
        let took = ContinuousClock.now - started
        #expect(try p.count(p.hubDB, "SELECT count(*) FROM member;") == 40)
        #expect(took > .seconds(9), "the upload took \(took): at 1 KB/s, over three body timeouts")
        print("measured: \(proxy.stats.bytesToServer) bytes up at 1 KB/s took \(seconds(took)) s with a 3 s body timeout")
    }

    @Test("150 parallel large enrolment bodies are refused fast with too_large, overloaded or rate_limited, and the hub's memory stays bounded")
    func enrolFloodIsRefusedInBoundedMemory() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        let pid = p.hub.process.processIdentifier
        let before = peakResidentKiB(of: pid) ?? 0
        let results = Mutex<[String]>([])
        let started = ContinuousClock.now
        DispatchQueue.concurrentPerform(iterations: 150) { i in
            // Fifteen per address: under the per-address connection limit, so every one is answered.
            guard let c = try? RawConnection(port: p.port, source: "127.0.4.\(i % 10 + 1)") else {
                results.withLock { $0.append("no connection") }
                return
            }
            let body = [UInt8](repeating: UInt8(ascii: "a"), count: 2 << 20)
            let answer: [UInt8]
            if i % 3 == 0 {
                // Chunked: no length to refuse by, so the hub must stop reading at its limit.
                var bytes = Array("POST /v1/enrol HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
                bytes += Array("\(String(body.count, radix: 16))\r\n".utf8) + body + Array("\r\n0\r\n\r\n".utf8)
                answer = c.sendUntilAnswered(bytes, timeout: 20)
            } else {
                let head = Array("POST /v1/enrol HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n".utf8)
                answer = c.sendUntilAnswered(head + body, timeout: 20)
            }
            let parsed = parseHTTPResponse(answer)
            results.withLock { $0.append(parsed.map { "\($0.status) \($0.code ?? "-")" } ?? "no answer (\(answer.count) bytes)") }
        }
        let took = ContinuousClock.now - started
        Thread.sleep(forTimeInterval: 0.5)
        let after = peakResidentKiB(of: pid) ?? 0
        let outcomes = results.withLock { $0 }
        let allowed: Set<String> = ["413 too_large", "503 overloaded", "429 rate_limited"]
        #expect(outcomes.count == 150)
        #expect(outcomes.allSatisfy { allowed.contains($0) }, "\(Dictionary(grouping: outcomes, by: { $0 }).mapValues(\.count))")
        #expect(took < .seconds(15), "answered in \(took)")
        #expect(after - before < 64 * 1024, "the hub's peak memory grew by \(after - before) KiB")
        print("measured: enrolment flood answered in \(seconds(took)) s; \(Dictionary(grouping: outcomes, by: { $0 }).mapValues(\.count)); hub VmHWM \(before) → \(after) KiB (+\((after - before) / 1024) MiB)")

        // A genuine enrolment from another address still gets through.
        let out = try p.ferry(["hub", "unit", "add", "--dir", p.hubDir, "--id", "u-b", "--name", "乙", "--parent", "prov"])
        let token = out.stdout.split(separator: "\n").last.map(String.init) ?? ""
        try p.ferry(["node", "init", "--dir", p.nodeDir("u-b"), "--hub", p.url, "--token", token, "--lang", "en"])
    }

    @Test("bit flips in upload bodies are retried at once: the batch gets through in seconds, with no permanent error and no bad_signature at the hub")
    func flippedUploadsAreRetriedNotParked() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        try p.writeDay("u-a", members: 200)
        let proxy = try p.throughProxy(
            "u-a", FaultPlan(flipProbability: 0.3, flipRequestBodiesOnly: true, directions: [.toServer], seed: 11))
        defer { proxy.stop() }
        let started = ContinuousClock.now
        var attempts = 0
        var done = false
        while !done && attempts < 10 {
            attempts += 1
            let r = try p.ferry(["sync", "--dir", p.nodeDir("u-a"), "--lang", "en", "--batch-bytes", "8192", "--retries", "0"], expectFailure: true)
            done = r.status == 0
            if !done { #expect(r.stderr.contains("It will be retried"), "a flipped upload was reported as permanent: \(r.stderr)") }
        }
        let took = ContinuousClock.now - started
        #expect(done && took < .seconds(30), "\(attempts) attempts in \(took), seed \(proxy.plan.seed)")
        #expect(proxy.stats.flips > 0)
        #expect(try p.contents(p.hubDB, unit: "u-a") == p.contents(p.unitDB("u-a"), unit: "u-a"))
        let outcomes = try p.query("\(p.hubDir)/registry.db", "SELECT outcome, count(*) FROM audit GROUP BY outcome;")
        #expect(!outcomes.contains { $0.first == "bad_signature" }, "\(outcomes)")
        #expect(outcomes.contains { $0.first == "damaged" }, "\(outcomes)")
        print("measured: \(proxy.stats.flips) flipped upload chunks; synced in \(attempts) run(s), \(seconds(took)) s; audit \(outcomes)")
    }

    @Test("bit flips in the hub's answers surface only as retryable errors, never as one that needs an administrator")
    func flippedAnswersAreRetryable() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        try p.writeDay("u-a", members: 200)
        let proxy = try p.throughProxy("u-a", FaultPlan(flipProbability: 0.4, directions: [.toClient], seed: 23))
        defer { proxy.stop() }
        var failures: [String] = []
        for _ in 0..<6 {
            let r = try p.ferry(
                ["sync", "--dir", p.nodeDir("u-a"), "--lang", "en", "--batch-bytes", "8192", "--low-speed-seconds", "3", "--low-speed-limit", "100"],
                expectFailure: true)
            if r.status != 0 { failures.append(r.stderr) }
        }
        #expect(proxy.stats.flips > 0)
        #expect(failures.allSatisfy { $0.contains("It will be retried") }, "\(failures)")
        proxy.plan = FaultPlan()
        _ = try p.syncUntilDone("u-a")
        #expect(try p.contents(p.hubDB, unit: "u-a") == p.contents(p.unitDB("u-a"), unit: "u-a"))
        print("measured: \(proxy.stats.flips) flipped answer chunks; \(failures.count) of 6 runs failed, all retryable")
    }
}
