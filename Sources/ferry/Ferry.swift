import ArgumentParser
import FerryConfig
import FerryCore
import FerryHTTPClient
import FerryHub
import FerryReports
import FerryHubServer
import FerryNode
import FerryStandardFile
import FerryStore
import FerrySystemd
import FerryTrust
import FerryWire
import Foundation
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import Synchronization

// The `ferry` command: parses arguments, builds objects, runs them. No logic lives here.

@main
struct Ferry: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ferry",
        abstract: "Federated sync of unit records with their supervisor's hub. 单位数据与上级同步。",
        version: "ferry \(FerryRelease.version) (protocol \(FerryRelease.protocolVersion); \(HTTPClient.libcurlVersion))",
        subcommands: [
            HubCommand.self, NodeCommand.self, Sync.self, Status.self, Record.self, Conflicts.self, StandardCommand.self,
            ConfigCommand.self, Report.self,
        ])
}

/// Sends STOPPING=1 to systemd as soon as a graceful shutdown begins.
struct StopNotice: Service {
    let notifier: SystemdNotifier
    func run() async throws {
        try? await gracefulShutdown()
        _ = try? notifier.stopping()
    }
}

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "config", abstract: "Check a config file.", subcommands: [Check.self])
    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Validate a node or hub config file; prints the first wrong key.")
        @Option(name: .long, help: "node or hub") var role = "node"
        @Argument var file: String
        func run() throws {
            switch role {
            case "node": _ = try NodeConfig.load(path: file)
            case "hub": _ = try HubConfig.load(path: file)
            default: throw ValidationError("--role must be node or hub")
            }
            print("\(file): valid \(role) config")
        }
    }
}

/// The language of clerk-facing text, by `TerminalLanguage`'s rule (`--lang`, else the locale).
struct Language: ParsableArguments {
    @Option(name: .long, help: "zh or en (default: from LC_ALL, LC_MESSAGES or LANG)") var lang: String?

    var chinese: Bool { TerminalLanguage.isChinese(flag: lang, environment: ProcessInfo.processInfo.environment) }
    func say(_ zh: String, _ en: String) -> String { chinese ? zh : en }
    /// For a clerk: Chinese first and English after it, unless --lang (or LANG) picks one.
    func clerk(_ zh: String, _ en: String) -> String {
        if let lang { return lang.hasPrefix("zh") ? zh : en }
        return chinese ? zh : "\(zh)\n\(en)"
    }
}

struct Failure: Error, CustomStringConvertible {
    let description: String
}

/// Bootstraps Prometheus metrics when `listen` (host:port) is set; returns the endpoint's
/// Service to run beside the main one.
/// `beforeScrape` records gauges computed on demand (the hub's freshness).
func metricsService(_ listen: String?, beforeScrape: (@Sendable () -> Void)? = nil) throws -> (any Service)? {
    guard let listen, !listen.isEmpty else { return nil }
    guard let address = ListenAddress(listen) else {
        throw ValidationError("--metrics must be host:port, e.g. 127.0.0.1:9470 (IPv6 in brackets: [::1]:9470)")
    }
    let registry = PrometheusCollectorRegistry()
    MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
    return MetricsEndpoint.application(host: address.host, port: address.port) {
        beforeScrape?()
        return registry.emitToBuffer()
    }
}

/// Structured logs to stderr (journald picks them up under systemd). Daemons log at `info`,
/// clerk-facing commands only warnings; FERRY_LOG_LEVEL overrides both.
func bootstrapLogging(_ level: Logger.Level = .info) {
    let chosen = Logger.Level(rawValue: ProcessInfo.processInfo.environment["FERRY_LOG_LEVEL"] ?? "") ?? level
    LoggingSystem.bootstrap { label in JournalLogHandler(label: label, level: chosen) }
}

// MARK: - Hub

