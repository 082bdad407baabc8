import FerryConfig
import FerrySystemd
import FerryTestSupport
import FerryTestTraits
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Config files

@Suite("Operations: config files", .offThePool)
struct OperationsConfigTests {
    @Test("the defaults of both roles validate")
    func defaultsValidate() throws {
        try NodeConfig.defaults.validate()
        try HubConfig.defaults.validate()
    }

    @Test("an empty file gives the defaults")
    func emptyFileGivesDefaults() throws {
        #expect(try NodeConfig.parse("") == NodeConfig.defaults)
        #expect(try HubConfig.parse("") == HubConfig.defaults)
    }

    @Test("a file sets the keys it names and leaves the rest at their defaults")
    func fileOverridesNamedKeys() throws {
        let node = try NodeConfig.parse(
            """
            hub_url = "https://hub.example.org:7700"
            [sync]
            interval_seconds = 60
            [http]
            proxy = "socks5h://10.0.0.1:1080"
            pinned_public_key = "sha256//YhKJKSzoTt2b5FP18fvpHo7fJYqQCjAa3HWY3tvRMwE="
            """)
        #expect(node.hubURL == "https://hub.example.org:7700")
        #expect(node.sync.intervalSeconds == 60)
        #expect(node.sync.debounceSeconds == NodeConfig.defaults.sync.debounceSeconds)
        #expect(node.http.proxy == "socks5h://10.0.0.1:1080")

        let hub = try HubConfig.parse(#"listen = "[::]:7700""# + "\n[metrics]\nlisten = \"127.0.0.1:9701\"")
        #expect(hub.listenAddress == ListenAddress("[::]:7700"))
        #expect(hub.listenAddress?.host == "::")
        #expect(hub.listenAddress?.port == 7700)
        #expect(hub.metrics.address?.port == 9701)
    }

    @Test("the message for an out-of-range number names the file, the key, the rule and the value")
    func outOfRangeMessage() {
        #expect(throws: ConfigError(file: "ferry.toml", key: "sync.interval_seconds", problem: "must be a whole number ≥ 1 (found -5)")) {
            try NodeConfig.parse("[sync]\ninterval_seconds = -5", file: "ferry.toml")
        }
        do {
            _ = try NodeConfig.parse("[sync]\ninterval_seconds = -5", file: "ferry.toml")
            Issue.record("accepted -5")
        } catch {
            #expect(error.description == "ferry.toml: sync.interval_seconds must be a whole number ≥ 1 (found -5)")
        }
    }

    /// (file text, the key the error must name, a phrase the problem must contain)
    static let badNodeFiles: [(String, String, String)] = [
        ("[sync]\ninterval_seconds = 0", "sync.interval_seconds", "≥ 1 (found 0)"),
        ("[sync]\ninterval_seconds = \"300\"", "sync.interval_seconds", "whole number (integer), e.g. 300 (found the string \"300\")"),
        ("[sync]\ninterval_seconds = 2.5", "sync.interval_seconds", "whole number (integer)"),
        ("[sync]\ndebounce_seconds = -1", "sync.debounce_seconds", "≥ 0"),
        ("[sync]\nbatch_bytes = 100", "sync.batch_bytes", "from 1024 to 16777216 (found 100)"),
        ("dir = \"var/lib/ferry\"", "dir", "absolute path"),
        ("dir = \"\"", "dir", "absolute path"),
        ("dir = 5", "dir", "string in double quotes (found the integer 5)"),
        ("hub_url = \"hub.example.org:7700\"", "hub_url", "http:// or https:// URL"),
        ("hub_url = \"ftp://hub.example.org\"", "hub_url", "http:// or https:// URL"),
        ("language = \"fr\"", "language", "one of \"\", \"zh\", \"en\" (found \"fr\")"),
        ("language = true", "language", "string in double quotes (found true)"),
        ("[log]\nlevel = \"loud\"", "log.level", "one of \"trace\""),
        ("[metrics]\nlisten = \"9700\"", "metrics.listen", "host:port"),
        ("[metrics]\nlisten = \"127.0.0.1:70000\"", "metrics.listen", "port from 0 to 65535"),
        ("[http]\nconnect_timeout_seconds = 0", "http.connect_timeout_seconds", "≥ 1"),
        ("[http]\nconnect_timeout_seconds = 30\ntotal_timeout_seconds = 20", "http.total_timeout_seconds", "≥ http.connect_timeout_seconds (30)"),
        ("[http]\nlow_speed_bytes_per_second = 0", "http.low_speed_bytes_per_second", "≥ 1"),
        ("[http]\nca_file = \"certs/ca.pem\"", "http.ca_file", "absolute path"),
        ("[http]\npinned_public_key = \"sha256//abc\"", "http.pinned_public_key", "sha256//"),
        ("[http]\nproxy = \"ftp://10.0.0.1\"", "http.proxy", "schemes"),
        ("[retry]\nbase_seconds = 60\ncap_seconds = 30", "retry.cap_seconds", "≥ retry.base_seconds (60) (found 30)"),
        ("sync = 5", "sync", "must be a section, written [sync]"),
        ("[[sync]]\ninterval_seconds = 5", "sync", "must be a section"),
    ]

