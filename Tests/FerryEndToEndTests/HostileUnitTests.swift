import FerryCore
import FerryNode
import FerryTestSupport
import FerryTestTraits
import FerryTrust
import FerryWire
import Foundation
import Synchronization
import Testing

// Issue 12's findings, each tried against a real hub process the way the independent client
// tried them: a unit's real key signing requests whose bodies it wrote itself, the sqlite3
// shell at the hub, an on-path proxy that rewrites answers. (Findings 4 and 5, connections
// and unauthenticated memory, are TrustBoundaryTests and HubRoutesTests; 10 is
// LoginThrottleTests, SpreadsheetExportTests and HubCommandTests; 12 is PrivateFilesTests;
// 13 is RouteSpecTests and the schemathesis run of scripts/test.)

private func nowMillis() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }

private func version(
    _ node: String, gen: UInt32 = 1, sgen: UInt32 = 0, authority: Authority = .unit, at millis: UInt64 = nowMillis()
) -> CellVersion {
    CellVersion(
        generation: gen, supervisorGeneration: sgen, clock: HLCTimestamp(physicalMillis: millis, counter: 0), origin: NodeID(unchecked: node),
        authority: authority)
}

/// A member row of `unit` whose every cell carries `v`.
private func member(_ id: Value, unit: String, _ v: CellVersion, causalLength: UInt32 = 1, name: Value = .text("张三")) -> RowChange {
    RowChange(
        key: [id], scope: unit, causalLength: causalLength,
        cells: [
            CellChange(column: "id", value: id, version: v), CellChange(column: "unit_id", value: .text(unit), version: v),
            CellChange(column: "name", value: name, version: v), CellChange(column: "status", value: .text("full"), version: v),
        ])
}

private func evaluation(_ id: String, unit: String, rating: String, _ v: CellVersion) -> RowChange {
    RowChange(
        key: [.text(id)], scope: unit, causalLength: 1,
        cells: [
            CellChange(column: "id", value: .text(id), version: v), CellChange(column: "unit_id", value: .text(unit), version: v),
            CellChange(column: "rating", value: .text(rating), version: v),
        ])
}

/// A changeset from `node` (the signing node, as the hub checks) with `rows` of `table`.
private func batch(_ node: String, _ table: String, _ rows: [RowChange], version: StandardVersion = StandardVersion(1, 0, 0)) -> [UInt8] {
    ChangesetCodec.encode(
        Changeset(
            origin: NodeID(unchecked: node), standardVersion: version, batch: BatchPosition(sequence: 1, through: 1, isFinal: true),
            tables: [TableChanges(name: table, rows: rows)]))
}

/// The error shape of a refusal.
private func refusal(_ body: String) -> WireError? { try? JSONDecoder().decode(WireError.self, from: Data(body.utf8)) }

/// Text a response must never carry: SQL, SQLite's own words, Swift's debug descriptions.
private func leaksInternals(_ text: String) -> Bool {
    ["INSERT", "UPDATE ", "SELECT", "SQLite", "sqlite", "DecodingError", "codingPath", "debugDescription", "Swift.", "CodingKeys"]
        .contains { text.contains($0) }
}