struct HubCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hub", abstract: "Run and administer a supervisor's hub.",
        subcommands: [
            Init.self, Serve.self, UnitCommand.self, Token.self, Nodes.self, NodeAdmin.self, Counts.self, HubConflicts.self, Quarantine.self,
            Publish.self, Admin.self, Sample.self,
        ])

    struct Publish: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "publish",
            abstract: "Publish a new version of the standard (additions only); nodes migrate themselves on their next sync.")
        @Option(name: .long, help: "The hub's data directory.") var dir = FerryDefaults.Hub.directory
        @Argument(help: "The new standard file (TOML).") var file: String
        func run() throws {
            try Hub.requireExisting(dir)
            let text = try String(contentsOfFile: file, encoding: .utf8)
            let (old, new) = try Hub.publish(directory: dir, text: text)
            print("published standard \(new) (was \(old)); the hub's database is migrated. Restart the hub to serve it (systemctl restart ferry-hub); ferry hub nodes shows which nodes have moved.")
        }
    }

    struct Quarantine: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rows the hub set aside because a value failed its checks.")
        @OptionGroup var dir: Dir
        func run() throws {
            let list = try dir.open().store.quarantine()
            if list.isEmpty { print("nothing quarantined") }
            for q in list {
                print(ReportFormat.terminal(
                    "#\(q.id) \(q.status) \(q.table)(\(q.key.map(\.description).joined(separator: ","))) unit \(q.scope ?? "-") from \(q.origin): \(q.column) = \(q.value) — \(q.reason)"))
            }
        }
    }

    struct Dir: ParsableArguments {
        @Option(name: .long, help: "The hub's data directory.") var dir = FerryDefaults.Hub.directory

        /// The hub in `dir`; fails, creating nothing, when the folder holds none.
        func open() throws -> Hub { try Hub.open(existing: dir) }
    }

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a new hub in a new or empty folder: its signing key, the standard it publishes and empty databases.")
        @OptionGroup var dir: Dir
        @Option(name: .long, help: "The standard file to publish (default: the built-in party-building standard).") var standard: String?

        func run() throws {
            let text = try standard.map { try String(contentsOfFile: $0, encoding: .utf8) }
            let hub = try Hub.create(directory: dir.dir, standard: text)
            print("created a hub in \(dir.dir) publishing standard \(hub.store.standard.name) \(hub.store.standard.version)")
            print("next: ferry hub unit add --dir \(dir.dir) …; ferry hub serve --dir \(dir.dir)")
        }
    }

    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Serve the hub over HTTP; on the first start, creates the hub in a new or empty folder.")
        @OptionGroup var dir: Dir
        @Option(name: .long, help: "The standard file to publish when the hub is created (default: the built-in party-building standard).")
        var standard: String?
        @Option(name: .long, help: "Address to listen on, host:port (port 0 picks a free one).") var listen = FerryDefaults.Hub.listen
        @Option(name: .long, help: "Sync requests served at once; more get 503 + Retry-After.") var maxSessions = FerryDefaults.Hub.maxConcurrentSessions
        @Option(name: .long, help: "Seconds a request waits for a database locked by another process before a retryable 503.")
        var busyTimeout = Double(FerryDefaults.Hub.busyTimeoutSeconds)
        @Option(name: .long, help: "Serve Prometheus metrics at http://host:port/metrics (off when unset).") var metrics: String?
        @Option(name: .long, help: "The hub's reverse proxies, whose X-Forwarded-For names the client: addresses or CIDR ranges joined by commas.")
        var trustedProxies = ""
        @Option(name: .long, help: "Serve HTTPS with this PEM certificate (with --tls-key); reloaded on SIGHUP and when it changes.")
        var tlsCert: String?
        @Option(name: .long, help: "The PEM private key of --tls-cert.") var tlsKey: String?

        @Option(name: .long, help: "The hub's config file (TOML; see deploy/ferry-hub.toml.example). Its values replace the flags.")
        var config: String?

        func run() async throws {
            guard let proxies = IPAddressRange.list(trustedProxies) else {
                throw ValidationError("--trusted-proxies must list IP addresses or CIDR ranges joined by commas, e.g. 127.0.0.1,10.0.0.0/8")
            }
            var listen = self.listen
            var settings = HubSettings()
            var tls: HubTLS?
            switch (tlsCert, tlsKey) {
            case (let cert?, let key?): tls = HubTLS(certificatePath: cert, keyPath: key)
            case (nil, nil): tls = nil
            default: throw ValidationError("--tls-cert and --tls-key go together: the certificate and its private key")
            }
            settings.maxConcurrentSessions = maxSessions
            settings.busyTimeoutSeconds = busyTimeout
            settings.trustedProxies = proxies
            var directory = dir.dir
            var standardPath = standard
            var metricsListen = metrics
            var level = Logger.Level.info
            if let config {
                let c = try HubConfig.load(path: config)
                settings = HubSettings(config: c)
                settings.busyTimeoutSeconds = busyTimeout
                listen = c.listen
                directory = c.dir
                standardPath = c.standard.isEmpty ? nil : c.standard
                metricsListen = c.metrics.listen
                level = Logger.Level(rawValue: c.log.level) ?? .info
                if !c.tls.certificate.isEmpty { tls = HubTLS(certificatePath: c.tls.certificate, keyPath: c.tls.key) }
            }
            bootstrapLogging(level)
            // Metrics are bootstrapped before the hub makes its counters; its freshness gauges are
            // computed at each scrape once it is open.
            let opened = Mutex<Hub?>(nil)
            let metricsApp = try metricsService(metricsListen, beforeScrape: { opened.withLock { $0 }?.recordFreshnessMetrics() })
            guard let address = ListenAddress(listen) else {
                throw ValidationError("--listen must be host:port, e.g. 127.0.0.1:7700 (IPv6 in brackets: [::1]:7700)")
            }
            let text = try standardPath.map { try String(contentsOfFile: $0, encoding: .utf8) }
            let notifier = SystemdNotifier()
            // Opening the databases may migrate them after an upgrade: ask systemd for the time.
            _ = try? notifier.extendTimeout(by: .seconds(600))
            let hub = try Hub.openOrCreate(directory: directory, standard: text, settings: settings)
            opened.withLock { $0 = hub }
            let server = try HubServer(hub: hub, host: address.host, port: address.port, tls: tls)
            let scheme = server.scheme
            let silentAfterDays = settings.silentAfterDays
            let configPath = config.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
            let folder = directory
            let app = server.application { bound in
                let served = ListenAddress("\(address.host.contains(":") ? "[\(address.host)]" : address.host):\(bound)")?.description ?? "\(address.host):\(bound)"
                // Written unbuffered: supervisors (and tests) wait for this line.
                FileHandle.standardOutput.write(Data("ferry hub listening on \(scheme)://\(served) (standard \(hub.store.standard.name) \(hub.store.standard.version))\n".utf8))
                // For the commands run beside the hub: its address as this machine reaches it
                // (a wildcard listen is reached on loopback), and the settings its views use.
                let local = ["0.0.0.0": "127.0.0.1", "::": "[::1]"][address.host] ?? (address.host.contains(":") ? "[\(address.host)]" : address.host)
                do {
                    try HubServing(url: "\(scheme)://\(local):\(bound)", silentAfterDays: silentAfterDays, config: configPath).record(in: folder)
                } catch {
                    FileHandle.standardError.write(Data("warning: could not write \(folder)/serving.json (\(error)); ferry report and ferry hub admin link will not know this hub's address and settings\n".utf8))
                }
                _ = try? notifier.ready(status: "serving on \(served)")
            }
            let logger = Logger(label: "ferry.hub")
            // The watchdog goes first so it stops last; the hub's liveness is the process itself.
            let services: [any Service] = [WatchdogService(notifier: notifier, liveness: { true }), StopNotice(notifier: notifier), app] + (metricsApp.map { [$0] } ?? [])
            let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
        }
    }

    struct UnitCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "unit", abstract: "Manage the org tree.", subcommands: [Add.self, List.self])

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Place a unit (or a county, city, province) in the org tree; prints a one-time enrolment token for a unit.")
            @OptionGroup var dir: Dir
            @Option(name: .long, help: "Id, e.g. 4401-hosp-01.") var id: String
            @Option(name: .long, help: "Name, e.g. 某县人民医院.") var name: String
            @Option(name: .long, help: "province, city, county or unit.") var level = "unit"
            @Option(name: .long, help: "The parent in the org tree.") var parent: String?
            @Option(name: .long, help: "education, medical, research, culture, public_service or other.") var industry: String?
            @Option(name: .long, help: "Region code.") var region: String?

            func run() throws {
                guard let lvl = OrgUnit.Level(rawValue: level) else {
                    throw ValidationError("--level must be one of \(OrgUnit.Level.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                let hub = try dir.open()
                let token = try hub.addUnit(OrgUnit(id: id, name: name, parentID: parent, level: lvl, industry: industry, region: region))
                if token.isEmpty {
                    print("added \(level) \(id)")
                } else {
                    print("added unit \(id); enrolment token (valid \(hub.settings.tokenLifetimeSeconds / 86400) days, works once):")
                    print(token)
                }
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List the org tree.")
            @OptionGroup var dir: Dir
            func run() throws {
                for u in try dir.open().registry.units() {
                    print([u.id, u.level.rawValue, u.parentID ?? "-", u.industry ?? "-", u.name].map(ReportFormat.terminal).joined(separator: "\t"))
                }
            }
        }
    }

    struct Token: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Issue a new one-time enrolment token for a unit.")
        @OptionGroup var dir: Dir
        @Option(name: .long) var unit: String
        func run() throws { print(try dir.open().issueToken(unitID: unit)) }
    }

    struct Nodes: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List enrolled nodes and when each last synced.")
        @OptionGroup var dir: Dir
        func run() throws {
            let hub = try dir.open()
            let now = hub.now()
            print("node\tunit\tlast sync\tpending\tclock skew\tstandard\tstate\thost")
            for n in try hub.registry.nodes() {
                let age = n.lastSyncAt.map { "\((now - min(now, $0)) / 1000) s ago" } ?? "never"
                let skew = n.clockSkewMillis.map { "\($0 / 1000) s" } ?? "-"
                let fields = [
                    n.id.rawValue, n.unitID, age, n.pendingRows.map(String.init) ?? "-", skew, n.standardVersion ?? "-",
                    n.revokedAt == nil ? "active" : "revoked", n.hostname,
                ]
                print(fields.map(ReportFormat.terminal).joined(separator: "\t"))
            }
        }
    }

    struct NodeAdmin: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "node", abstract: "Administer enrolled nodes.", subcommands: [Revoke.self])
        struct Revoke: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Cut a node off at once.")
            @OptionGroup var dir: Dir
            @Argument var node: String
            func run() throws {
                try dir.open().revoke(node: node)
                print("revoked \(node)")
            }
        }
    }

    struct Counts: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rows per unit in every unit table: what has reached the hub.")
        @OptionGroup var dir: Dir
        func run() throws {
            let hub = try dir.open()
            let tables = hub.store.standard.tables.filter(\.isUnitWritable)
            let counts = try hub.store.rowCountsByScope()
            print((["unit"] + tables.map(\.name)).joined(separator: "\t"))
            for unit in counts.keys.sorted() {
                print(([ReportFormat.terminal(unit)] + tables.map { String(counts[unit]?[$0.name] ?? 0) }).joined(separator: "\t"))
            }
        }
    }

    struct HubConflicts: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "conflicts", abstract: "List conflicts kept at the hub.")
        @OptionGroup var dir: Dir
        @OptionGroup var language: Language
        func run() throws { printConflicts(try dir.open().store, language) }
    }
}

