import FerryCore
import Foundation

/// `[log]`: how much the daemon logs (to stderr, which journald collects under systemd).
public struct LogConfig: Sendable, Equatable {
    /// swift-log's level names, least to most severe.
    public static let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]

    /// The least severe level written (default "info"); one of `levels`, which are
    /// `Logging.Logger.Level`'s raw values.
    public var level = "info"

    public init() {}
}

/// `[metrics]`: the Prometheus endpoint.
public struct MetricsConfig: Sendable, Equatable {
    /// host:port to serve `GET /metrics` on; "" (the default) serves no metrics.
    public var listen = ""

    public init() {}

    /// `listen` parsed, or nil when metrics are off (or `listen` is invalid; `validate()` says so).
    public var address: ListenAddress? { ListenAddress(listen) }
}

/// A unit's node configuration (`/etc/ferry/node.toml`).
///
/// The defaults below are the only place defaults live; `renderExample()` documents them
/// and `deploy/ferry-node.toml.example` is its output. A file need only name the keys it
/// changes.
///
///     let config = try NodeConfig.load(path: "/etc/ferry/node.toml")
///     // config.sync.intervalSeconds, config.http.connectTimeoutSeconds, …
public struct NodeConfig: Sendable, Equatable {
    /// The data directory: database, keys, the standard in force (default "/var/lib/ferry").
    public var dir = "/var/lib/ferry"
    /// The hub's URL; "" (the default) before enrolment. See the example file for its use.
    public var hubURL = ""
    public var sync = Sync()
    public var http = HTTP()
    public var retry = Retry()
    public var log = LogConfig()
    public var metrics = MetricsConfig()
    /// The clerk-facing language: "zh", "en", or "" (the default) to follow LANG/LC_ALL.
    public var language = ""

    /// `[sync]`: when the node syncs and how much it sends at once.
    public struct Sync: Sendable, Equatable {
        /// Seconds between scheduled syncs when nothing changes (default 300).
        public var intervalSeconds = FerryDefaults.Node.syncIntervalSeconds
        /// Seconds after the last local write before syncing it (default 5).
        public var debounceSeconds = FerryDefaults.Node.debounceSeconds
        /// Upper bound on one batch, bytes (default 65536).
        public var batchBytes = FerryDefaults.Node.batchBytes
        public init() {}
    }

    /// `[http]`: the connection to the hub (libcurl options).
    public struct HTTP: Sendable, Equatable {
        /// Seconds for DNS, TCP, proxy and TLS handshake (default 20).
        public var connectTimeoutSeconds = FerryDefaults.Node.connectTimeoutSeconds
        /// Seconds one request may take in all (default 300).
        public var totalTimeoutSeconds = FerryDefaults.Node.totalTimeoutSeconds
        /// With `lowSpeedSeconds`: a transfer below this rate for that long is dropped (default 64).
        public var lowSpeedBytesPerSecond = FerryDefaults.Node.lowSpeedBytesPerSecond
        /// See `lowSpeedBytesPerSecond` (default 60).
        public var lowSpeedSeconds = FerryDefaults.Node.lowSpeedSeconds
        /// CA bundle to trust instead of the system's; "" (default) uses the system's.
        public var caFile = ""
        /// The hub's public key pin (libcurl CURLOPT_PINNEDPUBLICKEY); "" (default) pins nothing.
        public var pinnedPublicKey = ""
        /// The proxy; "" (default) leaves it to libcurl (the http_proxy, https_proxy and
        /// no_proxy environment variables). `HTTPClientConfiguration.proxy` wants nil for that.
        public var proxy = ""
        public init() {}
    }

    /// `[retry]`: backoff after failed syncs (full jitter, doubling from base to cap).
    public struct Retry: Sendable, Equatable {
        /// The first backoff ceiling, seconds (default 5).
        public var baseSeconds = FerryDefaults.Node.retryBaseSeconds
        /// The largest backoff, seconds (default 600).
        public var capSeconds = FerryDefaults.Node.retryCapSeconds
        public init() {}
    }

    public init() {}

    /// Every key at its default.
    public static let defaults = NodeConfig()

    /// Reads, type-checks and validates a config file; keys it leaves out keep their defaults.
    ///
    /// - Throws: `ConfigError` naming the file and the key: unreadable file, invalid TOML,
    ///   unknown key, wrong type, or a value out of range.
    public static func load(path: String) throws(ConfigError) -> NodeConfig { try loadFile(path) }

    /// `load(path:)` for text already in memory; `file` names it in errors.
    public static func parse(_ text: String, file: String = "ferry.toml") throws(ConfigError) -> NodeConfig {
        try parseText(text, file: file)
    }

    /// Checks every value's range and form; the error names the first wrong key.
    public func validate() throws(ConfigError) {
        try Self.schema.validate(self)
        if retry.capSeconds < retry.baseSeconds {
            throw ConfigError(
                key: "retry.cap_seconds",
                problem: "must be ≥ retry.base_seconds (\(retry.baseSeconds)) (found \(retry.capSeconds))")
        }
        if http.totalTimeoutSeconds < http.connectTimeoutSeconds {
            throw ConfigError(
                key: "http.total_timeout_seconds",
                problem: "must be ≥ http.connect_timeout_seconds (\(http.connectTimeoutSeconds)), which it includes "
                    + "(found \(http.totalTimeoutSeconds))")
        }
    }

    /// The example file: every key, commented with its meaning, type and default.
    public static func renderExample() -> String { schema.renderExample(defaults) }

    /// The dotted names of every key, in example-file order.
    public static var keyNames: [String] { schema.keys.map(\.name) }