@Suite("Hostile unit: issue 12's findings against a real hub", .serialized, .tags(.slow), .offThePool)
struct HostileUnitTests {
    @Test("counters at or beyond their bounds are refused at decode or set aside, never crash the hub; a supervisor's delete and correction on top of the largest legal counters keep the hub running across restarts")
    func countersCannotCrashTheHub() throws {
        let p = try Province(units: ["u-a", "u-b"])
        defer { p.shutdown() }
        let a = try p.identity("u-a").nodeID

        // Finding 1 as found: causal length 2^32−1, and a generation of 2^32−1.
        for body in [
            batch(a, "member", [member(.text("m-huge"), unit: "u-a", version(a), causalLength: UInt32.max)]),
            batch(a, "evaluation", [evaluation("e-huge", unit: "u-a", rating: "excellent", version(a, gen: UInt32.max))]),
            batch(a, "member", [member(.text("m-over"), unit: "u-a", version(a), causalLength: CellVersion.maxAuthoredCounter + 1)]),
        ] {
            let r = try p.exchange("u-a", pushing: body)
            let e = try #require(refusal(r.body), "\(r.status) \(r.body)")
            #expect((400..<500).contains(r.status) && e.code == .malformed && !e.retryable, "\(r.status) \(r.body)")
            #expect(!leaksInternals(r.body), "\(r.body)")
        }
        #expect(try p.count(p.hubDB, "SELECT count(*) FROM member WHERE id IN ('m-huge', 'm-over')") == 0)

        // The largest legal ones: accepted, and the hub's own writes on top of them still fit.
        let big = CellVersion.maxAuthoredCounter - 1  // odd: a live row
        let planted = try p.exchange(
            "u-a", pushing: batch(a, "member", [member(.text("m-big"), unit: "u-a", version(a), causalLength: big)]))
        #expect(planted.status == 200 && planted.answer?.pushed?.rows == 1, "\(planted.body)")
        let gen = try p.exchange(
            "u-a", pushing: batch(a, "evaluation", [evaluation("e-big", unit: "u-a", rating: "excellent", version(a, gen: CellVersion.maxAuthoredCounter))]))
        #expect(gen.status == 200 && gen.answer?.pushed?.refusedVersions == 0, "\(gen.body)")
        // A generation above what a unit may author is set aside, not applied.
        let above = try p.exchange(
            "u-a",
            pushing: batch(a, "evaluation", [evaluation("e-big", unit: "u-a", rating: "basic", version(a, gen: CellVersion.maxAuthoredCounter + 1, at: nowMillis() + 1000))]))
        #expect(above.status == 200 && (above.answer?.pushed?.refusedVersions ?? 0) == 3, "\(above.body)")
        #expect(try p.query(p.hubDB, "SELECT rating FROM evaluation WHERE id = 'e-big'") == [["excellent"]])

        // The supervisor cleans up with the sqlite3 shell: a delete on the huge causal length,
        // a correction on the huge generation. Stamped at the next request; nothing traps.
        _ = try SQLiteShell.run(p.hubDB, "DELETE FROM member WHERE id = 'm-big'; UPDATE evaluation SET rating = 'basic' WHERE id = 'e-big';")
        try p.sync("u-b")
        try p.sync("u-a")
        #expect(try p.query(p.unitDB("u-a"), "SELECT rating FROM evaluation WHERE id = 'e-big'") == [["basic"]])
        let stamped = try p.query(p.hubDB, "SELECT count(*) FROM ferry_capture")
        #expect(stamped == [["0"]])

        // A restart (systemd's answer to a crash) comes up and serves every unit.
        p.hub.stop()
        try p.startHub()
        _ = try SQLiteShell.run(p.unitDB("u-b"), "INSERT INTO member (id, unit_id, name) VALUES ('b-after', 'u-b', '李四');")
        try p.sync("u-b")
        try p.sync("u-a")
        #expect(try p.count(p.hubDB, "SELECT count(*) FROM member WHERE id = 'b-after'") == 1)
        #expect(try p.query(p.unitDB("u-a"), "SELECT rating FROM evaluation WHERE id = 'e-big'") == [["basic"]])
    }