    @Test("each kind of bad value in a node config fails naming the key", arguments: badNodeFiles)
    func badNodeValue(text: String, key: String, phrase: String) {
        do {
            let config = try NodeConfig.parse(text, file: "node.toml")
            Issue.record("accepted \(text) as \(config)")
        } catch {
            #expect(error.key == key)
            #expect(error.problem.contains(phrase), "\(error)")
            #expect(error.description.hasPrefix("node.toml: \(key) "))
        }
    }

    static let badHubFiles: [(String, String, String)] = [
        ("listen = \"localhost\"", "listen", "host:port"),
        ("listen = \"\"", "listen", "host:port"),
        ("listen = \"::1:7700\"", "listen", "[::1]:7700"),
        ("max_concurrent_sessions = 0", "max_concurrent_sessions", "≥ 1 (found 0)"),
        ("max_body_bytes = 1000", "max_body_bytes", "≥ 65536 (found 1000)"),
        ("token_lifetime_days = 0", "token_lifetime_days", "≥ 1"),
        ("silent_after_days = -1", "silent_after_days", "≥ 1"),
        ("standard = \"party.toml\"", "standard", "absolute path"),
        ("[log]\nlevel = 3", "log.level", "string in double quotes (found the integer 3)"),
        ("[metrics]\nlisten = \"127.0.0.1:7700\"", "metrics.listen", "must differ from listen"),
    ]

    @Test("each kind of bad value in a hub config fails naming the key", arguments: badHubFiles)
    func badHubValue(text: String, key: String, phrase: String) {
        do {
            let config = try HubConfig.parse(text, file: "hub.toml")
            Issue.record("accepted \(text) as \(config)")
        } catch {
            #expect(error.key == key)
            #expect(error.problem.contains(phrase), "\(error)")
            #expect(error.description.hasPrefix("hub.toml: \(key) "))
        }
    }

