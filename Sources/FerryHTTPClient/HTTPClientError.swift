internal import CCurl
import Foundation

/// Why a request got no HTTP response: what happened, to which URL, what to check, and
/// whether trying again may help.
///
/// An HTTP error status is not an `HTTPClientError`: it arrives as an `HTTPResponse`.
public struct HTTPClientError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The connect timeout or the total timeout elapsed.
        case timeout
        /// The transfer stayed below the low-speed limit for the low-speed time: the link
        /// dropped silently or the peer stopped answering.
        case stalled
        /// No connection: the host name did not resolve, or the connection was refused or
        /// unreachable.
        case connect
        /// TLS failed: the handshake, certificate verification or public-key pinning.
        case tls
        /// Anything else: a connection dropped mid-request, a malformed URL, a bad setting.
        case other
    }

    public var kind: Kind
    /// English, for logs and the operator: what happened and what to check.
    public var message: String
    /// The same in Chinese, for a clerk's screen.
    public var messageZh: String
    /// libcurl's CURLcode; 0 when the error did not come from libcurl.
    public var curlCode: Int
    /// libcurl's own error text, e.g. "Failed to connect to 127.0.0.1 port 9 after 0 ms:
    /// Couldn't connect to server"; empty when there is none.
    public var detail: String
    /// Whether the same request may succeed later: true for timeouts, stalls, refused
    /// connections and dropped links; false for bad URLs, bad settings and failed TLS
    /// verification.
    public var isRetryable: Bool

    public init(kind: Kind, message: String, messageZh: String, curlCode: Int = 0, detail: String = "", isRetryable: Bool) {
        self.kind = kind
        self.message = message
        self.messageZh = messageZh
        self.curlCode = curlCode
        self.detail = detail
        self.isRetryable = isRetryable
    }

    public var description: String {
        curlCode == 0 ? message : "\(message) [libcurl \(curlCode): \(detail)]"
    }

    static func invalidConfiguration(_ message: String, zh: String) -> HTTPClientError {
        HTTPClientError(kind: .other, message: message, messageZh: zh, isRetryable: false)
    }

    static func invalidRequest(_ message: String, zh: String) -> HTTPClientError {
        HTTPClientError(kind: .other, message: message, messageZh: zh, isRetryable: false)
    }
}

/// What libcurl reported about a failed transfer, gathered right after it failed.
struct TransferFailure {
    var code: CURLcode
    /// errno of the last failed connect, 0 when none.
    var osErrno: Int32
    /// Seconds from the start of the request to the failure.
    var elapsedSeconds: Double
    /// Whether the connection phase (TCP, proxy, TLS) finished and the request began:
    /// a timeout after that point is a stall or the total timeout, not the connect timeout.
    var requestStarted: Bool
    /// libcurl's error buffer, or curl_easy_strerror when the buffer is empty.
    var detail: String
}