    @Test("a unit cannot claim the hub's origin, supervisor authority, a supervisor generation or another unit's node: those versions are refused, counted and audited, and a supervisor's correction stands with no conflict logged")
    func forgedAuthorityIsRefused() throws {
        let p = try Province(units: ["u-a", "u-b"])
        defer { p.shutdown() }
        let a = try p.identity("u-a")
        let b = try p.identity("u-b").nodeID
        _ = try SQLiteShell.run(p.unitDB("u-a"), "INSERT INTO evaluation (id, unit_id, rating, year) VALUES ('e1', 'u-a', 'qualified', 2025);")
        try p.sync("u-a")
        // The supervisor's correction, made at the hub.
        _ = try SQLiteShell.run(p.hubDB, "UPDATE evaluation SET rating = 'basic' WHERE id = 'e1';")
        try p.sync("u-a")
        #expect(try p.query(p.unitDB("u-a"), "SELECT rating FROM evaluation WHERE id = 'e1'") == [["basic"]])
        let conflictsBefore = try p.count(p.hubDB, "SELECT count(*) FROM ferry_conflicts")

        let later = nowMillis() + 2000
        let forgeries: [(String, CellVersion)] = [
            ("the hub's origin with supervisor authority", version(a.hubNodeID, gen: 9, sgen: 9, authority: .supervisor, at: later)),
            ("its own origin with supervisor authority", version(a.nodeID, gen: 9, sgen: 9, authority: .supervisor, at: later)),
            ("a supervisor generation it never received", version(a.nodeID, gen: 9, sgen: 7, at: later)),
            ("another unit's node", version(b, gen: 9, at: later)),
        ]
        for (what, v) in forgeries {
            let r = try p.exchange("u-a", pushing: batch(a.nodeID, "evaluation", [evaluation("e1", unit: "u-a", rating: "excellent", v)]))
            #expect(r.status == 200, "\(what): \(r.body)")
            #expect(r.answer?.pushed?.refusedVersions == 3, "\(what): \(r.body)")
            #expect(try p.query(p.hubDB, "SELECT rating FROM evaluation WHERE id = 'e1'") == [["basic"]], "\(what)")
        }
        #expect(try p.count(p.hubDB, "SELECT count(*) FROM ferry_conflicts") == conflictsBefore)
        #expect(try p.count(p.hubDB, "SELECT count(*) FROM ferry_conflicts WHERE lost_origin = '\(b)' OR winner_origin = '\(b)'") == 0)
        let audited = try p.query(
            "\(p.hubDir)/registry.db", "SELECT count(*) FROM audit WHERE action = 'push' AND detail LIKE '%versions refused%' AND client = '127.0.0.1'")
        #expect(audited == [["4"]])

        // Another unit's row attributed to u-b's node, pushed by u-a: refused whole (scope).
        let r = try p.exchange("u-a", pushing: batch(a.nodeID, "member", [member(.text("x"), unit: "u-b", version(b))]))
        #expect(r.status == 422 && refusal(r.body)?.code == .outOfScope, "\(r.body)")

        // The unit's own honest edit on top of the correction still goes through.
        _ = try SQLiteShell.run(p.unitDB("u-a"), "UPDATE evaluation SET year = 2026 WHERE id = 'e1';")
        try p.sync("u-a")
        #expect(try p.query(p.hubDB, "SELECT rating, year FROM evaluation WHERE id = 'e1'") == [["basic", "2026"]])
    }

