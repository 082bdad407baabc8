import FerryHubServer
import FerryReports
import FerryTestSupport
import FerryTestTraits
import Foundation
import Testing

/// The supervisor's and the clerk's terminal commands, run as the real `ferry` binary.
@Suite("Hub commands in a terminal", .serialized, .offThePool)
struct HubCommandTests {
    func ferry(_ args: [String], environment: [String: String] = [:], input: String? = nil) throws -> CommandResult {
        try runCommand(FerryBinary.path, args, environment: environment, input: input)
    }

    /// Runs `ferry` from `folder`, as a supervisor typing in a shell there.
    func ferry(in folder: String, _ args: [String]) throws -> CommandResult {
        try runCommand("/bin/sh", ["-c", "cd \"$0\" && exec \"$@\"", folder, FerryBinary.path] + args)
    }

    /// The characters a terminal would act on: C0 controls (but the line feeds and column tabs
    /// the listing itself prints), DEL, C1.
    static func terminalControls(_ s: String) -> [String] {
        s.unicodeScalars.filter { ($0.value < 0x20 && $0 != "\n" && $0 != "\t") || (0x7F...0x9F).contains($0.value) }.map { String(format: "U+%04X", $0.value) }
    }

    @Test("ferry hub conflicts prints 'no conflicts' on a hub without any, and lists a merge's losing value, in either language")
    func hubConflictsListsWithAndWithout() throws {
        let clean = try UnitWrittenText(conflicts: false)
        defer { clean.remove() }
        let none = try ferry(["hub", "conflicts", "--dir", clean.hubDir, "--lang", "en"])
        #expect(none.status == 0, "\(none.stderr)")
        #expect(none.stdout == "no conflicts\n")
        let noneZh = try ferry(["hub", "conflicts", "--dir", clean.hubDir], environment: ["LANG": "zh_CN.UTF-8", "LC_ALL": "zh_CN.UTF-8"])
        #expect(noneZh.status == 0 && noneZh.stdout == "没有冲突记录\n", "\(noneZh.stdout) \(noneZh.stderr)")

        let fixture = try UnitWrittenText()
        defer { fixture.remove() }
        let listed = try ferry(["hub", "conflicts", "--dir", fixture.hubDir, "--lang", "en"])
        #expect(listed.status == 0, "\(listed.stderr)")
        #expect(listed.stdout.contains("member('m1').name: lost value") && listed.stdout.contains("from \(fixture.nodeID)"), "\(listed.stdout)")
        let zh = try ferry(["hub", "conflicts", "--dir", fixture.hubDir, "--lang", "zh"])
        #expect(zh.status == 0 && zh.stdout.contains("被覆盖的值"), "\(zh.stdout) \(zh.stderr)")
        // Chinese throughout: no English status, kind or policy words among the Chinese.
        for word in ["overwritten", "resolved", "held", "concurrent-edit", "lww", "supervisor-wins", "review"] {
            #expect(!zh.stdout.contains(word), "the Chinese list says '\(word)': \(zh.stdout)")
        }
    }

