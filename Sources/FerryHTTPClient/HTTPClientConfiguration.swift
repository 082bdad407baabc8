import FerryCore
import Foundation

/// How an `HTTPClient` connects, how long it waits, and how it checks the peer.
///
/// The defaults suit a weak link: seconds of latency to connect, minutes for a transfer,
/// and a stalled peer detected after a minute of near-silence rather than at the total
/// timeout. Every default lives in `init`.
public struct HTTPClientConfiguration: Sendable, Equatable {
    /// Seconds allowed for the connection phase: DNS, TCP, proxy and TLS handshake.
    /// Default 20. 0 means libcurl's own limit, 300.
    public var connectTimeoutSeconds: Int
    /// Seconds allowed for a whole request, connection included. Default 300. 0 means no limit.
    public var totalTimeoutSeconds: Int
    /// A transfer slower than this, in bytes per second, for `lowSpeedTimeSeconds` is
    /// abandoned as stalled. Default 64. 0 turns stall detection off.
    public var lowSpeedLimitBytesPerSecond: Int
    /// Seconds a transfer may stay below `lowSpeedLimitBytesPerSecond` before it is
    /// abandoned as stalled. Default 60. 0 turns stall detection off.
    public var lowSpeedTimeSeconds: Int
    /// Path of a PEM bundle of CA certificates that TLS peers are checked against.
    /// Default nil: the system bundle libcurl was built with.
    public var caFile: String?
    /// The peer's public key, as libcurl's CURLOPT_PINNEDPUBLICKEY takes it: a PEM or DER
    /// file path, or `"sha256//<base64>"` hashes separated by `;`. Default nil: no pinning.
    ///
    ///     config.pinnedPublicKey = "sha256//YhKJKSzoTt2b5FP18fvpHo7fJYqQCjAa3HWY3tvRMwE="
    public var pinnedPublicKey: String?
    /// Whether TLS peers must present a certificate that verifies for their host name.
    /// Default true. false is for tests against self-signed hubs; pinning still applies.
    public var verifyTLS: Bool
    /// The proxy URL, e.g. `"http://10.0.0.1:3128"`. Default nil: libcurl's default, the
    /// `http_proxy`, `https_proxy`, `all_proxy` and `no_proxy` environment variables.
    /// `""` uses no proxy at all, whatever the environment says.
    public var proxy: String?
    /// The User-Agent header sent with every request. Default `"ferry/0.1"`.
    public var userAgent: String

    public init(
        connectTimeoutSeconds: Int = FerryDefaults.Node.connectTimeoutSeconds,
        totalTimeoutSeconds: Int = FerryDefaults.Node.totalTimeoutSeconds,
        lowSpeedLimitBytesPerSecond: Int = FerryDefaults.Node.lowSpeedBytesPerSecond,
        lowSpeedTimeSeconds: Int = FerryDefaults.Node.lowSpeedSeconds,
        caFile: String? = nil,
        pinnedPublicKey: String? = nil,
        verifyTLS: Bool = true,
        proxy: String? = nil,
        userAgent: String = "ferry/0.1"
    ) {
        self.connectTimeoutSeconds = connectTimeoutSeconds
        self.totalTimeoutSeconds = totalTimeoutSeconds
        self.lowSpeedLimitBytesPerSecond = lowSpeedLimitBytesPerSecond
        self.lowSpeedTimeSeconds = lowSpeedTimeSeconds
        self.caFile = caFile
        self.pinnedPublicKey = pinnedPublicKey
        self.verifyTLS = verifyTLS
        self.proxy = proxy
        self.userAgent = userAgent
    }

    /// Checks every field, throwing an error that names the first one that is wrong.
    public func validate() throws(HTTPClientError) {
        let counts: [(String, Int)] = [
            ("connectTimeoutSeconds", connectTimeoutSeconds),
            ("totalTimeoutSeconds", totalTimeoutSeconds),
            ("lowSpeedLimitBytesPerSecond", lowSpeedLimitBytesPerSecond),
            ("lowSpeedTimeSeconds", lowSpeedTimeSeconds),
        ]
        for (field, value) in counts where value < 0 {
            throw .invalidConfiguration(
                "HTTP client setting \(field) is \(value); it must be 0 or more",
                zh: "HTTP 客户端设置 \(field) 为 \(value)，必须大于或等于 0"
            )
        }
        if let caFile, !FileManager.default.isReadableFile(atPath: caFile) {
            throw .invalidConfiguration(
                "HTTP client setting caFile names \(caFile), which is not a readable file; point it at a PEM CA bundle",
                zh: "HTTP 客户端设置 caFile 指向 \(caFile)，该文件不存在或不可读；请指定 PEM 格式的 CA 证书包"
            )
        }
        if let pinnedPublicKey, pinnedPublicKey.isEmpty {
            throw .invalidConfiguration(
                "HTTP client setting pinnedPublicKey is empty; give \"sha256//<base64>\" or a key file, or leave it unset",
                zh: "HTTP 客户端设置 pinnedPublicKey 为空；请填写 \"sha256//<base64>\" 或公钥文件路径，或不设置"
            )
        }
        for (field, value) in [("userAgent", userAgent), ("proxy", proxy ?? ""), ("caFile", caFile ?? "")]
        where value.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\0" }) {
            throw .invalidConfiguration(
                "HTTP client setting \(field) contains a line break or NUL; remove it",
                zh: "HTTP 客户端设置 \(field) 含有换行符或 NUL 字符，请删除"
            )
        }
    }
}