// MARK: - Node

struct NodeDir: ParsableArguments {
    @Option(name: .long, help: "The node's data directory.") var dir = FerryDefaults.Node.directory
    @Option(name: .long, help: "Seconds to wait for a connection to the hub.") var connectTimeout = FerryDefaults.Node.connectTimeoutSeconds
    @Option(name: .long, help: "Give up a transfer slower than --low-speed-limit bytes/s for this many seconds (a stalled link).")
    var lowSpeedSeconds = FerryDefaults.Node.lowSpeedSeconds
    @Option(name: .long, help: "Bytes/s below which a transfer counts as stalled.") var lowSpeedLimit = FerryDefaults.Node.lowSpeedBytesPerSecond
    @Option(name: .long, help: "Longest one request may take, seconds.") var totalTimeout = FerryDefaults.Node.totalTimeoutSeconds
    @Option(name: .long, help: "CA bundle to verify the hub's TLS certificate.") var caFile: String?
    @Option(name: .long, help: "Pinned hub key for TLS, e.g. sha256//BASE64.") var pinnedKey: String?
    @Option(name: .long, help: "HTTP proxy to reach the hub through.") var proxy: String?
    @Option(name: .long, help: .hidden) var clockOffsetMs: Int64 = 0

    var http: HTTPClientConfiguration {
        var c = HTTPClientConfiguration()
        c.connectTimeoutSeconds = connectTimeout
        c.lowSpeedTimeSeconds = lowSpeedSeconds
        c.lowSpeedLimitBytesPerSecond = lowSpeedLimit
        c.totalTimeoutSeconds = totalTimeout
        c.caFile = caFile
        c.pinnedPublicKey = pinnedKey
        c.proxy = proxy
        return c
    }

