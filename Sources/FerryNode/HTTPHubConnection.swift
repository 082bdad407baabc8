import FerryCompression
import FerryCore
import FerryHTTPClient
import FerryTrust
import FerryWire
import Foundation
import Synchronization

/// The node's connection to its hub over HTTP (libcurl), signing every request and
/// checking the hub's signature on every answer.
///
/// Requests are signed with the hub's time as last seen in `Ferry-Hub-Time`, so a unit
/// whose clock is days off still authenticates; the observed offset is reported in status.
/// An answer whose signature does not verify with the hub's key (enrolled with the token's
/// fingerprint) is treated as damaged on the way and never used.
public final class HTTPHubConnection: HubConnection {
    let client: HTTPClient
    let identity: NodeIdentity
    let key: SigningKey
    let hubKey: [UInt8]
    let clock: any WallClock
    let base: String
    private let offset = Mutex<Int64>(0)
    private let counted = Mutex((sent: 0, received: 0))
    private let standardSeen = Mutex<String?>(nil)
    /// The SHA-256 of the last exchange body whose upload was cut: when the next exchange
    /// sends the same body, it asks the hub how much of it arrived and sends only the rest.
    private let cutUpload = Mutex<String?>(nil)
    /// Bodies at least this large are resumed after a cut; smaller ones are sent again whole
    /// (the question would cost about as much as the answer saves).
    public static let resumableBytes = 8 * 1024
    /// Largest response body accepted after decompression, bytes.
    static let maxResponseBytes = 32 << 20

    public init(identity: NodeIdentity, clock: any WallClock, configuration: HTTPClientConfiguration = HTTPClientConfiguration()) throws {
        self.identity = identity
        self.clock = clock
        key = try SigningKey(base64: identity.privateKey)
        guard let hk = Data(base64Encoded: identity.hubPublicKey), hk.count == 32 else {
            throw TrustError("node.json holds no valid hub key; enrol the node again")
        }
        hubKey = [UInt8](hk)
        client = try HTTPClient(configuration: configuration)
        base = identity.hubURL.hasSuffix("/") ? String(identity.hubURL.dropLast()) : identity.hubURL
    }

    public var clockOffsetMillis: Int64 { offset.withLock { $0 } }
    public var hubStandardVersion: String? { standardSeen.withLock { $0 } }

    /// Bytes sent and received so far: bodies plus request and response headers as written.
    public var transferred: (sent: Int, received: Int) { counted.withLock { $0 } }

    /// Enrols a new node with a one-time token: proves the token without sending it, checks
    /// the hub's key against the token's fingerprint and the hub's signature on its answer.
    public static func enrol(
        hubURL: String, token text: String, key: SigningKey, hostname: String, restoring: Bool = false,
        configuration: HTTPClientConfiguration = HTTPClientConfiguration()
    ) throws(SyncFailure) -> EnrolResponse {
        guard let token = EnrolmentToken(parsing: text) else {
            throw SyncFailure(
                kind: .local, message: "the token is not 12 groups of 4 letters and digits; check it was typed correctly",
                messageZh: "登记令牌格式不对（应为 12 组、每组 4 个字母或数字），请核对", isRetryable: false)
        }
        let client: HTTPClient
        do { client = try HTTPClient(configuration: configuration) } catch { throw failure(error) }
        let url = (hubURL.hasSuffix("/") ? String(hubURL.dropLast()) : hubURL) + "/v1/enrol"
        let request = EnrolRequest(token: token, key: key, hostname: String(hostname.prefix(128)), restoring: restoring)
        let nonce = request.nonce
        let body = (try? JSONEncoder().encode(request)).map { [UInt8]($0) } ?? []
        let response: HTTPResponse
        do {
            // The answer carries the standard file (about 31 KB of TOML, a fifth of that gzip'd).
            response = try client.send(
                method: "POST", url: url, headers: [("Content-Type", WireMediaType.json), ("Accept-Encoding", "gzip"), ("Expect", "")], body: body)
        } catch { throw failure(error) }
        guard (200..<300).contains(response.status) else { try check(response, hubKey: nil, nonce: nonce) }
        let answer: EnrolResponse
        do { answer = try JSONDecoder().decode(EnrolResponse.self, from: Data(try decoded(response))) } catch {
            throw SyncFailure(kind: .transport, message: "the hub's enrolment answer did not decode", messageZh: "上级的登记答复无法解析", isRetryable: true)
        }
        guard let hk = Data(base64Encoded: answer.hubPublicKey), hk.count == 32, token.matches(hubPublicKey: [UInt8](hk)) else {
            throw SyncFailure(
                kind: .hub(.badSignature),
                message: "the hub's key does not match the token's fingerprint: this is not the hub that issued the token (an address typed wrong, or someone between this box and the hub); nothing was saved",
                messageZh: "上级服务器的密钥与令牌不符：这不是签发令牌的上级（地址有误，或网络被他人截持），未保存任何内容", isRetryable: false)
        }
        try verify(response, hubKey: [UInt8](hk), nonce: nonce)
        guard answer.publicKey == key.publicKeyBase64 else {
            throw SyncFailure(
                kind: .hub(.badSignature), message: "the hub enrolled a different key than this node's; the enrolment was tampered with",
                messageZh: "上级登记的密钥与本节点不符，登记过程被篡改", isRetryable: false)
        }
        return answer
    }

