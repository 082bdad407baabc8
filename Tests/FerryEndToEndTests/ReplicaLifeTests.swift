import FerryTestSupport
import FerryTestTraits
import Foundation
import Testing

/// Issue 13, one finding at a time, as clerks and supervisors meet them: a real hub process
/// (`ferry hub serve`), real node directories (`ferry node init`), writes with the `sqlite3`
/// shell on unit.db and hub.db, and the `ferry` commands people run. Each test states the
/// guarantee its finding broke; each failed on release 1's behaviour as the issue describes it.
@Suite("Every replica equal: issue 13 findings", .serialized, .tags(.slow), .offThePool)
struct ReplicaLifeTests {
    static let lifecycleStandard = Repository.path("Tests/Fixtures/lifecycle-standard.toml")
    static let testStandard = Repository.path("Tests/Fixtures/test-standard.toml")

    // MARK: 1. The standard grows where it matters most

    @Test("a version that adds an allowed value and a column to referenced tables and widens a referenced text publishes; the node migrates and every reference is still checked")
    func referencedTablesEvolve() throws {
        let p = try Province(units: ["u-a"], standard: Self.lifecycleStandard)
        defer { p.shutdown() }
        try p.shell(p.hubDB, "INSERT INTO directive (id, target_unit_id, title) VALUES ('d1', 'u-a', '学习');")
        try p.shell(p.unitDB("u-a"), """
            INSERT INTO branch (id, unit_id, name) VALUES ('b1', 'u-a', '一支部');
            INSERT INTO member (id, unit_id, branch_id, name) VALUES ('m1', 'u-a', 'b1', '张三');
            INSERT INTO attendance (member_id, day, unit_id, present) VALUES ('m1', '2026-01-05', 'u-a', 1);
            """)
        try p.sync("u-a")

        // member (referenced by attendance), branch (by member) and directive (by response) all change.
        let text = LifeWorld.nextVersionText
        #expect(text.contains("\"retired\"") && text.contains("max_length = 16") && text.contains("name = \"education\""))
        let file = p.dir.file("v1.1.toml")
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        p.hub.stop()
        let published = try p.ferry(["hub", "publish", "--dir", p.hubDir, file])
        #expect(published.stdout.contains("published standard 1.1.0"), "\(published.stdout)")
        #expect(try String(contentsOfFile: "\(p.hubDir)/standards/1.1.0.toml", encoding: .utf8) == text)
        try p.startHub()

        // At the hub: the rebuilt tables keep their reference triggers.
        let hubRefused = try p.refused(p.hubDB, "INSERT INTO member (id, unit_id, branch_id, name) VALUES ('hx', 'u-a', 'nope', 'x');")
        #expect(hubRefused.contains("branch_id names no existing branch"), "\(hubRefused)")
        try p.shell(p.hubDB, "UPDATE member SET status = 'retired', education = '本科' WHERE id = 'm1';")

        let sync = try p.sync("u-a")
        #expect(sync.stdout.contains("moved to standard 1.1.0"), "\(sync.stdout)")
        let db = p.unitDB("u-a")
        #expect(try p.query(db, "SELECT value FROM ferry_state WHERE key = 'standard';") == [["1.1.0"]])
        #expect(try p.query(db, "SELECT status, education FROM member WHERE id = 'm1';") == [["retired", "本科"]])

        // At the node: a bad reference into each rebuilt table is refused, a good one accepted.
        let badMember = try p.refused(db, "INSERT INTO member (id, unit_id, branch_id, name) VALUES ('m2', 'u-a', 'nope', '李四');")
        #expect(badMember.contains("branch_id names no existing branch"), "\(badMember)")
        let badAttendance = try p.refused(db, "INSERT INTO attendance (member_id, day, unit_id, present) VALUES ('ghost', '2026-01-05', 'u-a', 1);")
        #expect(badAttendance.contains("member_id names no existing member"), "\(badAttendance)")
        let badResponse = try p.refused(db, "INSERT INTO response (id, unit_id, directive_id) VALUES ('r9', 'u-a', 'd404');")
        #expect(badResponse.contains("directive_id names no existing directive"), "\(badResponse)")
        let referencedDelete = try p.refused(db, "DELETE FROM branch WHERE id = 'b1';")
        #expect(referencedDelete.contains("still refer to this row"), "\(referencedDelete)")
        try p.shell(db, """
            INSERT INTO member (id, unit_id, branch_id, name, status, education) VALUES ('m2', 'u-a', 'b1', '李四', 'retired', '硕士');
            INSERT INTO attendance (member_id, day, unit_id, present) VALUES ('m2', '2026-01-12', 'u-a', 0);
            INSERT INTO response (id, unit_id, directive_id) VALUES ('r1', 'u-a', 'd1');
            UPDATE branch SET name = '第一党支部（内科）' WHERE id = 'b1';
            """)
        try p.sync("u-a")
        #expect(try p.query(p.hubDB, "SELECT id, status, education FROM member ORDER BY id;") == [["m1", "retired", "本科"], ["m2", "retired", "硕士"]])
        #expect(try p.query(p.hubDB, "SELECT name FROM branch;") == [["第一党支部（内科）"]])
        #expect(try p.query(p.hubDB, "SELECT member_id, present FROM attendance ORDER BY member_id;") == [["m1", "1"], ["m2", "0"]])
        #expect(try p.query(p.hubDB, "SELECT id, directive_id FROM response;") == [["r1", "d1"]])
        let status = try p.status(p.nodeDir("u-a"))
        #expect(status.contains("Standard version: 1.1.0") && status.contains("State: connected"), "\(status)")
    }

