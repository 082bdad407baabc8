import FerryCore
import FerryHub
import FerryHubServer
import FerryNode
@testable import FerrySystemd
import FerryTestSupport
import FerryTestTraits
import FerryTrust
import FerryWire
import Foundation
import GRDB
import Testing

/// Issue #15: what a clerk and a supervisor see at the terminal, run as the real `ferry`.
@Suite("The clerk's and the supervisor's commands", .serialized, .offThePool)
struct PeopleCommandTests {
    func ferry(_ args: [String], environment: [String: String] = [:], input: String? = nil) throws -> CommandResult {
        try runCommand(FerryBinary.path, args, environment: ["LANG": "C.UTF-8"].merging(environment) { $1 }, input: input)
    }

    /// What no clerk should ever read.
    static func leaksInternals(_ s: String) -> Bool {
        ["SQLite", "INSERT", "UPDATE ", "constraint failed", "while executing", "Error(", "ValidationError"].contains { s.contains($0) }
    }

    @Test("ferry record add fills in the unit's own id, names every missing field at once, refuses bad values and duplicates in Chinese then English, never in SQL")
    func recordAddSpeaksToTheClerk() throws {
        let fixture = try UnitWrittenText(conflicts: false)
        defer { fixture.remove() }
        let node = fixture.nodeDir
        // Nothing typed but a note: both required fields without a default are named.
        let missing = try ferry(["record", "add", "--dir", node, "member", "note=新党员"])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("还缺必填项") && missing.stderr.contains("id") && missing.stderr.contains("name"), "\(missing.stderr)")
        #expect(missing.stderr.contains("still needs: id, name"), "English follows: \(missing.stderr)")
        #expect(!missing.stderr.contains("unit_id"), "the unit's own id is filled in, never asked for: \(missing.stderr)")
        #expect(!Self.leaksInternals(missing.stderr), "\(missing.stderr)")
        #expect(missing.stderr.firstRange(of: "还缺")!.lowerBound < missing.stderr.firstRange(of: "still needs")!.lowerBound, "Chinese first")

        let bad = try ferry(["record", "add", "--dir", node, "member", "id=m9", "name=张三", "status=retired", "join_date=2026-02-30"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("status") && bad.stderr.contains("'full', 'probationary', 'transferred'"), "\(bad.stderr)")
        #expect(bad.stderr.contains("join_date") && bad.stderr.contains("YYYY-MM-DD"), "every bad value is named: \(bad.stderr)")
        #expect(!Self.leaksInternals(bad.stderr), "\(bad.stderr)")

        let added = try ferry(["record", "add", "--dir", node, "member", "id=m9", "name=张三"])
        #expect(added.status == 0, "\(added.stderr)")
        #expect(added.stdout.contains("已新增 member m9") && added.stdout.contains("added member m9"), "\(added.stdout)")
        let stored = try runCommand("/usr/bin/sqlite3", ["\(node)/unit.db", "SELECT unit_id, name, status FROM member WHERE id = 'm9'"])
        #expect(stored.stdout == "u-a|张三|full\n", "the unit's id and the default were filled in: \(stored.stdout) \(stored.stderr)")

        let twice = try ferry(["record", "add", "--dir", node, "member", "id=m9", "name=李四"])
        #expect(twice.status != 0 && twice.stderr.contains("已有编号为 m9 的记录") && twice.stderr.contains("ferry record set"), "\(twice.stderr)")
        #expect(!Self.leaksInternals(twice.stderr), "\(twice.stderr)")

        let foreign = try ferry(["record", "add", "--dir", node, "member", "id=m10", "name=王五", "unit_id=u-b"])
        #expect(foreign.status != 0 && foreign.stderr.contains("u-a"), "another unit's id is refused, naming this unit's: \(foreign.stderr)")

        let english = try ferry(["record", "add", "--dir", node, "--lang", "en", "member", "note=x"])
        #expect(english.status != 0 && english.stderr.contains("still needs") && !english.stderr.contains("还缺"), "\(english.stderr)")
        let chinese = try ferry(["record", "add", "--dir", node, "member", "id=m11", "name=赵六"], environment: ["LANG": "zh_CN.UTF-8"])
        #expect(chinese.status == 0 && chinese.stdout == "已新增 member m11，下次同步时上报\n", "\(chinese.stdout)")
    }

