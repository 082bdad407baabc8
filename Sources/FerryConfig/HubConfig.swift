import FerryCore
import FerryWire
import Foundation

/// A supervisor's hub configuration (`/etc/ferry/hub.toml`).
///
/// The defaults below are the only place defaults live; `renderExample()` documents them
/// and `deploy/ferry-hub.toml.example` is its output. A file need only name the keys it
/// changes.
///
///     let config = try HubConfig.load(path: "/etc/ferry/hub.toml")
///     let address = config.listenAddress!   // valid once loaded
public struct HubConfig: Sendable, Equatable {
    /// The data directory: replica, registry, standard, signing key (default "/var/lib/ferry-hub").
    public var dir = "/var/lib/ferry-hub"
    /// host:port to serve the sync protocol on (default "127.0.0.1:7700").
    public var listen = FerryDefaults.Hub.listen
    /// A standard file to publish when the hub is created; "" (default) is the built-in one.
    public var standard = ""
    /// Sync requests served at once; more get 503 with Retry-After (default 32).
    public var maxConcurrentSessions = FerryDefaults.Hub.maxConcurrentSessions
    /// Largest accepted request body, bytes, after decompression (default 16777216).
    public var maxBodyBytes = FerryDefaults.Hub.maxBodyBytes
    /// How long an enrolment token stays valid, days (default 7).
    public var tokenLifetimeDays = FerryDefaults.Hub.tokenLifetimeDays
    /// Days without a sync after which a node is listed as silent (default 7).
    public var silentAfterDays = FerryDefaults.Hub.silentAfterDays
    /// How long a supervisor's dashboard or API login lasts, hours (default 8).
    public var adminSessionHours = FerryDefaults.Hub.adminSessionHours
    /// The hub's own reverse proxies, whose X-Forwarded-For names the client: IP addresses
    /// or CIDR ranges joined by commas (default "": none).
    public var trustedProxies = ""
    public var log = LogConfig()
    public var metrics = MetricsConfig()
    public var limits = HubLimitsConfig()
    public var timeouts = HubTimeoutsConfig()
    public var tls = HubTLSConfig()

    public init() {}

    /// Every key at its default.
    public static let defaults = HubConfig()

    /// `[limits]`: connections and requests taken before the sender is known.
    public struct HubLimitsConfig: Sendable, Equatable {
        /// Connections open at once (default 1024).
        public var maxConnections = FerryDefaults.Hub.maxConnections
        /// Connections open at once from one address (default 16).
        public var maxConnectionsPerAddress = FerryDefaults.Hub.maxConnectionsPerAddress
        /// Requests read before authentication, at once (default 8).
        public var maxUnauthenticatedReads = FerryDefaults.Hub.maxUnauthenticatedReads
        /// The same per address (default 4).
        public var maxUnauthenticatedPerAddress = FerryDefaults.Hub.maxUnauthenticatedPerAddress
        /// Largest enrolment body, bytes, as sent and after gunzip (default 16384).
        public var maxEnrolBodyBytes = FerryDefaults.Hub.maxEnrolBodyBytes
        /// Enrolments at once (default 4).
        public var maxConcurrentEnrolments = FerryDefaults.Hub.maxConcurrentEnrolments
        /// Enrolment attempts per address and minute (default 10).
        public var enrolAttemptsPerMinute = FerryDefaults.Hub.enrolAttemptsPerMinute
        public init() {}
    }

    /// `[timeouts]`: how long a silent client is waited for.
    public struct HubTimeoutsConfig: Sendable, Equatable {
        /// Seconds for a complete request head (default 30).
        public var requestHeadSeconds = FerryDefaults.Hub.requestHeadSeconds
        /// Seconds a body may go without a byte (default 30).
        public var bodyProgressSeconds = FerryDefaults.Hub.bodyProgressSeconds
        public init() {}
    }

    /// `[tls]`: the hub's own HTTPS.
    public struct HubTLSConfig: Sendable, Equatable {
        /// PEM certificate file; "" (default) serves plain HTTP.
        public var certificate = ""
        /// PEM private key file; "" (default) with `certificate` "".
        public var key = ""
        public init() {}

        /// Both or neither, and readable.
        func validate() throws(ConfigError) {
            if certificate.isEmpty != key.isEmpty {
                throw ConfigError(
                    key: certificate.isEmpty ? "tls.certificate" : "tls.key",
                    problem: "must be set together with \(certificate.isEmpty ? "tls.key" : "tls.certificate"): the certificate and its private key (found \"\")")
            }
            for (name, path) in [("tls.certificate", certificate), ("tls.key", key)] where !path.isEmpty {
                guard FileManager.default.isReadableFile(atPath: path) else {
                    throw ConfigError(key: name, problem: "names \(path), which is not a readable file; give the PEM file's absolute path")
                }
            }
        }
    }