    /// The folder and connection these flags name (FerryNode opens, connects and upgrades).
    var folder: NodeFolder { NodeFolder(directory: dir, http: http, clockOffsetMillis: clockOffsetMs) }

    func open(readOnly: Bool = false) throws -> (NodeIdentity, ReplicaStore) { try folder.open(clock: folder.clock, readOnly: readOnly) }
    func agent(batchBytes: Int = FerryDefaults.Node.batchBytes) throws -> NodeAgent { try folder.agent(batchBytes: batchBytes) }
}

struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "node", abstract: "Enrol and run a unit's node.", subcommands: [Init.self, Run.self])

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Enrol this node with its hub using a one-time token, and create its database (or take over a backup of it: --restore).")
        @OptionGroup var dir: NodeDir
        @Option(name: .long, help: "The hub's URL, e.g. http://hub.example:7700") var hub: String
        @Option(name: .long, help: "The one-time enrolment token from the supervisor.") var token: String
        @Option(name: .long, help: "A replacement box: a backup copy of the unit's unit.db from its previous box, taken over as this node's database.")
        var restore: String?
        @OptionGroup var language: Language

        func run() throws {
            let result: NodeEnrolment.Result
            do {
                result = try NodeEnrolment.enrol(
                    directory: dir.dir, hubURL: hub, token: token, hostname: ProcessInfo.processInfo.hostName, restoring: restore,
                    configuration: dir.http)
            } catch let error as SyncFailure {
                throw Failure(description: language.say("登记失败：\(error.messageZh)（\(error.message)）", "enrolment failed: \(error.message)"))
            }
            let id = result.identity
            print(language.say(
                "已登记：节点 \(id.nodeID)，单位 \(id.unitName)（\(id.unitID)），数据库 \(result.database)\(restore != nil ? "（由备份恢复，同步时自动补齐）" : "")",
                "enrolled as node \(id.nodeID) of unit \(id.unitName) (\(id.unitID)); database \(result.database)\(restore != nil ? " (taken over from the backup; the next sync brings it up to date)" : "")"))
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run the node: sync on a schedule, after local writes, and with backoff after failures.")
        @OptionGroup var dir: NodeDir
        @Option(name: .long, help: "Seconds between scheduled syncs.") var interval = Double(FerryDefaults.Node.syncIntervalSeconds)
        @Option(name: .long, help: "Seconds after the last local write before syncing it.") var debounce = Double(FerryDefaults.Node.debounceSeconds)
        @Option(name: .long, help: "Serve Prometheus metrics at http://host:port/metrics (off when unset).") var metrics: String?

        @Option(name: .long, help: "The node's config file (TOML; see deploy/ferry-node.toml.example). Its values replace the flags.")
        var config: String?

        func run() async throws {
            var run = NodeRunSettings(folder: dir.folder)
            run.intervalSeconds = interval
            run.debounceSeconds = debounce
            run.metricsListen = metrics
            if let config { run = NodeRunSettings(config: try NodeConfig.load(path: config), clockOffsetMillis: dir.clockOffsetMs) }
            let level = Logger.Level(rawValue: run.logLevel) ?? .info
            let folder = run.folder
            bootstrapLogging(level)
            // Held for the daemon's life: ferry status sees whether it runs.
            let lock = try DaemonLock.acquire(directory: folder.directory)
            defer { withExtendedLifetime(lock) {} }
            let metricsApp = try metricsService(run.metricsListen)
            let logger = Logger(label: "ferry.node")
            let notifier = SystemdNotifier()
            // Opening the database may migrate it after an upgrade: ask systemd for the time.
            _ = try? notifier.extendTimeout(by: .seconds(600))
            var service = NodeService(
                agent: try folder.agent(batchBytes: run.batchBytes), intervalSeconds: run.intervalSeconds, debounceSeconds: run.debounceSeconds,
                retry: run.retry, logger: logger)
            service.onStatus = { line in _ = try? notifier.status(line) }
            service.upgrade = { agent in try folder.upgradeIfAvailable(agent) }
            let heartbeat = Heartbeat()
            service.heartbeat = { heartbeat.beat() }
            // A sync may legitimately take the whole total timeout; beyond that plus slack the
            // loop is hung and systemd should restart it.
            let watchdog = WatchdogService(
                notifier: notifier, liveness: heartbeat.liveness(maxSilence: .seconds(folder.http.totalTimeoutSeconds + 120)),
                onWithheld: { logger.error("watchdog ping withheld: the sync loop made no progress") })
            _ = try? notifier.ready(status: "node \(service.agent.identity.nodeID) syncing with \(service.agent.identity.hubURL)")
            let services: [any Service] = [watchdog, StopNotice(notifier: notifier), service] + (metricsApp.map { [$0] } ?? [])
            let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
        }
    }
}