    static func failure(_ e: HTTPClientError) -> SyncFailure {
        SyncFailure(kind: .transport, message: e.message, messageZh: e.messageZh, isRetryable: e.isRetryable)
    }

    /// Checks the hub's signature on an answer to the request that carried `nonce`.
    static func verify(_ r: HTTPResponse, hubKey: [UInt8], nonce: String) throws(SyncFailure) {
        let canonical = ResponseSigning.canonical(
            requestNonce: nonce, status: r.status, hubTime: r.headers[WireHeader.hubTime.lowercased()] ?? "", bodySHA256Hex: Trust.sha256Hex(r.body))
        guard let sig = r.headers[WireHeader.hubSignature.lowercased()], Trust.verify(publicKey: hubKey, signatureBase64: sig, data: canonical) else {
            throw SyncFailure(
                kind: .transport, message: "an answer from the hub was not signed by the hub's key (damaged or altered on the way, or a proxy answered); it was not used",
                messageZh: "收到的答复没有上级的有效签名（传输中损坏、被篡改或由代理返回），已丢弃并将重试", isRetryable: true)
        }
    }

    /// The Ferry error in a response, nil when the body is not the error shape.
    static func wireError(_ r: HTTPResponse) -> WireError? {
        try? JSONDecoder().decode(WireError.self, from: Data(r.body))
    }

