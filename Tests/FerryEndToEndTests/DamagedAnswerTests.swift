import FerryHTTPClient
@testable import FerryNode
import FerryTestTraits
import FerryWire
import Foundation
import Glibc
import Synchronization
import Testing

/// A one-shot HTTP server on loopback that answers every connection with `answer`, as a
/// damaged link might deliver it.
final class CannedServer: @unchecked Sendable {
    let fd: Int32
    let port: Int
    private var thread: Thread?

    init(answer: String) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
        listen(listener, 8)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        fd = listener
        port = Int(UInt16(bigEndian: address.sin_port))
        let bytes = Array(answer.utf8)
        thread = Thread {
            while true {
                let c = accept(listener, nil, nil)
                guard c >= 0 else { return }
                var buffer = [UInt8](repeating: 0, count: 65536)
                _ = buffer.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
                _ = bytes.withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                shutdown(c, Int32(SHUT_WR))
                Thread.sleep(forTimeInterval: 0.05)
                close(c)
            }
        }
        thread?.start()
    }

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}

/// How the node classes answers damaged on the way (issue #14): never as a reason to call
/// the administrator.
@Suite("Damaged answers", .serialized, .offThePool)
struct DamagedAnswerTests {
    @Test("an answer whose status line was damaged (HTTP/1.3) is a retryable transport error, not 'not a usable URL'")
    func damagedStatusLineIsRetryable() throws {
        let server = try CannedServer(answer: "HTTP/1.3 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        defer { server.stop() }
        let client = try HTTPClient(configuration: HTTPClientConfiguration(connectTimeoutSeconds: 5, totalTimeoutSeconds: 10))
        #expect {
            try client.send(method: "POST", url: "http://127.0.0.1:\(server.port)/v1/exchange", body: [1, 2, 3])
        } throws: { error in
            guard let e = error as? HTTPClientError else { return false }
            return e.isRetryable && !e.message.contains("not a usable URL")
        }
    }

    @Test("a 4xx without the Ferry error shape is retryable damage; one with the shape keeps its own class")
    func bareClientErrorIsRetryable() throws {
        #expect {
            try HTTPHubConnection.check(HTTPResponse(status: 400, headers: [:], body: []), hubKey: nil, nonce: "")
        } throws: { ($0 as? SyncFailure)?.isRetryable == true && ($0 as? SyncFailure)?.kind == .transport }
        let revoked = try JSONEncoder().encode(WireError(.revoked, "cut off"))
        #expect {
            try HTTPHubConnection.check(HTTPResponse(status: 403, headers: [:], body: Array(revoked)), hubKey: nil, nonce: "")
        } throws: { ($0 as? SyncFailure)?.isRetryable == false && ($0 as? SyncFailure)?.kind == .hub(.revoked) }
        #expect(HTTPHubConnection.worthResending(HTTPResponse(status: 400, headers: [:], body: Array(try JSONEncoder().encode(WireError(.corrupted, "x"))))))
        #expect(HTTPHubConnection.worthResending(HTTPResponse(status: 401, headers: [:], body: Array(try JSONEncoder().encode(WireError(.badSignature, "x"))))))
        #expect(!HTTPHubConnection.worthResending(HTTPResponse(status: 403, headers: [:], body: Array(revoked))))
    }
}