/// Prints a line unbuffered, so progress shows as it happens even through a pipe.
func show(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

struct Sync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Exchange changes with the hub now, showing progress. 立即与上级同步。")
    @OptionGroup var dir: NodeDir
    @OptionGroup var language: Language
    @Option(name: .long, help: "Upper bound on one batch, bytes (smaller batches lose less when a weak link drops).") var batchBytes = FerryDefaults.Node.batchBytes
    @Option(
        name: .long,
        help: "Attempts in a row that move nothing before giving up (0: stop at the first failure). While data moves, the sync carries on through any number of cuts.")
    var retries = Sync.stallsBeforeGivingUp

    func validate() throws {
        guard retries >= 0 else { throw ValidationError("--retries must be 0 or more") }
    }

    func run() throws {
        bootstrapLogging(.error)
        var agent = try dir.agent(batchBytes: batchBytes)
        let progress: (SyncProgress) -> Void = { p in
            switch p {
            case .pushed(let b, let rows, let bytes): show(language.say("  已上传第 \(b) 批：\(rows) 行，\(bytes) 字节", "  sent batch \(b): \(rows) rows, \(bytes) bytes"))
            case .pulled(let b, let rows, let bytes): show(language.say("  已接收第 \(b) 批：\(rows) 行，\(bytes) 字节", "  received batch \(b): \(rows) rows, \(bytes) bytes"))
            case .compared(let equal):
                show(equal ? language.say("  核对：与上级数据一致", "  checked: the same as the hub") : language.say("  核对：与上级数据有差异，正在查找", "  checked: differs from the hub; locating the differences"))
            case .repaired(let rows): show(language.say("  已找到 \(rows) 条不一致的记录，正在修复", "  found \(rows) rows held differently; repairing"))
            }
        }
        do {
            var r = try Self.persisting(agent, progress: progress, language: language, retries: retries)
            if let upgraded = try dir.folder.upgradeIfAvailable(agent) {
                agent = upgraded
                show(language.say("  已升级数据标准至 \(agent.store.standard.version)，数据库已迁移", "  moved to standard \(agent.store.standard.version); database migrated"))
                let again = try Self.persisting(agent, progress: progress, language: language, retries: retries)
                r.pushedRows += again.pushedRows
                r.pulledRows += again.pulledRows
                r.conflicts += again.conflicts
                r.settledAtHub += again.settledAtHub
                r.seconds += again.seconds
            }
            print(language.say(
                "同步完成：上传 \(r.pushedRows) 行，接收 \(r.pulledRows) 行，新冲突 \(r.conflicts) 条，用时 \(String(format: "%.1f", r.seconds)) 秒",
                "sync done: sent \(r.pushedRows) rows, received \(r.pulledRows) rows, \(r.conflicts) new conflicts, \(String(format: "%.1f", r.seconds)) s"))
            if r.settledAtHub > 0 {
                print(language.say(
                    "上级已处理本单位的 \(r.settledAtHub) 条冲突，已从冲突列表中移除（处理结果已同步到本机）",
                    "the supervisor settled \(r.settledAtHub) of this unit's conflicts at the hub; they are off the list (the outcome is synced here)"))
            }
            if r.rollbackDetected {
                print(language.say("注意：本机数据库曾被恢复为旧副本，已从上级补齐缺少的记录", "Note: this database had been put back from an older copy; what it lacked came back from the hub"))
            }
            if r.heldByHub > 0 {
                print(language.say("上级暂未接收 \(r.heldByHub) 条记录，原因：", "the hub holds back \(r.heldByHub) rows:"))
                for h in ((try? agent.store.held()) ?? []).filter({ $0.kind != .local }).prefix(10) {
                    print("  · \(h.table)（\(ReportFormat.terminal(h.key.map(\.description).joined(separator: ", ")))）：\(ReportFormat.terminal(language.chinese ? h.reasonZh : h.reason))")
                }
            }
        } catch let error as SyncFailure {
            throw Failure(description: language.say("同步失败：\(error.messageZh)（\(error.message)）", "sync failed: \(error.message)") + (error.isRetryable ? language.say("。稍后会自动重试。", ". It will be retried.") : ""))
        }
    }
}