    /// Turns an error answer into a failure. With `hubKey`, an answer the hub did not sign
    /// is not believed: it is damage on the way (or a proxy's page), and retried.
    static func check(_ r: HTTPResponse, hubKey: [UInt8]?, nonce: String) throws(SyncFailure) -> Never {
        let retryAfter = r.headers["retry-after"].flatMap(Double.init)
        if let hubKey { try verify(r, hubKey: hubKey, nonce: nonce) }
        if let e = wireError(r) { throw SyncFailure(e, retryAfter: retryAfter) }
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
    /// the link's or the clock's (`worthResending`), or when the answer arrived damaged or
    /// unsigned. Returns a successful answer whose signature verified.
    ///
    /// With `from` > 0 only the body's bytes from that offset go on the wire (the hub holds the
    /// rest, `Ferry-Upload-Offset`); the signature covers the whole body's hash either way.
    /// `resendOnCut: false` leaves a cut transfer to the caller, which resumes it.
    func send(
        _ method: String, _ path: String, body: [UInt8], from start: Int = 0, headers extra: [(String, String)], resendOnCut: Bool = true
    ) throws(SyncFailure) -> HTTPResponse {
        var attempt = 0
        let bodyHash = Trust.sha256Hex(body)
        let wireBody = start > 0 ? Array(body[start...]) : body
        let resume = start > 0 ? [(WireHeader.uploadOffset, String(start))] : []
        while true {
            attempt += 1
            let now = UInt64(max(0, Int64(clock.nowMillis()) + clockOffsetMillis))
            let signed: [(String, String)]
            do { signed = try key.signedHeaders(node: identity.nodeID, method: method, path: path, bodySHA256Hex: bodyHash, nowMillis: now) } catch {
                throw SyncFailure(kind: .local, message: "signing the request failed: \(error)", messageZh: "请求签名失败", isRetryable: false)
            }
            let nonce = signed.first { $0.0 == WireHeader.nonce }!.1
            let response: HTTPResponse
            do {
                response = try client.send(
                    method: method, url: base + path, headers: signed + resume + extra + [("Expect", "")], body: wireBody,
                    resendsOnDeadConnection: resendOnCut)
            } catch {
                if resendOnCut && attempt == 1 && error.isRetryable && error.kind == .other { continue }
                throw Self.failure(error)
            }
            let headerBytes = (signed + resume + extra).reduce(method.utf8.count + path.utf8.count + 64) { $0 + $1.0.utf8.count + $1.1.utf8.count + 4 }
            let responseHeaderBytes = response.headers.reduce(17) { $0 + $1.key.utf8.count + $1.value.utf8.count + 4 }
            counted.withLock {
                $0.sent += headerBytes + wireBody.count
                $0.received += responseHeaderBytes + response.body.count
            }
            // An answer is believed only with the hub's signature over it: its time (which
            // corrects this node's write clocks) and its standard version too.
            do throws(SyncFailure) { try Self.verify(response, hubKey: hubKey, nonce: nonce) } catch {
                // A resumable body is not sent again whole here: the caller asks what the hub
                // holds (all of it, when only the answer was damaged).
                if attempt == 1 && resendOnCut { continue }
                throw error
            }
            if let v = response.headers[WireHeader.standardVersion.lowercased()] { standardSeen.withLock { $0 = v } }
            if let hubTime = response.headers[WireHeader.hubTime.lowercased()].flatMap(UInt64.init) {
                let observed = Int64(bitPattern: hubTime) - Int64(bitPattern: clock.nowMillis())
                offset.withLock { $0 = observed }
            }
            guard (200..<300).contains(response.status) else {
                if attempt == 1 && Self.worthResending(response) { continue }
                try Self.check(response, hubKey: nil, nonce: nonce)
            }
            return response
        }
    }

    public func exchange(_ body: [UInt8]) throws(SyncFailure) -> [UInt8] {
        try post("/v1/exchange", body, contentType: WireMediaType.exchange, resumable: true)
    }

    /// How many bytes of the cut upload hashed `sha256` the hub holds.
    func heldOffset(_ sha256: String) throws(SyncFailure) -> Int {
        let r = try send("GET", "/v1/upload?sha256=\(sha256)", body: [], headers: [])
        guard let held = try? JSONDecoder().decode(UploadOffset.self, from: Data(r.body)), held.sha256 == sha256, held.offset >= 0 else {
            throw SyncFailure(kind: .transport, message: "the hub's upload offset did not decode", messageZh: "上级的续传位置无法解析，将重试", isRetryable: true)
        }
        return held.offset
    }

    /// Sends a resumable body: when its upload was cut before (here, or in an earlier attempt
    /// of the same exchange), asks the hub how much arrived and sends only the rest; when it is
    /// cut again after the hub got more of it, resumes again at once, as long as each attempt
    /// gets further. A cut that moved nothing is the caller's failure to retry.
    func sendResumable(_ path: String, body: [UInt8], headers: [(String, String)]) throws(SyncFailure) -> HTTPResponse {
        let sha = Trust.sha256Hex(body)
        var offset = 0
        if cutUpload.withLock({ $0 }) == sha { offset = (try? heldOffset(sha)) ?? 0 }
        while true {
            do {
                let r = try send("POST", path, body: body, from: offset, headers: headers, resendOnCut: false)
                cutUpload.withLock { $0 = nil }
                return r
            } catch {
                guard error.isRetryable else {
                    cutUpload.withLock { $0 = nil }
                    throw error
                }
                // The hub no longer holds the part (restarted, expired): the next one goes whole.
                if case .hub(.truncated) = error.kind, offset > 0 {
                    cutUpload.withLock { $0 = nil }
                    offset = 0
                    continue
                }
                guard error.kind == .transport else { throw error }
                cutUpload.withLock { $0 = sha }
                // All of it (the answer was lost): the hub sends the answer again for the
                // headers alone.
                guard let held = try? heldOffset(sha), held > offset, held <= body.count else { throw error }
                offset = held
            }
        }
    }

    public func reconcile(_ request: ReconcileRequest) throws(SyncFailure) -> ReconcileResponse {
        let answer = try post("/v1/reconcile", (try? JSONEncoder().encode(request)).map { [UInt8]($0) } ?? [], contentType: WireMediaType.json)
        do { return try JSONDecoder().decode(ReconcileResponse.self, from: Data(answer)) } catch {
            throw SyncFailure(kind: .transport, message: "the hub's digests did not decode", messageZh: "上级的数据摘要无法解析，将重试", isRetryable: true)
        }
    }

    /// POSTs a body gzipped when the node uses gzip and it is smaller (exchange bodies, and the
    /// reconciliation's hex digests and keys), asks for a gzipped answer, and returns it inflated.
    func post(_ path: String, _ body: [UInt8], contentType: String, resumable: Bool = false) throws(SyncFailure) -> [UInt8] {
        var out = body
        var headers = [("Content-Type", contentType)]
        if identity.gzip, let z = try? Gzip.compress(body), z.count < body.count {
            out = z
            headers.append(("Content-Encoding", "gzip"))
        }
        if identity.gzip { headers.append(("Accept-Encoding", "gzip")) }
        let r =
            resumable && out.count >= Self.resumableBytes
            ? try sendResumable(path, body: out, headers: headers) : try send("POST", path, body: out, headers: headers)
        return try Self.decoded(r)
    }

    /// An answer's body as the hub meant it: inflated (at most `maxResponseBytes`) when it
    /// came gzip'd. Its signature is over the bytes as sent, checked on `r.body` itself.
    static func decoded(_ r: HTTPResponse) throws(SyncFailure) -> [UInt8] {
        guard r.headers["content-encoding"] == "gzip" else { return r.body }
        do { return try Gzip.decompress(r.body, maxBytes: maxResponseBytes) } catch {
            throw SyncFailure(kind: .transport, message: "the hub's answer arrived damaged", messageZh: "收到的数据已损坏，将重新获取", isRetryable: true)
        }
    }

    public func fetchStandard() throws(SyncFailure) -> SignedStandard {
        // A new standard's file travels gzip'd when the node sends gzip at all.
        let r = try send("GET", "/v1/standard", body: [], headers: identity.gzip ? [("Accept-Encoding", "gzip")] : [])
        do { return try JSONDecoder().decode(SignedStandard.self, from: Data(try Self.decoded(r))) } catch let e as SyncFailure { throw e } catch {
            throw SyncFailure(kind: .transport, message: "the hub's standard did not decode", messageZh: "上级发布的数据标准无法解析，将重试", isRetryable: true)
        }
    }
}
