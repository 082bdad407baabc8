#if canImport(Glibc)
import Foundation
import Glibc

/// A plain TCP connection to a loopback port, for tests that misbehave on purpose: send half
/// a request and go silent, send headers and never the body, flood from many addresses.
///
/// `source` binds the client end to another loopback address (127.0.0.2, …; Linux routes the
/// whole of 127.0.0.0/8 to lo), so a test can be many clients from one process.
///
///     let c = try RawConnection(port: hubPort, source: "127.0.0.9")
///     try c.send("POST /v1/exchange HTTP/1.1\r\nHost: hub\r\nContent-Le")
///     #expect(c.waitUntilClosed(timeout: 40) != nil)
public final class RawConnection: @unchecked Sendable {
    public let fd: Int32
    /// When the connection was made (monotonic).
    public let opened = ContinuousClock.now

    public init(port: Int, host: String = "127.0.0.1", source: String? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw FaultProxyError(call: "socket", code: errno) }
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            inet_pton(AF_INET, source, &local.sin_addr)
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else {
                let code = errno
                close(fd)
                throw FaultProxyError(call: "bind(\(source))", code: code)
            }
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            let code = errno
            close(fd)
            throw FaultProxyError(call: "connect(\(host):\(port))", code: code)
        }
    }

    deinit { close(fd) }

    /// Writes all of `bytes` (blocking); false if the peer closed or reset the connection.
    @discardableResult
    public func send(_ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            sent += n
        }
        return true
    }

    @discardableResult
    public func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    /// Sends `bytes` in pieces while watching for an answer: as soon as the peer answers (or
    /// stops taking bytes for `timeout` seconds, or closes) it stops sending and returns what
    /// the peer sent within `timeout`. For requests a server should refuse before their body.
    public func sendUntilAnswered(_ bytes: [UInt8], piece: Int = 64 * 1024, timeout: Double) -> [UInt8] {
        var sent = 0
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        while sent < bytes.count && ContinuousClock.now < deadline {
            var p = pollfd(fd: fd, events: Int16(POLLIN) | Int16(POLLOUT), revents: 0)
            guard poll(&p, 1, 100) > 0 else { continue }
            if p.revents & Int16(POLLIN) != 0 || p.revents & (Int16(POLLERR) | Int16(POLLHUP)) != 0 { break }
            let n = bytes[sent..<min(bytes.count, sent + piece)].withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) { continue }
            if n <= 0 { break }
            sent += n
        }
        return receive(timeout: max(0.1, Double((deadline - ContinuousClock.now).components.seconds))) { Self.isCompleteResponse($0) }
    }

    /// Whether `bytes` hold a whole HTTP response with a Content-Length body.
    public static func isCompleteResponse(_ bytes: [UInt8]) -> Bool {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let end = text.range(of: "\r\n\r\n") else { return false }
        let head = text[..<end.lowerBound].lowercased()
        let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
            .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
        return text.utf8.count - text[..<end.upperBound].utf8.count >= length
    }

    /// Bytes that arrived within `timeout` seconds (until the peer closes, or the timeout);
    /// empty when none did.
    public func receive(timeout: Double, until done: ([UInt8]) -> Bool = { _ in false }) -> [UInt8] {
        var out: [UInt8] = []
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while ContinuousClock.now < deadline && !done(out) {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let left = deadline - ContinuousClock.now
            let millis = Int32(max(1, min(1000, Double(left.components.seconds) * 1000 + Double(left.components.attoseconds) / 1e15)))
            guard poll(&p, 1, millis) > 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            out += buffer[0..<n]
        }
        return out
    }

    /// Waits until the peer closes (EOF or reset), discarding what it sends; returns how long
    /// after `opened` that was, nil if still open after `timeout` seconds.
    public func waitUntilClosed(timeout: Double) -> Duration? {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while ContinuousClock.now < deadline {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 100) > 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return ContinuousClock.now - opened }
        }
        return nil
    }

    /// Whether the peer has closed already (looked at without waiting).
    public var isClosedByPeer: Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, 0) > 0 else { return false }
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT))
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
    }
}

/// The status code and the Ferry error code (if any) of a raw HTTP response.
public func parseHTTPResponse(_ bytes: [UInt8]) -> (status: Int, code: String?, headers: String)? {
    let text = String(decoding: bytes, as: UTF8.self)
    guard text.hasPrefix("HTTP/1.1 "), let status = Int(text.dropFirst(9).prefix(3)) else { return nil }
    let parts = text.components(separatedBy: "\r\n\r\n")
    var code: String?
    if parts.count > 1, let data = parts[1].data(using: .utf8),
        let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
    {
        code = object["code"] as? String
    }
    return (status, code, parts[0])
}
#endif
