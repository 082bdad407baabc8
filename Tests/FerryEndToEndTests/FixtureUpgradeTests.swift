import FerryTestSupport
import FerryTestTraits
import Foundation
import Testing

/// The hub and node directories release 1 made (Tests/Fixtures/release-1, see its README),
/// opened by this build: every database is upgraded in place to the current format, keeps
/// what release 1 wrote, and the nodes then sync with the hub over protocol 2. The fixtures
/// are copied first and never written.
@Suite("Release 1's databases upgrade", .serialized, .offThePool)
struct FixtureUpgradeTests {
    static let fixtures = Repository.path("Tests/Fixtures/release-1")

    /// A copy of the fixtures in a temporary folder, with the hub served from it.
    final class Upgraded: @unchecked Sendable {
        let dir: TemporaryDirectory
        var hub: ChildProcess!
        var port = 0
        var hubDir: String { dir.file("hub") }
        var hubDB: String { "\(hubDir)/hub.db" }
        func node(_ unit: String) -> String { dir.file("node-\(unit)") }
        func unitDB(_ unit: String) -> String { "\(node(unit))/unit.db" }

        init() throws {
            dir = try TemporaryDirectory("ferry-release-1")
            for d in ["hub", "node-hosp", "node-school"] {
                try FileManager.default.copyItem(atPath: "\(FixtureUpgradeTests.fixtures)/\(d)", toPath: dir.file(d))
            }
        }

        func serve() throws {
            hub = try ChildProcess(FerryBinary.path, ["hub", "serve", "--dir", hubDir, "--listen", "127.0.0.1:0"])
            port = Int(try hub.waitFor("listening on http://127\\.0\\.0\\.1:(\\d+)"))!
        }

