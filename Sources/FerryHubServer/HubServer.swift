import FerryCompression
import FerryCore
import FerryHub
import FerryTrust
import FerryWire
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// The routes the hub serves; protocol/openapi.yaml must list exactly these (a test checks).
public enum HubRoute: String, CaseIterable, Sendable {
    case health = "GET /v1/health"
    case enrol = "POST /v1/enrol"
    case exchange = "POST /v1/exchange"
    case reconcile = "POST /v1/reconcile"
    case standard = "GET /v1/standard"
    case upload = "GET /v1/upload"
    case adminLogin = "POST /v1/admin/login"
    case reportIndicators = "GET /v1/report/indicators"
    case reportFreshness = "GET /v1/report/freshness"
    case reportConflicts = "GET /v1/report/conflicts"
    case resolveConflict = "POST /v1/report/conflicts/resolve"
    case reportQuarantine = "GET /v1/report/quarantine"
    case resolveQuarantine = "POST /v1/report/quarantine/resolve"

    /// Routes of the supervisor's view (people with accounts), not of nodes syncing.
    public var isSupervisor: Bool { rawValue.contains("/v1/admin/") || rawValue.contains("/v1/report/") }
}

/// A route named "METHOD /path".
public protocol NamedRoute: RawRepresentable<String> {}

extension NamedRoute {
    public var method: String { String(rawValue.split(separator: " ")[0]) }
    public var path: String { String(rawValue.split(separator: " ")[1]) }
}

extension HubRoute: NamedRoute {}

/// Serves a `Hub` over HTTP/1.1 (plain, or TLS of its own) with Hummingbird. Every handler
/// only moves bytes: parsing, authentication and sync logic live in `Hub`.
///
/// What it does before any of that is about the trust boundary: connections are bounded in
/// all and per address and must keep sending (`TransportSettings`); a signed request is
/// authenticated from its headers (`Ferry-Content-SHA256`) before it takes a session slot or
/// has its body read; requests that must be read before anyone is authenticated (enrolment,
/// older nodes) have small bounds of their own.
public struct HubServer: Sendable {
    public let hub: Hub
    public let host: String
    public let port: Int
    /// The supervisor's view (indicators, freshness, conflicts) behind the dashboard and report API.
    public let view: SupervisorView
    /// The certificate and key the hub serves TLS with; nil: plain HTTP.
    public let tls: HubTLS?
    /// Whether the hub itself serves TLS, so browsers reach the supervisor's view over HTTPS.
    let servesTLS: Bool
    let certificates: CertificateStore?
    let limiter: ConnectionLimiter
    let gate: RequestGate
    let wire: WireResponder
    let partials = PartialUploads()
    let logger: Logger

    public init(
        hub: Hub, host: String = "127.0.0.1", port: Int = FerryDefaults.Hub.port, tls: HubTLS? = nil, logger: Logger = Logger(label: "ferry.hub.http")
    ) throws {
        self.hub = hub
        self.host = host
        self.port = port
        self.tls = tls
        self.logger = logger
        servesTLS = tls != nil
        certificates = try tls.map { files throws(HubTLSError) in try CertificateStore(files: files, logger: logger) }
        limiter = ConnectionLimiter(settings: hub.settings.transport, logger: logger)
        gate = RequestGate(settings: hub.settings.transport)
        wire = WireResponder(hub: hub)
        view = try SupervisorView(hub: hub, silentAfterDays: hub.settings.silentAfterDays)
    }

    /// `http` or `https`, as the listener serves.
    public var scheme: String { servesTLS ? "https" : "http" }

