#if canImport(Glibc)
import Foundation
import Glibc
import Synchronization

/// The faults a `FaultProxy` injects; the default value forwards every byte unchanged.
///
/// Byte counts are per connection. Each connection draws its faults from a generator seeded by
/// `seed` and the connection's index (0, 1, 2… in accept order), so a seed replays the same cut
/// points, and the same chunks flipped as long as the peers write the same way.
///
///     FaultPlan(cutAfterBytes: 10_000...30_000, seed: seed)   // cut each connection after ~20 KB
///     FaultPlan(latencyMillis: 100, bytesPerSecond: 32_000)   // 100 ms each way, 256 kbit/s
public struct FaultPlan: Sendable, Equatable {
    /// Which way bytes travel through the proxy.
    public enum Direction: Sendable, Hashable, CaseIterable {
        case toServer
        case toClient
    }

    /// Delay added to each chunk, each way, in milliseconds. Chunks are delivered in order at
    /// their arrival time plus the delay, so latency alone does not cap throughput. 0: none.
    public var latencyMillis: Int
    /// Bandwidth cap per direction, in bytes per second (256 kbit/s is 32_000), enforced by a
    /// token bucket holding 20 ms of traffic. nil: unlimited.
    public var bytesPerSecond: Int?
    /// Closes the connection once a number of bytes drawn uniformly from this range has been
    /// forwarded, counting both directions in `directions` together. nil: never.
    public var cutAfterBytes: ClosedRange<Int>?
    /// Cuts with a reset (RST) instead of a close (FIN), so peers see ECONNRESET; bytes still
    /// in flight may then be lost. false: a peer reads every byte forwarded to it, then EOF
    /// (unless it had sent bytes the proxy never read: then the kernel resets it anyway).
    public var cutWithReset: Bool
    /// Once this many bytes have reached the client the connection goes silent: bytes from
    /// both peers are read and dropped for `stallSeconds`, then the proxy closes it. nil: never.
    public var stallAfterBytes: Int?
    /// How long a stalled connection stays silent before the proxy closes it, in seconds.
    public var stallSeconds: Double
    /// Once this many bytes have reached the client the proxy shuts down its write side toward
    /// the client (which reads EOF) and drops the rest of the server's bytes; the client can
    /// still send. nil: never.
    public var halfCloseAfterBytes: Int?
    /// Probability that a chunk (at most 4 KiB, as read) has one random bit flipped. 0: never.
    public var flipProbability: Double
    /// Flips toward the server land only in the bodies of HTTP/1.1 requests (framed by their
    /// Content-Length), never in a request line or header: damage a signature cannot be
    /// blamed for. A chunk with no body bytes is left alone. false: anywhere.
    public var flipRequestBodiesOnly: Bool
    /// The directions that latency, the rate cap, cuts and flips apply to. Stall and half-close
    /// are about bytes toward the client and ignore this.
    public var directions: Set<Direction>
    /// Seeds every connection's fault generator; print it when a test fails.
    public var seed: UInt64

    public init(
        latencyMillis: Int = 0,
        bytesPerSecond: Int? = nil,
        cutAfterBytes: ClosedRange<Int>? = nil,
        cutWithReset: Bool = false,
        stallAfterBytes: Int? = nil,
        stallSeconds: Double = 0,
        halfCloseAfterBytes: Int? = nil,
        flipProbability: Double = 0,
        flipRequestBodiesOnly: Bool = false,
        directions: Set<Direction> = [.toServer, .toClient],
        seed: UInt64 = 1
    ) {
        self.flipRequestBodiesOnly = flipRequestBodiesOnly
        self.latencyMillis = latencyMillis
        self.bytesPerSecond = bytesPerSecond
        self.cutAfterBytes = cutAfterBytes
        self.cutWithReset = cutWithReset
        self.stallAfterBytes = stallAfterBytes
        self.stallSeconds = stallSeconds
        self.halfCloseAfterBytes = halfCloseAfterBytes
        self.flipProbability = flipProbability
        self.directions = directions
        self.seed = seed
    }
}