    @Test("a bad value set in code fails validate() naming the key")
    func validateInCode() {
        var config = NodeConfig.defaults
        config.retry.baseSeconds = 0
        #expect(throws: ConfigError(key: "retry.base_seconds", problem: "must be a whole number ≥ 1 (found 0)")) {
            try config.validate()
        }
    }

    @Test("an unknown key fails naming the key and the file, and suggests the likely one")
    func unknownKey() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.file("node.toml")
        try "[sync]\nintervall_seconds = 60\n".write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try NodeConfig.load(path: path)
            Issue.record("accepted an unknown key")
        } catch {
            #expect(error.file == path)
            #expect(error.key == "sync.intervall_seconds")
            #expect(error.description.hasPrefix("\(path): sync.intervall_seconds is not a known key (did you mean interval_seconds?"))
        }
        #expect(throws: ConfigError.self) { try NodeConfig.parse("hub = \"http://h:1\"") }
        do {
            _ = try HubConfig.parse("[metric]\nlisten = \"\"")
            Issue.record("accepted [metric]")
        } catch {
            #expect(error.key == "metric")
            #expect(error.problem.contains("did you mean metrics?"))
        }
        do {
            _ = try NodeConfig.parse("[sync.extra]\nx = 1")
            Issue.record("accepted [sync.extra]")
        } catch {
            #expect(error.key == "sync.extra")
        }
    }

    @Test("a file that is not TOML, or cannot be read, fails naming the file")
    func unreadableFiles() {
        do {
            _ = try HubConfig.parse("listen = ", file: "hub.toml")
            Issue.record("accepted invalid TOML")
        } catch {
            #expect(error.key == nil)
            #expect(error.description.hasPrefix("hub.toml: line 1"))
        }
        do {
            _ = try NodeConfig.load(path: "/nonexistent/ferry/node.toml")
            Issue.record("read a missing file")
        } catch {
            #expect(error.key == nil)
            #expect(error.description.hasPrefix("/nonexistent/ferry/node.toml: cannot read the config file"))
        }
    }

    /// With FERRY_REGENERATE_EXAMPLES=1 in the environment, the test rewrites the files first.
    @Test("the example files in deploy/ are renderExample()'s output")
    func exampleFilesAreCurrent() throws {
        let files = [
            ("deploy/ferry-node.toml.example", NodeConfig.renderExample()),
            ("deploy/ferry-hub.toml.example", HubConfig.renderExample()),
        ]
        for (relative, rendered) in files {
            let path = Repository.path(relative)
            if ProcessInfo.processInfo.environment["FERRY_REGENERATE_EXAMPLES"] == "1" {
                try rendered.write(toFile: path, atomically: true, encoding: .utf8)
            }
            let text = try String(contentsOfFile: path, encoding: .utf8)
            #expect(
                text == rendered,
                "\(relative) is out of date; run FERRY_REGENERATE_EXAMPLES=1 swift test --filter Operations")
        }
    }

    @Test("the example files load to the defaults and document every key")
    func examplesDocumentEveryKey() throws {
        #expect(try NodeConfig.parse(NodeConfig.renderExample()) == NodeConfig.defaults)
        #expect(try HubConfig.parse(HubConfig.renderExample()) == HubConfig.defaults)
        for (keys, text) in [(NodeConfig.keyNames, NodeConfig.renderExample()), (HubConfig.keyNames, HubConfig.renderExample())] {
            for key in keys {
                let leaf = key.split(separator: ".").last!
                #expect(text.contains("\n\(leaf) = "), "\(key) missing")
            }
            #expect(text.components(separatedBy: "# Type: ").count - 1 == keys.count)
        }
    }

    @Test("listen addresses parse host and port, IPv6 in brackets")
    func listenAddresses() {
        #expect(ListenAddress("127.0.0.1:7700") == ListenAddress("127.0.0.1:7700"))
        #expect(ListenAddress("[::1]:0")?.host == "::1")
        #expect(ListenAddress("[::1]:0")?.description == "[::1]:0")
        #expect(ListenAddress("hub.example.org:443")?.port == 443)
        for bad in ["", ":7700", "host:", "host:-1", "host:65536", "host:７７", "::1:7700", "[::1]", "a b:1"] {
            #expect(ListenAddress(bad) == nil, "\(bad)")
        }
    }
}

// MARK: - sd_notify

/// A datagram socket standing in for systemd's notify socket.
final class NotifySocket {
    let fd: Int32
    let name: String

    /// Binds a socket file at `path`, or an abstract socket when `path` starts with "@".
    init(_ path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        name = path
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = path.hasPrefix("@") ? [0] + Array(path.utf8.dropFirst()) : Array(path.utf8) + [0]
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard fd >= 0, bound == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// The next datagram, waiting up to 5 s; nil on timeout. `wait: false` only takes one already queued.
    func receive(wait: Bool = true) -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, wait ? 0 : Int32(MSG_DONTWAIT)) }
        return n < 0 ? nil : String(decoding: buffer[..<n], as: UTF8.self)
    }
}

@Suite("Operations: sd_notify", .offThePool)
struct OperationsNotifyTests {
    @Test("notifications arrive at a socket file as the datagrams systemd expects")
    func notificationsToSocketFile() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let listener = try NotifySocket(dir.file("notify.sock"))
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": listener.name])
        #expect(notifier.destination == .path(listener.name))

