import FerryHub
import FerryWire
import Foundation
import HTTPTypes
import Hummingbird

/// Builds the hub's error responses: the one JSON error shape with `Ferry-Hub-Time` and
/// `Ferry-Standard-Version`, `Retry-After` on load refusals, and `Connection: close` when
/// the request's body was never read (the connection then closes instead of draining it).
struct WireResponder: Sendable {
    let hub: Hub

    /// The headers every response of the hub carries.
    func stampFields() -> HTTPFields {
        var fields = HTTPFields()
        fields[HTTPField.Name(WireHeader.hubTime)!] = String(hub.now())
        fields[HTTPField.Name(WireHeader.standardVersion)!] = hub.signedStandard.version
        return fields
    }

    /// An error answer; with `nonce` (the request's), signed like every answer to a node.
    func failure(_ e: WireError, closing: Bool = false, extra: HTTPFields = [:], nonce: String? = nil) -> Response {
        var headers = stampFields()
        headers[.contentType] = WireMediaType.json
        if e.code == .overloaded || e.code == .unavailable || e.code == .rateLimited {
            // Jittered, so shed nodes do not all come back in the same second.
            headers[.retryAfter] = String(Int.random(in: 2...15))
        }
        if closing { headers[.connection] = "close" }
        headers.append(contentsOf: extra)
        let body = (try? JSONEncoder().encode(e)).map { [UInt8]($0) } ?? []
        if let nonce, RequestSigning.isValidNonce(nonce) {
            headers[HTTPField.Name(WireHeader.hubSignature)!] = hub.signResponse(
                requestNonce: nonce, status: e.httpStatus, hubTime: headers[HTTPField.Name(WireHeader.hubTime)!] ?? "", body: body)
        }
        return Response(status: .init(code: e.httpStatus), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}

/// Gives every response the hub sends, the router's own refusals included, the Ferry shape:
/// an unknown path is 404 `not_found`, a known path with another method 405
/// `method_not_allowed` (with `Allow`), any other escaped error the error shape; and each
/// response carries `Ferry-Hub-Time` and `Ferry-Standard-Version`.
struct WireShapeMiddleware: RouterMiddleware {
    typealias Context = HubRequestContext
    let responder: WireResponder
    /// Every path the hub serves and the methods it takes there.
    let methods: [String: [String]]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            response = notFound(request)
        } catch let error as HTTPError {
            let code: WireErrorCode =
                switch error.status.code {
                case 413: .tooLarge
                case 400..<500: .badRequest
                default: .internal
                }
            response = responder.failure(WireError(code, "\(request.method) \(request.uri.path) failed: \(error.body ?? error.status.reasonPhrase)"))
        } catch {
            response = responder.failure(WireError(.internal, "\(request.method) \(request.uri.path) failed on the hub: \(error); it will be retried"))
        }
        for field in responder.stampFields() where response.headers[field.name] == nil {
            response.headers.append(field)
        }
        return response
    }

    func notFound(_ request: Request) -> Response {
        let path = request.uri.path
        if let allowed = methods[path] {
            var allow = HTTPFields()
            allow[.allow] = allowed.joined(separator: ", ")
            return responder.failure(
                WireError(
                    .methodNotAllowed, "\(path) does not take \(request.method); it takes \(allowed.joined(separator: ", ")) (see protocol/openapi.yaml)",
                    zh: "\(path) 不支持 \(request.method) 请求，请使用 \(allowed.joined(separator: "、"))"),
                extra: allow)
        }
        return responder.failure(
            WireError(
                .notFound, "the hub serves nothing at \(path); the routes are listed in protocol/openapi.yaml — check the hub URL",
                zh: "上级服务器没有 \(path) 这个地址，请检查中心服务器地址"))
    }
}
