import FerryCompression
import FerryHub
import FerryWire
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// The routes the hub serves; protocol/openapi.yaml must list exactly these (a test checks).
public enum HubRoute: String, CaseIterable, Sendable {
    case health = "GET /v1/health"
    case enrol = "POST /v1/enrol"
    case push = "POST /v1/push"
    case pull = "POST /v1/pull"
    case pullAck = "POST /v1/pull/ack"
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
        let isSession = route == .push || route == .pull
        if isSession {
            do throws(WireError) { try hub.admitSession() } catch { return failure(error) }
        }
        defer { if isSession { hub.endSession() } }
        let raw: [UInt8]
        do {
            let buffer = try await request.collectBody(upTo: hub.settings.maxBodyBytes)
            raw = Array(buffer.readableBytesView)
        } catch {
            return failure(WireError(.tooLarge, "the request body is over \(hub.settings.maxBodyBytes) bytes"))
        }
        let headers = request.headers
        let path = request.uri.string
        let method = request.method.rawValue
        let acceptsGzip = headers[.acceptEncoding]?.contains("gzip") ?? false
        let gzipped = headers[.contentEncoding] == "gzip"
        let maxBody = hub.settings.maxBodyBytes
        let outcome: Result<Reply, WireError> = await offload {
            Result { () throws(WireError) -> Reply in
                func header(_ name: String) -> String? { HTTPField.Name(name).flatMap { headers[$0] } }
                func body() throws(WireError) -> [UInt8] {
                    guard gzipped else { return raw }
                    do { return try Gzip.decompress(raw, maxBytes: maxBody) } catch {
                        throw WireError(.corrupted, "the gzip body is damaged: \(error)")
                    }
                }
                func json<T: Decodable>(_ t: T.Type) throws(WireError) -> T {
                    do { return try JSONDecoder().decode(t, from: Data(try body())) } catch let e as WireError { throw e } catch {
                        throw WireError(.badRequest, "the JSON body is not a valid \(t): \(error)")
                    }
                }
                switch route {
                case .health:
                    return .json(Data("{\"status\":\"ok\",\"standard\":\"\(hub.store.standard.version)\"}".utf8))
                case .enrol:
                    return try .encodable(hub.enrol(try json(EnrolRequest.self)))
                case .push:
                    let node = try hub.authenticate(method: method, path: path, header: header, body: raw)
                    return .encodable(try hub.push(from: node, body: try body()))
                case .pull:
                    let node = try hub.authenticate(method: method, path: path, header: header, body: raw)
                    let req = try json(PullRequest.self)
                    guard let bytes = try hub.pull(for: node, request: req) else { return .empty }
                    return .changeset(bytes)
                case .standard:
                    _ = try hub.authenticate(method: method, path: path, header: header, body: raw)
                    return .encodable(hub.signedStandard)
                case .pullAck:
                    let node = try hub.authenticate(method: method, path: path, header: header, body: raw)
                    try hub.acknowledgePull(from: node, try json(PullAcknowledgement.self))
                    return .json(Data("{}".utf8))
                case .adminLogin, .reportIndicators, .reportFreshness, .reportConflicts, .resolveConflict, .reportQuarantine, .resolveQuarantine:
                    throw WireError(.notFound, "\(route.rawValue) is served by the supervisor's view")
                }
            }
        }
        switch outcome {
        case .success(let reply):
            var response = reply.response(hubTime: hub.now(), gzip: acceptsGzip)
            response.headers[HTTPField.Name(WireHeader.standardVersion)!] = hub.signedStandard.version
            return response
        case .failure(let e): return failure(e)
        }
    }

    func failure(_ e: WireError) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = WireMediaType.json
        headers[HTTPField.Name(WireHeader.hubTime)!] = String(hub.now())
        headers[HTTPField.Name(WireHeader.standardVersion)!] = hub.signedStandard.version
        if e.code == .overloaded || e.code == .unavailable {
            // Jittered, so shed nodes do not all come back in the same second.
            headers[.retryAfter] = String(Int.random(in: 2...15))
        }
        let body = (try? JSONEncoder().encode(e)) ?? Data()
        return Response(status: .init(code: e.httpStatus), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}

/// Runs blocking SQLite work off the server's event loops.
func offload<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { c in
        DispatchQueue.global().async { c.resume(returning: work()) }
    }
}

enum Reply: Sendable {
    case json(Data)
    case changeset([UInt8])
    case empty

    static func encodable<T: Encodable>(_ v: T) -> Reply {
        .json((try? JSONEncoder().encode(v)) ?? Data("{}".utf8))
    }

    func response(hubTime: UInt64, gzip: Bool) -> Response {
        var headers = HTTPFields()
        headers[HTTPField.Name(WireHeader.hubTime)!] = String(hubTime)
        switch self {
        case .empty:
            return Response(status: .noContent, headers: headers)
        case .json(let d):
            headers[.contentType] = WireMediaType.json
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: d)))
        case .changeset(let b):
            headers[.contentType] = WireMediaType.changeset
            var body = b
            if gzip, let z = try? Gzip.compress(b), z.count < b.count {
                body = z
                headers[.contentEncoding] = "gzip"
            }
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
    }
}
