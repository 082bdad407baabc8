import FerryCore
import FerryWire
import GRDB

/// Limits and timeouts of the hub's HTTP listener: what keeps connections that never finish,
/// and requests nobody has authenticated yet, from taking the slots and memory units need.
///
/// The defaults are `FerryDefaults.Hub`'s, as hub.toml's (`[limits]`, `[timeouts]`) are.
public struct TransportSettings: Sendable, Equatable {
    /// Seconds within which a request's complete head (request line and headers) must
    /// arrive, counted from the connection's start or from the end of the previous response
    /// on the connection; then the hub closes it. This also closes an idle kept-alive
    /// connection. Default 30.
    public var requestHeadTimeoutSeconds = FerryDefaults.Hub.requestHeadSeconds
    /// Seconds a request body may go without a single byte arriving before the hub drops the
    /// connection. A slow upload that keeps moving (1 KB/s) is never cut. Default 30.
    public var bodyProgressTimeoutSeconds = FerryDefaults.Hub.bodyProgressSeconds
    /// Connections open at once, from everyone; beyond it new connections are closed at
    /// once. Default 1024.
    public var maxConnections = FerryDefaults.Hub.maxConnections
    /// Connections open at once from one client address; beyond it new ones from that
    /// address are closed at once. Default 16.
    public var maxConnectionsPerAddress = FerryDefaults.Hub.maxConnectionsPerAddress
    /// Requests whose body is read before anyone is authenticated (enrolments), at once;
    /// beyond it 503 `overloaded`. Default 8.
    public var maxUnauthenticatedReads = FerryDefaults.Hub.maxUnauthenticatedReads
    /// The same, from one client address; beyond it 429 `rate_limited`. Default 4.
    public var maxUnauthenticatedPerAddress = FerryDefaults.Hub.maxUnauthenticatedPerAddress
    /// Largest enrolment body, bytes, as sent and after gunzip. Default 16384.
    public var maxEnrolBodyBytes = FerryDefaults.Hub.maxEnrolBodyBytes
    /// Enrolments served at once; beyond it 503 `overloaded`. Default 4.
    public var maxConcurrentEnrolments = FerryDefaults.Hub.maxConcurrentEnrolments
    /// Enrolment attempts one client address may make per minute (a burst of as many, then
    /// refilled evenly); beyond it 429 `rate_limited`. Default 10.
    public var enrolAttemptsPerMinute = FerryDefaults.Hub.enrolAttemptsPerMinute
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
    }
}

extension WireError {
    /// What a failure of the hub's own database means to the node or the supervisor, without
    /// a word of SQL or SQLite: a full disk (the operator must free space; nothing was
    /// written), a database another process holds (retry shortly), a damaged file (restore),
    /// or anything else (retry). Always retryable from the sender's side: the fault is the
    /// hub's, and nothing was half-applied.
    public static func hubStorage(_ error: any Error, doing what: String) -> WireError {
        let code = (error as? DatabaseError)?.resultCode
        switch code {
        case .SQLITE_FULL?:
            return WireError(
                .unavailable, "the hub's disk is full, so it could not \(what); nothing was written — the hub's operator must free disk space. It will be retried",
                zh: "上级服务器磁盘已满，未能\(Self.zhDoing(what))，未写入任何内容；请通知上级管理员清理磁盘空间，之后会自动重试")
        case .SQLITE_BUSY?, .SQLITE_LOCKED?:
            return WireError(
                .unavailable, "the hub's database is busy (another process holds it), so it could not \(what); it will be retried shortly",
                zh: "上级服务器数据库正忙，未能\(Self.zhDoing(what))，稍后自动重试")
        case .SQLITE_CORRUPT?, .SQLITE_NOTADB?:
            return WireError(
                .unavailable, "the hub's database file is damaged, so it could not \(what); the hub's operator must restore it from a backup",
                zh: "上级服务器的数据库文件已损坏，未能\(Self.zhDoing(what))；请通知上级管理员从备份恢复")
        default:
            return WireError(
                .unavailable, "the hub could not \(what) (its database failed); it will be retried",
                zh: "上级服务器数据库操作失败，未能\(Self.zhDoing(what))，将自动重试")
        }
    }

    static func zhDoing(_ what: String) -> String {
        if what.contains("login") || what.contains("account") { return "处理登录" }
        if what.contains("batch") || what.contains("write") { return "保存本次上报" }
        if what.contains("nonce") || what.contains("registry") || what.contains("node") { return "核验本节点" }
        return "完成本次同步"
    }
}