/// A socket call the proxy needed failed; `description` names the call and the system's reason.
public struct FaultProxyError: Error, CustomStringConvertible {
    public let call: String
    public let code: Int32
    public var description: String { "fault proxy: \(call) failed: \(String(cString: strerror(code))) (errno \(code))" }
}

/// A TCP proxy on 127.0.0.1 that forwards each connection to `127.0.0.1:upstreamPort`,
/// injecting the faults of its `FaultPlan`.
///
/// Every accepted connection gets two threads, one per direction, forwarding with poll(2),
/// read(2) and send(2). Peers' half-closes are passed on. `stop()`, or dropping the proxy,
/// closes the listener and every connection and joins every thread.
///
///     let proxy = try FaultProxy(upstreamPort: hubPort, plan: FaultPlan(cutAfterBytes: 10_000...30_000, seed: seed))
///     defer { proxy.stop() }
///     // point the node at http://127.0.0.1:\(proxy.port)
public final class FaultProxy: Sendable {
    /// What the proxy has done so far.
    public struct Stats: Sendable, Equatable {
        /// Connections accepted.
        public var connections = 0
        /// Connections not yet closed.
        public var openConnections = 0
        public var bytesToServer = 0
        public var bytesToClient = 0
        public var cuts = 0
        public var stalls = 0
        public var halfCloses = 0
        public var flips = 0
    }

    /// The port the proxy listens on, on 127.0.0.1.
    public let port: Int
    private let core: ProxyCore

    /// Listens on 127.0.0.1 on a free port and starts accepting.
    public init(upstreamPort: Int, plan: FaultPlan = FaultPlan()) throws {
        guard (1...65_535).contains(upstreamPort) else { throw FaultProxyError(call: "using upstream port \(upstreamPort)", code: EINVAL) }
        let (listener, port) = try FaultProxy.listen()
        var stopPipe: [Int32] = [-1, -1]
        guard makePipe(&stopPipe) else {
            let code = errno
            close(listener)
            throw FaultProxyError(call: "pipe2", code: code)
        }
        let core = ProxyCore(
            listener: listener, port: port, stopRead: stopPipe[0], stopWrite: stopPipe[1], upstreamPort: upstreamPort, plan: plan)
        self.core = core
        self.port = port
        do {
            let acceptor = try startThread(named: core.threadName) { core.acceptLoop() }
            core.registry.withLock { $0.acceptor = acceptor }
        } catch {
            core.stop()
            throw error
        }
    }

    /// A non-blocking listening socket on 127.0.0.1 and the free port it got.
    private static func listen() throws -> (Int32, Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw FaultProxyError(call: "socket", code: errno) }
        func fail(_ call: String) -> FaultProxyError {
            let error = FaultProxyError(call: call, code: errno)
            close(fd)
            return error
        }
        var on: Int32 = 1
        guard setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            throw fail("setsockopt(SO_REUSEADDR)")
        }
        var address = loopbackAddress(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw fail("bind(127.0.0.1:0)") }
        guard Glibc.listen(fd, 128) == 0 else { throw fail("listen") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw fail("getsockname") }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    deinit { stop() }

    /// The plan new connections get; connections already open keep the plan they started with.
    public var plan: FaultPlan {
        get { core.plan.withLock { $0 } }
        set { core.plan.withLock { $0 = newValue } }
    }

    public var stats: Stats { core.stats.withLock { $0 } }

    /// Closes the listener and every connection, and joins every thread. Idempotent.
    public func stop() { core.stop() }
}

// MARK: - Accepting

private final class ProxyCore: Sendable {
    struct Entry {
        let link: Link
        let threads: [pthread_t]
    }

    struct Registry {
        var acceptor: pthread_t?
        var links: [Entry] = []
        var nextIndex = 0
    }