        #expect(try notifier.ready())
        #expect(listener.receive() == "READY=1")
        #expect(try notifier.watchdog())
        #expect(listener.receive() == "WATCHDOG=1")
        try notifier.status("syncing\nbatch 3")
        #expect(listener.receive() == "STATUS=syncing batch 3")
        try notifier.ready(status: "listening on 127.0.0.1:7700")
        #expect(listener.receive() == "READY=1\nSTATUS=listening on 127.0.0.1:7700")
        try notifier.extendTimeout(by: .seconds(90))
        #expect(listener.receive() == "EXTEND_TIMEOUT_USEC=90000000")
        try notifier.reloading()
        let reloading = listener.receive() ?? ""
        #expect(reloading.hasPrefix("RELOADING=1\nMONOTONIC_USEC="))
        #expect(try notifier.stopping())
        #expect(listener.receive() == "STOPPING=1")
    }

    @Test("notifications reach an abstract socket named with a leading @")
    func notificationsToAbstractSocket() throws {
        let name = "@ferry-test-\(UUID().uuidString.prefix(8))"
        let listener = try NotifySocket(name)
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": name])
        #expect(notifier.destination == .abstract(String(name.dropFirst())))
        try notifier.ready()
        #expect(listener.receive() == "READY=1")
    }

    @Test("without NOTIFY_SOCKET every notification is a no-op")
    func noSocketIsNoOp() throws {
        let notifier = SystemdNotifier(environment: [:])
        #expect(!notifier.isEnabled)
        #expect(try notifier.ready() == false)
        #expect(try notifier.watchdog() == false)
        #expect(notifier.watchdogInterval == nil)
    }

    @Test("a socket that is gone gives an error naming it")
    func missingSocketThrows() {
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": "/nonexistent/notify.sock"])
        do {
            try notifier.ready()
            Issue.record("sent to a missing socket")
        } catch {
            #expect(error.socket == "/nonexistent/notify.sock")
            #expect(error.errno == ENOENT)
            #expect(error.description.contains("/nonexistent/notify.sock"))
        }
    }

    @Test("the watchdog period is half of WATCHDOG_USEC, and only for the process WATCHDOG_PID names")
    func watchdogInterval() {
        let usec = ["NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": "120000000"]
        #expect(SystemdNotifier(environment: usec).watchdogTimeout == .seconds(120))
        #expect(SystemdNotifier(environment: usec).watchdogInterval == .seconds(60))
        #expect(SystemdNotifier(environment: usec.merging(["WATCHDOG_PID": "4242"]) { $1 }, pid: 4242).watchdogInterval == .seconds(60))
        #expect(SystemdNotifier(environment: usec.merging(["WATCHDOG_PID": "4243"]) { $1 }, pid: 4242).watchdogInterval == nil)
        #expect(SystemdNotifier(environment: usec.merging(["WATCHDOG_USEC": "0"]) { $1 }).watchdogInterval == nil)
        #expect(SystemdNotifier(environment: usec.merging(["WATCHDOG_USEC": "soon"]) { $1 }).watchdogInterval == nil)
    }

    @Test("the watchdog service pings while the loop is alive and stops when it goes silent")
    func watchdogFollowsLiveness() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let listener = try NotifySocket(dir.file("notify.sock"))
        let alive = Mutex(true)
        let withheld = Mutex(0)
        let service = WatchdogService(
            notifier: SystemdNotifier(environment: ["NOTIFY_SOCKET": listener.name, "WATCHDOG_USEC": "100000"]),
            liveness: { alive.withLock { $0 } },
            onWithheld: { withheld.withLock { $0 += 1 } })
        #expect(service.interval == .milliseconds(50))
        let task = Task { try await service.run() }

        #expect(listener.receive() == "WATCHDOG=1")
        #expect(listener.receive() == "WATCHDOG=1")
        alive.withLock { $0 = false }
        // One ping may already be past its liveness check; after that, silence.
        try await Task.sleep(for: .milliseconds(200))
        while listener.receive(wait: false) != nil {}
        try await Task.sleep(for: .milliseconds(300))
        #expect(listener.receive(wait: false) == nil)
        #expect(withheld.withLock { $0 } == 1)

        alive.withLock { $0 = true }
        #expect(listener.receive() == "WATCHDOG=1")
        task.cancel()
        try await task.value
    }

    @Test("a heartbeat is recent until it is older than the allowed silence")
    func heartbeatWindow() {
        let start = ContinuousClock.now
        let heartbeat = Heartbeat(now: start)
        #expect(heartbeat.isRecent(within: .seconds(10), now: start + .seconds(10)))
        #expect(!heartbeat.isRecent(within: .seconds(10), now: start + .seconds(11)))
        heartbeat.beat(at: start + .seconds(5))
        #expect(heartbeat.isRecent(within: .seconds(10), now: start + .seconds(11)))
    }
}