    @Test("a publish that fails leaves no standards/<v>.toml and the hub as it was; a later good publish of that version archives its own text")
    func failedPublishLeavesNothing() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        p.hub.stop()
        let base = try String(contentsOfFile: Self.testStandard, encoding: .utf8).replacingOccurrences(of: "version = \"1.0.0\"", with: "version = \"1.1.0\"")
        let archived = "\(p.hubDir)/standards/1.1.0.toml"
        let triggersBefore = try p.query(p.hubDB, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger';")

        // Refused by the evolution check.
        let breaking = p.dir.file("breaking.toml")
        try base.replacingOccurrences(of: "allowed = [\"full\", \"probationary\", \"transferred\"]", with: "allowed = [\"full\", \"probationary\"]")
            .write(toFile: breaking, atomically: true, encoding: .utf8)
        let r1 = try p.ferry(["hub", "publish", "--dir", p.hubDir, breaking], expectFailure: true)
        #expect(r1.status != 0 && r1.stderr.contains("allowed values 'transferred' were removed"), "\(r1.stderr)")
        #expect(!FileManager.default.fileExists(atPath: archived), "a refused publish archived its file")

        // Fails in the migration: the hub holds a row (written past its checks) the rebuilt table cannot take.
        try p.shell(p.hubDB, "PRAGMA ignore_check_constraints = ON; INSERT INTO member (id, unit_id, name, status) VALUES ('bad', 'u-a', 'x', 'expelled');")
        let additive = base.replacingOccurrences(of: """
              [[table.column]]
              name = "note"
              type = "text"
            """, with: """
              [[table.column]]
              name = "note"
              type = "text"

              [[table.column]]
              name = "education"
              type = "text"
            """)
        #expect(additive != base)
        let first = p.dir.file("first.toml")
        try additive.write(toFile: first, atomically: true, encoding: .utf8)
        let r2 = try p.ferry(["hub", "publish", "--dir", p.hubDir, first], expectFailure: true)
        #expect(r2.status != 0 && r2.stderr.contains("member"), "\(r2.stderr)")
        #expect(!FileManager.default.fileExists(atPath: archived), "a failed publish left \(archived) behind")
        #expect(try String(contentsOfFile: "\(p.hubDir)/standard.toml", encoding: .utf8) == String(contentsOfFile: Self.testStandard, encoding: .utf8))
        #expect(try p.query(p.hubDB, "SELECT value FROM ferry_state WHERE key = 'standard';") == [["1.0.0"]])
        #expect(try p.query(p.hubDB, "SELECT count(*) FROM pragma_table_info('member') WHERE name = 'education';") == [["0"]])
        #expect(try p.query(p.hubDB, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger';") == triggersBefore, "the failed migration left the hub's triggers changed")

        // The bad row corrected, the same version published again with a different text: that text is archived.
        try p.shell(p.hubDB, "UPDATE member SET status = 'full' WHERE id = 'bad';")
        let second = additive.replacingOccurrences(of: "label = { zh = \"党员\", en = \"Members\" }", with: "label = { zh = \"党员\", en = \"Party members\" }")
        #expect(second != additive)
        let secondFile = p.dir.file("second.toml")
        try second.write(toFile: secondFile, atomically: true, encoding: .utf8)
        let r3 = try p.ferry(["hub", "publish", "--dir", p.hubDir, secondFile])
        #expect(r3.stdout.contains("published standard 1.1.0"))
        #expect(try String(contentsOfFile: archived, encoding: .utf8) == second)
        try p.startHub()
        let sync = try p.sync("u-a")
        #expect(sync.stdout.contains("moved to standard 1.1.0"), "\(sync.stdout)")
        #expect(try String(contentsOfFile: "\(p.nodeDir("u-a"))/standard.toml", encoding: .utf8) == second)
    }

    // MARK: 2. Every statement form is captured or refused

    @Test("INSERT OR REPLACE, REPLACE, UPSERT and UPDATE OR REPLACE on an append-only table are refused at the unit, even with a row in ferry_applying; unit, hub and the unit's second node hold the same attendance")
    func appendOnlyRefusesEveryReplace() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        let db = p.unitDB("u-a")
        try p.shell(db, "INSERT INTO attendance (meeting_id, member_id, unit_id, present) VALUES ('mt1', 'm1', 'u-a', 1);")
        try p.sync("u-a")
        let second = try p.enrolNode(of: "u-a", directory: "node-u-a-2")
        try p.syncNode(second)

