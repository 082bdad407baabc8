#if canImport(Glibc)
import FerryTestSupport
import FerryTestTraits
import Foundation
import Glibc
import Synchronization
import Testing

/// Proves the fault proxy itself, against tiny socket servers written here (not Ferry code).
@Suite("FaultProxy: the fault-injecting test proxy", .serialized, .timeLimit(.minutes(1)), .offThePool)
struct FaultProxyTests {
    @Test("with no faults, 1 MB goes through both ways byte for byte")
    func transparentPassThrough() throws {
        let server = try LoopbackServer(serve: echo)
        defer { server.stop() }
        let proxy = try FaultProxy(upstreamPort: server.port, plan: FaultPlan())
        defer { proxy.stop() }
        let sent = blob(1 << 20, seed: 1)
        let (received, error) = try exchange(port: proxy.port, sending: sent)
        #expect(error == 0)
        #expect(received == sent)
        #expect(proxy.stats.bytesToServer == sent.count && proxy.stats.bytesToClient == sent.count)
    }

    @Test("a 256 kbit/s cap makes 64 KB take about 2 s")
    func rateCapSlowsTheStream() throws {
        let sent = blob(65_536, seed: 2)
        let server = try LoopbackServer(serve: sender(sent))
        defer { server.stop() }
        let proxy = try FaultProxy(upstreamPort: server.port, plan: FaultPlan(bytesPerSecond: 32_000))
        defer { proxy.stop() }
        let start = ContinuousClock.now
        let (received, error) = try fetch(port: proxy.port)
        let elapsed = ContinuousClock.now - start
        #expect(error == 0 && received == sent)
        // Ideal is 2.03 s; only a loose lower bound, because the machine is shared.
        #expect(elapsed >= .milliseconds(1_500), "took \(elapsed)")
    }

    @Test("a cut after N bytes ends the stream after exactly N bytes: EOF, or a reset when asked")
    func cutEndsTheStreamEarly() throws {
        let sent = blob(100_000, seed: 3)
        let server = try LoopbackServer(serve: sender(sent))
        defer { server.stop() }
        let proxy = try FaultProxy(upstreamPort: server.port, plan: FaultPlan(cutAfterBytes: 10_000...10_000))
        defer { proxy.stop() }

        let (closed, closeError) = try fetch(port: proxy.port)
        #expect(closeError == 0)
        #expect(closed == Array(sent.prefix(10_000)))

        proxy.plan.cutWithReset = true
        let (reset, resetError) = try fetch(port: proxy.port)
        #expect(resetError == ECONNRESET)
        #expect(reset.count <= 10_000 && sent.starts(with: reset))
        #expect(proxy.stats.cuts == 2)
    }

    @Test("with flip probability 1 every chunk arrives with exactly one bit flipped, only in the chosen direction")
    func flipsCorruptBytes() throws {
        let sent = blob(65_536, seed: 4)
        let server = try LoopbackServer(serve: sender(sent))
        defer { server.stop() }
        let proxy = try FaultProxy(upstreamPort: server.port, plan: FaultPlan(flipProbability: 1))
        defer { proxy.stop() }

        let (received, error) = try fetch(port: proxy.port)
        #expect(error == 0 && received.count == sent.count)
        #expect(received != sent)
        let flippedBits = zip(sent, received).reduce(0) { $0 + ($1.0 ^ $1.1).nonzeroBitCount }
        #expect(flippedBits == proxy.stats.flips && flippedBits >= sent.count / 4096)

        proxy.plan.directions = [.toServer]
        let (untouched, _) = try fetch(port: proxy.port)
        #expect(untouched == sent)
    }

    @Test("the same seed cuts the same connections at the same points; another seed elsewhere")
    func seedReplaysCutPoints() throws {
        let sent = blob(100_000, seed: 5)
        let server = try LoopbackServer(serve: sender(sent))
        defer { server.stop() }
        func cutPoints(seed: UInt64) throws -> [Int] {
            let proxy = try FaultProxy(upstreamPort: server.port, plan: FaultPlan(cutAfterBytes: 1_000...50_000, seed: seed))
            defer { proxy.stop() }
            return try (0..<5).map { _ in try fetch(port: proxy.port).bytes.count }
        }
        let first = try cutPoints(seed: 7)
        let second = try cutPoints(seed: 7)
        let other = try cutPoints(seed: 8)
        #expect(first == second, "seed 7")
        #expect(first != other, "seeds 7 and 8")
        #expect(Set(first).count > 1 && first.allSatisfy { (1_000...50_000).contains($0) }, "seed 7: \(first)")
    }