    /// `listen` parsed; nil only if `listen` is invalid, which `validate()` rejects.
    public var listenAddress: ListenAddress? { ListenAddress(listen) }

    /// `trusted_proxies` parsed; empty only if it is "" (or invalid, which `validate()` rejects).
    public var trustedProxyRanges: [IPAddressRange] { IPAddressRange.list(trustedProxies) ?? [] }

    /// Reads, type-checks and validates a config file; keys it leaves out keep their defaults.
    ///
    /// - Throws: `ConfigError` naming the file and the key: unreadable file, invalid TOML,
    ///   unknown key, wrong type, or a value out of range.
    public static func load(path: String) throws(ConfigError) -> HubConfig { try loadFile(path) }

    /// `load(path:)` for text already in memory; `file` names it in errors.
    public static func parse(_ text: String, file: String = "hub.toml") throws(ConfigError) -> HubConfig {
        try parseText(text, file: file)
    }

    /// Checks every value's range and form; the error names the first wrong key.
    public func validate() throws(ConfigError) {
        try Self.schema.validate(self)
        try tls.validate()
        if let metricsAddress = metrics.address, metricsAddress.port != 0, metricsAddress == listenAddress {
            throw ConfigError(
                key: "metrics.listen",
                problem: "must differ from listen (\(listen)); both cannot be served on one address (found \"\(metrics.listen)\")")
        }
    }

    /// The example file: every key, commented with its meaning, type and default.
    public static func renderExample() -> String { schema.renderExample(defaults) }

    /// The dotted names of every key, in example-file order.
    public static var keyNames: [String] { schema.keys.map(\.name) }