    static var schema: ConfigSchema<NodeConfig> {
        ConfigSchema(
            header: """
                Ferry node configuration: /etc/ferry/node.toml
                ferry node run --config /etc/ferry/node.toml

                Every key is listed with its meaning, type and default, and set to its default; a \
                key left out takes its default. Unknown keys are errors, so a misspelt key cannot be \
                silently ignored. Generated by NodeConfig.renderExample().
                """,
            sections: [
                ConfigSection(name: "sync", meaning: "When the node syncs, and how much it sends at once."),
                ConfigSection(
                    name: "http",
                    meaning: """
                        The connection to the hub. The defaults suit links of tens of kbit/s with \
                        seconds of latency and heavy loss.
                        """),
                ConfigSection(
                    name: "retry",
                    meaning: """
                        Backoff after a failed sync: a random wait up to base_seconds, doubling with each \
                        failure up to cap_seconds (never sooner than the hub's Retry-After).
                        """),
                ConfigSection(name: "log", meaning: "Logs go to stderr; under systemd, read them with journalctl -u ferry-node."),
                ConfigSection(name: "metrics", meaning: "Prometheus metrics."),
            ],
            keys: [
                ConfigKey(
                    "dir", .string(\.dir), .absolutePath(optional: false),
                    """
                    The node's data directory: its database (unit.db, which the unit's own tools \
                    write to), keys and the standard in force. The systemd unit's StateDirectory=ferry \
                    creates /var/lib/ferry for the ferry user.
                    """),
                ConfigKey(
                    "hub_url", .string(\.hubURL), .hubURL,
                    """
                    The supervisor's hub, e.g. "https://hub.example.org:7700". Empty before enrolment; \
                    `ferry node init --token …` enrols with this URL and records it. Once enrolled, a \
                    non-empty value here replaces the recorded one (for when the hub moves).
                    """),
                ConfigKey(
                    "language", .string(\.language), .oneOf(["", "zh", "en"]),
                    """
                    The language of messages for the records clerk: "zh" (Chinese), "en" (English), or \
                    "" to follow the LANG / LC_ALL environment variables.
                    """),
                ConfigKey(
                    "sync.interval_seconds", .integer(\.sync.intervalSeconds), .integerAtLeast(1),
                    "Seconds between scheduled syncs when nothing changes locally."),
                ConfigKey(
                    "sync.debounce_seconds", .integer(\.sync.debounceSeconds), .integerAtLeast(0),
                    """
                    Seconds after the last local write before it is synced, so a burst of edits goes \
                    in one sync. 0 syncs at the next check (about once a second).
                    """),
                ConfigKey(
                    "sync.batch_bytes", .integer(\.sync.batchBytes), .integerRange(1024...16_777_216),
                    """
                    Upper bound on one batch, bytes, before compression. Smaller batches lose less \
                    when a weak link drops mid-transfer; the maximum is the hub's default \
                    max_body_bytes.
                    """),
                ConfigKey(
                    "http.connect_timeout_seconds", .integer(\.http.connectTimeoutSeconds), .integerAtLeast(1),
                    "Seconds allowed for DNS, TCP, proxy and TLS handshake."),
                ConfigKey(
                    "http.total_timeout_seconds", .integer(\.http.totalTimeoutSeconds), .integerAtLeast(1),
                    """
                    Seconds one request may take in all, connection included.
                    """),
                ConfigKey(
                    "http.low_speed_bytes_per_second", .integer(\.http.lowSpeedBytesPerSecond), .integerAtLeast(1),
                    """
                    A transfer slower than this many bytes per second for low_speed_seconds is \
                    dropped and retried, so a stalled link is noticed before the total timeout.
                    """),
                ConfigKey(
                    "http.low_speed_seconds", .integer(\.http.lowSpeedSeconds), .integerAtLeast(1),
                    "See low_speed_bytes_per_second."),
                ConfigKey(
                    "http.ca_file", .string(\.http.caFile), .absolutePath(optional: true),
                    """
                    A PEM file of certificate authorities to trust for the hub's TLS certificate \
                    instead of the system's, e.g. a provincial CA. "" uses the system's.
                    """),
                ConfigKey(
                    "http.pinned_public_key", .string(\.http.pinnedPublicKey), .pinnedPublicKey,
                    """
                    Pins the hub's TLS public key: "sha256//" and the base64 SHA-256 of its \
                    SubjectPublicKeyInfo, or the path of a PEM/DER public key file. A connection to \
                    any other key fails even with a valid certificate. "" pins nothing.
                    """),
                ConfigKey(
                    "http.proxy", .string(\.http.proxy), .proxy,
                    """
                    The proxy to reach the hub through, e.g. "http://10.0.0.1:3128". "" leaves it \
                    to the http_proxy / https_proxy / no_proxy environment variables (under \
                    systemd, only those set with Environment=).
                    """),
                ConfigKey("retry.base_seconds", .integer(\.retry.baseSeconds), .integerAtLeast(1), "The first backoff ceiling, seconds."),
                ConfigKey(
                    "retry.cap_seconds", .integer(\.retry.capSeconds), .integerAtLeast(1),
                    "The largest backoff, seconds; at least base_seconds. A weak link is retried at least this often."),
                ConfigKey(
                    "log.level", .string(\.log.level), .oneOf(LogConfig.levels),
                    "The least severe level written."),
                ConfigKey(
                    "metrics.listen", .string(\.metrics.listen), .listen(optional: true),
                    """
                    Address to serve Prometheus metrics on (GET /metrics), e.g. "127.0.0.1:9700". \
                    "" serves none.
                    """),
            ])
    }
}

/// Reading a config file from disk.
enum ConfigFile {
    static func read(_ path: String) throws(ConfigError) -> String {
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            let reason = (error as NSError).localizedDescription
            throw ConfigError(
                file: path, key: nil,
                problem: "cannot read the config file (\(reason)); check the path and that the service user may read it")
        }
    }
}
