import FerryCore
import FerryStore
import FerryTestSupport
import FerryTestTraits
import Foundation
import Testing

@Suite("Apply and merge between real replicas", .offThePool)
struct SyncTests {
    @Test("edits of different columns of one row both survive")
    func columnLevelMerge() throws {
        let p = try Pair()
        defer { p.cleanup() }
        try p.node.execute("INSERT INTO member (id, unit_id, name, note) VALUES ('m1', 'u-a', '张三', 'n0')")
        try p.push()
        p.clock.advance(by: 1000)
        try p.node.execute("UPDATE member SET name = '张三丰' WHERE id = 'm1'")
        try p.hub.execute("UPDATE member SET note = '已核实' WHERE id = 'm1'")
        try p.push()
        try p.pull()
        #expect(try p.hub.syncedContents(of: "member") == p.node.syncedContents(of: "member"))
        let row = try p.node.syncedContents(of: "member")[0]
        #expect(row.contains(.text("张三丰")) && row.contains(.text("已核实")))
        #expect(try p.hub.conflicts().isEmpty && p.node.conflicts().isEmpty)
    }

    @Test("a node's own deletes do not come back to it; its unit's other node still gets them; a later change or a cursor reset sends them again")
    func ownDeletesDoNotEcho() throws {
        let p = try Pair()
        defer { p.cleanup() }
        let me = Peer(id: p.nodeID, direction: .downstream(unit: unitA))
        let other = Peer(id: NodeID(unchecked: "node-a2"), direction: .downstream(unit: unitA))
        func pushAsTheHubDoes() throws {
            while let cs = try p.node.extract(for: Peer(id: hubID, direction: .upstream)) {
                try p.hub.apply(ChangesetCodec.decode(ChangesetCodec.encode(cs)), sender: .unit(unitA), quarantine: true, sentBy: p.nodeID)
                try p.node.acknowledge(cs.batch, from: hubID)
            }
        }
        func keys(_ cs: Changeset?) -> [String] {
            (cs?.tables.flatMap { t in t.rows.map { "\(t.name):\("\($0.key[0])".filter { $0 != "'" }):\($0.causalLength % 2 == 1 ? "live" : "deleted")" } } ?? []).sorted()
        }
        try p.node.execute("INSERT INTO member (id, unit_id, name) VALUES ('m1', 'u-a', '甲'), ('m2', 'u-a', '乙'), ('m3', 'u-a', '丙')")
        try pushAsTheHubDoes()
        try p.pull()
        while let cs = try p.hub.extract(for: other) { try p.hub.acknowledge(cs.batch, from: other.id) }

        // The hub moves on meanwhile (another unit's push), so the node's cursor is behind.
        try p.hub.execute("INSERT INTO member (id, unit_id, name) VALUES ('b1', 'u-b', '丁')")
        try p.node.execute("DELETE FROM member WHERE id IN ('m1', 'm2')")
        try p.node.execute("UPDATE member SET name = '丙丙' WHERE id = 'm3'")
        try pushAsTheHubDoes()
        #expect(try p.hub.pendingRows(for: me) == 0, "nothing waits for the node that made the change")
        #expect(keys(try p.hub.extract(for: me)) == [], "its own deletes and its own edit stay at the hub")
        #expect(keys(try p.hub.extract(for: other)) == ["member:m1:deleted", "member:m2:deleted", "member:m3:live"])

        // The hub writes the row again: a new lifetime the node has not seen.
        try p.hub.execute("INSERT INTO member (id, unit_id, name) VALUES ('m1', 'u-a', '甲甲')")
        let again = try #require(try p.hub.extract(for: me))
        #expect(keys(again) == ["member:m1:live"])
        try p.node.apply(again, sender: .trusted, from: hubID)
        try p.hub.acknowledge(again.batch, from: p.nodeID)
        #expect(try p.node.currentValue(table: "member", key: [.text("m1")], column: "name") == .text("甲甲"))

        // A node sent everything again (a newer standard, a restore) gets its deletes too.
        try p.hub.resetCursor(for: p.nodeID)
        var resent: [String] = []
        while let cs = try p.hub.extract(for: me) {
            resent += keys(cs)
            try p.hub.acknowledge(cs.batch, from: p.nodeID)
        }
        #expect(resent.contains("member:m2:deleted"))
        #expect(try p.hub.syncedContents(of: "member").filter { $0.contains(.text("u-a")) } == p.node.syncedContents(of: "member"))
    }

    @Test("a second node of a unit pulls the unit's rows and does not push them back; its own later writes still go up")
    func bootstrapDoesNotEcho() throws {
        let p = try Pair()
        defer { p.cleanup() }
        try p.node.executeAll((0..<300).map { (sql: "INSERT INTO member (id, unit_id, name) VALUES (?, 'u-a', ?)", arguments: [.text("m\($0)"), .text("党员\($0)")]) })
        try p.push()
        let second = try ReplicaStore(
            path: p.dir.file("second.db"), standard: p.standard, identity: .init(node: NodeID(unchecked: "node-a2"), role: .unit(unitA)), clock: p.clock)
        defer { try? second.close() }
        let me = NodeID(unchecked: "node-a2")
        var pulled = 0
        while let cs = try p.hub.extract(for: Peer(id: me, direction: .downstream(unit: unitA)), maxBytes: 4096) {
            pulled += cs.rowCount
            try second.apply(ChangesetCodec.decode(ChangesetCodec.encode(cs)), sender: .trusted, from: hubID)
            try p.hub.acknowledge(cs.batch, from: me)
        }
        #expect(pulled == 300)
        let mine = try second.syncedContents(of: "member")
        #expect(mine == (try p.hub.syncedContents(of: "member")))
        #expect(try second.extract(for: Peer(id: hubID, direction: .upstream)) == nil, "nothing to send back")
        // A write made while a pull is under way is not skipped: it is pushed (with the echo).
        try second.execute("UPDATE member SET name = '新名字' WHERE id = 'm7'")
        try p.hub.execute("UPDATE member SET note = '核实' WHERE id = 'm8'")
        let down = try #require(try p.hub.extract(for: Peer(id: me, direction: .downstream(unit: unitA))))
        try second.apply(down, sender: .trusted, from: hubID)
        try p.hub.acknowledge(down.batch, from: me)
        var up = 0
        while let cs = try second.extract(for: Peer(id: hubID, direction: .upstream)) {
            up += cs.rowCount
            try p.hub.apply(cs, sender: .unit(unitA))
            try second.acknowledge(cs.batch, from: hubID)
        }
        #expect(up >= 1)
        #expect(try p.hub.currentValue(table: "member", key: [.text("m7")], column: "name") == .text("新名字"))
        #expect(try second.currentValue(table: "member", key: [.text("m8")], column: "note") == .text("核实"))
    }

    @Test("re-applying a changeset changes nothing")
    func applyIsIdempotent() throws {
        let p = try Pair()
        defer { p.cleanup() }
        try p.node.execute("INSERT INTO member (id, unit_id, name) VALUES ('m1', 'u-a', 'a')")
        let cs = try #require(try p.node.extract(for: Peer(id: hubID, direction: .upstream)))
        let first = try p.hub.apply(cs, sender: .unit(unitA))
        let digest = try p.hub.digest(of: "member")
        let second = try p.hub.apply(cs, sender: .unit(unitA))
        #expect(first.cellsAdopted > 0)
        #expect(second.cellsAdopted == 0 && second.rowsInserted == 0)
        #expect(try p.hub.digest(of: "member") == digest)
    }

    @Test("supervisor's concurrent correction wins; the unit's value is kept in the conflict log and restorable")
    func supervisorWinsAndLoserIsKept() throws {
        let p = try Pair()
        defer { p.cleanup() }
        try p.node.execute("INSERT INTO evaluation (id, unit_id, rating, year) VALUES ('e1', 'u-a', 'qualified', 2025)")
        try p.push()
        try p.pull()
        p.clock.advance(by: 1000)
        try p.hub.execute("UPDATE evaluation SET rating = 'basic' WHERE id = 'e1'")
        p.clock.advance(by: 5000)  // the unit edits later by the clock, but concurrently
        try p.node.execute("UPDATE evaluation SET rating = 'excellent' WHERE id = 'e1'")
        try p.push()
        try p.pull()
        #expect(try p.hub.syncedContents(of: "evaluation")[0][2] == .text("basic"))
        #expect(try p.node.syncedContents(of: "evaluation")[0][2] == .text("basic"))
        let logged = try p.node.conflicts() + p.hub.conflicts()
        let lost = try #require(logged.first { $0.lostValue == .text("excellent") })
        #expect(lost.lostOrigin == p.nodeID && lost.kind == .concurrentEdit)
        // A unit edit made after seeing the correction wins normally.
        try p.node.restore(conflict: try #require(try p.node.conflicts().first { $0.lostValue == .text("excellent") }).id)
        try p.push()
        #expect(try p.hub.syncedContents(of: "evaluation")[0][2] == .text("excellent"))
    }

    @Test("a stale update cannot resurrect a deleted row; a deliberate re-insert can")
    func deletesAreNotUndoneByStaleUpdates() throws {
        let p = try Pair()
        defer { p.cleanup() }
        try p.node.execute("INSERT INTO member (id, unit_id, name) VALUES ('m1', 'u-a', 'a')")
        try p.push()
        try p.pull()
        try p.hub.execute("UPDATE member SET name = 'hub-edit' WHERE id = 'm1'")
        let staleUpdate = try #require(try p.hub.extract(for: Peer(id: p.nodeID, direction: .downstream(unit: unitA))))
        try p.node.execute("DELETE FROM member WHERE id = 'm1'")
        try p.push()
        try p.node.apply(staleUpdate, sender: .trusted)  // arrives late
        #expect(try p.node.syncedContents(of: "member").isEmpty)
        #expect(try p.hub.syncedContents(of: "member").isEmpty)
        #expect(try p.node.conflicts().contains { $0.lostValue == .text("hub-edit") && $0.kind == .editOfDeletedRow })
        try p.node.execute("INSERT INTO member (id, unit_id, name) VALUES ('m1', 'u-a', 'back')")
        try p.push()
        #expect(try p.hub.syncedContents(of: "member").map { $0[2] } == [.text("back")])
        #expect(try p.hub.causalLength(table: "member", key: [.text("m1")]) == 3)
    }

    @Test("an error in the middle of an apply leaves the database as before")
    func abortedApplyChangesNothing() throws {
        let p = try Pair()
        defer { p.cleanup() }
        for i in 1...5 {
            try p.node.execute("INSERT INTO member (id, unit_id, name) VALUES (?, 'u-a', ?)", [.text("m\(i)"), .text(i == 4 ? "boom" : "ok")])
        }
        // A business rule of the hub's own that aborts on the fourth row.
        try p.hub.execute("CREATE TRIGGER reject_boom BEFORE INSERT ON member WHEN NEW.name = 'boom' BEGIN SELECT RAISE(ABORT, 'boom'); END")
        let before = try p.hub.digest(of: "member")
        let clockBefore = try p.hub.latestClock()
        let cs = try #require(try p.node.extract(for: Peer(id: hubID, direction: .upstream)))
        #expect(throws: (any Error).self) { try p.hub.apply(cs, sender: .unit(unitA)) }
        #expect(try p.hub.digest(of: "member") == before)
        #expect(try p.hub.latestClock() == clockBefore)
        #expect(try p.hub.causalLength(table: "member", key: [.text("m1")]) == 0)
        try p.hub.execute("DROP TRIGGER reject_boom")
        try p.hub.apply(cs, sender: .unit(unitA))
        #expect(try p.hub.syncedContents(of: "member").count == 5)
    }

    @Test("a unit's changeset with another unit's row is refused whole")
    func outOfScopeRefused() throws {
        let p = try Pair()
        defer { p.cleanup() }
        try p.node.execute("INSERT INTO member (id, unit_id, name) VALUES ('m1', 'u-a', 'a')")
        var cs = try #require(try p.node.extract(for: Peer(id: hubID, direction: .upstream)))
        var forged = cs.tables[0].rows[0]
        forged.key = [.text("m2")]
        forged.scope = unitB
        forged.cells = forged.cells.map { c in
            var c = c
            if c.column == "unit_id" { c.value = .text(unitB) }
            if c.column == "id" { c.value = .text("m2") }
            return c
        }
        cs.tables[0].rows.append(forged)
        #expect {
            try p.hub.apply(cs, sender: .unit(unitA))
        } throws: { error in
            guard case StoreError.rejected(let e) = error else { return false }
            return e.code == .outOfScope && e.message.contains("m2")
        }
        #expect(try p.hub.syncedContents(of: "member").isEmpty)
    }

    @Test("batches are bounded and resume where the last acknowledgement left off")
    func batchesResume() throws {
        let p = try Pair()
        defer { p.cleanup() }
        for i in 0..<200 {
            try p.node.execute("INSERT INTO member (id, unit_id, name) VALUES (?, 'u-a', ?)", [.text("m\(i)"), .text(String(repeating: "x", count: 50))])
        }
        let peer = Peer(id: hubID, direction: .upstream)
        let first = try #require(try p.node.extract(for: peer, maxBytes: 2000))
        #expect(first.rowCount < 200 && !first.batch.isFinal)
        try p.hub.apply(first, sender: .unit(unitA))
        try p.node.acknowledge(first.batch, from: hubID)
        // The second batch is lost in transit; the next extraction starts after the first.
        let lost = try #require(try p.node.extract(for: peer, maxBytes: 2000))
        #expect(lost.tables[0].rows.first?.key != first.tables[0].rows.first?.key)
        let reports = try p.push(maxBytes: 2000)
        #expect(reports.count > 2)
        #expect(try p.hub.syncedContents(of: "member").count == 200)
        #expect(try p.node.pendingRows(for: peer) == 0)
    }

    @Test("a far-future clock from a peer is bounded, not adopted")
    func farFutureClockBounded() throws {
        let p = try Pair()
        defer { p.cleanup() }
        let skewed = ManualClock(p.clock.nowMillis() + 3 * 86_400_000)
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let ahead = try ReplicaStore(
            path: dir.file("ahead.db"), standard: p.standard,
            identity: .init(node: NodeID(unchecked: "node-ahead"), role: .unit(unitA)), clock: skewed)
        try ahead.execute("INSERT INTO member (id, unit_id, name) VALUES ('m1', 'u-a', 'future')")
        let cs = try #require(try ahead.extract(for: Peer(id: hubID, direction: .upstream)))
        // The capture trigger stamps with the database's clock; simulate the unit's by
        // re-stamping through its own clock: its HLC never runs behind its wall time.
        let report = try p.hub.apply(cs, sender: .unit(unitA))
        #expect(report.boundedClockAheadMillis == nil || report.boundedClockAheadMillis! > 0)
        #expect(try p.hub.latestClock().physicalMillis <= p.clock.nowMillis() + HybridLogicalClock.defaultMaxForwardDriftMillis)
        try ahead.close()
    }
}
