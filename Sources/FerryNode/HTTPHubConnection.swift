import FerryCompression
import FerryCore
import FerryHTTPClient
import FerryTrust
import FerryWire
import Foundation
import Synchronization

/// The node's connection to its hub over HTTP (libcurl), signing every request.
///
/// Requests are signed with the hub's time as last seen in `Ferry-Hub-Time`, so a unit
/// whose clock is days off still authenticates; the observed offset is reported in status.
public final class HTTPHubConnection: HubConnection {
    let client: HTTPClient
    let identity: NodeIdentity
    let key: SigningKey
    let clock: any WallClock
    let base: String
    private let offset = Mutex<Int64>(0)
    private let counted = Mutex((sent: 0, received: 0))
    private let standardSeen = Mutex<String?>(nil)
    /// Largest response body accepted after decompression, bytes.
    let maxResponseBytes = 32 << 20

    public init(identity: NodeIdentity, clock: any WallClock, configuration: HTTPClientConfiguration = HTTPClientConfiguration()) throws {
        self.identity = identity
        self.clock = clock
        key = try SigningKey(base64: identity.privateKey)
        client = try HTTPClient(configuration: configuration)
        base = identity.hubURL.hasSuffix("/") ? String(identity.hubURL.dropLast()) : identity.hubURL
    }

    public var clockOffsetMillis: Int64 { offset.withLock { $0 } }
    public var hubStandardVersion: String? { standardSeen.withLock { $0 } }

    /// Bytes sent and received so far: bodies plus request and response headers as written.
    public var transferred: (sent: Int, received: Int) { counted.withLock { $0 } }

    /// Enrols a new node: no signature yet, the token is the credential.
    public static func enrol(hubURL: String, request: EnrolRequest, configuration: HTTPClientConfiguration = HTTPClientConfiguration()) throws(SyncFailure) -> EnrolResponse {
        let client: HTTPClient
        do { client = try HTTPClient(configuration: configuration) } catch { throw failure(error) }
        let url = (hubURL.hasSuffix("/") ? String(hubURL.dropLast()) : hubURL) + "/v1/enrol"
        let body = (try? JSONEncoder().encode(request)).map { [UInt8]($0) } ?? []
        let response: HTTPResponse
        do {
            response = try client.send(method: "POST", url: url, headers: [("Content-Type", WireMediaType.json)], body: body)
        } catch { throw failure(error) }
        try check(response)
        do { return try JSONDecoder().decode(EnrolResponse.self, from: Data(response.body)) } catch {
            throw SyncFailure(kind: .hub(.malformed), message: "the hub's enrolment answer did not decode: \(error)", messageZh: "上级的答复无法解析", isRetryable: false)
        }
    }

    static func failure(_ e: HTTPClientError) -> SyncFailure {
        SyncFailure(kind: .transport, message: e.message, messageZh: e.messageZh, isRetryable: e.isRetryable)
    }

    /// The Ferry error in a response, nil when the body is not the error shape.
    static func wireError(_ r: HTTPResponse) -> WireError? {
        try? JSONDecoder().decode(WireError.self, from: Data(r.body))
    }

    static func check(_ r: HTTPResponse) throws(SyncFailure) {
        guard !(200..<300).contains(r.status) else { return }
        let retryAfter = r.headers["retry-after"].flatMap(Double.init)
        if let e = wireError(r) {
            throw SyncFailure(e, retryAfter: retryAfter)
        }
        // Every refusal of a Ferry hub has the error shape. Anything else (a bare 4xx, a 3xx
        // or 6xx status line, a 5xx page) is a request or an answer damaged on the way, or a
        // proxy's answer: the link's fault, retryable, never a reason to call an administrator.
        throw SyncFailure(
            kind: .transport,
            message: "the hub answered HTTP \(r.status) without a Ferry error; the request or the answer was damaged on the way, or a proxy answered — it will be sent again",
            messageZh: "上级服务器返回 HTTP \(r.status)，但不是 Ferry 的错误答复；请求或答复可能在传输中损坏，或由代理返回，将自动重发",
            isRetryable: true, retryAfter: retryAfter)
    }

    /// Whether a refusal may be damage on the way, worth one immediate re-send with a fresh
    /// signature: a clock the hub found off (the offset is now known), a signature or body
    /// that did not survive the link, or a 4xx that is not the Ferry error shape.
    static func worthResending(_ r: HTTPResponse) -> Bool {
        guard (400..<500).contains(r.status) else { return false }
        guard let e = wireError(r) else { return r.status != 429 }
        return e.code == .staleRequest || e.code == .badSignature || e.code == .corrupted
    }

