#if canImport(Glibc)
import Foundation
import Glibc
import Synchronization

/// An HTTP/1.1 man in the middle on 127.0.0.1: it forwards each request to
/// `127.0.0.1:upstreamPort` and hands every whole answer to `rewrite` before passing it on —
/// the on-path attacker who can read, change and re-frame anything that is not signed.
///
/// One request per connection (it asks both sides for `Connection: close` and drops the
/// client's `Accept-Encoding`, so answers arrive uncompressed and can be edited). The body
/// is re-framed with a fresh `Content-Length`, so a checksum inside the body is the only
/// thing left to fix, which `rewrite` may do too.
///
///     let mitm = try RewritingProxy(upstreamPort: hub.port) { answer in
///         var a = answer
///         a.body = tampered(a.body)
///         return a
///     }
///     // point the node at http://127.0.0.1:\(mitm.port)
public final class RewritingProxy: Sendable {
    /// An answer as it came from upstream: the status line, the header fields in order
    /// (without `Content-Length` and `Connection`, which the proxy sets), the body.
    public struct Answer: Sendable {
        public var statusLine: String
        public var headers: [(String, String)]
        public var body: [UInt8]
        /// The request this answers: its request line ("POST /v1/exchange HTTP/1.1").
        public var requestLine: String
        /// The request's body, as the client sent it.
        public var requestBody: [UInt8]

        public func header(_ name: String) -> String? {
            headers.first { $0.0.lowercased() == name.lowercased() }?.1
        }
        public mutating func setHeader(_ name: String, _ value: String) {
            headers.removeAll { $0.0.lowercased() == name.lowercased() }
            headers.append((name, value))
        }
    }

    public let port: Int
    private let listener: Int32
    private let upstreamPort: Int
    private let rewrite: @Sendable (Answer) -> Answer
    private let state = Mutex<(stopped: Bool, rewritten: Int)>((false, 0))

    /// Answers `rewrite` has seen so far.
    public var answersSeen: Int { state.withLock { $0.rewritten } }

    public init(upstreamPort: Int, rewrite: @escaping @Sendable (Answer) -> Answer) throws {
        self.upstreamPort = upstreamPort
        self.rewrite = rewrite
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw FaultProxyError(call: "socket", code: errno) }
        var on: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr = in_addr(s_addr: UInt32(0x7F00_0001).bigEndian)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, 64) == 0 else {
            let code = errno
            close(fd)
            throw FaultProxyError(call: "bind/listen", code: code)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "rewriting-proxy"
        thread.start()
    }

    deinit { stop() }

    /// Stops accepting; connections in flight finish on their own.
    public func stop() {
        let first = state.withLock { s in
            defer { s.stopped = true }
            return !s.stopped
        }
        if first { shutdown(listener, Int32(SHUT_RDWR)) }
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                close(listener)
                return
            }
            if state.withLock({ $0.stopped }) {
                close(client)
                continue
            }
            let thread = Thread { [self] in serve(client) }
            thread.start()
        }
    }

    private func serve(_ client: Int32) {
        defer { close(client) }
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        _ = setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard let request = Self.readMessage(client, isAnswer: false) else { return }
        var head = request.head.filter {
            let name = $0.split(separator: ":").first.map { $0.lowercased() } ?? ""
            return name != "accept-encoding" && name != "connection"
        }
        head.append("Connection: close")
        let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard upstream >= 0 else { return }
        defer { close(upstream) }
        _ = setsockopt(upstream, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(upstreamPort).bigEndian)
        address.sin_addr = in_addr(s_addr: UInt32(0x7F00_0001).bigEndian)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return }
        guard Self.write(upstream, Array((head.joined(separator: "\r\n") + "\r\n\r\n").utf8) + request.body) else { return }
        guard let answer = Self.readMessage(upstream, isAnswer: true), let statusLine = answer.head.first else { return }
        let fields: [(String, String)] = answer.head.dropFirst().compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            let name = String(line[..<colon])
            let lower = name.lowercased()
            guard lower != "content-length", lower != "connection", lower != "transfer-encoding" else { return nil }
            return (name, line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        let changed = rewrite(Answer(statusLine: statusLine, headers: fields, body: answer.body, requestLine: request.head.first ?? "", requestBody: request.body))
        state.withLock { $0.rewritten += 1 }
        var out = [changed.statusLine] + changed.headers.map { "\($0.0): \($0.1)" }
        out.append("Content-Length: \(changed.body.count)")
        out.append("Connection: close")
        _ = Self.write(client, Array((out.joined(separator: "\r\n") + "\r\n\r\n").utf8) + changed.body)
    }

    /// One HTTP/1.1 message: its head's lines and its body (by Content-Length, by chunks, or
    /// for an answer without either, up to EOF).
    private static func readMessage(_ fd: Int32, isAnswer: Bool) -> (head: [String], body: [UInt8])? {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        func more() -> Bool {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return false }
            bytes += buffer[0..<n]
            return true
        }
        let separator: [UInt8] = [13, 10, 13, 10]
        var headEnd: Int?
        while headEnd == nil {
            if let r = bytes.firstRange(of: separator) { headEnd = r.upperBound; break }
            guard more() else { return nil }
        }
        let head = String(decoding: bytes[..<(headEnd! - 4)], as: UTF8.self).components(separatedBy: "\r\n")
        func field(_ name: String) -> String? {
            head.dropFirst().first { $0.lowercased().hasPrefix(name + ":") }.map { String($0.dropFirst(name.count + 1)).trimmingCharacters(in: .whitespaces) }
        }
        if let length = field("content-length").flatMap(Int.init) {
            while bytes.count - headEnd! < length { guard more() else { return nil } }
            return (head, Array(bytes[headEnd!..<(headEnd! + length)]))
        }
        if field("transfer-encoding")?.lowercased() == "chunked" {
            // Until the last chunk (a test's answers are small; a false match inside a chunk
            // only cuts the read short, and the parse below then reads what arrived).
            while bytes[headEnd!...].firstRange(of: [48, 13, 10, 13, 10] as [UInt8]) == nil { guard more() else { break } }
            var body: [UInt8] = []
            var i = headEnd!
            while let lineEnd = bytes[i...].firstRange(of: [13, 10] as [UInt8]) {
                let size = Int(String(decoding: bytes[i..<lineEnd.lowerBound], as: UTF8.self), radix: 16) ?? 0
                if size == 0 || lineEnd.upperBound + size > bytes.count { break }
                body += bytes[lineEnd.upperBound..<(lineEnd.upperBound + size)]
                i = lineEnd.upperBound + size + 2
            }
            return (head, body)
        }
        if isAnswer { while more() {} }
        return (head, Array(bytes[headEnd!...]))
    }

    private static func write(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            sent += n
        }
        return true
    }
}
#endif