        /// Points `unit`'s node at the running hub, as an operator edits `node.json` after the
        /// hub moved: only `hub_url` changes.
        func retarget(_ unit: String) throws {
            let path = "\(node(unit))/node.json"
            var json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
            json["hub_url"] = "http://127.0.0.1:\(port)"
            try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: path))
        }

        @discardableResult
        func ferry(_ args: [String], expectFailure: Bool = false) throws -> CommandResult {
            let r = try runCommand(FerryBinary.path, args)
            if r.status != 0 && !expectFailure {
                throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "ferry \(args.joined(separator: " ")) failed (\(r.status)): \(r.stderr) \(r.stdout)"])
            }
            return r
        }

        func sync(_ unit: String) throws -> CommandResult { try ferry(["sync", "--dir", node(unit), "--lang", "en"]) }

        func query(_ db: String, _ sql: String) throws -> [[String]] {
            let r = try SQLiteShell.run(db, sql)
            guard r.status == 0 else { throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: r.error]) }
            return r.output.split(separator: "\n").map { $0.split(separator: "|", omittingEmptySubsequences: false).map(String.init) }
        }

        /// The causal length Ferry records for branch `id` (even: deleted).
        func branchLifetime(_ db: String, _ id: String) throws -> [[String]] {
            try query(db, "SELECT cl FROM ferry_rows WHERE tbl = (SELECT id FROM ferry_tables WHERE name = 'branch') AND instr(pk, CAST('\(id)' AS BLOB)) > 0;")
        }

        func close() {
            hub?.stop()
            dir.remove()
        }
    }

    @Test("release 1's hub and nodes open with this build: d1, d2, r1, the tombstone of hosp-b2 and school's unstamped edit and local note survive, and both nodes sync with the hub")
    func release1Upgrades() throws {
        let u = try Upgraded()
        defer { u.close() }
        // What release 1 left, read before this build touches anything.
        #expect(try u.query(u.unitDB("school"), "SELECT tbl, op, k1 FROM ferry_capture;").count == 1)
        #expect(try u.query(u.hubDB, "SELECT value FROM ferry_state WHERE key = 'format';") == [])

        try u.serve()
        #expect(try u.query(u.hubDB, "SELECT value FROM ferry_state WHERE key = 'format';") == [["3"]])
        #expect(try u.query(u.hubDB, "SELECT id, coalesce(target_unit_id, '*'), title FROM directive ORDER BY id;") == [["d1", "hosp", "关于开展主题党日活动的通知"], ["d2", "*", "全省通知"]])
        #expect(try u.query(u.hubDB, "SELECT id, unit_id, directive_id, status FROM directive_response;") == [["r1", "hosp", "d1", "in_progress"]])
        #expect(try u.query(u.hubDB, "SELECT count(*) FROM branch WHERE id = 'hosp-b2';") == [["0"]])
        #expect(try u.branchLifetime(u.hubDB, "hosp-b2") == [["2"]], "the hub still knows hosp-b2 was deleted")
        #expect(try u.query(u.hubDB, "SELECT name FROM member WHERE id = 'school-m2';") == [["刘洋"]])

        // The school's node opens (and upgrades) its database; the clerk's write is still waiting.
        try u.retarget("school")
        let status = try u.ferry(["status", "--dir", u.node("school"), "--lang", "en"]).stdout
        #expect(status.contains("Waiting to go up: 1 rows") && status.contains("Standard version: 1.0.0"), "\(status)")
        #expect(try u.query(u.unitDB("school"), "SELECT value FROM ferry_state WHERE key = 'format';") == [["3"]])
        #expect(try u.query(u.unitDB("school"), "SELECT name FROM member WHERE id = 'school-m2';") == [["刘洋洋"]])
        #expect(try u.query(u.unitDB("school"), "SELECT id, body FROM local_note;").count == 1)
        let schoolSync = try u.sync("school")
        #expect(schoolSync.stdout.contains("sent 1 rows"), "\(schoolSync.stdout)")
        #expect(schoolSync.stdout.contains("checked: the same as the hub"), "\(schoolSync.stdout)")
        #expect(try u.query(u.hubDB, "SELECT name, gender, birth_date, branch_id FROM member WHERE id = 'school-m2';") == [["刘洋洋", "male", "1990-06-20", "school-b1"]])
        #expect(try u.query(u.unitDB("school"), "SELECT count(*) FROM ferry_capture;") == [["0"]])
        let conflicts = try u.ferry(["hub", "conflicts", "--dir", u.hubDir, "--lang", "en"]).stdout
        #expect(!conflicts.contains("school-m2"), "the edit went up as an edit, not a conflict: \(conflicts)")
        #expect(try u.query(u.unitDB("school"), "SELECT id, body FROM local_note;") == [["n1", "仅本地"]])
        #expect(try u.query(u.hubDB, "SELECT count(*) FROM local_note;") == [["0"]])

        // The hospital's node: its directives, its response and its deleted branch as they were.
        try u.retarget("hosp")
        let hospSync = try u.sync("hosp")
        #expect(hospSync.stdout.contains("checked: the same as the hub"), "\(hospSync.stdout)")
        let hosp = u.unitDB("hosp")
        #expect(try u.query(hosp, "SELECT id, coalesce(target_unit_id, '*') FROM directive ORDER BY id;") == [["d1", "hosp"], ["d2", "*"]])
        #expect(try u.query(hosp, "SELECT id, directive_id, status FROM directive_response;") == [["r1", "d1", "in_progress"]])
        #expect(try u.query(hosp, "SELECT count(*) FROM branch WHERE id = 'hosp-b2';") == [["0"]])
        #expect(try u.branchLifetime(hosp, "hosp-b2") == [["2"]])
        #expect(try u.query(u.hubDB, "SELECT count(*) FROM branch WHERE id = 'hosp-b2';") == [["0"]])

        // Both keep syncing with the upgraded hub, both ways.
        _ = try SQLiteShell.run(u.hubDB, "INSERT INTO directive (id, target_unit_id, issued_by, issued_on, title) VALUES ('d3', 'school', 'x440101', '2026-12-01', '升级后');")
        _ = try SQLiteShell.run(u.unitDB("hosp"), "UPDATE directive_response SET status = 'completed', completed_on = '2026-12-01' WHERE id = 'r1';")
        _ = try u.sync("school")
        _ = try u.sync("hosp")
        #expect(try u.query(u.unitDB("school"), "SELECT id FROM directive ORDER BY id;") == [["d2"], ["d3"]])
        #expect(try u.query(u.hubDB, "SELECT status FROM directive_response WHERE id = 'r1';") == [["completed"]])
        for unit in ["hosp", "school"] {
            #expect(try u.sync(unit).stdout.contains("checked: the same as the hub"))
            let s = try u.ferry(["status", "--dir", u.node(unit), "--lang", "en"]).stdout
            #expect(s.contains("State: connected") && s.contains("Waiting to go up: 0 rows"), "\(unit): \(s)")
        }
    }

    @Test("a release-1 hub keeps release 1's standard: the built-in standard's changed attendance policy and new response reference cannot be published over it as a minor version")
    func release1StandardStays() throws {
        let u = try Upgraded()
        defer { u.close() }
        let builtIn = try String(contentsOfFile: Repository.path("Sources/FerryStandardFile/Resources/party-building.toml"), encoding: .utf8)
        // As it is (2.0.0): a new major version, refused with what to do instead.
        let asIs = u.dir.file("builtin.toml")
        try builtIn.write(toFile: asIs, atomically: true, encoding: .utf8)
        #expect(builtIn.contains("version = \"2.0.0\""))
        let major = try u.ferry(["hub", "publish", "--dir", u.hubDir, asIs], expectFailure: true)
        #expect(major.status != 0 && major.stderr.contains("new major version") && major.stderr.contains("Publish additive changes as 1.x"), "\(major.stderr)")
        // Relabelled as a minor version of release 1's: the allow-list names what changed.
        let file = u.dir.file("next.toml")
        try builtIn.replacingOccurrences(of: "version = \"2.0.0\"", with: "version = \"1.1.0\"").write(toFile: file, atomically: true, encoding: .utf8)
        let r = try u.ferry(["hub", "publish", "--dir", u.hubDir, file], expectFailure: true)
        #expect(r.status != 0)
        #expect(r.stderr.contains("table 'attendance': conflict policy changed from append-only to review"), "\(r.stderr)")
        #expect(r.stderr.contains("table 'directive_response', column 'directive_id': reference changed"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(u.hubDir)/standards/1.1.0.toml"))
        try u.serve()
        #expect(u.hub.stdout.contains("standard party-building 1.0.0"))
        // The node, opened by this build, has this build's guards on release 1's policy.
        try u.ferry(["status", "--dir", u.node("hosp"), "--lang", "en"])
        #expect(try u.query(u.unitDB("hosp"), "SELECT instr(sql, 'pragma_database_list') > 0 FROM sqlite_master WHERE name = 'ferry_gu_attendance';") == [["1"]])
        let refused = try SQLiteShell.run(u.unitDB("hosp"), "UPDATE attendance SET status = 'absent' WHERE meeting_id = 'hosp-mt1' AND member_id = 'hosp-m1';")
        #expect(refused.status != 0 && refused.error.contains("append-only"), "\(refused.error)")
    }
}