        let forms = [
            "INSERT OR REPLACE INTO attendance (meeting_id, member_id, unit_id, present) VALUES ('mt1', 'm1', 'u-a', 0);",
            "REPLACE INTO attendance (meeting_id, member_id, unit_id, present) VALUES ('mt1', 'm1', 'u-a', 0);",
            "INSERT INTO attendance (meeting_id, member_id, unit_id, present) VALUES ('mt1', 'm1', 'u-a', 0) ON CONFLICT (meeting_id, member_id) DO UPDATE SET present = excluded.present;",
            "UPDATE OR REPLACE attendance SET present = 0 WHERE meeting_id = 'mt1';",
            "DELETE FROM attendance WHERE meeting_id = 'mt1';",
            // The marker table release 1 used: a row in it no longer stands the guards down.
            "INSERT INTO ferry_applying VALUES (1); UPDATE attendance SET present = 0 WHERE meeting_id = 'mt1';",
            "INSERT INTO ferry_applying VALUES (1); INSERT OR REPLACE INTO attendance (meeting_id, member_id, unit_id, present) VALUES ('mt1', 'm1', 'u-a', 0);",
        ]
        for sql in forms {
            let error = try p.refused(db, sql)
            #expect(error.contains("append-only"), "\(sql): \(error)")
            #expect(try p.query(db, "SELECT present FROM attendance WHERE meeting_id = 'mt1';") == [["1"]], "\(sql) changed the row")
        }
        // A new key is an append, whatever the statement form.
        try p.shell(db, "INSERT OR REPLACE INTO attendance (meeting_id, member_id, unit_id, present) VALUES ('mt2', 'm1', 'u-a', 0);")
        try p.sync("u-a")
        try p.syncNode(second)
        let expected = [["mt1", "m1", "u-a", "1"], ["mt2", "m1", "u-a", "0"]]
        let sql = "SELECT meeting_id, member_id, unit_id, present FROM attendance ORDER BY meeting_id;"
        #expect(try p.query(db, sql) == expected)
        #expect(try p.query(p.hubDB, sql) == expected)
        #expect(try p.query("\(second)/unit.db", sql) == expected)
    }

    @Test("REPLACE and UPSERT on a last-writer-wins table are captured whole: unit, hub and the unit's second node hold the same row")
    func replaceAndUpsertAreCaptured() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        let db = p.unitDB("u-a")
        try p.shell(db, """
            INSERT INTO member (id, unit_id, name, status, note) VALUES ('m1', 'u-a', '张三', 'probationary', '备注');
            INSERT INTO member (id, unit_id, name, note) VALUES ('m2', 'u-a', '李四', '旧');
            """)
        try p.sync("u-a")
        let second = try p.enrolNode(of: "u-a", directory: "node-u-a-2")
        try p.syncNode(second)
        // REPLACE drops the old row (no delete trigger fires) and writes one without status or note.
        try p.shell(db, """
            REPLACE INTO member (id, unit_id, name) VALUES ('m1', 'u-a', '张三丰');
            INSERT INTO member (id, unit_id, name, note) VALUES ('m2', 'u-a', '李四', '新') ON CONFLICT (id) DO UPDATE SET note = excluded.note;
            """)
        try p.sync("u-a")
        try p.syncNode(second)
        let sql = "SELECT id, name, status, coalesce(note, 'NULL') FROM member ORDER BY id;"
        let expected = [["m1", "张三丰", "full", "NULL"], ["m2", "李四", "full", "新"]]
        #expect(try p.query(db, sql) == expected)
        #expect(try p.query(p.hubDB, sql) == expected)
        #expect(try p.query("\(second)/unit.db", sql) == expected)
    }

    @Test("a program that attaches Ferry's apply marker still has its writes captured; the next sync puts back what the hub holds, and the unit's second node agrees")
    func attachedMarkerWritesAreRepaired() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        let db = p.unitDB("u-a")
        try p.shell(p.hubDB, "INSERT INTO org (id, name) VALUES ('o1', '卫健委');")
        try p.shell(db, "INSERT INTO attendance (meeting_id, member_id, unit_id, present) VALUES ('mt1', 'm1', 'u-a', 1);")
        try p.sync("u-a")
        let second = try p.enrolNode(of: "u-a", directory: "node-u-a-2")
        try p.syncNode(second)
        // Past the guards, as a program that read Ferry's schema would.
        try p.shell(db, """
            ATTACH DATABASE ':memory:' AS ferry_applying;
            UPDATE attendance SET present = 0 WHERE meeting_id = 'mt1';
            UPDATE org SET name = '私改' WHERE id = 'o1';
            INSERT INTO org (id, name) VALUES ('o2', '私加');
            DETACH DATABASE ferry_applying;
            """)
        #expect(try p.query(db, "SELECT count(*) FROM ferry_capture;") != [["0"]], "the writes were not captured")
        try p.sync("u-a")
        #expect(try p.query(db, "SELECT present FROM attendance;") == [["1"]])
        #expect(try p.query(db, "SELECT id, name FROM org ORDER BY id;") == [["o1", "卫健委"]])
        #expect(try p.query(p.hubDB, "SELECT present FROM attendance;") == [["1"]])
        #expect(try p.query(p.hubDB, "SELECT id, name FROM org ORDER BY id;") == [["o1", "卫健委"]])
        let again = try p.sync("u-a")
        #expect(again.stdout.contains("checked: the same as the hub") && !again.stdout.contains("repairing"), "\(again.stdout)")
        let other = try p.syncNode(second)
        #expect(other.stdout.contains("checked: the same as the hub"), "\(other.stdout)")
        #expect(try p.query("\(second)/unit.db", "SELECT present FROM attendance;") == [["1"]])
        #expect(try p.query("\(second)/unit.db", "SELECT id, name FROM org ORDER BY id;") == [["o1", "卫健委"]])
    }

    // MARK: 3. A fixed value no longer blocks the unit

    @Test("rows the hub quarantines are listed with their reasons by ferry sync and ferry status; the clerk's UPDATE sends the whole row; a discard removes it at the unit, a correction reaches it")
    func quarantineFixDiscardCorrect() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        let db = p.unitDB("u-a")
        let token = try p.supervisorToken()
        // Impossible dates, written as a program that turned SQLite's checks off would.
        try p.shell(db, """
            PRAGMA ignore_check_constraints = ON;
            INSERT INTO member (id, unit_id, name, status, join_date) VALUES ('q1', 'u-a', '王五', 'probationary', '2026-02-30');
            INSERT INTO member (id, unit_id, name, join_date) VALUES ('q2', 'u-a', '赵六', '2026-13-01');
            INSERT INTO member (id, unit_id, name, join_date) VALUES ('q3', 'u-a', '孙七', '2026-00-10');
            INSERT INTO member (id, unit_id, name, join_date) VALUES ('ok', 'u-a', '周八', '2026-02-28');
            """)
        let sync = try p.sync("u-a")
        #expect(sync.stdout.contains("the hub holds back 3 rows"), "\(sync.stdout)")
        #expect(sync.stdout.contains("q1") && sync.stdout.contains("join_date") && sync.stdout.contains("calendar date"), "\(sync.stdout)")
        let status = try p.status(p.nodeDir("u-a"))
        #expect(status.contains("State: connected") && !status.contains("not connected"), "\(status)")
        #expect(status.contains("Held back by the hub: 3 rows") && status.contains("q2") && status.contains("calendar date"), "\(status)")
        #expect(try p.query(p.hubDB, "SELECT id FROM member ORDER BY id;") == [["ok"]])

        // The clerk corrects q1 with an UPDATE of one cell; the hub gets the whole row.
        try p.shell(db, "UPDATE member SET join_date = '2026-02-28' WHERE id = 'q1';")
        let fixed = try p.sync("u-a")
        #expect(fixed.stdout.contains("the hub holds back 2 rows"), "\(fixed.stdout)")
        #expect(try p.query(p.hubDB, "SELECT id, unit_id, name, status, join_date FROM member WHERE id = 'q1';") == [["q1", "u-a", "王五", "probationary", "2026-02-28"]])

        // The supervisor discards q2 and corrects q3.
        let ids = try p.quarantineIDs()
        let q2 = try #require(ids["q2"]), q3 = try #require(ids["q3"])
        #expect(try p.decideQuarantine(q2, "discard", token: token).status == 200)
        let corrected = try p.decideQuarantine(q3, "correct", value: "2026-01-10", token: token)
        #expect(corrected.status == 200, "\(corrected.body)")
        let after = try p.sync("u-a")
        #expect(!after.stdout.contains("holds back"), "\(after.stdout)")
        #expect(try p.query(db, "SELECT id, join_date FROM member ORDER BY id;") == [["ok", "2026-02-28"], ["q1", "2026-02-28"], ["q3", "2026-01-10"]])
        #expect(try p.query(p.hubDB, "SELECT id, name, join_date FROM member ORDER BY id;") == [["ok", "周八", "2026-02-28"], ["q1", "王五", "2026-02-28"], ["q3", "孙七", "2026-01-10"]])
        let clean = try p.status(p.nodeDir("u-a"))
        #expect(!clean.contains("Held back by the hub") && clean.contains("State: connected"), "\(clean)")
        // The discarded row is gone for good, not stuck: the clerk may enter it again, correctly.
        try p.shell(db, "INSERT INTO member (id, unit_id, name, join_date) VALUES ('q2', 'u-a', '赵六', '2026-12-01');")
        try p.sync("u-a")
        #expect(try p.query(p.hubDB, "SELECT name, join_date FROM member WHERE id = 'q2';") == [["赵六", "2026-12-01"]])
        #expect(try p.sync("u-a").stdout.contains("checked: the same as the hub"))
    }

    // MARK: 4. Scope changes are first-class

    @Test("a hub row retargeted from unit B to unit C arrives at C whole and C keeps pulling; B's copy is removed")
    func retargetedRowMovesWhole() throws {
        let p = try Province(units: ["u-b", "u-c"], standard: Self.lifecycleStandard)
        defer { p.shutdown() }
        try p.shell(p.hubDB, """
            INSERT INTO directive (id, target_unit_id, title) VALUES ('d1', 'u-b', '旧标题');
            INSERT INTO directive (id, target_unit_id, title) VALUES ('d0', NULL, '全体');
            """)
        try p.sync("u-b")
        try p.sync("u-c")
        let sql = "SELECT id, coalesce(target_unit_id, '*'), title FROM directive ORDER BY id;"
        #expect(try p.query(p.unitDB("u-b"), sql) == [["d0", "*", "全体"], ["d1", "u-b", "旧标题"]])
        #expect(try p.query(p.unitDB("u-c"), sql) == [["d0", "*", "全体"]])

        // Only the recipient changes: C has never seen the title.
        try p.shell(p.hubDB, "UPDATE directive SET target_unit_id = 'u-c' WHERE id = 'd1';")
        let c = try p.sync("u-c")
        #expect(c.status == 0)
        #expect(try p.query(p.unitDB("u-c"), sql) == [["d0", "*", "全体"], ["d1", "u-c", "旧标题"]])
        try p.shell(p.hubDB, """
            UPDATE directive SET title = '新标题' WHERE id = 'd1';
            INSERT INTO directive (id, target_unit_id, title) VALUES ('d2', 'u-c', '第二');
            """)
        try p.sync("u-c")
        #expect(try p.query(p.unitDB("u-c"), sql) == [["d0", "*", "全体"], ["d1", "u-c", "新标题"], ["d2", "u-c", "第二"]])
        try p.sync("u-b")
        #expect(try p.query(p.unitDB("u-b"), sql) == [["d0", "*", "全体"]])
        // And back: B gets it whole again, C loses it.
        try p.shell(p.hubDB, "UPDATE directive SET target_unit_id = 'u-b' WHERE id = 'd1';")
        try p.sync("u-b")
        try p.sync("u-c")
        #expect(try p.query(p.unitDB("u-b"), sql) == [["d0", "*", "全体"], ["d1", "u-b", "新标题"]])
        #expect(try p.query(p.unitDB("u-c"), sql) == [["d0", "*", "全体"], ["d2", "u-c", "第二"]])
        for u in ["u-b", "u-c"] {
            #expect(try p.sync(u).stdout.contains("checked: the same as the hub"))
        }
    }

    // MARK: 5. Restoring unit.db from a backup

    @Test("unit.db put back from an older copy is detected; the node recovers its own later rows and the hub's, and does not push the copy's old capture over a newer value")
    func restoredDatabaseRecovers() throws {
        try restoreScenario(withEpochFile: false)
    }

    @Test("a whole node folder put back from an older copy (epoch file included) is detected by the hub and recovers the same way")
    func restoredFolderRecovers() throws {
        try restoreScenario(withEpochFile: true)
    }

    func restoreScenario(withEpochFile: Bool) throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        let db = p.unitDB("u-a")
        try p.shell(db, "INSERT INTO member (id, unit_id, name, note) VALUES ('m1', 'u-a', '甲', 'n0');")
        try p.sync("u-a")
        // Yesterday: an edit not yet synced, then the clerk's backup.
        try p.shell(db, "UPDATE member SET name = '旧改' WHERE id = 'm1';")
        let copy = p.dir.file("backup.db")
        try p.shell(db, ".backup '\(copy)'")
        let epochCopy = p.dir.file("backup.db-epoch")
        if FileManager.default.fileExists(atPath: db + "-epoch") { try FileManager.default.copyItem(atPath: db + "-epoch", toPath: epochCopy) }
        try p.sync("u-a")
        // Today: newer edits at the unit and at the hub.
        Thread.sleep(forTimeInterval: 1.1)
        try p.shell(db, """
            UPDATE member SET name = '新改' WHERE id = 'm1';
            INSERT INTO member (id, unit_id, name) VALUES ('m2', 'u-a', '乙');
            """)
        try p.sync("u-a")
        try p.shell(p.hubDB, """
            UPDATE member SET note = '上级改' WHERE id = 'm1';
            INSERT INTO org (id, name) VALUES ('o1', '卫健委');
            """)
        try p.sync("u-a")
        #expect(try p.query(db, "SELECT id, name, note FROM member ORDER BY id;") == [["m1", "新改", "上级改"], ["m2", "乙", ""]])

        // The clerk puts yesterday's copy back.
        for suffix in ["-wal", "-shm"] { try? FileManager.default.removeItem(atPath: db + suffix) }
        try FileManager.default.removeItem(atPath: db)
        try FileManager.default.copyItem(atPath: copy, toPath: db)
        if withEpochFile {
            try? FileManager.default.removeItem(atPath: db + "-epoch")
            if FileManager.default.fileExists(atPath: epochCopy) { try FileManager.default.copyItem(atPath: epochCopy, toPath: db + "-epoch") }
        }
        #expect(try p.query(db, "SELECT id, name FROM member ORDER BY id;") == [["m1", "旧改"]])
        let sync = try p.sync("u-a")
        #expect(sync.stdout.contains("put back from an older copy"), "\(sync.stdout)")
        let status = try p.status(p.nodeDir("u-a"))
        #expect(status.contains("was put back from an older copy"), "\(status)")
        #expect(status.contains("State: connected"), "\(status)")
        let sql = "SELECT id, name, coalesce(note, '') FROM member ORDER BY id;"
        #expect(try p.query(db, sql) == [["m1", "新改", "上级改"], ["m2", "乙", ""]])
        #expect(try p.query(p.hubDB, sql) == [["m1", "新改", "上级改"], ["m2", "乙", ""]])
        #expect(try p.query(db, "SELECT id, name FROM org;") == [["o1", "卫健委"]])
        // Writing goes on as before.
        try p.shell(db, "UPDATE member SET note = '恢复后' WHERE id = 'm2';")
        let after = try p.sync("u-a")
        #expect(after.stdout.contains("checked: the same as the hub"), "\(after.stdout)")
        #expect(try p.query(p.hubDB, "SELECT note FROM member WHERE id = 'm2';") == [["恢复后"]])
    }

    // MARK: 6. The later edit wins

    @Test("a hub edit made before a unit edit of the same cell loses to it, and a unit edit made before a hub edit loses to it, whenever each side stamps")
    func captureTimeDecides() throws {
        let p = try Province(units: ["u-a", "u-b"])
        defer { p.shutdown() }
        let db = p.unitDB("u-a")
        try p.shell(db, "INSERT INTO member (id, unit_id, name, note) VALUES ('m1', 'u-a', '甲', 'n0'), ('m2', 'u-a', '乙', 'n0');")
        try p.sync("u-a")
        // Hub first, unit 1 s later; the unit syncs after both.
        try p.shell(p.hubDB, "UPDATE member SET note = '上级先改' WHERE id = 'm1';")
        Thread.sleep(forTimeInterval: 1.1)
        try p.shell(db, "UPDATE member SET note = '单位后改' WHERE id = 'm1';")
        // Unit first; the hub edits later and stamps at once (another unit's sync); the unit
        // syncs long after.
        try p.shell(db, "UPDATE member SET note = '单位先改' WHERE id = 'm2';")
        Thread.sleep(forTimeInterval: 1.1)
        try p.shell(p.hubDB, "UPDATE member SET note = '上级后改' WHERE id = 'm2';")
        try p.sync("u-b")
        Thread.sleep(forTimeInterval: 1.1)
        try p.sync("u-a")
        let expected = [["m1", "单位后改"], ["m2", "上级后改"]]
        #expect(try p.query(db, "SELECT id, note FROM member ORDER BY id;") == expected)
        #expect(try p.query(p.hubDB, "SELECT id, note FROM member ORDER BY id;") == expected)
        // The earlier edits are kept as overwritten, not lost.
        let logged = try p.ferry(["hub", "conflicts", "--dir", p.hubDir, "--lang", "en"]).stdout + p.conflicts(p.nodeDir("u-a"))
        #expect(logged.contains("上级先改") && logged.contains("单位先改"), "\(logged)")
    }

    @Test("a writer that took over a cell does not beat a concurrent, later edit of the previous writer: the later edit wins on all three replicas")
    func takeoverDoesNotBeatLaterEdit() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        let n1 = p.nodeDir("u-a")
        try p.shell(p.unitDB("u-a"), "INSERT INTO member (id, unit_id, name) VALUES ('ua-b1', 'u-a', '第一支部');")
        try p.sync("u-a")
        let n2 = try p.enrolNode(of: "u-a", directory: "node-u-a-2")
        try p.syncNode(n2)
        // N2 edits first, on top of N1's version; N1, not having seen it, edits later.
        try p.shell("\(n2)/unit.db", "UPDATE member SET name = '第一支部-N2先改' WHERE id = 'ua-b1';")
        Thread.sleep(forTimeInterval: 1.1)
        try p.shell("\(n1)/unit.db", "UPDATE member SET name = '第一支部-N1后改' WHERE id = 'ua-b1';")
        try p.syncNode(n2)
        try p.syncNode(n1)
        try p.syncNode(n2)
        let sql = "SELECT name FROM member WHERE id = 'ua-b1';"
        for db in [p.hubDB, "\(n1)/unit.db", "\(n2)/unit.db"] {
            #expect(try p.query(db, sql) == [["第一支部-N1后改"]], "\(db)")
        }
        let logged = try p.ferry(["hub", "conflicts", "--dir", p.hubDir, "--lang", "en"]).stdout + p.conflicts(n1) + p.conflicts(n2)
        #expect(logged.contains("第一支部-N2先改"), "the earlier edit is kept in a conflict log: \(logged)")
        // An edit made after seeing the winner wins by causality.
        try p.shell("\(n2)/unit.db", "UPDATE member SET name = '第一支部-N2再改' WHERE id = 'ua-b1';")
        try p.syncNode(n2)
        try p.syncNode(n1)
        for db in [p.hubDB, "\(n1)/unit.db", "\(n2)/unit.db"] {
            #expect(try p.query(db, sql) == [["第一支部-N2再改"]], "\(db)")
        }
    }

    // MARK: 7. Losing values of delete conflicts can be restored

    @Test("a delete-vs-update conflict is restored whole with ferry conflicts --restore, and no key column is logged as a lost value")
    func deleteConflictRestoresWhole() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        let db = p.unitDB("u-a")
        try p.shell(db, "INSERT INTO member (id, unit_id, name, status, note) VALUES ('m1', 'u-a', '张三', 'probationary', 'n0');")
        try p.sync("u-a")
        // The hub deletes the row while the clerk edits it.
        try p.shell(p.hubDB, "DELETE FROM member WHERE id = 'm1';")
        try p.shell(db, "UPDATE member SET note = '单位改' WHERE id = 'm1';")
        try p.sync("u-a")
        #expect(try p.query(db, "SELECT count(*) FROM member;") == [["0"]])
        #expect(try p.query(p.hubDB, "SELECT count(*) FROM member;") == [["0"]])
        let listed = try p.conflicts(p.nodeDir("u-a"))
        let lines = listed.split(separator: "\n").map(String.init)
        let note = try #require(lines.first { $0.contains("member('m1').note") && $0.contains("单位改") }, "\(listed)")
        let hubListed = try p.ferry(["hub", "conflicts", "--dir", p.hubDir, "--lang", "en"]).stdout
        for line in lines + hubListed.split(separator: "\n").map(String.init) {
            #expect(!line.contains(").id:") && !line.contains(").unit_id:"), "a key column logged as a lost value: \(line)")
        }
        let id = try #require(note.dropFirst().split(separator: " ").first.map(String.init))
        let restored = try p.ferry(["conflicts", "--dir", p.nodeDir("u-a"), "--lang", "en", "--restore", id], expectFailure: true)
        #expect(restored.status == 0, "\(restored.stderr)")
        #expect(!restored.stderr.contains("NOT NULL"), "\(restored.stderr)")
        let sql = "SELECT id, unit_id, name, status, note FROM member;"
        #expect(try p.query(db, sql) == [["m1", "u-a", "张三", "probationary", "单位改"]])
        try p.sync("u-a")
        #expect(try p.query(p.hubDB, sql) == [["m1", "u-a", "张三", "probationary", "单位改"]])
    }

    @Test("a delete-vs-update conflict kept at the hub is restored whole by the supervisor's take_other, and the unit gets the row back")
    func hubDeleteConflictRestoresWhole() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        let db = p.unitDB("u-a")
        let token = try p.supervisorToken()
        try p.shell(db, "INSERT INTO member (id, unit_id, name, status, note) VALUES ('m1', 'u-a', '张三', 'probationary', 'n0');")
        try p.sync("u-a")
        // The clerk deletes the row while the supervisor edits it.
        try p.shell(p.hubDB, "UPDATE member SET note = '上级改' WHERE id = 'm1';")
        try p.shell(db, "DELETE FROM member WHERE id = 'm1';")
        try p.sync("u-a")
        #expect(try p.query(p.hubDB, "SELECT count(*) FROM member;") == [["0"]])
        let listed = try p.ferry(["hub", "conflicts", "--dir", p.hubDir, "--lang", "en"]).stdout
        let lines = listed.split(separator: "\n").map(String.init)
        let note = try #require(lines.first { $0.contains("member('m1').note") && $0.contains("上级改") }, "\(listed)")
        for line in lines {
            #expect(!line.contains(").id:") && !line.contains(").unit_id:"), "a key column logged as a lost value: \(line)")
        }
        let id = try #require(Int(note.dropFirst().split(separator: " ").first ?? ""))
        let decided = try p.decideConflict(id, "take_other", token: token)
        #expect(decided.status == 200, "\(decided.body)")
        let sql = "SELECT id, unit_id, name, status, note FROM member;"
        #expect(try p.query(p.hubDB, sql) == [["m1", "u-a", "张三", "probationary", "上级改"]])
        try p.sync("u-a")
        #expect(try p.query(db, sql) == [["m1", "u-a", "张三", "probationary", "上级改"]])
    }

    // MARK: 8. A unit's second node and a replacement box

    @Test("a unit's second node receives masked values masked, never the plaintext, and both nodes and the hub agree on them")
    func secondNodeHoldsMaskedValues() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        let n1 = p.nodeDir("u-a")
        try p.shell(p.unitDB("u-a"), "INSERT INTO member (id, unit_id, name, phone, id_card) VALUES ('m1', 'u-a', '张三', '13912345678', '110101199001011234');")
        try p.sync("u-a")
        let n2 = try p.enrolNode(of: "u-a", directory: "node-u-a-2")
        let first = try p.syncNode(n2)
        let sql = "SELECT name, phone, coalesce(id_card, 'none') FROM member;"
        #expect(try p.query("\(n2)/unit.db", sql) == [["张三", "*******5678", "none"]])
        #expect(try p.query(p.hubDB, sql) == [["张三", "*******5678", "none"]])
        #expect(try p.query("\(n1)/unit.db", sql) == [["张三", "13912345678", "110101199001011234"]])
        #expect(first.stdout.contains("checked: the same as the hub"), "\(first.stdout)")
        // The second node changes the phone: the hub and the first node get it masked; nobody repairs forever.
        try p.shell("\(n2)/unit.db", "UPDATE member SET phone = '13800001111' WHERE id = 'm1';")
        try p.syncNode(n2)
        try p.syncNode(n1)
        #expect(try p.query(p.hubDB, "SELECT phone FROM member;") == [["*******1111"]])
        #expect(try p.query("\(n1)/unit.db", "SELECT phone FROM member;") == [["*******1111"]])
        #expect(try p.query("\(n2)/unit.db", "SELECT phone FROM member;") == [["13800001111"]])
        for n in [n1, n2] {
            let again = try p.syncNode(n)
            #expect(again.stdout.contains("checked: the same as the hub") && !again.stdout.contains("repairing"), "\(again.stdout)")
        }
        #expect(try p.query("\(n1)/unit.db", "SELECT id_card FROM member;") == [["110101199001011234"]], "a local value stays where it was written")
    }

    @Test("a conflict between two nodes' masked values is listed at the hub masked, and putting a value back or writing one is refused for good (only the unit can), never as retryable; keep settles it")
    func maskedConflictActionsAreNotRetryable() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        let token = try p.supervisorToken()
        let n1 = p.nodeDir("u-a")
        try p.shell(p.unitDB("u-a"), "INSERT INTO member (id, unit_id, name, phone) VALUES ('m1', 'u-a', '张三', '13912345678');")
        try p.sync("u-a")
        let n2 = try p.enrolNode(of: "u-a", directory: "node-u-a-2")
        try p.syncNode(n2)
        // Both boxes change the phone without seeing each other.
        try p.shell("\(n2)/unit.db", "UPDATE member SET phone = '13800001111' WHERE id = 'm1';")
        Thread.sleep(forTimeInterval: 1.1)
        try p.shell("\(n1)/unit.db", "UPDATE member SET phone = '13700002222' WHERE id = 'm1';")
        try p.syncNode(n2)
        try p.syncNode(n1)
        try p.syncNode(n2)
        #expect(try p.query(p.hubDB, "SELECT phone FROM member;") == [["*******2222"]])
        let listed = try p.ferry(["hub", "conflicts", "--dir", p.hubDir, "--lang", "en"]).stdout
        let line = try #require(listed.split(separator: "\n").first { $0.contains("member('m1').phone") }, "\(listed)")
        #expect(line.contains("*******1111") && !line.contains("13800001111"), "\(line)")
        let id = try #require(Int(line.dropFirst().split(separator: " ").first ?? ""))
        for (action, value) in [("take_other", nil), ("edit", "13600003333")] as [(String, String?)] {
            let r = try p.decideConflict(id, action, value: value, token: token)
            #expect((400..<500).contains(r.status), "\(action): \(r.status) \(r.body)")
            #expect(r.body.contains("\"retryable\":false") && r.body.contains("only the unit can change it"), "\(action): \(r.body)")
        }
        #expect(try p.decideConflict(id, "keep", token: token).status == 200)
        #expect(try p.query(p.hubDB, "SELECT phone FROM member;") == [["*******2222"]])
    }

    @Test("a replacement box enrolled with ferry node init --restore BACKUP gets back the unit's local and masked values, and the rows synced after the backup")
    func replacementBoxRecoversFromBackup() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        let n1 = p.nodeDir("u-a")
        try p.shell(p.unitDB("u-a"), "INSERT INTO member (id, unit_id, name, phone, id_card) VALUES ('m1', 'u-a', '张三', '13912345678', '110101199001011234');")
        try p.sync("u-a")
        let backup = p.dir.file("u-a-backup.db")
        try p.shell(p.unitDB("u-a"), ".backup '\(backup)'")
        try p.shell(p.unitDB("u-a"), "INSERT INTO member (id, unit_id, name, phone) VALUES ('m2', 'u-a', '李四', '13700003333');")
        try p.sync("u-a")
        // The box dies; the supervisor cuts it off and issues a token for its replacement.
        try p.ferry(["hub", "node", "revoke", "--dir", p.hubDir, try p.identity("u-a").nodeID])
        let n3 = try p.enrolNode(of: "u-a", directory: "node-u-a-new", restoring: backup)
        let sync = try p.syncNode(n3)
        #expect(sync.status == 0)
        let sql = "SELECT id, name, phone, coalesce(id_card, 'none') FROM member ORDER BY id;"
        #expect(try p.query("\(n3)/unit.db", sql) == [["m1", "张三", "13912345678", "110101199001011234"], ["m2", "李四", "*******3333", "none"]])
        #expect(try p.query(p.hubDB, sql) == [["m1", "张三", "*******5678", "none"], ["m2", "李四", "*******3333", "none"]])
        try p.shell("\(n3)/unit.db", "UPDATE member SET note = '新机器' WHERE id = 'm1';")
        let after = try p.syncNode(n3)
        #expect(after.stdout.contains("checked: the same as the hub"), "\(after.stdout)")
        #expect(try p.query(p.hubDB, "SELECT note FROM member WHERE id = 'm1';") == [["新机器"]])
        let old = try p.syncNode(n1, expectFailure: true)
        #expect(old.status != 0 && old.stderr.contains("revoked"), "\(old.stderr)")
    }

    // MARK: 9. No spurious review conflicts

    @Test("a replica that missed intermediate versions of a review cell takes the last one without a conflict")
    func missedVersionsAreNoConflict() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        let n1 = p.nodeDir("u-a")
        try p.shell(p.unitDB("u-a"), "INSERT INTO response (id, unit_id, status) VALUES ('r1', 'u-a', 'received');")
        try p.sync("u-a")
        let n2 = try p.enrolNode(of: "u-a", directory: "node-u-a-2")
        try p.syncNode(n2)
        #expect(try p.query("\(n2)/unit.db", "SELECT status FROM response;") == [["received"]])
        // Three writes in sequence at n1, each synced; n2 gets only the last.
        try p.shell("\(n1)/unit.db", "UPDATE response SET status = 'in-progress' WHERE id = 'r1';")
        try p.syncNode(n1)
        try p.shell("\(n1)/unit.db", "UPDATE response SET status = 'done', report = '已完成' WHERE id = 'r1';")
        try p.syncNode(n1)
        let pulled = try p.syncNode(n2)
        #expect(pulled.stdout.contains("0 new conflicts"), "\(pulled.stdout)")
        for db in [p.hubDB, "\(n1)/unit.db", "\(n2)/unit.db"] {
            #expect(try p.query(db, "SELECT status, report FROM response;") == [["done", "已完成"]], "\(db)")
        }
        #expect(try p.conflicts(n2).contains("no conflicts"))
        #expect(try p.conflicts(n1).contains("no conflicts"))
        #expect(try p.ferry(["hub", "conflicts", "--dir", p.hubDir, "--lang", "en"]).stdout.contains("no conflicts"))
    }

    // MARK: 10. The evolution check refuses what STANDARD.md does not allow

    @Test("ferry hub publish refuses a changed default, a new reference on an existing column and NOT NULL dropped, naming each change")
    func evolutionCheckRefuses() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        p.hub.stop()
        let base = try String(contentsOfFile: Self.testStandard, encoding: .utf8).replacingOccurrences(of: "version = \"1.0.0\"", with: "version = \"1.1.0\"")
        let cases: [(String, String, String)] = [
            ("default = \"full\"", "default = \"probationary\"", "table 'member', column 'status': default changed"),
            (
                "  name = \"member_id\"\n  type = \"text\"\n  nullable = false\n", "  name = \"member_id\"\n  type = \"text\"\n  nullable = false\n  references = \"member.id\"\n",
                "table 'attendance', column 'member_id': reference changed from none to member.id"
            ),
            (
                "  name = \"name\"\n  type = \"text\"\n  nullable = false\n\n  [[table.column]]\n  name = \"status\"",
                "  name = \"name\"\n  type = \"text\"\n\n  [[table.column]]\n  name = \"status\"", "table 'member', column 'name': became nullable"
            ),
        ]
        for (i, (from, to, named)) in cases.enumerated() {
            let text = base.replacingOccurrences(of: from, with: to)
            #expect(text != base, "case \(i) changed nothing")
            let file = p.dir.file("case\(i).toml")
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            let r = try p.ferry(["hub", "publish", "--dir", p.hubDir, file], expectFailure: true)
            #expect(r.status != 0 && r.stderr.contains(named), "case \(i): \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: "\(p.hubDir)/standards/1.1.0.toml"))
        }
        #expect(try p.query(p.hubDB, "SELECT value FROM ferry_state WHERE key = 'standard';") == [["1.0.0"]])
    }

    // MARK: 11. The default standard serves real clerks

    @Test("with the built-in standard a clerk corrects an attendance record (the hub keeps the replaced value), and deleting a member or meeting that attendance names is refused")
    func defaultStandardAttendance() throws {
        let p = try Province(units: ["u-a"], standard: nil)
        defer { p.shutdown() }
        #expect(try p.query(p.hubDB, "SELECT value FROM ferry_state WHERE key = 'standard';") == [["2.0.0"]])
        let db = p.unitDB("u-a")
        try p.shell(db, """
            INSERT INTO branch (id, unit_id, name, established_on) VALUES ('u-a-b1', 'u-a', '第一党支部', '2010-05-04');
            INSERT INTO member (id, unit_id, branch_id, name, gender, birth_date, joined_on) VALUES ('u-a-m1', 'u-a', 'u-a-b1', '李娜', 'female', '1979-01-15', '2003-07-01');
            INSERT INTO meeting (id, unit_id, branch_id, kind, held_on, topic) VALUES ('u-a-mt1', 'u-a', 'u-a-b1', 'party_lecture', '2026-11-18', '党课');
            INSERT INTO attendance (meeting_id, member_id, unit_id) VALUES ('u-a-mt1', 'u-a-m1', 'u-a');
            """)
        try p.sync("u-a")
        #expect(try p.query(p.hubDB, "SELECT status FROM attendance;") == [["present"]])
        // The clerk recorded the wrong thing: correct it in place.
        try p.shell(db, "UPDATE attendance SET status = 'absent_excused' WHERE meeting_id = 'u-a-mt1' AND member_id = 'u-a-m1';")
        try p.sync("u-a")
        #expect(try p.query(p.hubDB, "SELECT status FROM attendance;") == [["absent_excused"]])
        #expect(try p.query(p.hubDB, "SELECT col, lost_value, status FROM ferry_conflicts WHERE tbl = 'attendance';") == [["status", "present", "history"]])
        // The rows attendance names cannot be deleted from under it.
        let member = try p.refused(db, "DELETE FROM member WHERE id = 'u-a-m1';")
        #expect(member.contains("attendance.member_id") && member.contains("still refer"), "\(member)")
        let meeting = try p.refused(db, "DELETE FROM meeting WHERE id = 'u-a-mt1';")
        #expect(meeting.contains("attendance.meeting_id") && meeting.contains("still refer"), "\(meeting)")
        // Attendance itself can go, and then what it named.
        try p.shell(db, """
            DELETE FROM attendance WHERE meeting_id = 'u-a-mt1';
            DELETE FROM meeting WHERE id = 'u-a-mt1';
            DELETE FROM member WHERE id = 'u-a-m1';
            """)
        try p.sync("u-a")
        #expect(try p.query(p.hubDB, "SELECT (SELECT count(*) FROM attendance) + (SELECT count(*) FROM meeting) + (SELECT count(*) FROM member);") == [["0"]])
    }

    // MARK: 12. Responses name directives the unit received

    @Test("a directive_response naming a directive addressed to another unit, or none at all, is refused where the clerk writes it and held back at the hub")
    func responsesNameReceivedDirectives() throws {
        let p = try Province(units: ["u-a", "u-b"], standard: nil)
        defer { p.shutdown() }
        try p.shell(p.hubDB, """
            INSERT INTO directive (id, target_unit_id, issued_by, issued_on, title) VALUES
              ('d-a', 'u-a', 'prov', '2026-11-01', '给甲'), ('d-b', 'u-b', 'prov', '2026-11-01', '给乙'), ('d-all', NULL, 'prov', '2026-11-01', '全体');
            """)
        try p.sync("u-a")
        let db = p.unitDB("u-a")
        #expect(try p.query(db, "SELECT id FROM directive ORDER BY id;") == [["d-a"], ["d-all"]])
        for target in ["d-b", "d-none"] {
            let e = try p.refused(db, "INSERT INTO directive_response (id, unit_id, directive_id, responded_on) VALUES ('r-\(target)', 'u-a', '\(target)', '2026-11-02');")
            #expect(e.contains("directive_id names no existing directive"), "\(target): \(e)")
        }
        try p.shell(db, """
            INSERT INTO directive_response (id, unit_id, directive_id, responded_on) VALUES ('r1', 'u-a', 'd-a', '2026-11-02'), ('r2', 'u-a', 'd-all', '2026-11-02');
            """)
        // A program past the unit's guards: the hub, which holds every directive, checks too.
        try p.shell(db, """
            ATTACH DATABASE ':memory:' AS ferry_applying;
            INSERT INTO directive_response (id, unit_id, directive_id, responded_on) VALUES ('r8', 'u-a', 'd-b', '2026-11-02'), ('r9', 'u-a', 'd-none', '2026-11-02');
            DETACH DATABASE ferry_applying;
            """)
        let sync = try p.sync("u-a")
        #expect(sync.stdout.contains("the hub holds back 2 rows"), "\(sync.stdout)")
        #expect(sync.stdout.contains("not addressed to this unit"), "\(sync.stdout)")
        #expect(try p.query(p.hubDB, "SELECT id, directive_id FROM directive_response ORDER BY id;") == [["r1", "d-a"], ["r2", "d-all"]])
        let q = try p.ferry(["hub", "quarantine", "--dir", p.hubDir]).stdout
        #expect(q.contains("r8") && q.contains("r9") && q.contains("d-b"), "\(q)")
    }
}