    @Test("ferry record set on a row that does not exist changes nothing and says so; on one that does, it updates it")
    func recordSetRefusesMissingRows() throws {
        let fixture = try UnitWrittenText(conflicts: false)
        defer { fixture.remove() }
        let node = fixture.nodeDir
        let before = try runCommand("/usr/bin/sqlite3", ["\(node)/unit.db", "SELECT count(*) FROM ferry_capture"]).stdout
        let nope = try ferry(["record", "set", "--dir", node, "member", "nope", "name=x"])
        #expect(nope.status != 0, "\(nope.stdout)")
        #expect(!nope.stdout.contains("updated"), "\(nope.stdout)")
        #expect(nope.stderr.contains("没有 id 为 nope 的记录") && nope.stderr.contains("no row with id nope"), "\(nope.stderr)")
        #expect(try runCommand("/usr/bin/sqlite3", ["\(node)/unit.db", "SELECT count(*) FROM ferry_capture"]).stdout == before, "nothing captured")

        #expect(try ferry(["record", "add", "--dir", node, "member", "id=m1x", "name=甲"]).status == 0)
        let set = try ferry(["record", "set", "--dir", node, "member", "m1x", "note=调入"])
        #expect(set.status == 0 && set.stdout.contains("已修改 member m1x"), "\(set.stdout) \(set.stderr)")
        let key = try ferry(["record", "set", "--dir", node, "member", "m1x", "unit_id=u-b"])
        #expect(key.status != 0 && key.stderr.contains("不能修改"), "\(key.stderr)")
        #expect(try runCommand("/usr/bin/sqlite3", ["\(node)/unit.db", "SELECT note, unit_id FROM member WHERE id = 'm1x'"]).stdout == "调入|u-a\n")
    }

    /// A hub folder with one unit whose node last synced `daysAgo` days ago (by the hub's clock).
    func hubWithQuietUnit(daysAgo: Int) throws -> (TemporaryDirectory, String) {
        let dir = try TemporaryDirectory("ferry-people")
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        let clock = ManualClock(now - UInt64(daysAgo) * 86_400_000)
        let text = try String(contentsOfFile: Repository.path("Tests/Fixtures/test-standard.toml"), encoding: .utf8)
        let hub = try Hub(directory: dir.file("hub"), standard: text, clock: clock)
        _ = try hub.addUnit(OrgUnit(id: "prov", name: "省", parentID: nil, level: .province, industry: nil, region: nil))
        let token = try hub.addUnit(OrgUnit(id: "u-q", name: "安静单位", parentID: "prov", level: .unit, industry: "medical", region: nil))
        let answer = try hub.enrol(EnrolRequest(token: EnrolmentToken(parsing: token)!, key: SigningKey(), hostname: "box"))
        let node = try #require(try hub.registry.node(answer.nodeID))
        let header = try JSONEncoder().encode(
            ExchangeRequest(maxBytes: 65536, standardVersion: hub.store.standard.version.description, pendingRows: 0, clockMillis: clock.nowMillis(), epoch: 0))
        _ = try hub.session { () throws(WireError) in try hub.exchange(from: node, body: ExchangeEnvelope(header: [UInt8](header), changeset: nil).encode()) }
        return (dir, dir.file("hub"))
    }