    /// Sends one signed request; re-signs and re-sends once at once when the refusal may be
    /// the link's or the clock's (`worthResending`), or when the answer arrived damaged.
    func send(_ method: String, _ path: String, body: [UInt8], headers extra: [(String, String)]) throws(SyncFailure) -> HTTPResponse {
        var attempt = 0
        while true {
            attempt += 1
            let now = UInt64(max(0, Int64(clock.nowMillis()) + clockOffsetMillis))
            let signed: [(String, String)]
            do { signed = try key.signedHeaders(node: identity.nodeID, method: method, path: path, body: body, nowMillis: now) } catch {
                throw SyncFailure(kind: .local, message: "signing the request failed: \(error)", messageZh: "请求签名失败", isRetryable: false)
            }
            let response: HTTPResponse
            do {
                response = try client.send(method: method, url: base + path, headers: signed + extra + [("Expect", "")], body: body)
            } catch {
                if attempt == 1 && error.isRetryable && error.kind == .other { continue }
                throw Self.failure(error)
            }
            let headerBytes = (signed + extra).reduce(method.utf8.count + path.utf8.count + 64) { $0 + $1.0.utf8.count + $1.1.utf8.count + 4 }
            let responseHeaderBytes = response.headers.reduce(17) { $0 + $1.key.utf8.count + $1.value.utf8.count + 4 }
            counted.withLock {
                $0.sent += headerBytes + body.count
                $0.received += responseHeaderBytes + response.body.count
            }
            if let v = response.headers[WireHeader.standardVersion.lowercased()] { standardSeen.withLock { $0 = v } }
            if let hubTime = response.headers[WireHeader.hubTime.lowercased()].flatMap(UInt64.init) {
                let observed = Int64(bitPattern: hubTime) - Int64(bitPattern: clock.nowMillis())
                offset.withLock { $0 = observed }
            }
            if attempt == 1 && Self.worthResending(response) { continue }
            try Self.check(response)
            return response
        }
    }

    public func push(_ changeset: [UInt8]) throws(SyncFailure) -> PushAcknowledgement {
        var body = changeset
        var headers = [("Content-Type", WireMediaType.changeset)]
        if identity.gzip, let z = try? Gzip.compress(changeset), z.count < changeset.count {
            body = z
            headers.append(("Content-Encoding", "gzip"))
        }
        let r = try send("POST", "/v1/push", body: body, headers: headers)
        do { return try JSONDecoder().decode(PushAcknowledgement.self, from: Data(r.body)) } catch {
            throw SyncFailure(kind: .hub(.malformed), message: "the hub's acknowledgement did not decode: \(error)", messageZh: "上级的确认无法解析", isRetryable: true)
        }
    }

    public func pull(_ request: PullRequest) throws(SyncFailure) -> [UInt8]? {
        let body = (try? JSONEncoder().encode(request)).map { [UInt8]($0) } ?? []
        var headers = [("Content-Type", WireMediaType.json)]
        if identity.gzip { headers.append(("Accept-Encoding", "gzip")) }
        let r = try send("POST", "/v1/pull", body: body, headers: headers)
        if r.status == 204 { return nil }
        if r.headers["content-encoding"] == "gzip" {
            do { return try Gzip.decompress(r.body, maxBytes: maxResponseBytes) } catch {
                throw SyncFailure(kind: .transport, message: "the hub's batch arrived damaged: \(error)", messageZh: "收到的数据已损坏，将重新获取", isRetryable: true)
            }
        }
        return r.body
    }

    public func fetchStandard() throws(SyncFailure) -> SignedStandard {
        let r = try send("GET", "/v1/standard", body: [], headers: [])
        do { return try JSONDecoder().decode(SignedStandard.self, from: Data(r.body)) } catch {
            throw SyncFailure(kind: .hub(.malformed), message: "the hub's standard did not decode: \(error)", messageZh: "上级发布的数据标准无法解析", isRetryable: true)
        }
    }

    public func acknowledgePull(_ ack: PullAcknowledgement) throws(SyncFailure) {
        let body = (try? JSONEncoder().encode(ack)).map { [UInt8]($0) } ?? []
        _ = try send("POST", "/v1/pull/ack", body: body, headers: [("Content-Type", WireMediaType.json)])
    }
}