    let listener: Int32
    let stopRead: Int32
    let stopWrite: Int32
    let upstreamPort: Int
    /// "proxy-<port>": what `top -H` and /proc/self/task/*/comm show for every proxy thread.
    let threadName: String
    let plan: Mutex<FaultPlan>
    let stats = Mutex(FaultProxy.Stats())
    let registry = Mutex(Registry())
    private let stopped = Mutex(false)

    init(listener: Int32, port: Int, stopRead: Int32, stopWrite: Int32, upstreamPort: Int, plan: FaultPlan) {
        self.listener = listener
        self.threadName = "proxy-\(port)"
        self.stopRead = stopRead
        self.stopWrite = stopWrite
        self.upstreamPort = upstreamPort
        self.plan = Mutex(plan)
    }

    func acceptLoop() {
        while true {
            var fds = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0), pollfd(fd: stopRead, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&fds, 2, 500)
            let failed = ready < 0 && errno != EINTR
            reapFinished()
            if failed { return }
            if fds[1].revents != 0 { return }
            if fds[0].revents != 0 { acceptOne() }
        }
    }

    private func acceptOne() {
        let client = accept(listener, nil, nil)
        guard client >= 0 else {
            // Out of descriptors: back off rather than spin on a listener that stays readable.
            if errno == EMFILE || errno == ENFILE {
                var fd = pollfd(fd: stopRead, events: Int16(POLLIN), revents: 0)
                _ = poll(&fd, 1, 50)
            }
            return
        }
        setDescriptorFlags(client)
        let index = registry.withLock { r in
            defer { r.nextIndex += 1 }
            return r.nextIndex
        }
        let plan = self.plan.withLock { $0 }
        stats.withLock { $0.connections += 1 }

        guard let server = connectUpstream() else {
            abortiveClose(client)  // the client sees a reset, as if the server refused it
            return
        }
        var wake: [Int32] = [-1, -1]
        guard makePipe(&wake) else {
            abortiveClose(client)
            abortiveClose(server)
            return
        }
        setNoDelay(client)
        setNoDelay(server)

        var random = ProxyCore.random(seed: plan.seed, connection: index)
        let cutPoint = plan.cutAfterBytes.map { Int.random(in: $0, using: &random) }
        let link = Link(core: self, client: client, server: server, wakeRead: wake[0], wakeWrite: wake[1], plan: plan, cutPoint: cutPoint)
        stats.withLock { $0.openConnections += 1 }
        var threads: [pthread_t] = []
        for direction in [FaultPlan.Direction.toServer, .toClient] {
            let seed = random.next()
            do {
                threads.append(
                    try startThread(named: threadName) {
                        var pump = Pump(link: link, direction: direction, seed: seed)
                        pump.run()
                    })
            } catch {
                link.end(.stop)
                link.pumpFinished()
            }
        }
        registry.withLock { $0.links.append(Entry(link: link, threads: threads)) }
    }

    /// A non-blocking socket connected to the upstream, or nil if it refused or took over 5 s.
    private func connectUpstream() -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = loopbackAddress(port: upstreamPort)
        let started = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if started != 0 {
            guard errno == EINPROGRESS || errno == EINTR else {
                close(fd)
                return nil
            }
            // Wait for the handshake, but never past stop().
            var fds = [pollfd(fd: fd, events: Int16(POLLOUT), revents: 0), pollfd(fd: stopRead, events: Int16(POLLIN), revents: 0)]
            var ready: Int32
            repeat { ready = poll(&fds, 2, 5_000) } while ready < 0 && errno == EINTR
            var failure: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            guard ready > 0, fds[1].revents == 0, getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &length) == 0, failure == 0 else {
                close(fd)
                return nil
            }
        }
        return fd
    }

    /// Joins the threads of connections that have closed, so a long test does not pile them up.
    private func reapFinished() {
        let finished = registry.withLock { r in
            var done: [Entry] = []
            var open: [Entry] = []
            for entry in r.links {
                if entry.link.isClosed { done.append(entry) } else { open.append(entry) }
            }
            r.links = open
            return done
        }
        for entry in finished { for thread in entry.threads { pthread_join(thread, nil) } }
    }

    func stop() {
        stopped.withLock { stopped in
            guard !stopped else { return }
            stopped = true
            var byte: UInt8 = 1
            _ = write(stopWrite, &byte, 1)
            if let acceptor = registry.withLock({ $0.acceptor }) { pthread_join(acceptor, nil) }
            close(listener)
            let all = registry.withLock { r in
                defer { r.links = [] }
                return r.links
            }
            for entry in all { entry.link.end(.stop) }
            for entry in all { for thread in entry.threads { pthread_join(thread, nil) } }
            close(stopRead)
            close(stopWrite)
        }
    }

    /// One generator per connection, from the plan's seed and the connection's index.
    static func random(seed: UInt64, connection: Int) -> SeededRandom {
        var index = SeededRandom(seed: UInt64(connection))
        return SeededRandom(seed: seed ^ index.next())
    }
}