extension Sync {
    /// Failed attempts in a row that moved nothing before `ferry sync` gives up (about half a
    /// minute of backoff); while attempts move data it goes on however often the link drops.
    static let stallsBeforeGivingUp = 4

    /// Syncs until done, carrying on through cuts and stalls while data moves (`SyncRetry`):
    /// one `ferry sync` finishes over a link that drops every few kilobytes. What each attempt
    /// moved is added up.
    static func persisting(_ agent: NodeAgent, progress: @escaping (SyncProgress) -> Void, language: Language, retries stalls: Int) throws(SyncFailure) -> SyncReport {
        var retries = SyncRetry(policy: RetryPolicy(baseSeconds: 2, capSeconds: 30))
        var total = SyncReport()
        func add(_ r: SyncReport) {
            total.exchanges += r.exchanges
            total.pushedBatches += r.pushedBatches
            total.pushedRows += r.pushedRows
            total.pushedBytes += r.pushedBytes
            total.pulledBatches += r.pulledBatches
            total.pulledRows += r.pulledRows
            total.pulledBytes += r.pulledBytes
            total.conflicts += r.conflicts
            total.repairedRows += r.repairedRows
            total.reconcileRounds += r.reconcileRounds
            total.rollbackDetected = total.rollbackDetected || r.rollbackDetected
            total.settledAtHub += r.settledAtHub
        }
        let started = ContinuousClock.now
        while true {
            do {
                let r = try agent.syncOnce(progress: progress)
                add(r)
                total.heldByHub = r.heldByHub
                total.seconds = Double((ContinuousClock.now - started).components.seconds)
                    + Double((ContinuousClock.now - started).components.attoseconds) / 1e18
                return total
            } catch {
                add(error.partial)
                guard let wait = retries.next(after: error, random: Double.random(in: 0..<1)),
                    retries.failuresWithoutProgress <= stalls
                else {
                    throw error
                }
                show(language.say(
                    "  同步中断（\(error.messageZh)），\(Int(wait.rounded(.up))) 秒后继续",
                    "  interrupted (\(error.message)); resuming in \(Int(wait.rounded(.up))) s"))
                Thread.sleep(forTimeInterval: wait)
            }
        }
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "What is waiting to go up and when the last sync succeeded. 同步状态。")
    @OptionGroup var dir: NodeDir
    @OptionGroup var language: Language
    @Flag(name: .long, help: "Print JSON for scripts.") var json = false

