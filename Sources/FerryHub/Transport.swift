import FerryWire

/// Limits and timeouts of the hub's HTTP listener: what keeps connections that never finish,
/// and requests nobody has authenticated yet, from taking the slots and memory units need.
///
/// The defaults here are the only ones; `hub.toml` (`[limits]`, `[timeouts]`) overrides
/// them, and `HubConfig` documents each key with the same default.
public struct TransportSettings: Sendable, Equatable {
    /// Seconds within which a request's complete head (request line and headers) must
    /// arrive, counted from the connection's start or from the end of the previous response
    /// on the connection; then the hub closes it. This also closes an idle kept-alive
    /// connection. Default 30.
    public var requestHeadTimeoutSeconds = 30
    /// Seconds a request body may go without a single byte arriving before the hub drops the
    /// connection. A slow upload that keeps moving (1 KB/s) is never cut. Default 30.
    public var bodyProgressTimeoutSeconds = 30
    /// Connections open at once, from everyone; beyond it new connections are closed at
    /// once. Default 1024.
    public var maxConnections = 1024
    /// Connections open at once from one client address; beyond it new ones from that
    /// address are closed at once. Default 16.
    public var maxConnectionsPerAddress = 16
    /// Requests whose body is read before anyone is authenticated (enrolments), at once;
    /// beyond it 503 `overloaded`. Default 8.
    public var maxUnauthenticatedReads = 8
    /// The same, from one client address; beyond it 429 `rate_limited`. Default 4.
    public var maxUnauthenticatedPerAddress = 4
    /// Largest enrolment body, bytes, as sent and after gunzip. Default 16384.
    public var maxEnrolBodyBytes = 16 * 1024
    /// Enrolments served at once; beyond it 503 `overloaded`. Default 4.
    public var maxConcurrentEnrolments = 4
    /// Enrolment attempts one client address may make per minute (a burst of as many, then
    /// refilled evenly); beyond it 429 `rate_limited`. Default 10.
    public var enrolAttemptsPerMinute = 10
    /// How often the hub looks at its TLS certificate and key files for a change, seconds
    /// (SIGHUP reloads at once). Default 60.
    public var tlsReloadCheckSeconds = 60

    public init() {}
}

extension Hub {
    /// Records that a signed request's body did not match its signed `Ferry-Content-SHA256`:
    /// damage on the way, not a failed authentication.
    public func noteDamagedBody(node: NodeRecord, method: String, path: String, bytes: Int, client: String? = nil) {
        let now = clock.nowMillis()
        registry.audit(
            node: node.id.rawValue, unit: node.unitID, action: "receive", bytes: bytes, outcome: "damaged", detail: "\(method) \(path)",
            client: client, now: now)
        metrics.error(WireErrorCode.corrupted.rawValue)
        logger.notice("request body damaged", metadata: ["node": "\(node.id)", "route": "\(method) \(path)", "bytes": "\(bytes)"])
    }
}