    @Test("no listing of unit- or node-written text lets an escape sequence reach the terminal; each shows it as visible escapes")
    func unitWrittenTextIsEscapedOnTheTerminal() throws {
        let fixture = try UnitWrittenText()
        defer { fixture.remove() }
        let listings: [(String, [String], String)] = [
            // (ferry hub conflicts shows the first 57 characters of a long value.)
            ("hub conflicts", ["hub", "conflicts", "--dir", fixture.hubDir, "--lang", "en"], "\\x1b[2J\\x1b]52;c;ZXZ"),
            ("hub quarantine", ["hub", "quarantine", "--dir", fixture.hubDir], "@SUM(1+1)\\x1b[31mretired"),
            ("hub nodes", ["hub", "nodes", "--dir", fixture.hubDir], "box\\x1b]0;owned\\x07\\x1b[8m"),
            ("report conflicts", ["report", "--dir", fixture.hubDir, "--view", "conflicts", "--lang", "en"], "\\x1b[2J\\x1b]52;c;ZXZpbA==\\x07"),
            ("report quarantine", ["report", "--dir", fixture.hubDir, "--view", "quarantine", "--lang", "en"], "@SUM(1+1)\\x1b[31mretired"),
            ("conflicts (node)", ["conflicts", "--dir", fixture.nodeDir, "--lang", "en"], "-2+3\\x1b[1A\\x1b[2K"),
        ]
        for (name, args, visible) in listings {
            let r = try ferry(args)
            #expect(r.status == 0, "ferry \(name): \(r.stderr)")
            #expect(Self.terminalControls(r.stdout).isEmpty, "ferry \(name) printed control characters \(Self.terminalControls(r.stdout)): \(r.stdout)")
            #expect(r.stdout.contains(visible), "ferry \(name) does not show \(visible): \(r.stdout)")
        }
        // The host name is the node list's last column, and the line keeps its tab-separated shape.
        let nodes = try ferry(["hub", "nodes", "--dir", fixture.hubDir]).stdout.split(separator: "\n")
        #expect(nodes[0].hasSuffix("\thost") && nodes[1].split(separator: "\t").count == nodes[0].split(separator: "\t").count, "\(nodes)")
    }

    @Test("the terminal escaping keeps Chinese and ordinary punctuation and escapes C0, DEL, C1 and bidirectional overrides")
    func terminalEscapingRule() {
        #expect(ReportFormat.terminal("县人民医院 · 张伟（已核对）, 3/4") == "县人民医院 · 张伟（已核对）, 3/4")
        #expect(ReportFormat.terminal("a\nb\tc\rd") == "a\\nb\\tc\\rd")
        #expect(ReportFormat.terminal("\u{0}\u{7}\u{1B}[0m\u{7F}\u{85}\u{9B}") == "\\x00\\x07\\x1b[0m\\x7f\\x85\\x9b")
        #expect(ReportFormat.terminal("abc\u{202E}fed\u{2066}") == "abc\\u{202E}fed\\u{2066}")
        #expect(Self.terminalControls(ReportTables.aligned(["v"], [[UnitWrittenText.hostileName]])).isEmpty)
    }

