import Hummingbird

/// Serves Prometheus text at GET /metrics on its own (local) address, apart from the sync
/// API, so metrics can stay on loopback while the API is reachable.
public enum MetricsEndpoint {
    public static func application(host: String, port: Int, render: @escaping @Sendable () -> [UInt8]) -> some ApplicationProtocol {
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: render())))
        }
        return Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "ferry-metrics"))
    }
}