    @Test("a stall forwards N bytes, goes silent for the stall time, then closes")
    func stallGoesSilentThenCloses() throws {
        let sent = blob(100_000, seed: 6)
        let server = try LoopbackServer(serve: sender(sent))
        defer { server.stop() }
        let proxy = try FaultProxy(upstreamPort: server.port, plan: FaultPlan(stallAfterBytes: 1_000, stallSeconds: 0.5))
        defer { proxy.stop() }
        let start = ContinuousClock.now
        let (received, error) = try fetch(port: proxy.port)
        let elapsed = ContinuousClock.now - start
        #expect(error == 0 && received == Array(sent.prefix(1_000)))
        #expect(elapsed >= .milliseconds(450), "took \(elapsed)")
        #expect(proxy.stats.stalls == 1)
    }

    @Test("a half-close gives the client EOF after N bytes while its own bytes still reach the server")
    func halfCloseLetsTheClientKeepSending() throws {
        let heard = Counter()
        let server = try LoopbackServer { fd in heard.add(echoCounting(fd)) }
        defer { server.stop() }
        let proxy = try FaultProxy(upstreamPort: server.port, plan: FaultPlan(halfCloseAfterBytes: 1_000))
        defer { proxy.stop() }
        let fd = try connectLoopback(port: proxy.port)
        defer { close(fd) }
        let first = blob(5_000, seed: 7)
        #expect(sendAll(fd, first))
        let (received, error) = readToEnd(fd)
        #expect(error == 0 && received == Array(first.prefix(1_000)))
        #expect(sendAll(fd, blob(3_000, seed: 8)))
        shutdown(fd, Int32(SHUT_WR))
        #expect(heard.waitFor(8_000, seconds: 5), "server heard \(heard.value) bytes")
        #expect(proxy.stats.halfCloses == 1)
    }

    @Test("latency delays each way, yet chunks in flight overlap rather than queue")
    func latencyDelaysWithoutCappingThroughput() throws {
        let server = try LoopbackServer(serve: echo)
        defer { server.stop() }
        let proxy = try FaultProxy(upstreamPort: server.port, plan: FaultPlan(latencyMillis: 100))
        defer { proxy.stop() }

        var start = ContinuousClock.now
        let ping = blob(10, seed: 9)
        let (pong, _) = try exchange(port: proxy.port, sending: ping)
        let roundTrip = ContinuousClock.now - start
        #expect(pong == ping)
        #expect(roundTrip >= .milliseconds(180), "took \(roundTrip)")

        // 1 MB is 256 chunks; 100 ms per chunk one after another would take 25 s.
        start = ContinuousClock.now
        let sent = blob(1 << 20, seed: 10)
        let (received, _) = try exchange(port: proxy.port, sending: sent)
        let bulk = ContinuousClock.now - start
        #expect(received == sent)
        #expect(bulk < .seconds(10), "took \(bulk)")
    }

    @Test("finished connections give back their threads and sockets; stop gives back the rest and ends open ones")
    func nothingOutlivesItsConnectionOrStop() throws {
        let server = try LoopbackServer(serve: echo)
        defer { server.stop() }
        let proxy = try FaultProxy(upstreamPort: server.port, plan: FaultPlan(latencyMillis: 10))
        let port = proxy.port
        // The proxy's threads, and its sockets: the listener, accepted ones, and ones to the server.
        let held = { [threads(named: "proxy-\(port)"), openSockets(localPort: port, remotePort: server.port)] }

        let ping = blob(1_000, seed: 11)
        #expect(try exchange(port: port, sending: ping).bytes == ping)
        #expect(eventually { held() == [1, 1] }, "held \(held()) after the connection ended")  // acceptor, listener

        let fd = try connectLoopback(port: port)
        defer { close(fd) }
        #expect(sendAll(fd, ping))
        var echoed = [UInt8](repeating: 0, count: ping.count)
        #expect(recv(fd, &echoed, echoed.count, Int32(MSG_WAITALL)) == ping.count)
        #expect(held() == [3, 3] && proxy.stats.openConnections == 1, "held \(held()) with one connection open")

        proxy.stop()
        #expect(proxy.stats.openConnections == 0)
        #expect(eventually { held() == [0, 0] }, "held \(held()) after stop")
        let (rest, _) = readToEnd(fd)
        #expect(rest.isEmpty)
    }
}

// MARK: - What the process holds

/// Polls `condition` for up to 3 s.
private func eventually(_ condition: () -> Bool) -> Bool {
    let deadline = ContinuousClock.now + .seconds(3)
    while !condition() {
        guard ContinuousClock.now < deadline else { return false }
        usleep(10_000)
    }
    return true
}

private func threads(named name: String) -> Int {
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
    return tasks.filter { task in
        procFile("/proc/self/task/\(task)/comm").trimmingCharacters(in: .whitespacesAndNewlines) == name
    }.count
}

/// The whole of a /proc file (they report size 0, so read to EOF).
private func procFile(_ path: String) -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return "" }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while case let n = read(fd, &buffer, buffer.count), n > 0 { bytes += buffer[0..<n] }
    return String(decoding: bytes, as: UTF8.self)
}