    @Test("a hub command on a folder without a hub fails naming the folder and what to do, and creates nothing; only init, serve and sample create")
    func readOnlyCommandsNeverCreateAHub() throws {
        let dir = try TemporaryDirectory("ferry-nohub")
        defer { dir.remove() }
        let missing = dir.file("ferry-hbu")  // a typo of the real folder
        let commands: [[String]] = [
            ["hub", "nodes", "--dir", missing], ["hub", "counts", "--dir", missing], ["hub", "conflicts", "--dir", missing],
            ["hub", "quarantine", "--dir", missing], ["hub", "unit", "list", "--dir", missing],
            ["hub", "unit", "add", "--dir", missing, "--id", "p", "--name", "省", "--level", "province"],
            ["hub", "token", "--dir", missing, "--unit", "u"], ["hub", "node", "revoke", "--dir", missing, "u-n1"],
            ["hub", "admin", "list", "--dir", missing], ["hub", "admin", "add", "--dir", missing, "--name", "a"],
            ["hub", "admin", "link", "--dir", missing, "--name", "a"],
            ["hub", "publish", "--dir", missing, Repository.path("Tests/Fixtures/test-standard.toml")],
            ["report", "--dir", missing],
        ]
        for args in commands {
            let r = try ferry(args)
            #expect(r.status != 0, "ferry \(args.prefix(3).joined(separator: " ")) succeeded on a folder without a hub")
            #expect(r.stderr.contains(missing) && r.stderr.contains("holds no hub") && r.stderr.contains("没有上级数据"), "\(args): \(r.stderr)")
            #expect(r.stderr.contains("ferry hub init --dir \(missing)"), "the message says how to create one: \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: missing), "ferry \(args.prefix(3).joined(separator: " ")) created \(missing)")
        }
        // Without --dir, in a folder with no hub: the default folder name is refused too, and nothing appears.
        let bare = try ferry(in: dir.path, ["hub", "nodes"])
        #expect(bare.status != 0 && bare.stderr.contains("ferry-hub"), "\(bare.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)

        // ferry hub init creates one, once; the read-only commands then work.
        let hubDir = dir.file("hub")
        let made = try ferry(["hub", "init", "--dir", hubDir, "--standard", Repository.path("Tests/Fixtures/test-standard.toml")])
        #expect(made.status == 0 && made.stdout.contains("ferry-test 1.0.0"), "\(made.stdout) \(made.stderr)")
        let key = try String(contentsOfFile: "\(hubDir)/hub.key", encoding: .utf8)
        #expect(try ferry(["hub", "nodes", "--dir", hubDir]).status == 0)
        let again = try ferry(["hub", "init", "--dir", hubDir])
        #expect(again.status != 0 && again.stderr.contains("already holds a hub"), "\(again.stderr)")
        #expect(try String(contentsOfFile: "\(hubDir)/hub.key", encoding: .utf8) == key, "the signing key is untouched")
        // A folder holding something else is not turned into a hub (it would be made private).
        let other = dir.file("papers")
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: "\(other)/notes.txt"))
        let intoOther = try ferry(["hub", "init", "--dir", other])
        #expect(intoOther.status != 0 && intoOther.stderr.contains("is not empty"), "\(intoOther.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: other) == ["notes.txt"])
        // A hub missing one of its databases is reported as incomplete, not silently rebuilt.
        try FileManager.default.removeItem(atPath: "\(hubDir)/registry.db")
        let broken = try ferry(["hub", "nodes", "--dir", hubDir])
        #expect(broken.status != 0 && broken.stderr.contains("registry.db") && broken.stderr.contains("incomplete"), "\(broken.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(hubDir)/registry.db"))
    }

    @Test("an operator who types relative folders (--dir hub, --dir node) sets up a hub and a node, syncs and reads the status")
    func relativeFolders() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let folder = dir.path
        #expect(try ferry(in: folder, ["hub", "init", "--dir", "hub"]).status == 0)
        let serve = try ChildProcess("/bin/sh", ["-c", "cd \"$0\" && exec \"$@\"", folder, FerryBinary.path, "hub", "serve", "--dir", "hub", "--listen", "127.0.0.1:0"])
        defer { serve.stop() }
        let port = try serve.waitFor("listening on http://127\\.0\\.0\\.1:(\\d+)")
        _ = try ferry(in: folder, ["hub", "unit", "add", "--dir", "hub", "--id", "prov", "--name", "省", "--level", "province"])
        let added = try ferry(in: folder, ["hub", "unit", "add", "--dir", "hub", "--id", "u-a", "--name", "单位", "--parent", "prov", "--industry", "medical"])
        let token = added.stdout.split(separator: "\n").last.map(String.init) ?? ""
        for folderName in ["node", "./node2/"] {
            let t = folderName == "node" ? token : try ferry(in: folder, ["hub", "token", "--dir", "hub", "--unit", "u-a"]).stdout.split(separator: "\n").last.map(String.init) ?? ""
            let enrolled = try ferry(in: folder, ["node", "init", "--dir", folderName, "--hub", "http://127.0.0.1:\(port)", "--token", t, "--lang", "en"])
            #expect(enrolled.status == 0, "\(folderName): \(enrolled.stderr)")
            let synced = try ferry(in: folder, ["sync", "--dir", folderName, "--lang", "en"])
            #expect(synced.status == 0, "\(folderName): \(synced.stderr)")
            let status = try ferry(in: folder, ["status", "--dir", folderName, "--lang", "en"])
            #expect(status.status == 0 && status.stdout.contains("u-a"), "\(folderName): \(status.stdout) \(status.stderr)")
        }
    }
}