    /// The Hummingbird application; `onRunning` receives the bound port (useful with port 0).
    public func application(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let router = Router(context: HubRequestContext.self)
        var methods: [String: [String]] = [:]
        for route in HubRoute.allCases { methods[route.path, default: []].append(route.method) }
        for route in DashboardRoute.allCases { methods[route.path, default: []].append(route.method) }
        // First, so that it wraps every route and the router's own 404.
        router.add(middleware: WireShapeMiddleware(responder: wire, methods: methods))
        let supervisor = SupervisorHTTP(view: view, secureCookies: servesTLS)
        for route in HubRoute.allCases {
            router.on(RouterPath(route.path), method: HTTPRequest.Method(route.method)!) { request, context in
                if route.isSupervisor { return await supervisor.api(route, request, context) }
                // Behind the hub's own proxies, the address they name (as the dashboard does).
                let client = ClientAddress.resolve(
                    peer: context.peerAddress, forwardedFor: request.headers[values: SupervisorHTTP.forwardedFor],
                    trustedProxies: self.hub.settings.trustedProxies) ?? context.clientAddress
                return await self.respond(route, request, from: client)
            }
        }
        for route in DashboardRoute.allCases {
            router.on(RouterPath(route.path), method: HTTPRequest.Method(route.method)!) { request, context in
                await supervisor.dashboard(route, request, context)
            }
        }
        let transport = hub.settings.transport
        let stamp = ResponseStamp(fields: { [wire] in wire.stampFields() })
        let logger = self.logger
        let http1 = HTTP1Channel.Configuration(
            additionalChannelHandlers: [ConnectionGuardHandler(settings: transport, stamp: stamp, logger: logger)])
        let limiter = self.limiter
        let server: HTTPServerBuilder
        if let certificates {
            let tlsConfiguration = certificates.configuration()
            server = HTTPServerBuilder { responder in
                LimitedChannel(
                    base: try TLSChannel(HTTP1Channel(responder: responder, configuration: http1), tlsConfiguration: tlsConfiguration),
                    limiter: limiter)
            }
        } else {
            server = HTTPServerBuilder { responder in
                LimitedChannel(base: HTTP1Channel(responder: responder, configuration: http1), limiter: limiter)
            }
        }
        let services: [any Service] = certificates.map {
            [CertificateReloader(store: $0, interval: .seconds(transport.tlsReloadCheckSeconds))]
        } ?? []
        return Application(
            router: router,
            server: server,
            configuration: .init(address: .hostname(host, port: port), serverName: "ferry-hub"),
            services: services,
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) },
            logger: logger)
    }

    func respond(_ route: HubRoute, _ request: Request, from address: String) async -> Response {
        switch route {
        case .health:
            return reply(.success(.json(Data("{\"status\":\"ok\",\"standard\":\"\(hub.store.standard.version)\"}".utf8))), gzip: false)
        case .enrol:
            return await enrol(request, from: address)
        case .exchange, .reconcile, .standard, .upload:
            return await signed(route, request, from: address)
        case .adminLogin, .reportIndicators, .reportFreshness, .reportConflicts, .resolveConflict, .reportQuarantine, .resolveQuarantine:
            return wire.failure(WireError(.notFound, "\(route.rawValue) is served by the supervisor's view"))
        }
    }

    /// A refusal sent before the body was read: the connection closes after it, so the body
    /// is never read at all.
    func refuse(nonce: String? = nil, _ e: WireError) -> Response {
        TransportMetrics.refused(e.code.rawValue)
        return wire.failure(e, closing: true, nonce: nonce)
    }

    /// The body, read whole up to `limit` bytes; a stalled body is cut by the connection's
    /// progress deadline.
    func readBody(_ request: inout Request, limit: Int) async -> Result<[UInt8], WireError> {
        if let declared = request.headers[.contentLength].flatMap(Int.init), declared > limit {
            return .failure(WireError(.tooLarge, "the request body is \(declared) bytes; the hub takes at most \(limit) here"))
        }
        if request.headers[.contentLength].flatMap(Int.init) == 0 { return .success([]) }
        do {
            let buffer = try await request.collectBody(upTo: limit)
            return .success(Array(buffer.readableBytesView))
        } catch let error as HTTPError where error.status == .contentTooLarge {
            return .failure(WireError(.tooLarge, "the request body is over \(limit) bytes; the hub takes at most \(limit) here"))
        } catch is NIOTooManyBytesError {
            return .failure(WireError(.tooLarge, "the request body is over \(limit) bytes; the hub takes at most \(limit) here"))
        } catch {
            return .failure(WireError(.truncated, "the request body stopped arriving (\(error)); it will be sent again"))
        }
    }

    /// The body, read as it arrives up to `limit` bytes; when it stops arriving (a cut link, a
    /// stall) the failure comes with the bytes that did arrive, to keep for a resumption.
    func readBodyKeepingPart(_ request: Request, limit: Int) async -> (Result<[UInt8], WireError>, part: [UInt8]) {
        var bytes: [UInt8] = []
        if let declared = request.headers[.contentLength].flatMap(Int.init) {
            guard declared <= limit else {
                return (.failure(WireError(.tooLarge, "the request body is \(declared) bytes; the hub takes at most \(limit) here")), [])
            }
            bytes.reserveCapacity(declared)
        }
        do {
            for try await chunk in request.body {
                guard bytes.count + chunk.readableBytes <= limit else {
                    return (.failure(WireError(.tooLarge, "the request body is over \(limit) bytes; the hub takes at most \(limit) here")), [])
                }
                bytes.append(contentsOf: chunk.readableBytesView)
            }
            if let declared = request.headers[.contentLength].flatMap(Int.init), declared != bytes.count {
                return (.failure(WireError(.truncated, "the request body stopped after \(bytes.count) of \(declared) bytes; the rest will be sent")), bytes)
            }
            return (.success(bytes), [])
        } catch {
            return (.failure(WireError(.truncated, "the request body stopped arriving after \(bytes.count) bytes (\(error)); the rest will be sent")), bytes)
        }
    }

    /// POST /v1/enrol: the token is the only credential, so everything is bounded before it is
    /// checked — the body's size (as sent and after gunzip), enrolments at once, attempts per
    /// address and minute.
    func enrol(_ request: Request, from address: String) async -> Response {
        var request = request
        let limit = hub.settings.transport.maxEnrolBodyBytes
        if let declared = request.headers[.contentLength].flatMap(Int.init), declared > limit {
            return refuse(WireError(.tooLarge, "an enrolment body is \(declared) bytes; the hub takes at most \(limit)"))
        }
        if let refusal = gate.admit(.enrol, from: address) { return refuse(refusal) }
        defer { gate.release(.enrol, from: address) }
        let raw: [UInt8]
        switch await readBody(&request, limit: limit) {
        case .success(let bytes): raw = bytes
        case .failure(let e): return refuse(e)
        }
        let gzipped = request.headers[.contentEncoding] == "gzip"
        let acceptsGzip = request.headers[.acceptEncoding]?.contains("gzip") ?? false
        let hub = self.hub
        let outcome: Result<(Reply, String?), WireError> = await offload {
            Result { () throws(WireError) -> (Reply, String?) in
                var body = raw
                if gzipped {
                    do { body = try Gzip.decompress(raw, maxBytes: limit) } catch {
                        throw WireError(.tooLarge, "the gzip enrolment body is damaged or expands beyond \(limit) bytes")
                    }
                }
                let enrolment: EnrolRequest
                do { enrolment = try JSONDecoder().decode(EnrolRequest.self, from: Data(body)) } catch {
                    throw WireError(.badRequest, "the enrolment body is not valid: \(WireError.describe(error))")
                }
                // The answer is signed for the nonce the node chose, so it cannot be replayed to another enrolment.
                let nonce = RequestSigning.isValidNonce(enrolment.nonce) ? enrolment.nonce : nil
                return (try Reply.encodable(hub.enrol(enrolment, client: address)), nonce)
            }
        }
        switch outcome {
        // The answer carries the standard file: gzip'd for a node that accepts it (this
        // release's; release-1 nodes do not ask and get it as before).
        case .success(let (reply, nonce)): return self.reply(.success(reply), gzip: acceptsGzip, nonce: nonce)
        case .failure(let e): return wire.failure(e)
        }
    }

    /// A node's signed request: the node is authenticated from the headers (the body's hash
    /// is signed in `Ferry-Content-SHA256`), then an exchange or reconcile takes a session
    /// slot, then the body is read and checked against the signed hash.
    func signed(_ route: HubRoute, _ request: Request, from address: String) async -> Response {
        var request = request
        let headers = request.headers
        let path = request.uri.string
        let method = request.method.rawValue
        let hub = self.hub
        let maxBody = hub.settings.maxBodyBytes
        let isSession = route == .exchange || route == .reconcile
        let nonce = headers[HTTPField.Name(WireHeader.nonce)!]
        @Sendable func header(_ name: String) -> String? { HTTPField.Name(name).flatMap { headers[$0] } }
        let node: NodeRecord
        let raw: [UInt8]
        var holdsSession = false
        defer { if holdsSession { hub.endSession() } }
        // The body's hash is signed in a header, so the request is authenticated before its
        // body is read. A node that does not send it (release 1) speaks routes this hub no
        // longer serves; nothing of its body is read.
        guard let claimed = header(WireHeader.contentSHA256) else {
            if header(WireHeader.node) == nil {
                return refuse(
                    nonce: nonce,
                    WireError(.unknownNode, "this request is not signed by an enrolled node; enrol first with: ferry node init --hub URL --token TOKEN"))
            }
            return refuse(
                nonce: nonce,
                WireError(
                    .badRequest,
                    "the request has no \(WireHeader.contentSHA256) header; this node's Ferry is older than the hub's (protocol 2): upgrade the node",
                    zh: "请求缺少 \(WireHeader.contentSHA256)，本节点的 Ferry 版本低于上级（协议 2），请升级节点软件"))
        }
        guard RequestSigning.isValidContentHash(claimed) else {
            return refuse(nonce: nonce, WireError(.badSignature, "the \(WireHeader.contentSHA256) header is not 64 lowercase hex characters; it may have been damaged on the way"))
        }
        // A resumed upload: the hub holds the first `offset` bytes from a cut attempt.
        var offset = 0
        if let text = header(WireHeader.uploadOffset) {
            guard route == .exchange, let n = Int(text), n >= 0, n <= maxBody else {
                return refuse(
                    nonce: nonce,
                    WireError(.badRequest, "\(WireHeader.uploadOffset) must be a byte count up to \(maxBody), on POST /v1/exchange only"))
            }
            offset = n
        }
        if let declared = headers[.contentLength].flatMap(Int.init), declared + offset > maxBody {
            return refuse(nonce: nonce, WireError(.tooLarge, "the request body is \(declared + offset) bytes; the hub takes at most \(maxBody)"))
        }
        let authenticated: Result<NodeRecord, WireError> = await offload {
            Result { () throws(WireError) in try hub.authenticate(method: method, path: path, header: header, bodySHA256Hex: claimed, client: address) }
        }
        switch authenticated {
        case .success(let n): node = n
        case .failure(let e): return refuse(nonce: nonce, e)
        }
        if isSession {
            do throws(WireError) { try hub.admitSession() } catch { return refuse(nonce: nonce, error) }
            holdsSession = true
        }
        let nodeKey = node.id.rawValue
        if route == .upload {
            let sha = request.uri.queryParameters.get("sha256") ?? ""
            guard RequestSigning.isValidContentHash(sha) else {
                return refuse(nonce: nonce, WireError(.badRequest, "GET /v1/upload needs ?sha256= the upload's 64 lowercase hex SHA-256"))
            }
            return reply(.success(.encodable(UploadOffset(sha256: sha, offset: partials.offset(node: nodeKey, sha256: sha)))), gzip: false, nonce: nonce)
        }
        var held: [UInt8] = []
        if offset > 0 {
            guard let prefix = partials.prefix(node: nodeKey, sha256: claimed, count: offset) else {
                return refuse(
                    nonce: nonce,
                    WireError(.truncated, "the hub does not hold the first \(offset) bytes of this upload (any more); send it whole"))
            }
            held = prefix
        }
        if route == .exchange {
            let (read, part) = await readBodyKeepingPart(request, limit: maxBody - offset)
            switch read {
            case .success(let bytes): raw = held + bytes
            case .failure(let e):
                if e.code == .truncated { partials.keep(node: nodeKey, sha256: claimed, bytes: held + part) }
                return refuse(nonce: nonce, e)
            }
        } else {
            switch await readBody(&request, limit: maxBody) {
            case .success(let bytes): raw = bytes
            case .failure(let e): return refuse(nonce: nonce, e)
            }
        }
        let intact = Trust.sha256Hex(raw) == claimed
        if route == .exchange {
            // The whole body is kept too, until the node's next exchange: if the answer is
            // lost on the way, the node learns that the hub has all of it and sends none of it
            // again (applying the same exchange twice is harmless). A damaged one is dropped.
            if intact && raw.count >= PartialUploads.minimumBytes {
                partials.keep(node: nodeKey, sha256: claimed, bytes: raw)
            } else {
                partials.drop(node: nodeKey)
            }
        }
        guard intact else {
            let count = raw.count
            await offload { hub.noteDamagedBody(node: node, method: method, path: path, bytes: count, client: address) }
            return wire.failure(
                WireError(
                    .corrupted,
                    "the body's SHA-256 differs from the signed \(WireHeader.contentSHA256): it was damaged on the way; send it again"),
                nonce: nonce)
        }
        let acceptsGzip = headers[.acceptEncoding]?.contains("gzip") ?? false
        let gzipped = headers[.contentEncoding] == "gzip"
        let outcome: Result<Reply, WireError> = await offload {
            Result { () throws(WireError) -> Reply in
                func body() throws(WireError) -> [UInt8] {
                    guard gzipped else { return raw }
                    do { return try Gzip.decompress(raw, maxBytes: maxBody) } catch {
                        throw WireError(.corrupted, "the gzip body is damaged: \(error)")
                    }
                }
                func json<T: Decodable>(_ t: T.Type) throws(WireError) -> T {
                    do { return try JSONDecoder().decode(t, from: Data(try body())) } catch let e as WireError { throw e } catch {
                        throw WireError(.badRequest, "the JSON body is not valid: \(WireError.describe(error))")
                    }
                }
                switch route {
                case .exchange:
                    let exchange = try body()
                    // A body that is not an exchange at all is the sender's mistake, not damage.
                    guard exchange.starts(with: ExchangeEnvelope.magic) else {
                        throw WireError(
                            .malformed,
                            exchange.isEmpty
                                ? "the exchange body is empty; it carries a header and at most one changeset (\(WireMediaType.exchange))"
                                : "the exchange body does not begin with FRYX; send \(WireMediaType.exchange) as protocol/HTTP.md describes")
                    }
                    return .exchange(try hub.exchange(from: node, body: exchange, client: address))
                case .reconcile:
                    return .encodable(try hub.reconcile(from: node, request: try json(ReconcileRequest.self)))
                case .standard:
                    return .encodable(hub.signedStandard)
                default:
                    throw WireError(.notFound, "\(route.rawValue) is not a node's signed route")
                }
            }
        }
        return reply(outcome, gzip: acceptsGzip, nonce: nonce)
    }

    /// The answer, signed (status and body as sent) for the request that carried `nonce`, so
    /// the node can tell the hub's answer from one altered or made up on the way.
    func reply(_ outcome: Result<Reply, WireError>, gzip: Bool, nonce: String? = nil) -> Response {
        switch outcome {
        case .success(let reply):
            let time = hub.now()
            var (status, headers, body) = reply.parts(hubTime: time, gzip: gzip)
            headers[HTTPField.Name(WireHeader.standardVersion)!] = hub.signedStandard.version
            if let nonce, RequestSigning.isValidNonce(nonce) {
                headers[HTTPField.Name(WireHeader.hubSignature)!] = hub.signResponse(
                    requestNonce: nonce, status: Int(status.code), hubTime: String(time), body: body)
            }
            return Response(status: status, headers: headers, body: body.isEmpty ? .init() : .init(byteBuffer: ByteBuffer(bytes: body)))
        case .failure(let e): return wire.failure(e, nonce: nonce)
        }
    }
}