/// TCP sockets among this process's descriptors bound to `localPort` or connected to `remotePort`.
private func openSockets(localPort: Int, remotePort: Int) -> Int {
    let files = FileManager.default
    let descriptors = (try? files.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    let inodes = Set(
        descriptors.compactMap { fd -> Substring? in
            guard let target = try? files.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)"), target.hasPrefix("socket:[") else {
                return nil
            }
            return target.dropFirst(8).dropLast()
        })
    return procFile("/proc/self/net/tcp").split(separator: "\n").dropFirst().filter { line in
        // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …
        let fields = line.split(separator: " ")
        guard fields.count > 9, inodes.contains(fields[9]) else { return false }
        let port = { (address: Substring) in address.split(separator: ":").last.flatMap { Int($0, radix: 16) } }
        return port(fields[1]) == localPort || port(fields[2]) == remotePort
    }.count
}

// MARK: - Tiny loopback servers and clients

/// Echoes until EOF, then half-closes.
private func echo(_ fd: Int32) { _ = echoCounting(fd) }

/// Echoes until EOF, then half-closes; returns how many bytes it heard.
private func echoCounting(_ fd: Int32) -> Int {
    var buffer = [UInt8](repeating: 0, count: 16_384)
    var heard = 0
    while true {
        let n = read(fd, &buffer, buffer.count)
        if n < 0 && errno == EINTR { continue }
        guard n > 0, sendAll(fd, Array(buffer[0..<n])) else { break }
        heard += n
    }
    shutdown(fd, Int32(SHUT_WR))
    return heard
}

/// Sends `bytes`, then closes.
private func sender(_ bytes: [UInt8]) -> @Sendable (Int32) -> Void {
    { fd in _ = sendAll(fd, bytes) }
}

private func blob(_ count: Int, seed: UInt64) -> [UInt8] {
    var random = SeededRandom(seed: seed)
    return (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
}

private final class Counter: Sendable {
    private let total = Atomic(0)
    var value: Int { total.load(ordering: .acquiring) }
    func add(_ n: Int) { total.add(n, ordering: .releasing) }
    func waitFor(_ n: Int, seconds: Double) -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while value < n && ContinuousClock.now < deadline { usleep(10_000) }
        return value >= n
    }
}

/// A TCP server on 127.0.0.1 that hands each connection to `serve` on its own thread and
/// closes it when `serve` returns.
private final class LoopbackServer: Sendable {
    let port: Int
    private let listener: Int32
    private let stopping = Atomic(false)
    private let finished = DispatchSemaphore(value: 0)

    init(serve: @escaping @Sendable (Int32) -> Void) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        var address = loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && listen(fd, 64) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard ok else {
            close(fd)
            throw POSIXError(.EADDRNOTAVAIL)
        }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread { [self] in acceptLoop(serve) }
    }

    private func acceptLoop(_ serve: @escaping @Sendable (Int32) -> Void) {
        while !stopping.load(ordering: .acquiring) {
            var fds = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0)]
            guard poll(&fds, 1, 50) > 0 else { continue }
            let fd = accept(listener, nil, nil)
            guard fd >= 0 else { continue }
            Thread.detachNewThread {
                serve(fd)
                close(fd)
            }
        }
        finished.signal()
    }

    func stop() {
        stopping.store(true, ordering: .releasing)
        finished.wait()
        close(listener)
    }
}

private func loopback(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port)).bigEndian
    address.sin_addr = in_addr(s_addr: UInt32(0x7F00_0001).bigEndian)
    return address
}

/// A blocking client socket to 127.0.0.1:`port` whose reads give up after 10 s rather than hang a test.
private func connectLoopback(port: Int) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    var timeout = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = loopback(port: port)
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        let code = errno
        close(fd)
        throw POSIXError(POSIXErrorCode(rawValue: code) ?? .ECONNREFUSED)
    }
    return fd
}

private func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { return false }
        offset += n
    }
    return true
}

/// Reads until EOF (error 0) or an error (its errno).
private func readToEnd(_ fd: Int32) -> (bytes: [UInt8], error: Int32) {
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = read(fd, &buffer, buffer.count)
        if n > 0 {
            bytes += buffer[0..<n]
        } else if n == 0 {
            return (bytes, 0)
        } else if errno != EINTR {
            return (bytes, errno)
        }
    }
}

/// Connects, reads to the end without sending anything.
private func fetch(port: Int) throws -> (bytes: [UInt8], error: Int32) {
    let fd = try connectLoopback(port: port)
    defer { close(fd) }
    return readToEnd(fd)
}

/// Connects, sends `bytes` then half-closes from a second thread while reading to the end.
private func exchange(port: Int, sending bytes: [UInt8]) throws -> (bytes: [UInt8], error: Int32) {
    let fd = try connectLoopback(port: port)
    defer { close(fd) }
    let written = DispatchSemaphore(value: 0)
    Thread.detachNewThread {
        _ = sendAll(fd, bytes)
        shutdown(fd, Int32(SHUT_WR))
        written.signal()
    }
    let result = readToEnd(fd)
    written.wait()
    return result
}
#endif