    @Test("two units that type the same key each keep their own row; neither blocks the other's pushes or pulls, and no refusal names another unit")
    func sameKeyAtTwoUnits() throws {
        let p = try Province(units: ["u-a", "u-b"])
        defer { p.shutdown() }
        _ = try SQLiteShell.run(p.unitDB("u-a"), "INSERT INTO member (id, unit_id, name) VALUES ('m1', 'u-a', '甲单位的张三');")
        try p.sync("u-a")
        _ = try SQLiteShell.run(p.unitDB("u-b"), "INSERT INTO member (id, unit_id, name) VALUES ('m1', 'u-b', '乙单位的李四');")
        try p.sync("u-b")
        #expect(try p.query(p.hubDB, "SELECT unit_id, name FROM member WHERE id = 'm1' ORDER BY unit_id") == [["u-a", "甲单位的张三"], ["u-b", "乙单位的李四"]])

        // Edits and deletes of one stay with it; hub rows still reach both.
        _ = try SQLiteShell.run(p.unitDB("u-a"), "UPDATE member SET note = '甲' WHERE id = 'm1';")
        _ = try SQLiteShell.run(p.unitDB("u-b"), "DELETE FROM member WHERE id = 'm1';")
        _ = try SQLiteShell.run(p.hubDB, "INSERT INTO org (id, name, industry) VALUES ('o1', '市卫健委', 'medical');")
        try p.sync("u-a")
        try p.sync("u-b")
        try p.sync("u-a")
        #expect(try p.query(p.hubDB, "SELECT unit_id, note FROM member WHERE id = 'm1'") == [["u-a", "甲"]])
        #expect(try p.query(p.unitDB("u-a"), "SELECT name, note FROM member WHERE id = 'm1'") == [["甲单位的张三", "甲"]])
        #expect(try p.count(p.unitDB("u-b"), "SELECT count(*) FROM member") == 0)
        for u in ["u-a", "u-b"] { #expect(try p.query(p.unitDB(u), "SELECT name FROM org WHERE id = 'o1'") == [["市卫健委"]]) }
        // A row that is not its own is refused for what it is, naming only what the unit sent.
        let a = try p.identity("u-a").nodeID
        let r = try p.exchange("u-a", pushing: batch(a, "member", [member(.text("m1"), unit: "u-b", version(a))]))
        #expect(r.status == 422 && refusal(r.body)?.code == .outOfScope, "\(r.body)")
        #expect(!r.body.contains("乙单位"), "\(r.body)")
    }

    @Test("a NUL is refused where it is written; in a pushed key the batch is refused, in a value the row is held with a reason that shows it; every other byte is stored as sent")
    func nulInKeys() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        let shell = try SQLiteShell.run(p.unitDB("u-a"), "INSERT INTO member (id, unit_id, name) VALUES ('m' || char(0) || 'x', 'u-a', '张三');")
        #expect(shell.status != 0, "the unit accepted a NUL in a key")
        #expect(try p.count(p.unitDB("u-a"), "SELECT count(*) FROM member") == 0)
        let a = try p.identity("u-a").nodeID
        // In a key: the row cannot even be named, so the batch is refused.
        let key = try p.exchange("u-a", pushing: batch(a, "member", [member(.text("m\u{0}x"), unit: "u-a", version(a))]))
        #expect((400..<500).contains(key.status) && refusal(key.body)?.retryable == false, "\(key.body)")
        // In a value: the row is held with a reason that shows the NUL rather than being cut by it.
        let value = try p.exchange("u-a", pushing: batch(a, "member", [member(.text("m2"), unit: "u-a", version(a), name: .text("张\u{0}三"))]))
        #expect(value.status == 200 && value.answer?.pushed?.quarantined == 1, "\(value.body)")
        let reason = try #require(value.answer?.held.first?.reason)
        #expect(reason.contains("张\\x00三") && reason.contains("U+0000"), "\(reason)")
        #expect(try p.count(p.hubDB, "SELECT count(*) FROM member") == 0)
        // Every other byte survives: what arrives is what is stored.
        let odd = "m\u{1}\u{7f}é\u{FEFF}𠀀"
        let ok = try p.exchange("u-a", pushing: batch(a, "member", [member(.text(odd), unit: "u-a", version(a))]))
        #expect(ok.status == 200, "\(ok.body)")
        #expect(try p.query(p.hubDB, "SELECT hex(id) FROM member") == [[Data(odd.utf8).map { String(format: "%02X", $0) }.joined()]])
    }