/// The request admission of one listener, shared by its requests.
final class RequestGate: Sendable {
    private let state: Mutex<RequestAdmission>
    private let started = ContinuousClock.now

    init(settings: TransportSettings) { state = Mutex(RequestAdmission(settings: settings)) }

    private var now: Double {
        let elapsed = ContinuousClock.now - started
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    func admit(_ kind: RequestAdmission.Kind, from address: String) -> WireError? {
        let now = self.now
        return state.withLock { $0.admit(kind, from: address, now: now) }
    }

    func release(_ kind: RequestAdmission.Kind, from address: String) { state.withLock { $0.release(kind, from: address) } }
}

/// Runs blocking SQLite work off the server's event loops.
func offload<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { c in
        DispatchQueue.global().async { c.resume(returning: work()) }
    }
}

enum Reply: Sendable {
    case json(Data)
    case exchange([UInt8])
    case empty

    static func encodable<T: Encodable>(_ v: T) -> Reply {
        .json((try? JSONEncoder().encode(v)) ?? Data("{}".utf8))
    }

    func parts(hubTime: UInt64, gzip: Bool) -> (HTTPResponse.Status, HTTPFields, [UInt8]) {
        var headers = HTTPFields()
        headers[HTTPField.Name(WireHeader.hubTime)!] = String(hubTime)
        switch self {
        case .empty:
            return (.noContent, headers, [])
        case .json(let d):
            headers[.contentType] = WireMediaType.json
            // Reconciliation answers (hex digests and keys) and the standard shrink 2-4× in
            // gzip; small answers are not worth its header.
            var body = [UInt8](d)
            if gzip, body.count >= 256, let z = try? Gzip.compress(body), z.count < body.count {
                body = z
                headers[.contentEncoding] = "gzip"
            }
            return (.ok, headers, body)
        case .exchange(let b):
            headers[.contentType] = WireMediaType.exchange
            var body = b
            if gzip, let z = try? Gzip.compress(b), z.count < b.count {
                body = z
                headers[.contentEncoding] = "gzip"
            }
            return (.ok, headers, body)
        }
    }
}