    @Test("ferry report counts a unit silent after the hub's own silent_after_days (from hub.toml, or as the serving hub recorded it), like its dashboard")
    func reportUsesTheHubsSilentDays() throws {
        let (dir, hubDir) = try hubWithQuietUnit(daysAgo: 3)
        defer { dir.remove() }
        // The defaults (7 days): three quiet days are not silent.
        let plain = try ferry(["report", "--dir", hubDir, "--view", "silent", "--lang", "en"])
        #expect(plain.status == 0, "\(plain.stderr)")
        #expect(plain.stdout.contains("silent 0"), "\(plain.stdout)")
        // The hub's config says 2 days.
        let config = dir.file("hub.toml")
        try "dir = \"\(hubDir)\"\nlisten = \"127.0.0.1:0\"\nsilent_after_days = 2\n".write(toFile: config, atomically: true, encoding: .utf8)
        let fromConfig = try ferry(["report", "--config", config, "--view", "silent", "--lang", "en"])
        #expect(fromConfig.status == 0 && fromConfig.stdout.contains("silent 1") && fromConfig.stdout.contains("silent for 3+ days"), "\(fromConfig.stdout) \(fromConfig.stderr)")
        // A hub served with that config records it, so a report beside it agrees without --config.
        let serve = try ChildProcess(FerryBinary.path, ["hub", "serve", "--config", config])
        defer { serve.stop() }
        _ = try serve.waitFor("ferry hub listening on (\\S+)")
        let beside = try ferry(["report", "--dir", hubDir, "--view", "silent", "--lang", "en"])
        #expect(beside.status == 0 && beside.stdout.contains("silent 1"), "\(beside.stdout) \(beside.stderr)")
        let flag = try ferry(["report", "--dir", hubDir, "--view", "silent", "--lang", "en", "--silent-after-days", "5"])
        #expect(flag.status == 0 && flag.stdout.contains("silent 0"), "the flag still wins: \(flag.stdout)")
    }

    @Test("every terminal command picks its language by one rule: --lang, else LC_ALL, LC_MESSAGES, LANG (the first set)")
    func oneLanguageRule() throws {
        let (dir, hubDir) = try hubWithQuietUnit(daysAgo: 3)
        defer { dir.remove() }
        let chinese = ["LC_ALL": "zh_CN.UTF-8", "LANG": "en_US.UTF-8"]
        let english = ["LC_ALL": "", "LC_MESSAGES": "en_US.UTF-8", "LANG": "zh_CN.UTF-8"]
        // ferry report and ferry hub nodes (a terminal table and a clerk's refusal) agree.
        let zhReport = try ferry(["report", "--dir", hubDir, "--view", "silent"], environment: chinese)
        let enReport = try ferry(["report", "--dir", hubDir, "--view", "silent"], environment: english)
        #expect(zhReport.stdout.contains("失联") && !enReport.stdout.contains("失联") && enReport.stdout.contains("silent"), "\(zhReport.stdout) | \(enReport.stdout)")
        // A clerk's screen: the status of a folder with no node is in both languages, Chinese first.
        let status = try ferry(["status", "--dir", dir.file("no-such-node")], environment: english)
        #expect(status.status != 0 && status.stderr.contains("没有已登记的节点") && status.stderr.contains("no enrolled node"), "\(status.stderr)")
        // The flag beats the locale.
        let flagged = try ferry(["report", "--dir", hubDir, "--view", "silent", "--lang", "en"], environment: chinese)
        #expect(!flagged.stdout.contains("失联"))
    }

    @Test("ferry hub serve listens on [::1] as ferry config check allows, and ferry hub admin link names the port the hub serves on")
    func ipv6ListenAndTheLoginLinksPort() throws {
        let (dir, hubDir) = try hubWithQuietUnit(daysAgo: 0)
        defer { dir.remove() }
        let config = dir.file("hub.toml")
        try "dir = \"\(hubDir)\"\nlisten = \"[::1]:0\"\n".write(toFile: config, atomically: true, encoding: .utf8)
        let check = try ferry(["config", "check", "--role", "hub", config])
        #expect(check.status == 0, "\(check.stdout) \(check.stderr)")
        let serve = try ChildProcess(FerryBinary.path, ["hub", "serve", "--config", config])
        defer { serve.stop() }
        let port = try serve.waitFor("ferry hub listening on http://\\[::1\\]:(\\d+)")
        #expect(port != "7700" && port != "0")
        let health = try runCommand("/usr/bin/curl", ["-s", "-g", "http://[::1]:\(port)/v1/health"])
        #expect(health.stdout.contains("\"ok\""), "\(health.stdout) \(health.stderr)")
        #expect(try ferry(["hub", "admin", "add", "--dir", hubDir, "--name", "analyst"], input: "a long enough password\n").status == 0)
        let link = try ferry(["hub", "admin", "link", "--dir", hubDir, "--name", "analyst"])
        #expect(link.status == 0, "\(link.stderr)")
        #expect(link.stdout.hasPrefix("http://[::1]:\(port)/login?ticket="), "\(link.stdout)")
        let given = try ferry(["hub", "admin", "link", "--dir", hubDir, "--name", "analyst", "--url", "https://hub.example.org/"])
        #expect(given.stdout.hasPrefix("https://hub.example.org/login?ticket="), "\(given.stdout)")
    }
}