// MARK: - One connection

private enum Ending: Equatable {
    case cut, reset, stall, stop
}

private final class Link: Sendable {
    struct State {
        var runningPumps = 2
        var closed = false
        var ending: Ending?
        /// Bytes counted toward `cutPoint`.
        var counted = 0
        var sentToClient = 0
        var stallDeadline: ContinuousClock.Instant?
        var halfClosed = false
    }

    enum Forwarded {
        /// `silenced`: the client's side was just half-closed; drop the rest toward it.
        case wrote(Int, silenced: Bool)
        /// The connection is ending or stalled; nothing was written.
        case held
        /// The sink refused the bytes; this direction is dead.
        case failed
    }

    private enum Trigger { case cut, stall, halfClose }

    let core: ProxyCore
    let client: Int32
    let server: Int32
    let wakeRead: Int32
    let wakeWrite: Int32
    let plan: FaultPlan
    let cutPoint: Int?
    let state = Mutex(State())

    init(core: ProxyCore, client: Int32, server: Int32, wakeRead: Int32, wakeWrite: Int32, plan: FaultPlan, cutPoint: Int?) {
        self.core = core
        self.client = client
        self.server = server
        self.wakeRead = wakeRead
        self.wakeWrite = wakeWrite
        self.plan = plan
        self.cutPoint = cutPoint
    }

    var isClosed: Bool { state.withLock { $0.closed } }

    /// Ends the connection: both pumps stop at their next wake and the last one closes it.
    func end(_ why: Ending) {
        state.withLock { s in
            if s.ending == nil { s.ending = why }
            if !s.closed { wakePumps() }
        }
    }