    static var schema: ConfigSchema<HubConfig> {
        ConfigSchema(
            header: """
                Ferry hub configuration: /etc/ferry/hub.toml
                ferry hub serve --config /etc/ferry/hub.toml

                Every key is listed with its meaning, type and default, and set to its default; a \
                key left out takes its default. Unknown keys are errors, so a misspelt key cannot be \
                silently ignored. Generated by HubConfig.renderExample().
                """,
            sections: [
                ConfigSection(name: "log", meaning: "Logs go to stderr; under systemd, read them with journalctl -u ferry-hub."),
                ConfigSection(name: "metrics", meaning: "Prometheus metrics."),
                ConfigSection(
                    name: "limits",
                    meaning: """
                        What the hub takes from its clients before it knows who they are: connections, \
                        requests read before authentication, enrolments. Beyond a limit the hub refuses at \
                        once (a connection is closed; a request gets 503 overloaded or 429 rate_limited \
                        with Retry-After), so connections that never finish cannot stop the units' syncs.
                        """),
                ConfigSection(
                    name: "timeouts",
                    meaning: """
                        How long the hub waits for a client that stopped sending. Long enough for a unit \
                        on an 8 kbit/s link; a slow upload that keeps moving is never cut.
                        """),
                ConfigSection(
                    name: "tls",
                    meaning: """
                        HTTPS served by the hub itself (leave both empty for plain HTTP behind a TLS \
                        proxy). The files are read again on SIGHUP (systemctl reload ferry-hub) and when \
                        they change, without a restart; new connections get the new certificate.
                        """),
            ],
            keys: [
                ConfigKey(
                    "dir", .string(\.dir), .absolutePath(optional: false),
                    """
                    The hub's data directory: the merged replica (hub.db), the registry of units, \
                    nodes and tokens (registry.db), the published standard and the hub's signing \
                    key. The systemd unit's StateDirectory=ferry-hub creates /var/lib/ferry-hub for \
                    the ferry user.
                    """),
                ConfigKey(
                    "listen", .string(\.listen), .listen(optional: false),
                    """
                    Address to serve the sync protocol on. The default takes connections from this \
                    machine only, for a TLS reverse proxy in front; "0.0.0.0:7700" takes them from \
                    anywhere. Port 0 picks a free port.
                    """),
                ConfigKey(
                    "standard", .string(\.standard), .absolutePath(optional: true),
                    """
                    A standard file (TOML) to publish when the hub's data directory is first \
                    created; later the hub keeps the standard in its directory. "" uses the \
                    built-in party-building standard.
                    """),
                ConfigKey(
                    "max_concurrent_sessions", .integer(\.maxConcurrentSessions), .integerAtLeast(1),
                    """
                    Sync requests (push, pull) served at once; more are answered 503 with \
                    Retry-After, and the nodes back off.
                    """),
                ConfigKey(
                    "max_body_bytes", .integer(\.maxBodyBytes), .integerAtLeast(65536),
                    """
                    Largest request body accepted, bytes, after decompression. At least 65536, so a \
                    node's default batch fits.
                    """),
                ConfigKey(
                    "token_lifetime_days", .integer(\.tokenLifetimeDays), .integerAtLeast(1),
                    "How long a one-time enrolment token stays valid, days."),
                ConfigKey(
                    "silent_after_days", .integer(\.silentAfterDays), .integerAtLeast(1),
                    """
                    Days without a successful sync after which a unit is listed as silent on the \
                    dashboard and in ferry report, for follow-up.
                    """),
                ConfigKey(
                    "admin_session_hours", .integer(\.adminSessionHours), .integerAtLeast(1),
                    "How long a supervisor's dashboard or report-API login lasts before logging in again, hours."),
                ConfigKey(
                    "trusted_proxies", .string(\.trustedProxies), .addressList,
                    """
                    The hub's own reverse proxies (the TLS-terminating nginx or Caddy in front of it). \
                    A request from one of them is taken to come from the client its \
                    X-Forwarded-For header names, for the login throttle (failed logins are \
                    counted per client address) and the audit log; from anyone else the header \
                    is ignored, since a client can write anything there. With a proxy in front \
                    and this left "", every supervisor shares the proxy's address, and five \
                    failed logins from anyone hold back everyone's. Example: "127.0.0.1, ::1".
                    """),
                ConfigKey(
                    "log.level", .string(\.log.level), .oneOf(LogConfig.levels),
                    "The least severe level written."),
                ConfigKey(
                    "metrics.listen", .string(\.metrics.listen), .listen(optional: true),
                    """
                    Address to serve Prometheus metrics on (GET /metrics), e.g. "127.0.0.1:9701". \
                    "" serves none.
                    """),
                ConfigKey(
                    "limits.max_connections", .integer(\.limits.maxConnections), .integerAtLeast(1),
                    "Connections open at once, from all clients; a new one beyond it is closed at once."),
                ConfigKey(
                    "limits.max_connections_per_address", .integer(\.limits.maxConnectionsPerAddress), .integerAtLeast(1),
                    """
                    Connections open at once from one client address; a new one beyond it is closed at \
                    once. Raise it when many units reach the hub through one NAT address.
                    """),
                ConfigKey(
                    "limits.max_unauthenticated_reads", .integer(\.limits.maxUnauthenticatedReads), .integerAtLeast(1),
                    """
                    Requests whose body the hub reads before it knows the sender (enrolments), at \
                    once. More are answered 503 overloaded.
                    """),
                ConfigKey(
                    "limits.max_unauthenticated_per_address", .integer(\.limits.maxUnauthenticatedPerAddress), .integerAtLeast(1),
                    "The same, from one client address; more are answered 429 rate_limited."),
                ConfigKey(
                    "limits.max_enrol_body_bytes", .integer(\.limits.maxEnrolBodyBytes), .integerAtLeast(1024),
                    "Largest enrolment request, bytes, as sent and after gunzip; larger is 413 too_large."),
                ConfigKey(
                    "limits.max_concurrent_enrolments", .integer(\.limits.maxConcurrentEnrolments), .integerAtLeast(1),
                    "Enrolments served at once; more are answered 503 overloaded."),
                ConfigKey(
                    "limits.enrol_attempts_per_minute", .integer(\.limits.enrolAttemptsPerMinute), .integerAtLeast(1),
                    """
                    Enrolment attempts one client address may make per minute (a burst of as many, \
                    refilled evenly); more are answered 429 rate_limited. Guessing tokens is hopeless \
                    anyway (160 bits); this keeps the attempts from costing the hub.
                    """),
                ConfigKey(
                    "timeouts.request_head_seconds", .integer(\.timeouts.requestHeadSeconds), .integerRange(1...3600),
                    """
                    Seconds within which a request's complete head must arrive, from the connection's \
                    start or from the end of the previous answer on it; then the connection is closed. \
                    This also closes idle kept-alive connections.
                    """),
                ConfigKey(
                    "timeouts.body_progress_seconds", .integer(\.timeouts.bodyProgressSeconds), .integerRange(1...3600),
                    "Seconds a request body may go without a single byte arriving before the connection is dropped."),
                ConfigKey(
                    "tls.certificate", .string(\.tls.certificate), .absolutePath(optional: true),
                    """
                    The hub's certificate (PEM; the chain after the leaf if there is one), e.g. from \
                    the province's CA or Let's Encrypt. Set together with tls.key. "" serves plain HTTP.
                    """),
                ConfigKey(
                    "tls.key", .string(\.tls.key), .absolutePath(optional: true),
                    "The certificate's private key (PEM, unencrypted, readable by the ferry user only)."),
            ])
    }
}