// MARK: - Helpers

extension Province {
    /// Runs `sql` in the sqlite3 shell on `db`, as a clerk would; throws the shell's error if it fails.
    @discardableResult
    func shell(_ db: String, _ sql: String) throws -> SQLiteShell.Result {
        let r = try SQLiteShell.run(db, sql)
        guard r.status == 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "sqlite3 \(db) refused \(sql.prefix(200)): \(r.error)"])
        }
        return r
    }

    /// Runs `sql`, which the database must refuse; returns its message.
    func refused(_ db: String, _ sql: String) throws -> String {
        let r = try SQLiteShell.run(db, sql)
        guard r.status != 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "sqlite3 \(db) accepted what must be refused: \(sql.prefix(200))"])
        }
        return r.error
    }

    /// Enrols another node of `unit` (a second box, or with `restoring` a replacement box
    /// taking over a backup) in `directory` under the province's folder; returns its path.
    func enrolNode(of unit: String, directory: String, restoring backup: String? = nil) throws -> String {
        let token = try ferry(["hub", "token", "--dir", hubDir, "--unit", unit]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let path = dir.file(directory)
        try ferry(["node", "init", "--dir", path, "--hub", url, "--token", token, "--lang", "en"] + (backup.map { ["--restore", $0] } ?? []))
        return path
    }

    @discardableResult
    func syncNode(_ nodeDir: String, expectFailure: Bool = false) throws -> CommandResult {
        try ferry(["sync", "--dir", nodeDir, "--lang", "en"], expectFailure: expectFailure)
    }

    func status(_ nodeDir: String) throws -> String {
        try ferry(["status", "--dir", nodeDir, "--lang", "en"]).stdout
    }

    func conflicts(_ nodeDir: String) throws -> String {
        try ferry(["conflicts", "--dir", nodeDir, "--lang", "en"]).stdout
    }

    /// A supervisor's bearer token for the report API (an account `analyst` over the whole tree).
    func supervisorToken() throws -> String {
        let add = try runCommand(FerryBinary.path, ["hub", "admin", "add", "--dir", hubDir, "--name", "analyst"], input: ServedHub.password + "\n")
        guard add.status == 0 else { throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "admin add: \(add.stderr)"]) }
        let body = String(decoding: try JSONSerialization.data(withJSONObject: ["name": "analyst", "password": ServedHub.password]), as: UTF8.self)
        let r = try runCommand("/usr/bin/curl", ["-s", "--max-time", "60", "-H", "Content-Type: application/json", "-d", body, "\(url)/v1/admin/login"])
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        return try #require(json?["token"] as? String, "no token: \(r.stdout)")
    }

    /// The ids of held quarantined rows by their key, from `ferry hub quarantine`.
    func quarantineIDs() throws -> [String: Int] {
        var out: [String: Int] = [:]
        for line in try ferry(["hub", "quarantine", "--dir", hubDir]).stdout.split(separator: "\n") {
            let words = line.split(separator: " ")
            guard words.count > 2, words[0].hasPrefix("#"), words[1] == "held", let id = Int(words[0].dropFirst()),
                let open = words[2].firstIndex(of: "("), let close = words[2].lastIndex(of: ")")
            else { continue }
            out[words[2][words[2].index(after: open)..<close].trimmingCharacters(in: CharacterSet(charactersIn: "'"))] = id
        }
        return out
    }

    /// A supervisor's decision on a conflict through the report API.
    func decideConflict(_ id: Int, _ action: String, value: String? = nil, token: String) throws -> (status: Int, body: String) {
        try decide("/v1/report/conflicts/resolve", id, action, value: value, token: token)
    }

    /// A supervisor's decision on a quarantined row through the report API.
    func decideQuarantine(_ id: Int, _ action: String, value: String? = nil, token: String) throws -> (status: Int, body: String) {
        try decide("/v1/report/quarantine/resolve", id, action, value: value, token: token)
    }

    func decide(_ path: String, _ id: Int, _ action: String, value: String?, token: String) throws -> (status: Int, body: String) {
        var decision: [String: Any] = ["id": id, "action": action]
        if let value { decision["value"] = value }
        let body = String(decoding: try JSONSerialization.data(withJSONObject: decision), as: UTF8.self)
        let r = try runCommand(
            "/usr/bin/curl",
            ["-s", "--max-time", "60", "-w", "\n%{http_code}", "-H", "Authorization: Bearer \(token)", "-H", "Content-Type: application/json", "-d", body, "\(url)\(path)"])
        let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }
}