    /// The wake pipe is never drained, so once written it keeps every later poll awake.
    private func wakePumps() {
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    /// Called by each pump as it exits; the last one closes the sockets.
    func pumpFinished() {
        let closedNow = state.withLock { s -> Bool in
            s.runningPumps -= 1
            guard s.runningPumps == 0 else { return false }
            s.closed = true
            let reset = s.ending == .reset || (s.ending == .cut && plan.cutWithReset)
            for fd in [client, server] {
                if reset { abortiveClose(fd) } else { close(fd) }
            }
            close(wakeRead)
            close(wakeWrite)
            return true
        }
        if closedNow { core.stats.withLock { $0.openConnections -= 1 } }
    }

    /// Sends up to `bytes.count` bytes toward `direction`'s sink, stopping exactly at the
    /// connection's cut, stall or half-close point and firing it. Runs under the lock so the
    /// two directions count the cut together, exactly.
    func forward(_ direction: FaultPlan.Direction, _ bytes: UnsafeRawBufferPointer, counted: Bool, now: ContinuousClock.Instant)
        -> Forwarded
    {
        state.withLock { s in
            guard s.ending == nil, s.stallDeadline == nil else { return .held }
            var allowed = bytes.count
            var trigger: Trigger?
            func limit(_ left: Int, _ t: Trigger) {
                let left = max(0, left)
                if left < allowed || (left == allowed && trigger == nil) {
                    allowed = left
                    trigger = t
                }
            }
            if counted, let cutPoint { limit(cutPoint - s.counted, .cut) }
            if direction == .toClient {
                if let stall = plan.stallAfterBytes { limit(stall - s.sentToClient, .stall) }
                if let half = plan.halfCloseAfterBytes, !s.halfClosed { limit(half - s.sentToClient, .halfClose) }
            }

            var written = 0
            if allowed > 0 {
                let sink = direction == .toServer ? server : client
                let n = send(sink, bytes.baseAddress, allowed, Int32(MSG_NOSIGNAL))
                if n < 0 {
                    guard errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR else { return .failed }
                } else {
                    written = n
                }
            }
            if counted { s.counted += written }
            if direction == .toClient { s.sentToClient += written }
            core.stats.withLock { stats in
                if direction == .toServer { stats.bytesToServer += written } else { stats.bytesToClient += written }
            }

            guard written == allowed, let trigger else { return .wrote(written, silenced: false) }
            switch trigger {
            case .cut:
                s.ending = .cut
                wakePumps()
                core.stats.withLock { $0.cuts += 1 }
            case .stall:
                s.stallDeadline = now + .seconds(max(0, plan.stallSeconds))
                core.stats.withLock { $0.stalls += 1 }
            case .halfClose:
                s.halfClosed = true
                shutdown(client, Int32(SHUT_WR))
                core.stats.withLock { $0.halfCloses += 1 }
                return .wrote(written, silenced: true)
            }
            return .wrote(written, silenced: false)
        }
    }
}

// MARK: - One direction of one connection

/// Follows HTTP/1.1 requests through a byte stream: which bytes are heads and which bodies
/// (by Content-Length; a request without one has no body).
struct RequestFramer {
    private var head: [UInt8] = []
    private var bodyLeft = 0

    /// The ranges of `bytes`, the stream's next bytes, that belong to request bodies.
    mutating func bodyRanges(in bytes: [UInt8]) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        var i = 0
        while i < bytes.count {
            if bodyLeft > 0 {
                let n = min(bodyLeft, bytes.count - i)
                ranges.append(i..<(i + n))
                bodyLeft -= n
                i += n
                continue
            }
            head.append(bytes[i])
            i += 1
            if head.count >= 4 && head[(head.count - 4)...].elementsEqual([13, 10, 13, 10]) {
                let text = String(decoding: head, as: UTF8.self).lowercased()
                bodyLeft = text.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                    .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
                head = []
            }
        }
        return ranges
    }
}

/// Forwards one direction: reads chunks as they arrive, holds each until its due time (the
/// latency), and writes them as the token bucket allows.
private struct Pump {
    struct Chunk {
        var bytes: [UInt8]
        var offset = 0
        let due: ContinuousClock.Instant
        var remaining: Int { bytes.count - offset }
    }

    static let chunkSize = 4096
    /// Read no more while this much waits to be written, so a slow sink pushes back on the source.
    static let maxQueued = 256 * 1024

    let link: Link
    let direction: FaultPlan.Direction
    let source: Int32
    let sink: Int32
    /// Whether the plan's per-byte faults apply to this direction.
    let faulty: Bool
    let latency: Duration
    var bucket: TokenBucket?
    var random: SeededRandom
    let clock = ContinuousClock()

    var queue: [Chunk] = []
    var queued = 0
    /// Where request heads and bodies are, for `flipRequestBodiesOnly`.
    var framer = RequestFramer()
    var sourceOpen = true
    /// After a half-close toward the client: read and drop the server's bytes.
    var silenced = false

    init(link: Link, direction: FaultPlan.Direction, seed: UInt64) {
        self.link = link
        self.direction = direction
        source = direction == .toServer ? link.client : link.server
        sink = direction == .toServer ? link.server : link.client
        faulty = link.plan.directions.contains(direction)
        latency = faulty ? .milliseconds(max(0, link.plan.latencyMillis)) : .zero
        random = SeededRandom(seed: seed)
        bucket = nil
        if faulty, let rate = link.plan.bytesPerSecond { bucket = TokenBucket(bytesPerSecond: rate, now: clock.now) }
    }

