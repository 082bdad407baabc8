import FerryCompression
import FerryHub
import FerryWire
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Synchronization

/// The routes the hub serves; protocol/openapi.yaml must list exactly these (a test checks).
public enum HubRoute: String, CaseIterable, Sendable {
    case health = "GET /v1/health"
    case enrol = "POST /v1/enrol"
    case exchange = "POST /v1/exchange"
    case reconcile = "POST /v1/reconcile"
    case standard = "GET /v1/standard"
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

/// Serves a `Hub` over HTTP/1.1 with Hummingbird. Every handler only moves bytes: parsing,
/// authentication and sync logic live in `Hub`.
public struct HubServer: Sendable {
    public let hub: Hub
    public let host: String
    public let port: Int
    /// The supervisor's view (indicators, freshness, conflicts) behind the dashboard and report API.
    public let view: SupervisorView
    let logger: Logger

    public init(hub: Hub, host: String = "127.0.0.1", port: Int = 7700, logger: Logger = Logger(label: "ferry.hub.http")) throws {
        self.hub = hub
        self.host = host
        self.port = port
        self.logger = logger
        view = try SupervisorView(hub: hub, silentAfterDays: hub.settings.silentAfterDays)
    }

    /// The Hummingbird application; `onRunning` receives the bound port (useful with port 0).
    public func application(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let router = Router(context: HubRequestContext.self)
        let supervisor = SupervisorHTTP(view: view)
        for route in HubRoute.allCases {
            router.on(RouterPath(route.path), method: HTTPRequest.Method(route.method)!) { request, context in
                route.isSupervisor ? await supervisor.api(route, request, context) : await self.respond(route, request)
            }
        }
        for route in DashboardRoute.allCases {
            router.on(RouterPath(route.path), method: HTTPRequest.Method(route.method)!) { request, context in
                await supervisor.dashboard(route, request, context)
            }
        }
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "ferry-hub"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) },
            logger: logger)
    }

    func respond(_ route: HubRoute, _ request: Request) async -> Response {
        var request = request
        let hub = self.hub
        // A sync request takes its session slot as it arrives: before its body is read and
        // before it waits for a worker thread, so a shed request costs the hub almost nothing.
        let isSession = route == .exchange || route == .reconcile
        let requestNonce = request.headers[HTTPField.Name(WireHeader.nonce)!]
        if isSession {
            do throws(WireError) { try hub.admitSession() } catch { return failure(error, nonce: requestNonce) }
        }
        defer { if isSession { hub.endSession() } }
        let raw: [UInt8]
        do {
            let buffer = try await request.collectBody(upTo: hub.settings.maxBodyBytes)
            raw = Array(buffer.readableBytesView)
        } catch {
            return failure(WireError(.tooLarge, "the request body is over \(hub.settings.maxBodyBytes) bytes"), nonce: requestNonce)
        }
        let headers = request.headers
        let path = request.uri.string
        let method = request.method.rawValue
        let acceptsGzip = headers[.acceptEncoding]?.contains("gzip") ?? false
        let gzipped = headers[.contentEncoding] == "gzip"
        let maxBody = hub.settings.maxBodyBytes
        // The nonce the answer is signed for: the request's, or the enrolment's own.
        let answerNonce = MutexBox(requestNonce)
        let outcome: Result<Reply, WireError> = await offload {
            Result { () throws(WireError) -> Reply in
                func header(_ name: String) -> String? { HTTPField.Name(name).flatMap { headers[$0] } }
                func body() throws(WireError) -> [UInt8] {
                    guard gzipped else { return raw }
                    do { return try Gzip.decompress(raw, maxBytes: maxBody) } catch {
                        throw WireError(.corrupted, "the gzip body is damaged; it will be sent again")
                    }
                }
                func json<T: Decodable>(_ t: T.Type) throws(WireError) -> T {
                    do { return try JSONDecoder().decode(t, from: Data(try body())) } catch let e as WireError { throw e } catch {
                        throw WireError(.badRequest, "the JSON body is not valid: \(WireError.describe(error))")
                    }
                }
                switch route {
                case .health:
                    return .json(Data("{\"status\":\"ok\",\"standard\":\"\(hub.store.standard.version)\"}".utf8))
                case .enrol:
                    let req = try json(EnrolRequest.self)
                    if RequestSigning.isValidNonce(req.nonce) { answerNonce.set(req.nonce) }
                    return try .encodable(hub.enrol(req))
                case .exchange:
                    let node = try hub.authenticate(method: method, path: path, header: header, body: raw)
                    return .exchange(try hub.exchange(from: node, body: try body()))
                case .reconcile:
                    let node = try hub.authenticate(method: method, path: path, header: header, body: raw)
                    return .encodable(try hub.reconcile(from: node, request: try json(ReconcileRequest.self)))
                case .standard:
                    _ = try hub.authenticate(method: method, path: path, header: header, body: raw)
                    return .encodable(hub.signedStandard)
                case .adminLogin, .reportIndicators, .reportFreshness, .reportConflicts, .resolveConflict, .reportQuarantine, .resolveQuarantine:
                    throw WireError(.notFound, "\(route.rawValue) is served by the supervisor's view")
                }
            }
        }
        switch outcome {
        case .success(let reply):
            var (status, headers, body) = reply.parts(hubTime: hub.now(), gzip: acceptsGzip)
            headers[HTTPField.Name(WireHeader.standardVersion)!] = hub.signedStandard.version
            return answer(status, headers, body, nonce: answerNonce.value)
        case .failure(let e): return failure(e, nonce: answerNonce.value)
        }
    }

    /// The response, signed (status and body as sent) for the request that carried `nonce`,
    /// so the node can tell the hub's answer from one altered or made up on the way.
    func answer(_ status: HTTPResponse.Status, _ headers: HTTPFields, _ body: [UInt8], nonce: String?) -> Response {
        var headers = headers
        if let nonce, RequestSigning.isValidNonce(nonce) {
            headers[HTTPField.Name(WireHeader.hubSignature)!] = hub.signResponse(requestNonce: nonce, status: Int(status.code), body: body)
        }
        return Response(status: status, headers: headers, body: body.isEmpty ? .init() : .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    func failure(_ e: WireError, nonce: String? = nil) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = WireMediaType.json
        headers[HTTPField.Name(WireHeader.hubTime)!] = String(hub.now())
        headers[HTTPField.Name(WireHeader.standardVersion)!] = hub.signedStandard.version
        if e.code == .overloaded || e.code == .unavailable {
            // Jittered, so shed nodes do not all come back in the same second.
            headers[.retryAfter] = String(Int.random(in: 2...15))
        }
        let body = (try? JSONEncoder().encode(e)).map { [UInt8]($0) } ?? []
        return answer(.init(code: e.httpStatus), headers, body, nonce: nonce)
    }
}

/// A value set once from a worker thread and read back on the event loop.
final class MutexBox: Sendable {
    private let lock: Mutex<String?>
    init(_ v: String?) { lock = Mutex(v) }
    func set(_ v: String) { lock.withLock { $0 = v } }
    var value: String? { lock.withLock { $0 } }
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
            return (.ok, headers, [UInt8](d))
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