    func run() throws {
        let screen = try StatusScreen.read(dir.folder)
        let now = Int64(SystemClock().nowMillis())
        print(json ? try screen.json(chinese: language.chinese, nowMillis: now) : screen.text(chinese: language.chinese, nowMillis: now))
    }
}

// MARK: - Records and conflicts (the node's database)

struct Record: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Add or change a record in this unit's database. 录入记录。", subcommands: [Add.self, Set.self])

    /// The refusal in the clerk's language, Chinese first unless --lang en.
    static func failure(_ r: RecordEntry.Refusal, _ language: Language) -> Failure {
        Failure(description: language.clerk(r.zh, r.en))
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Insert a row: ferry record add TABLE col=value … (the unit's own id is filled in). 新增一条记录。")
        @OptionGroup var dir: NodeDir
        @OptionGroup var language: Language
        @Argument var table: String
        @Argument var assignments: [String]
        func run() throws {
            let (identity, store) = try dir.open()
            do throws(RecordEntry.Refusal) {
                let key = try RecordEntry(store: store, unitID: identity.unitID).add(table: table, assignments)
                let id = key.map(RecordEntry.plain).joined(separator: ",")
                print(language.clerk("已新增 \(table) \(id)，下次同步时上报", "added \(table) \(id); it goes to the hub with the next sync"))
            } catch { throw Record.failure(error, language) }
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change columns of a row by id: ferry record set TABLE ID col=value … 修改一条记录。")
        @OptionGroup var dir: NodeDir
        @OptionGroup var language: Language
        @Argument var table: String
        @Argument var id: String
        @Argument var assignments: [String]
        func run() throws {
            let (identity, store) = try dir.open()
            do throws(RecordEntry.Refusal) {
                try RecordEntry(store: store, unitID: identity.unitID).set(table: table, id: id, assignments)
                print(language.clerk("已修改 \(table) \(id)，下次同步时上报", "updated \(table) \(id); it goes to the hub with the next sync"))
            } catch { throw Record.failure(error, language) }
        }
    }
}

func printConflicts(_ store: ReplicaStore, _ language: Language) {
    let list = (try? store.conflicts()) ?? []
    if list.isEmpty { print(language.say("没有冲突记录", "no conflicts")) }
    for c in list {
        let key = c.key.map(\.description).joined(separator: ",")
        // Values, keys and origins were written at a unit: never let them drive the terminal.
        let status = language.say(c.status.labelZh, c.status.rawValue)
        let why = language.say("\(c.kind.labelZh)，\(c.policy.labelZh)", "\(c.kind.rawValue), \(c.policy.rawValue)")
        print(ReportFormat.terminal("#\(c.id) \(status) \(c.table)(\(key)).\(c.column): \(language.say("被覆盖的值", "lost value")) \(c.lostValue) \(language.say("来自", "from")) \(c.lostOrigin); \(language.say("保留", "kept")) \(c.winnerOrigin.map(\.rawValue) ?? "-") [\(why)]"))
    }
}

struct Conflicts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List conflicts; restore a losing value or dismiss. 冲突处理。")
    @OptionGroup var dir: NodeDir
    @OptionGroup var language: Language
    @Option(name: .long, help: "Put conflict N's losing value back (syncs like any edit).") var restore: Int64?
    @Option(name: .long, help: "Keep the current value of conflict N.") var dismiss: Int64?
    func run() throws {
        let (_, store) = try dir.open()
        if let id = restore { try store.restore(conflict: id) }
        if let id = dismiss { try store.dismiss(conflict: id) }
        printConflicts(store, language)
    }
}

struct StandardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "standard", abstract: "Check a standard file.", subcommands: [Check.self])
    struct Check: AsyncParsableCommand {
        @Argument(help: "The standard file (TOML).") var file: String
        func run() throws {
            let s = try StandardFile.load(path: file)
            print("\(file): standard \(s.name) \(s.version), \(s.tables.count) tables — valid")
        }
    }
}