    mutating func run() {
        defer { link.pumpFinished() }
        var buffer = [UInt8](repeating: 0, count: Pump.chunkSize)
        while true {
            let (ending, stallDeadline) = link.state.withLock { ($0.ending, $0.stallDeadline) }
            if ending != nil { return }
            let now = clock.now

            if let stallDeadline {
                // Silent: drop everything until the deadline, then close the connection.
                queue.removeAll()
                queued = 0
                if now >= stallDeadline {
                    link.end(.stall)
                    return
                }
                let ready = wait(read: sourceOpen, write: false, timeout: stallDeadline - now)
                if ready.source, read(into: &buffer) == nil { sourceOpen = false }
                continue
            }

            if !sourceOpen && queue.isEmpty {
                if !silenced { shutdown(sink, Int32(SHUT_WR)) }  // pass the peer's half-close on
                return
            }

            var wantWrite = false
            var timeout: Duration?
            if let head = queue.first {
                if head.due > now {
                    timeout = head.due - now
                } else if let delay = bucket?.delay(for: head.remaining, now: now), delay > .zero {
                    timeout = delay
                } else {
                    wantWrite = true
                }
            }
            let ready = wait(read: sourceOpen && queued < Pump.maxQueued, write: wantWrite, timeout: timeout)
            if ready.wake { continue }

            if ready.source {
                switch read(into: &buffer) {
                case nil:
                    sourceOpen = false
                case let n? where n > 0 && !silenced:
                    var bytes = Array(buffer[0..<n])
                    let bodyOnly = link.plan.flipRequestBodiesOnly && direction == .toServer
                    let bodies = bodyOnly ? framer.bodyRanges(in: bytes) : [0..<n]
                    let flippable = bodies.reduce(0) { $0 + $1.count }
                    if faulty && link.plan.flipProbability > 0 && flippable > 0 && random.chance(link.plan.flipProbability) {
                        var bit = Int.random(in: 0..<(flippable * 8), using: &random)
                        for range in bodies {
                            if bit < range.count * 8 {
                                let index = range.lowerBound + bit / 8
                                bytes[index] ^= UInt8(1) << UInt8(bit % 8)
                                break
                            }
                            bit -= range.count * 8
                        }
                        link.core.stats.withLock { $0.flips += 1 }
                    }
                    queue.append(Chunk(bytes: bytes, due: clock.now + latency))
                    queued += n
                default:
                    break
                }
            }

            if ready.sink, var head = queue.first {
                var count = head.remaining
                if bucket != nil {
                    bucket!.refill(now: clock.now)
                    count = min(count, max(1, bucket!.available))
                }
                let result = head.bytes.withUnsafeBytes { raw in
                    link.forward(
                        direction, UnsafeRawBufferPointer(rebasing: raw[head.offset..<(head.offset + count)]),
                        counted: faulty, now: clock.now)
                }
                switch result {
                case .held:
                    continue
                case .failed:
                    return  // the sink is gone; the other direction finishes on its own
                case .wrote(let written, silenced: let silencedNow):
                    bucket?.take(written)
                    head.offset += written
                    queued -= written
                    if head.remaining == 0 { queue.removeFirst() } else { queue[0] = head }
                    if silencedNow {
                        silenced = true
                        queue.removeAll()
                        queued = 0
                    }
                }
            }
        }
    }

    /// Reads one chunk: its length (0 when nothing was ready), or nil at EOF. A read error
    /// other than EOF means the peer reset, and the reset is passed on to the other peer.
    private func read(into buffer: inout [UInt8]) -> Int? {
        let n = buffer.withUnsafeMutableBytes { Glibc.read(source, $0.baseAddress, $0.count) }
        if n > 0 { return n }
        if n == 0 { return nil }
        if errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK { return 0 }
        link.end(.reset)
        return 0
    }

