import FerryCore
import FerryStandardFile
import FerryStore
import FerryTestSupport
import FerryTestTraits
import Foundation
import Testing

@Suite("Capture by any process", .offThePool)
struct CaptureTests {
    @Test("writes made with the sqlite3 shell are captured and extracted")
    func shellWritesAreCaptured() throws {
        let p = try Pair()
        defer { p.cleanup() }
        let r = try SQLiteShell.run(
            p.node.path,
            """
            INSERT INTO member (id, unit_id, name, phone, id_card) VALUES ('m1', 'u-a', '张三', '13912345678', '110101199001011234');
            INSERT INTO member (id, unit_id, name) VALUES ('m2', 'u-a', '李四');
            UPDATE member SET note = '支部书记' WHERE id = 'm1';
            DELETE FROM member WHERE id = 'm2';
            """)
        #expect(r.status == 0, "\(r.error)")
        let cs = try #require(try p.node.extract(for: Peer(id: hubID, direction: .upstream)))
        let rows = try #require(cs.tables.first { $0.name == "member" }).rows
        let m1 = try #require(rows.first { $0.key == [.text("m1")] })
        let values = Dictionary(uniqueKeysWithValues: m1.cells.map { ($0.column, $0.value) })
        #expect(values["name"] == .text("张三"))
        #expect(values["note"] == .text("支部书记"))
        #expect(values["status"] == .text("full"))
        #expect(values["phone"] == .text("*******5678"), "masked columns leave the unit masked")
        #expect(values["id_card"] == nil, "local columns never leave the unit")
        let m2 = try #require(rows.first { $0.key == [.text("m2")] })
        #expect(m2.isDeleted)
        #expect(m1.cells.allSatisfy { $0.version.origin == p.nodeID })
    }

    @Test("a unit's write to a hub-owned table is refused by the database itself")
    func hubOwnedTableRefused() throws {
        let p = try Pair()
        defer { p.cleanup() }
        let r = try SQLiteShell.run(p.node.path, "INSERT INTO org (id, name) VALUES ('x', 'X');")
        #expect(r.status != 0)
        #expect(r.error.contains("maintained by the supervisor"))
        #expect(r.error.contains("由上级统一维护"))
        // The hub itself may write its reference data.
        let h = try SQLiteShell.run(p.hub.path, "INSERT INTO org (id, name) VALUES ('x', 'X');")
        #expect(h.status == 0, "\(h.error)")
    }

    @Test("values outside the standard are refused with the table and column named")
    func invalidValuesRefused() throws {
        let p = try Pair()
        defer { p.cleanup() }
        let bad = try SQLiteShell.run(p.node.path, "INSERT INTO member (id, unit_id, name, status) VALUES ('m1', 'u-a', 'x', 'expelled');")
        #expect(bad.status != 0)
        #expect(bad.error.contains("member.status"))
        let date = try SQLiteShell.run(p.node.path, "INSERT INTO member (id, unit_id, name, join_date) VALUES ('m1', 'u-a', 'x', '2024-02-30');")
        #expect(date.error.contains("member.join_date"))
        let scope = try SQLiteShell.run(p.node.path, "INSERT INTO member (id, unit_id, name) VALUES ('m1', 'u-b', 'x');")
        #expect(scope.error.contains("must be this unit's id"))
        #expect(try p.node.syncedContents(of: "member").isEmpty)
    }

    @Test("append-only rows cannot be changed or deleted once written")
    func appendOnlyRefusesUpdates() throws {
        let p = try Pair()
        defer { p.cleanup() }
        try p.node.execute("INSERT INTO attendance (meeting_id, member_id, unit_id, present) VALUES ('mt1', 'm1', 'u-a', 1)")
        let u = try SQLiteShell.run(p.node.path, "UPDATE attendance SET present = 0;")
        #expect(u.error.contains("append-only"))
        let d = try SQLiteShell.run(p.node.path, "DELETE FROM attendance;")
        #expect(d.error.contains("append-only"))
    }

    @Test("primary keys cannot be changed in place")
    func keyChangeRefused() throws {
        let p = try Pair()
        defer { p.cleanup() }
        try p.node.execute("INSERT INTO member (id, unit_id, name) VALUES ('m1', 'u-a', 'x')")
        let r = try SQLiteShell.run(p.node.path, "UPDATE member SET id = 'm9';")
        #expect(r.error.contains("cannot change"))
    }

    @Test("ten edits of one cell ship once, with the last value")
    func editsCoalesce() throws {
        let p = try Pair()
        defer { p.cleanup() }
        try p.node.execute("INSERT INTO member (id, unit_id, name) VALUES ('m1', 'u-a', 'v0')")
        for i in 1...10 { try p.node.execute("UPDATE member SET name = ? WHERE id = 'm1'", [.text("v\(i)")]) }
        let cs = try #require(try p.node.extract(for: Peer(id: hubID, direction: .upstream)))
        #expect(cs.rowCount == 1)
        let cell = try #require(cs.tables[0].rows[0].cells.first { $0.column == "name" })
        #expect(cell.value == .text("v10"))
    }

    @Test("local tables never sync")
    func localTablesStayLocal() throws {
        let p = try Pair()
        defer { p.cleanup() }
        try p.node.execute("INSERT INTO scratch (id, memo) VALUES (1, 'draft')")
        #expect(try p.node.extract(for: Peer(id: hubID, direction: .upstream)) == nil)
    }
}

@Suite("The party-building standard in a unit database", .offThePool)
struct PartyBuildingCaptureTests {
    @Test("a record naming an unknown member is refused where it is written, in both languages")
    func referencesCheckedAtCapture() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let store = try ReplicaStore(
            path: dir.file("unit.db"), standard: try StandardFile.builtIn(),
            identity: .init(node: NodeID(unchecked: "u1-n1"), role: .unit("u1")), clock: ManualClock())
        defer { try? store.close() }
        let ok = try SQLiteShell.run(store.path, """
            INSERT INTO branch (id, unit_id, name, established_on) VALUES ('b1', 'u1', '一支部', '2015-07-01');
            INSERT INTO member (id, unit_id, branch_id, name, gender, birth_date, joined_on) VALUES ('m1', 'u1', 'b1', '张三', 'male', '1980-01-01', '2005-07-01');
            INSERT INTO meeting (id, unit_id, branch_id, kind, held_on, topic) VALUES ('mt1', 'u1', 'b1', 'theme_day', '2026-11-20', '主题党日');
            INSERT INTO attendance (meeting_id, member_id, unit_id) VALUES ('mt1', 'm1', 'u1');
            """)
        #expect(ok.status == 0, "\(ok.error)")
        let bad = try SQLiteShell.run(store.path, "INSERT INTO attendance (meeting_id, member_id, unit_id) VALUES ('mt1', 'm404', 'u1');")
        #expect(bad.status != 0)
        #expect(bad.error.contains("member_id names no existing member") && bad.error.contains("请先录入"), "\(bad.error)")
        let date = try SQLiteShell.run(store.path, "UPDATE meeting SET held_on = '2026-02-30' WHERE id = 'mt1';")
        #expect(date.error.contains("meeting.held_on") && date.error.contains("不是有效日期"), "\(date.error)")
    }
}