/// Issue #15: `ferry status` tells a running daemon from a killed one, and a refusal, a revoked
/// node or a full disk from a network down; it never waits behind a clerk's open transaction.
@Suite("The clerk's status screen", .serialized, .offThePool)
struct StatusScreenTests {
    func status(_ p: Province, _ unit: String, lang: String = "en") throws -> (text: String, json: [String: Any]) {
        let text = try p.ferry(["status", "--dir", p.nodeDir(unit), "--lang", lang]).stdout
        let raw = try p.ferry(["status", "--dir", p.nodeDir(unit), "--json"]).stdout
        let json = try JSONSerialization.jsonObject(with: Data(raw.utf8)) as? [String: Any] ?? [:]
        return (text, json)
    }

    @Test("connected while the daemon runs; 'the sync daemon is not running' after kill -9, though the last sync was fine; a second daemon on the folder is refused")
    func daemonKilledIsNotConnected() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        let daemon = try ChildProcess(FerryBinary.path, ["node", "run", "--dir", p.nodeDir("u-a"), "--interval", "600"], environment: ["FERRY_LOG_LEVEL": "info"])
        defer { daemon.stop() }
        let deadline = Date().addingTimeInterval(60)
        while !daemon.stderr.contains("sync done") && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        #expect(daemon.stderr.contains("sync done"), "\(daemon.stderr)")
        var s = try status(p, "u-a")
        #expect(s.json["state"] as? String == "connected", "\(s.text)")
        #expect(s.text.contains("State: connected"), "\(s.text)")
        let second = try runCommand(FerryBinary.path, ["node", "run", "--dir", p.nodeDir("u-a")])
        #expect(second.status != 0 && second.stderr.contains("already running"), "\(second.stderr)")
        daemon.crash()
        s = try status(p, "u-a")
        #expect(s.json["state"] as? String == "daemon_stopped", "\(s.text)")
        #expect(s.text.contains("the sync daemon is not running") && s.text.contains("systemctl start ferry-node"), "\(s.text)")
        let zh = try p.ferry(["status", "--dir", p.nodeDir("u-a"), "--lang", "zh"]).stdout
        #expect(zh.contains("状态：后台同步未运行"), "\(zh)")
    }

    @Test("while a sync runs ferry status shows rows sent and to go, a share done and the last progress; after it, nothing of the kind")
    func syncInProgressIsShown() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        try p.sync("u-a")
        try p.writeDay("u-a", members: 200, tag: "p1")
        // A slow link, so the sync lasts long enough to be watched.
        let proxy = try p.throughProxy("u-a", FaultPlan(bytesPerSecond: 6_000))
        defer { proxy.stop() }
        let sync = try ChildProcess(FerryBinary.path, ["sync", "--dir", p.nodeDir("u-a"), "--batch-bytes", "4096"])
        var seen: (text: String, json: [String: Any])?
        let deadline = Date().addingTimeInterval(120)
        while sync.process.isRunning && Date() < deadline {
            let s = try status(p, "u-a")
            if let progress = s.json["sync_in_progress"] as? [String: Any], (progress["rows_sent"] as? Int ?? 0) > 0, (progress["rows_left"] as? Int ?? 0) > 0 {
                seen = s
                break
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
        sync.process.waitUntilExit()
        #expect(sync.process.terminationStatus == 0, "\(sync.stderr)")
        let progress = try #require(seen, "ferry status never showed the sync under way").json["sync_in_progress"] as? [String: Any]
        #expect((progress?["percent"] as? Int).map { (1..<100).contains($0) } == true, "\(progress ?? [:])")
        #expect(seen?.text.contains("Syncing: ") == true && seen?.text.contains("to go (") == true, "\(seen?.text ?? "")")
        let zh = try p.ferry(["status", "--dir", p.nodeDir("u-a"), "--lang", "zh"]).stdout
        let after = try status(p, "u-a")
        #expect(after.json["sync_in_progress"] == nil && !after.text.contains("Syncing:") && !zh.contains("正在同步"), "\(after.text)")
    }

    @Test("after a failed sync the running daemon's next attempt is on the screen, with its time; once the daemon is gone it is not")
    func nextAttemptIsShown() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        try p.sync("u-a")
        p.hub.stop()
        let daemon = try ChildProcess(FerryBinary.path, ["node", "run", "--dir", p.nodeDir("u-a"), "--interval", "600"], environment: ["FERRY_LOG_LEVEL": "info"])
        defer { daemon.stop() }
        let deadline = Date().addingTimeInterval(60)
        while !daemon.stderr.contains("next attempt") && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        var s = try status(p, "u-a")
        let now = Date().timeIntervalSince1970 * 1000
        let next = try #require(s.json["next_attempt_at_ms"] as? Double ?? (s.json["next_attempt_at_ms"] as? Int).map(Double.init), "\(s.text)")
        // Just past at most by the daemon's once-a-second look (and this machine's load).
        #expect(next > now - 15_000 && next < now + 3_600_000, "\(next) vs \(now)")
        #expect(s.text.contains("Next attempt: ") && s.json["state"] as? String == "unreachable", "\(s.text)")
        let zh = try p.ferry(["status", "--dir", p.nodeDir("u-a"), "--lang", "zh"]).stdout
        #expect(zh.contains("下次自动重试："), "\(zh)")
        daemon.crash()
        s = try status(p, "u-a")
        #expect(s.json["next_attempt_at_ms"] == nil && !s.text.contains("Next attempt"), "\(s.text)")
    }

    @Test("a revoked node is told to enrol again, not to check the network")
    func revokedNodeIsTold() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        try p.sync("u-a")
        let node = try p.identity("u-a").nodeID
        try p.ferry(["hub", "node", "revoke", "--dir", p.hubDir, node])
        try p.ferry(["record", "add", "--dir", p.nodeDir("u-a"), "member", "id=m1", "name=甲"])
        try p.sync("u-a", expectFailure: true)
        let s = try status(p, "u-a")
        #expect(s.json["state"] as? String == "not_enrolled", "\(s.text)")
        #expect(s.text.contains("new enrolment token") && !s.text.contains("check the network"), "\(s.text)")
    }

    @Test("ferry status answers at once while a clerk holds a write transaction open in the sqlite3 shell")
    func statusDoesNotWaitForTheWriteLock() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        try p.sync("u-a")
        let shell = try ChildProcess("/usr/bin/sqlite3", [p.unitDB("u-a")], stdinText: "BEGIN IMMEDIATE;\nINSERT INTO member (id, unit_id, name) VALUES ('m-open', 'u-a', '未提交');\nSELECT 'holding';\n")
        defer {
            shell.closeInput()
            shell.stop()
        }
        _ = try shell.waitFor("(holding)")
        let r = try runCommand(FerryBinary.path, ["status", "--dir", p.nodeDir("u-a"), "--lang", "en"])
        #expect(r.status == 0, "status failed behind the open transaction: \(r.stderr)")
        #expect(r.stdout.contains("Waiting to go up: 0 rows"), "the uncommitted row is not counted: \(r.stdout)")
    }

    @Test("each failure the last sync recorded gets its own state and advice")
    func failuresAreToldApart() {
        let cases: [(Bool?, String?, String?, NodeState.Condition)] = [
            (true, nil, nil, .connected), (false, nil, nil, .daemonStopped), (nil, nil, nil, .manual),
            (true, "could not connect", "transport", .unreachable), (true, "refused", "invalid_value", .refused),
            (true, "refused", "out_of_scope", .refused), (true, "revoked", "revoked", .notEnrolled),
            (true, "unknown", "unknown_node", .notEnrolled), (true, "busy", "overloaded", .hubBusy),
            (true, "write failed: SQLite error 13: database or disk is full", "local", .diskFull),
            (true, "database is locked", "local", .localProblem),
        ]
        for (daemon, error, kind, expected) in cases {
            let s = NodeState.assess(daemonRunning: daemon, lastOK: 1, lastError: error, errorKind: kind)
            #expect(s.condition == expected, "\(String(describing: kind)): \(s)")
            if expected != .unreachable { #expect(!(s.adviceEn ?? "").contains("check the network"), "\(expected): \(s.adviceEn ?? "")") }
            if expected != .connected { #expect(s.adviceZh != nil || expected == .hubBusy) }
        }
        #expect(NodeState.assess(daemonRunning: nil, lastOK: nil, lastError: nil, errorKind: nil).condition == .neverSynced)
    }
}

/// Issue #15: the operator's signals — one logfmt line per event at its journald priority.
@Suite("The operator's log", .serialized, .offThePool)
struct OperatorLogTests {
    /// `<N>key=value …`: a priority prefix, then only key=value pairs (values bare or quoted).
    static var journalLine: Regex<(Substring, Substring, Substring, Substring?, Substring?)> { #/^<([0-7])>level=\w+ logger=\S+ msg=("(?:[^"\\]|\\.)*"|\S+)( [a-z_]+=("(?:[^"\\]|\\.)*"|\S+))*$/# }

    @Test("under journald every hub line carries its priority and parses as key=value; a push and a revoked node's attempt are each a line at their priority; no member's name reaches the log")
    func hubLogsEventsForTheJournal() throws {
        let p = try Province(units: ["u-a"])
        defer { p.shutdown() }
        p.hub.stop()
        p.hubEnvironment = ["JOURNAL_STREAM": "8:12345"]
        try p.startHub()
        try p.ferry(["record", "add", "--dir", p.nodeDir("u-a"), "member", "id=m1", "name=欧阳锋华"])
        try p.sync("u-a")
        let node = try p.identity("u-a").nodeID
        try p.ferry(["hub", "node", "revoke", "--dir", p.hubDir, node])
        try p.ferry(["record", "add", "--dir", p.nodeDir("u-a"), "member", "id=m2", "name=黄药师甲"])
        try p.sync("u-a", expectFailure: true)
        Thread.sleep(forTimeInterval: 0.5)
        let lines = p.hub.stderr.split(separator: "\n").map(String.init)
        #expect(!lines.isEmpty)
        for line in lines { #expect(line.wholeMatch(of: Self.journalLine) != nil, "not a journald logfmt line: \(line)") }
        func find(_ msg: String) -> String? { lines.first { $0.contains("msg=\"\(msg)\"") } }
        #expect(find("push applied")?.hasPrefix("<6>") == true, "\(lines)")
        #expect(find("push applied")?.contains("rows=1") == true, "\(lines)")
        #expect(find("auth revoked")?.hasPrefix("<4>") == true, "a revoked node's attempt is a warning: \(lines)")
        #expect(!p.hub.stderr.contains("欧阳锋华") && !p.hub.stderr.contains("黄药师甲"), "personal data in the log")
        // The node's revocation itself was done by another process (ferry hub node revoke): it
        // is in the audit log the hub keeps, and that command says so on its terminal.
    }

    @Test("ferry --version names the release, the protocol and libcurl")
    func version() throws {
        let r = try runCommand(FerryBinary.path, ["--version"])
        #expect(r.status == 0 && r.stdout.hasPrefix("ferry \(FerryRelease.version) (protocol \(FerryRelease.protocolVersion); libcurl/"), "\(r.stdout) \(r.stderr)")
    }

    @Test("JournalLogHandler quotes what needs quoting and keeps one event on one line")
    func logfmtQuoting() {
        #expect(JournalLogHandler.quoted("plain") == "plain")
        #expect(JournalLogHandler.quoted("two words") == "\"two words\"")
        #expect(JournalLogHandler.quoted("a=\"b\"\nc") == #""a=\"b\"\nc""#)
        #expect(JournalLogHandler.quoted("") == "\"\"")
        #expect(JournalLogHandler.quoted("\u{1B}[2J") == "\"\\u001b[2J\"")
        let line = JournalLogHandler.line(level: .warning, label: "ferry.node", message: "sync failed", fields: ["error": "cut\nagain", "n": "3"], journal: true, now: Date())
        #expect(line == #"<4>level=warning logger=ferry.node msg="sync failed" error="cut\nagain" n=3"#)
        #expect(line.wholeMatch(of: OperatorLogTests.journalLine) != nil)
    }
}

/// Issue #15: metrics an operator can alert on, checked by Prometheus's own tool.
@Suite("The operator's metrics and alerts", .serialized, .offThePool)
struct OperatorMetricsTests {
    static let promtool = "/usr/bin/promtool"
    static var rulesFile: String { Repository.path("deploy/prometheus/ferry-alerts.yml") }

    func scrape(_ port: Int) throws -> String {
        try runCommand("/usr/bin/curl", ["-s", "--max-time", "10", "http://127.0.0.1:\(port)/metrics"]).stdout
    }

    @Test("the alert rules pass promtool check rules and name only metrics Ferry serves", .enabled(if: FileManager.default.isExecutableFile(atPath: promtool)))
    func alertRulesCheck() throws {
        let r = try runCommand(Self.promtool, ["check", "rules", Self.rulesFile])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        let text = try String(contentsOfFile: Self.rulesFile, encoding: .utf8)
        let named = Set(text.matches(of: /ferry_[a-z_]+/).map { String($0.output) })
        #expect(!named.isEmpty)
        for name in named { #expect(MetricsEndpoint.help[name] != nil, "the rules name \(name), which Ferry does not serve") }
    }

    @Test("a hub's and a node's /metrics pass promtool check metrics: every metric has its HELP; silent units are a gauge", .enabled(if: FileManager.default.isExecutableFile(atPath: promtool)))
    func metricsPassPromtool() throws {
        let p = try Province(units: ["u-a", "u-b"])
        defer { p.shutdown() }
        try p.sync("u-a")
        let nodePort = Int.random(in: 30000...39999)
        let daemon = try ChildProcess(FerryBinary.path, ["node", "run", "--dir", p.nodeDir("u-a"), "--metrics", "127.0.0.1:\(nodePort)"])
        defer { daemon.stop() }
        let deadline = Date().addingTimeInterval(30)
        while !daemon.stderr.contains("sync done") && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        for (who, port) in [("hub", p.metricsPort), ("node", nodePort)] {
            let text = try scrape(port)
            #expect(text.contains("# TYPE ferry_"), "\(who): \(text)")
            let check = try runCommand("/bin/sh", ["-c", "curl -s http://127.0.0.1:\(port)/metrics | \(Self.promtool) check metrics"])
            #expect(check.status == 0 && check.stdout.isEmpty && check.stderr.isEmpty, "\(who): promtool: \(check.stdout) \(check.stderr)")
        }
        let hub = try scrape(p.metricsPort)
        // u-b never synced: silent; u-a synced just now.
        #expect(hub.contains("ferry_hub_units 2"), "\(hub)")
        #expect(hub.contains("ferry_hub_units_silent 1"), "\(hub)")
    }
}

/// Issue #15: a full or busy disk is told as such, at the hub and at the node, never as SQL.
@Suite("Storage failures in words", .offThePool)
struct StorageFailureWordsTests {
    @Test("the hub's database failing says which failure it is (disk full, busy, damaged), Chinese and English, without SQLite's text")
    func hubStorageFailures() {
        let full = WireError.hubStorage(DatabaseError(resultCode: .SQLITE_FULL, message: "database or disk is full"), doing: "write the batch")
        #expect(full.code == .unavailable && full.retryable)
        #expect(full.message.contains("disk is full") && full.message.contains("operator must free disk space"), "\(full.message)")
        #expect(full.messageZh.contains("磁盘已满"), "\(full.messageZh)")
        let busy = WireError.hubStorage(DatabaseError(resultCode: .SQLITE_BUSY, message: "database is locked"), doing: "record the request's nonce in its registry")
        #expect(busy.message.contains("busy") && busy.messageZh.contains("正忙"))
        let damaged = WireError.hubStorage(DatabaseError(resultCode: .SQLITE_CORRUPT, message: "database disk image is malformed"), doing: "read changes")
        #expect(damaged.message.contains("restore it from a backup") && damaged.messageZh.contains("已损坏"))
        for e in [full, busy, damaged] {
            #expect(!e.message.contains("SQLite") && !e.messageZh.contains("SQLite") && !e.message.contains("malformed"), "\(e.message)")
        }
    }
}