    struct Readiness {
        var wake = false
        var source = false
        var sink = false
    }

    /// Polls the wake pipe, and the source for reading and the sink for writing when asked;
    /// `timeout` nil waits until something is ready.
    private func wait(read: Bool, write: Bool, timeout: Duration?) -> Readiness {
        var fds = [pollfd(fd: link.wakeRead, events: Int16(POLLIN), revents: 0)]
        if read { fds.append(pollfd(fd: source, events: Int16(POLLIN), revents: 0)) }
        if write { fds.append(pollfd(fd: sink, events: Int16(POLLOUT), revents: 0)) }
        let millis = timeout.map { Int32(min(60_000, max(0, ($0.inSeconds * 1000).rounded(.up)))) } ?? -1
        guard poll(&fds, nfds_t(fds.count), millis) > 0 else { return Readiness() }  // timeout or EINTR
        var ready = Readiness(wake: fds[0].revents != 0)
        var i = 1
        if read {
            ready.source = fds[i].revents != 0
            i += 1
        }
        if write { ready.sink = fds[i].revents != 0 }
        return ready
    }
}

/// Lets bytes through at `rate` on average, in bursts of at most 20 ms of traffic (between 1
/// byte and 4 KiB), so a capped stream flows smoothly rather than in large lumps.
private struct TokenBucket {
    let rate: Double
    let burst: Double
    var tokens: Double
    var last: ContinuousClock.Instant

    init(bytesPerSecond: Int, now: ContinuousClock.Instant) {
        rate = Double(max(1, bytesPerSecond))
        burst = max(1, min(4096, rate / 50))
        tokens = burst
        last = now
    }

    var available: Int { Int(tokens) }

    mutating func refill(now: ContinuousClock.Instant) {
        tokens = min(burst, tokens + rate * (now - last).inSeconds)
        last = now
    }

    /// How long until `bytes` (or a full burst, if more) may go.
    mutating func delay(for bytes: Int, now: ContinuousClock.Instant) -> Duration {
        refill(now: now)
        let need = min(Double(bytes), burst)
        return tokens >= need ? .zero : .seconds((need - tokens) / rate)
    }

    mutating func take(_ bytes: Int) { tokens -= Double(bytes) }
}

// MARK: - Sockets and threads

private func loopbackAddress(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port)).bigEndian
    address.sin_addr = in_addr(s_addr: UInt32(0x7F00_0001).bigEndian)
    return address
}

/// Non-blocking and close-on-exec (pipe2 and accept4 are not visible from Swift's Glibc).
private func setDescriptorFlags(_ fd: Int32) {
    _ = fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC)
    _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
}

private func makePipe(_ fds: inout [Int32]) -> Bool {
    guard pipe(&fds) == 0 else { return false }
    setDescriptorFlags(fds[0])
    setDescriptorFlags(fds[1])
    return true
}

private func setNoDelay(_ fd: Int32) {
    var on: Int32 = 1
    _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
}

/// Closes with SO_LINGER 0, so the peer gets a reset rather than an orderly EOF.
private func abortiveClose(_ fd: Int32) {
    var option = linger(l_onoff: 1, l_linger: 0)
    _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
    close(fd)
}

private final class ThreadBody {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}

/// A joinable thread (Foundation's cannot be joined), named so tests can see it is gone.
private func startThread(named name: String, _ body: @escaping @Sendable () -> Void) throws -> pthread_t {
    let box = Unmanaged.passRetained(
        ThreadBody {
            Thread.current.name = name  // pthread_setname_np is not visible from Swift's Glibc
            body()
        }
    ).toOpaque()
    var thread = pthread_t()
    let result = pthread_create(
        &thread, nil,
        { raw in
            Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, box)
    guard result == 0 else {
        Unmanaged<ThreadBody>.fromOpaque(box).release()
        throw FaultProxyError(call: "pthread_create", code: result)
    }
    return thread
}

extension Duration {
    fileprivate var inSeconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
#endif