    @Test("standard_version names only published versions: paths are refused without reading any file, and a flood of distinct strings does not grow the hub's memory")
    func standardVersionIsNotAPath() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        // A valid standard planted where a traversal would find it.
        let planted = try String(contentsOfFile: Repository.path("Tests/Fixtures/test-standard.toml"), encoding: .utf8)
        try planted.write(toFile: "\(p.hubDir)/evil.toml", atomically: true, encoding: .utf8)
        try planted.write(toFile: p.dir.file("outside.toml"), atomically: true, encoding: .utf8)
        func ask(_ v: String) throws -> (Int, String) {
            let r = try p.exchange(
                "u-a", request: ExchangeRequest(maxBytes: 65536, standardVersion: v, pendingRows: 0, clockMillis: nowMillis(), epoch: 0))
            return (r.status, r.body)
        }
        for v in ["../evil", "../../outside", "1.0.0/../../evil", "/etc/passwd", "1.0.0\u{0}", "１.０.０", "1.0.0 "] {
            let (status, body) = try ask(v)
            #expect(status == 422 && refusal(body)?.code == .standardMismatch, "\(v): \(status) \(body)")
        }
        let pid = p.hub.process.processIdentifier
        let before = try #require(residentKiB(pid))
        for i in 0..<400 { _ = try ask("9.\(i).\(i * 7919 % 1000)") }
        let after = try #require(residentKiB(pid))
        // The finding grew 378 MiB in 6 s; a cache of parsed standards per string would add megabytes here.
        #expect(after - before < 24 * 1024, "resident memory grew \(after - before) KiB over 400 unknown versions")
        #expect(try ask("1.0.0").0 == 200)
    }

    @Test("an on-path proxy that rewrites a pulled row (and fixes its checksum) is caught by the hub's signature: nothing is applied or acknowledged, and the genuine row arrives once the path is clean")
    func rewrittenAnswersAreRefused() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        _ = try SQLiteShell.run(p.hubDB, "INSERT INTO org (id, name, industry) VALUES ('o1', '县卫健局通知：按时报送', 'medical');")
        let rewrote = Mutex(0)
        let mitm = try RewritingProxy(upstreamPort: p.port) { answer in
            var a = answer
            guard a.requestLine.hasPrefix("POST /v1/exchange"), var envelope = try? ExchangeEnvelope.decode(a.body),
                let bytes = envelope.changeset, var cs = try? ChangesetCodec.decode(bytes)
            else { return a }
            for t in cs.tables.indices where cs.tables[t].name == "org" {
                for r in cs.tables[t].rows.indices {
                    for c in cs.tables[t].rows[r].cells.indices where cs.tables[t].rows[r].cells[c].column == "name" {
                        cs.tables[t].rows[r].cells[c].value = .text("县卫健局通知：不必报送")
                        rewrote.withLock { $0 += 1 }
                    }
                }
            }
            envelope.changeset = ChangesetCodec.encode(cs)  // a fresh, valid CRC
            a.body = envelope.encode()
            return a
        }
        defer { mitm.stop() }
        try pointNode(p, "u-a", at: "http://127.0.0.1:\(mitm.port)")
        let cut = try p.sync("u-a", expectFailure: true)
        #expect(cut.status != 0, "\(cut.stdout)")
        #expect((cut.stderr + cut.stdout).contains("not signed by the hub"), "\(cut.stderr) \(cut.stdout)")
        #expect(rewrote.withLock { $0 } > 0)
        #expect(try p.count(p.unitDB("u-a"), "SELECT count(*) FROM org") == 0)

        // The hub's time is signed too: shifted by three days on the way, it is not believed
        // (the node corrects its write clocks by it).
        let shifter = try RewritingProxy(upstreamPort: p.port) { answer in
            var a = answer
            if let t = a.header(WireHeader.hubTime).flatMap(UInt64.init) { a.setHeader(WireHeader.hubTime, String(t + 3 * 86_400_000)) }
            return a
        }
        defer { shifter.stop() }
        try pointNode(p, "u-a", at: "http://127.0.0.1:\(shifter.port)")
        let shifted = try p.sync("u-a", expectFailure: true)
        #expect(shifted.status != 0 && (shifted.stderr + shifted.stdout).contains("not signed by the hub"), "\(shifted.stderr) \(shifted.stdout)")
        let offset = try p.query(p.unitDB("u-a"), "SELECT value FROM ferry_state WHERE key = 'hub_clock_offset_ms'").first?.first.flatMap(Int64.init) ?? 0
        #expect(abs(offset) < 3_600_000, "the node adopted a shifted clock offset of \(offset) ms")

        try pointNode(p, "u-a", at: p.url)
        try p.sync("u-a")
        #expect(try p.query(p.unitDB("u-a"), "SELECT name FROM org") == [["县卫健局通知：按时报送"]])
    }

    @Test("an on-path proxy that substitutes its own key in the enrolment answer (and signs with it) is caught by the token's fingerprint: the node saves nothing")
    func substitutedHubKeyAtEnrolment() throws {
        let p = try Province(units: [])
        defer { p.shutdown() }
        _ = try p.ferry(["hub", "unit", "add", "--dir", p.hubDir, "--id", "u-c", "--name", "丙单位", "--parent", "prov", "--industry", "medical"])
        let token = try p.ferry(["hub", "token", "--dir", p.hubDir, "--unit", "u-c"]).stdout.split(separator: "\n").last.map(String.init) ?? ""
        let attacker = SigningKey()
        let mitm = try RewritingProxy(upstreamPort: p.port) { answer in
            var a = answer
            guard a.requestLine.hasPrefix("POST /v1/enrol"),
                var json = (try? JSONSerialization.jsonObject(with: Data(a.body))) as? [String: Any],
                let request = (try? JSONSerialization.jsonObject(with: Data(a.requestBody))) as? [String: Any],
                let nonce = request["nonce"] as? String
            else { return a }
            json["hub_public_key"] = attacker.publicKeyBase64
            a.body = [UInt8]((try? JSONSerialization.data(withJSONObject: json)) ?? Data())
            let status = Int(a.statusLine.split(separator: " ")[1]) ?? 0
            let canonical = ResponseSigning.canonical(
                requestNonce: nonce, status: status, hubTime: a.header(WireHeader.hubTime) ?? "", bodySHA256Hex: Trust.sha256Hex(a.body))
            if let sig = try? attacker.sign(canonical) { a.setHeader(WireHeader.hubSignature, sig) }
            return a
        }
        defer { mitm.stop() }
        let dir = p.nodeDir("u-c")
        let r = try p.ferry(["node", "init", "--dir", dir, "--hub", "http://127.0.0.1:\(mitm.port)", "--token", token, "--lang", "en"], expectFailure: true)
        #expect(r.status != 0)
        #expect((r.stderr + r.stdout).contains("does not match the token's fingerprint"), "\(r.stderr) \(r.stdout)")
        #expect(mitm.answersSeen == 1)
        #expect(!FileManager.default.fileExists(atPath: NodeIdentity.path(in: dir)))
    }

    @Test("a weak Ed25519 key (the identity point, a small-order point) cannot enrol, and the token stays usable; the refusal is audited with the client's address")
    func weakKeysCannotEnrol() throws {
        let p = try Province(units: [])
        defer { p.shutdown() }
        _ = try p.ferry(["hub", "unit", "add", "--dir", p.hubDir, "--id", "u-c", "--name", "丙单位", "--parent", "prov", "--industry", "medical"])
        let text = try p.ferry(["hub", "token", "--dir", p.hubDir, "--unit", "u-c"]).stdout.split(separator: "\n").last.map(String.init) ?? ""
        let token = try #require(EnrolmentToken(parsing: text))
        let identity = [UInt8]([1] + [UInt8](repeating: 0, count: 31))
        // A point of order 8 (0xc7176a70…): the classic small-order key.
        let smallOrder: [UInt8] = [
            0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f,
            0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a,
        ]
        for key in [identity, smallOrder] {
            let publicKey = Data(key).base64EncodedString()
            let nonce = Trust.randomHex(bytes: 16)
            let request = EnrolRequest(
                tokenDigest: token.digest, proof: EnrolmentToken.proof(proofKey: token.proofKey, publicKey: publicKey, hostname: "x", nonce: nonce),
                publicKey: publicKey, hostname: "x", nonce: nonce)
            let r = try p.post(path: "/v1/enrol", body: [UInt8](try JSONEncoder().encode(request)), headers: [("Content-Type", "application/json")])
            #expect(r.0 == 400 && r.1.contains("weak"), "\(r)")
        }
        #expect(try p.count("\(p.hubDir)/registry.db", "SELECT count(*) FROM nodes WHERE unit_id = 'u-c'") == 0)
        let audit = try p.query("\(p.hubDir)/registry.db", "SELECT outcome, client, attempts FROM audit WHERE action = 'enrol'")
        #expect(audit == [["weak_key", "127.0.0.1", "2"]], "\(audit)")
        // The token was not spent: the real node enrols with it.
        _ = try p.ferry(["node", "init", "--dir", p.nodeDir("u-c"), "--hub", p.url, "--token", text, "--lang", "en"])
        try p.sync("u-c")
    }

    @Test("a value SQLite cannot store unchanged (NaN, ±infinity) is held with its reason, never stored or answered as retryable; a row the hub's database itself refuses is quarantined, the rest applied; no answer quotes SQL or Swift's debug text")
    func valuesThatFailLaterAreNeverRetriedForever() throws {
        // The built-in standard: service_record.hours is a real, NOT NULL, 0…24. NaN passed
        // such checks once and reached SQLite as NULL.
        let standard = try Province(units: ["u-a"], standard: Repository.path("Sources/FerryStandardFile/Resources/party-building.toml"))
        let builtIn = ExchangeRequest(maxBytes: 1 << 20, standardVersion: "2.0.0", pendingRows: 0, clockMillis: nowMillis(), epoch: 0)
        defer { standard.shutdown() }
        let node = try standard.identity("u-a").nodeID
        for bad in [Double.nan, .infinity, -.infinity] {
            let v = version(node)
            let row = RowChange(
                key: [.text("s1")], scope: "u-a", causalLength: 1,
                cells: [
                    CellChange(column: "id", value: .text("s1"), version: v), CellChange(column: "unit_id", value: .text("u-a"), version: v),
                    CellChange(column: "post_id", value: .text("p1"), version: v), CellChange(column: "member_id", value: .text("m1"), version: v),
                    CellChange(column: "served_on", value: .text("2026-11-30"), version: v), CellChange(column: "hours", value: .real(bad), version: v),
                    CellChange(column: "beneficiaries", value: .integer(3), version: v),
                ])
            let r = try standard.exchange("u-a", pushing: batch(node, "service_record", [row], version: StandardVersion(2, 0, 0)), request: builtIn)
            #expect(r.status == 200 && r.answer?.pushed?.quarantined == 1, "\(bad): \(r.status) \(r.body)")
            #expect(r.answer?.held.contains { $0.column == "hours" && $0.reason.contains("not a finite number") } == true, "\(bad): \(r.body)")
            #expect(!leaksInternals(r.body), "\(r.body)")
        }
        #expect(try standard.count(standard.hubDB, "SELECT count(*) FROM service_record") == 0)

        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        // The supervisor's own trigger at the hub refuses some rows: those are set aside with
        // a reason, the others apply, and the answer is a success (nothing to retry).
        _ = try SQLiteShell.run(
            p.hubDB, "CREATE TRIGGER local_rule BEFORE INSERT ON member WHEN NEW.name = '测试' BEGIN SELECT RAISE(ABORT, 'test names are not kept'); END;")
        _ = try SQLiteShell.run(
            p.unitDB("u-a"), "INSERT INTO member (id, unit_id, name) VALUES ('m-ok', 'u-a', '张三'); INSERT INTO member (id, unit_id, name) VALUES ('m-test', 'u-a', '测试');")
        let synced = try p.sync("u-a")
        #expect(synced.status == 0)
        // Both sides leave the held row out of their digests: equal, no repair loop.
        #expect(!synced.stdout.contains("locating the differences"), "\(synced.stdout)")
        #expect(synced.stdout.contains("the hub holds back 1 rows") && synced.stdout.contains("test names are not kept"), "\(synced.stdout)")
        #expect(try p.query(p.hubDB, "SELECT id FROM member") == [["m-ok"]])
        #expect(try p.query(p.hubDB, "SELECT kind, reason FROM ferry_quarantine WHERE status = 'held'") == [["unstorable", "the database refused the row: test names are not kept"]])
        // The clerk is told, in status, which row is held and why.
        let status = try p.ferry(["status", "--dir", p.nodeDir("u-a"), "--lang", "en"])
        #expect(status.stdout.contains("m-test") && status.stdout.contains("test names are not kept"), "\(status.stdout)")
        #expect(!leaksInternals(status.stdout), "\(status.stdout)")
        // More held rows than an answer lists (100): the comparison waits rather than loop.
        var many = "BEGIN;"
        for i in 0..<120 { many += "INSERT INTO member (id, unit_id, name) VALUES ('m-test-\(i)', 'u-a', '测试');" }
        _ = try SQLiteShell.run(p.unitDB("u-a"), many + "COMMIT;")
        let flood = try p.sync("u-a")
        #expect(flood.status == 0 && !flood.stdout.contains("locating the differences"), "\(flood.stdout)")
        let after = try p.ferry(["status", "--dir", p.nodeDir("u-a"), "--lang", "en"])
        #expect(after.stdout.contains("Held back by the hub: 121 rows"), "\(after.stdout)")

        // Bodies that are not what they claim: the field and the problem, never a decoder's text.
        let enrol = try p.post(path: "/v1/enrol", body: Array(#"{"token_digest": 5, "proof": []}"#.utf8), headers: [("Content-Type", "application/json")])
        #expect(enrol.0 == 400 && !leaksInternals(enrol.1), "\(enrol)")
        let header = Array(#"{"max_bytes": "many"}"#.utf8)
        let body = ExchangeEnvelope(header: header, changeset: nil).encode()
        let bad = try p.signedPost("u-a", path: "/v1/exchange", body: body)
        #expect(bad.status == 400 && !leaksInternals(bad.body) && bad.body.contains("field '"), "\(bad)")
        let reconcile = try p.signedPost("u-a", path: "/v1/reconcile", body: Array("[1,2".utf8), contentType: "application/json")
        #expect(reconcile.status == 400 && !leaksInternals(reconcile.body), "\(reconcile)")
    }

    @Test("refusals of unknown, revoked, stale and replayed requests are audited with the client's address, and a caller without an account cannot grow the audit log without bound")
    func refusalsAreAuditedWithTheirAddress() throws {
        let p = try Province(units: ["u-a", "u-b"])
        defer { p.shutdown() }
        let body = ExchangeEnvelope(
            header: [UInt8](try JSONEncoder().encode(ExchangeRequest(maxBytes: 65536, standardVersion: "1.0.0", pendingRows: 0, clockMillis: nowMillis(), epoch: 0))),
            changeset: nil
        ).encode()
        let stranger = SigningKey()
        let unknown = try stranger.signedHeaders(node: "nobody-n1", method: "POST", path: "/v1/exchange", body: body, nowMillis: nowMillis())
        #expect(try p.post(path: "/v1/exchange", body: body, headers: unknown).0 == 401)
        let a = try p.identity("u-a")
        let key = try SigningKey(base64: a.privateKey)
        let stale = try key.signedHeaders(node: a.nodeID, method: "POST", path: "/v1/exchange", body: body, nowMillis: nowMillis() - 20 * 60_000)
        #expect(try p.post(path: "/v1/exchange", body: body, headers: stale).0 == 401)
        let once = try p.signedPost("u-a", path: "/v1/exchange", body: body)
        #expect(once.status == 200)
        #expect(try p.post(path: "/v1/exchange", body: body, headers: once.headers + [("Content-Type", WireMediaType.exchange)]).0 == 401)
        try p.ferry(["hub", "node", "revoke", "--dir", p.hubDir, try p.identity("u-b").nodeID])
        #expect(try p.sync("u-b", expectFailure: true).status != 0)
        let rows = try p.query("\(p.hubDir)/registry.db", "SELECT outcome, client FROM audit WHERE action = 'auth' ORDER BY id")
        for outcome in ["unknown_node", "stale_request", "replayed", "revoked"] {
            #expect(rows.contains([outcome, "127.0.0.1"]), "\(outcome) not audited with its address: \(rows)")
        }

        // 300 failed enrolments and 300 unknown-node requests from one address: the log grows
        // by a bounded number of rows, each counting its attempts.
        let before = try p.count("\(p.hubDir)/registry.db", "SELECT count(*) FROM audit")
        for i in 0..<300 {
            let nonce = Trust.randomHex(bytes: 16)
            let request = EnrolRequest(
                tokenDigest: Trust.sha256Hex(Array("guess \(i)".utf8)), proof: String(repeating: "0", count: 64),
                publicKey: SigningKey().publicKeyBase64, hostname: "h\(i)", nonce: nonce)
            _ = try p.post(path: "/v1/enrol", body: [UInt8](try JSONEncoder().encode(request)), headers: [("Content-Type", "application/json")])
            let h = try stranger.signedHeaders(node: "nobody-n\(i)", method: "POST", path: "/v1/exchange", body: body, nowMillis: nowMillis())
            _ = try p.post(path: "/v1/exchange", body: body, headers: h)
        }
        let after = try p.count("\(p.hubDir)/registry.db", "SELECT count(*) FROM audit")
        #expect(after - before <= 61, "\(after - before) audit rows from one address without an account")
        #expect(try p.count("\(p.hubDir)/registry.db", "SELECT count(*) FROM audit WHERE client IS NULL AND at > 0 AND action IN ('enrol', 'auth')") == 0)
    }
}

/// Points `unit`'s node at another address (a proxy, or the hub again).
private func pointNode(_ p: Province, _ unit: String, at url: String) throws {
    let path = NodeIdentity.path(in: p.nodeDir(unit))
    var json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    json["hub_url"] = url
    try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
}

/// Resident memory of a process now, KiB.
private func residentKiB(_ pid: Int32) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    return status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }.flatMap { Int($0.split(separator: " ")[1]) }
}