extension HTTPClientError {
    /// Classifies a failed transfer, for a message that says what to check.
    ///
    /// libcurl reports the total timeout and the low-speed limit with the same code,
    /// CURLE_OPERATION_TIMEDOUT; a timeout well before the total limit is the low-speed one.
    init(_ failure: TransferFailure, url: String, configuration: HTTPClientConfiguration) {
        let code = failure.code
        let detail = failure.detail
        func make(_ kind: Kind, _ retryable: Bool, _ message: String, _ zh: String) -> HTTPClientError {
            HTTPClientError(kind: kind, message: message, messageZh: zh, curlCode: Int(code.rawValue), detail: detail, isRetryable: retryable)
        }
        let reason = failure.osErrno == 0 ? detail : String(cString: strerror(failure.osErrno)).lowercased()

        switch code {
        case CURLE_OPERATION_TIMEDOUT:
            let total = configuration.totalTimeoutSeconds
            let connect = configuration.connectTimeoutSeconds == 0 ? 300 : configuration.connectTimeoutSeconds
            if !failure.requestStarted {
                self = make(.timeout, true,
                    "no connection to \(url) within \(connect) s; is the hub reachable from here and the network up?",
                    "\(connect) 秒内未能连接到 \(url)；请确认网络通畅、本机可以访问中心服务器")
            } else if total > 0 && failure.elapsedSeconds >= Double(total) - 0.5 {
                self = make(.timeout, true,
                    "request to \(url) did not finish within \(total) s; the link is too slow for this transfer or the hub is overloaded — check the network, or raise totalTimeoutSeconds",
                    "发往 \(url) 的请求 \(total) 秒内未完成；网络过慢或中心服务器负载过高，请检查网络，或调大 totalTimeoutSeconds")
            } else {
                let limit = configuration.lowSpeedLimitBytesPerSecond
                let time = configuration.lowSpeedTimeSeconds
                self = make(.stalled, true,
                    "transfer with \(url) stalled: under \(limit) bytes/s for \(time) s; the link dropped or the hub stopped answering — check the network and the hub",
                    "与 \(url) 的传输停滞：连续 \(time) 秒低于每秒 \(limit) 字节；网络中断或中心服务器无响应，请检查网络和中心服务器")
            }
        case CURLE_COULDNT_RESOLVE_HOST:
            self = make(.connect, true,
                "could not resolve the host name of \(url) (\(detail)); check the hub URL and this machine's DNS",
                "无法解析 \(url) 的主机名（\(detail)）；请检查中心服务器地址和本机 DNS 设置")
        case CURLE_COULDNT_RESOLVE_PROXY:
            self = make(.connect, true,
                "could not resolve the proxy's host name for \(url) (\(detail)); check the proxy setting and this machine's DNS",
                "无法解析代理服务器的主机名（\(url)，\(detail)）；请检查代理设置和本机 DNS 设置")
        case CURLE_COULDNT_CONNECT where failure.osErrno == ECONNREFUSED:
            self = make(.connect, true,
                "could not connect to \(url) (connection refused); is the hub running and the URL right?",
                "无法连接到 \(url)（连接被拒绝）；请确认中心服务器已启动、地址和端口正确")
        case CURLE_COULDNT_CONNECT:
            self = make(.connect, true,
                "could not connect to \(url) (\(reason)); is the network up and the hub reachable from here?",
                "无法连接到 \(url)（\(reason)）；请确认网络通畅、本机可以访问中心服务器")
        case CURLE_PROXY:
            self = make(.connect, true,
                "the proxy refused to carry the request to \(url) (\(detail)); check the proxy setting",
                "代理服务器拒绝转发发往 \(url) 的请求（\(detail)）；请检查代理设置")
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
            self = make(.tls, false,
                "the public key of \(url) does not match pinnedPublicKey; the hub's key changed or something intercepts the connection — confirm the key with the hub's administrator",
                "\(url) 的公钥与 pinnedPublicKey 不符；中心服务器更换了密钥或连接被拦截，请向中心服务器管理员核实公钥")
        case CURLE_PEER_FAILED_VERIFICATION:
            self = make(.tls, false,
                "the TLS certificate of \(url) did not verify (\(detail)); check the hub's certificate and host name, and the caFile setting",
                "\(url) 的 TLS 证书校验失败（\(detail)）；请检查中心服务器的证书和主机名，以及 caFile 设置")
        case CURLE_SSL_CACERT_BADFILE:
            self = make(.tls, false,
                "could not load the CA bundle for \(url) (\(detail)); check that caFile is a readable PEM file",
                "无法加载访问 \(url) 所需的 CA 证书包（\(detail)）；请确认 caFile 是可读的 PEM 文件")
        case CURLE_SSL_CONNECT_ERROR, CURLE_SSL_SHUTDOWN_FAILED:
            self = make(.tls, true,
                "TLS handshake with \(url) failed (\(detail)); check that the URL is the hub's HTTPS address and port",
                "与 \(url) 的 TLS 握手失败（\(detail)）；请确认地址是中心服务器的 HTTPS 地址和端口")
        case CURLE_SSL_ENGINE_NOTFOUND, CURLE_SSL_ENGINE_SETFAILED, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
            CURLE_USE_SSL_FAILED, CURLE_SSL_ENGINE_INITFAILED, CURLE_SSL_CRL_BADFILE, CURLE_SSL_ISSUER_ERROR,
            CURLE_SSL_INVALIDCERTSTATUS, CURLE_SSL_CLIENTCERT:
            self = make(.tls, false,
                "TLS with \(url) failed (\(detail)); check the TLS settings and the hub's certificate",
                "与 \(url) 的 TLS 连接失败（\(detail)）；请检查 TLS 设置和中心服务器的证书")
        case CURLE_GOT_NOTHING, CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_PARTIAL_FILE, CURLE_HTTP2,
            CURLE_HTTP2_STREAM, CURLE_HTTP3, CURLE_WEIRD_SERVER_REPLY, CURLE_SEND_FAIL_REWIND:
            self = make(.other, true,
                "the connection to \(url) dropped mid-request (\(detail)); the link is unreliable or the hub restarted — try again",
                "与 \(url) 的连接在请求中途断开（\(detail)）；网络不稳定或中心服务器重启，请重试")
        case _ where failure.requestStarted
            && [CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL, CURLE_BAD_CONTENT_ENCODING, CURLE_TOO_MANY_REDIRECTS].contains(code):
            // The request went out: what libcurl could not use is the answer (a status line or
            // header damaged on the way, "HTTP/1.3"), not the URL.
            self = make(.other, true,
                "the answer from \(url) arrived damaged (\(detail)); the link corrupts data — try again, and check the network if it persists",
                "来自 \(url) 的答复在传输中损坏（\(detail)）；网络传输出错，请重试，如持续出现请检查网络")
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL:
            self = make(.other, false,
                "\(url) is not a usable URL (\(detail)); check the hub URL setting",
                "\(url) 不是可用的地址（\(detail)）；请检查中心服务器地址设置")
        default:
            // Once the request went out, an unclassified failure is the link's, worth a retry.
            self = make(.other, failure.requestStarted,
                "request to \(url) failed (\(detail))" + (failure.requestStarted ? "; it will be tried again" : ""),
                "发往 \(url) 的请求失败（\(detail)）" + (failure.requestStarted ? "；将自动重试" : ""))
        }
    }
}
