import FerryCore
import FerryHub
@testable import FerryNode
import FerryStore
import FerryTestSupport
import FerryTestTraits
import FerryWire
import Foundation
import Logging
import Synchronization
import Testing

/// Virtual time for the daemon's loop: sleeps return at once after moving the clock, so an
/// hour of the daemon runs in moments. The agent's wall clock moves along with it, and can be
/// set off by days on its own (a clerk fixing a clock).
final class VirtualLoopClock: LoopClock, @unchecked Sendable {
    private let seconds = Mutex(0.0)
    let wall: ManualClock
    /// Called after every move of the clock (the test stops the loop from here).
    var onMove: @Sendable (Double) -> Void = { _ in }

    init(wall: ManualClock) { self.wall = wall }

    var now: Double { seconds.withLock { $0 } }

    func advance(_ s: Double) {
        let t = seconds.withLock { v -> Double in
            v += s
            return v
        }
        wall.advance(by: UInt64(s * 1000))
        onMove(t)
    }

    func sleep(seconds s: Double) async throws {
        advance(s)
        await Task.yield()
    }
}

/// The in-process hub behind a link whose behaviour the test scripts by virtual time: down,
/// slow (each exchange takes link time), cut after an exchange got through, or stuck.
final class ScriptedLink: HubConnection, @unchecked Sendable {
    /// `cutEveryOther`: every second exchange reaches the hub, which takes its batch, but the
    /// answer never arrives.
    enum Behaviour { case up, down, slow(seconds: Double), cutEveryOther, stuck(seconds: Double) }
    let inner: InProcessHub
    let clock: VirtualLoopClock
    let script: @Sendable (Double) -> Behaviour
    private let log = Mutex<[(at: Double, ok: Bool)]>([])
    private let count = Mutex(0)

    init(_ inner: InProcessHub, clock: VirtualLoopClock, script: @escaping @Sendable (Double) -> Behaviour) {
        self.inner = inner
        self.clock = clock
        self.script = script
    }

    /// When each exchange was attempted, and whether it got an answer.
    var attempts: [(at: Double, ok: Bool)] { log.withLock { $0 } }

    var clockOffsetMillis: Int64 { 0 }
    var hubStandardVersion: String? { inner.hubStandardVersion }
    func fetchStandard() throws(SyncFailure) -> SignedStandard { try inner.fetchStandard() }
    func reconcile(_ request: ReconcileRequest) throws(SyncFailure) -> ReconcileResponse { try inner.reconcile(request) }

    func exchange(_ body: [UInt8]) throws(SyncFailure) -> [UInt8] {
        let at = clock.now
        let cut = SyncFailure(kind: .transport, message: "the connection was cut", messageZh: "连接中断", isRetryable: true)
        switch script(at) {
        case .up: break
        case .down:
            log.withLock { $0.append((at, false)) }
            throw cut
        case .slow(let s): clock.advance(s)
        case .cutEveryOther:
            let n = count.withLock { c -> Int in
                c += 1
                return c
            }
            if n % 2 == 1 { break }
            _ = try inner.exchange(body)
            clock.advance(2)
            log.withLock { $0.append((at, false)) }
            throw cut
        case .stuck(let s):
            clock.advance(s)
            log.withLock { $0.append((at, false)) }
            throw SyncFailure(kind: .transport, message: "the transfer stalled", messageZh: "传输停滞", isRetryable: true)
        }
        let answer = try inner.exchange(body)
        log.withLock { $0.append((at, true)) }
        return answer
    }
}

/// Issue #14: the daemon's loop — schedule, debounce, backoff, progress resets, watchdog beats,
/// wall-clock jumps — on virtual time, against the real hub logic in-process, without sleeping.
@Suite("The daemon's loop on virtual time", .serialized, .offThePool)
struct DaemonLoopTests {
    struct Run {
        let hub: Hub
        let store: ReplicaStore
        let link: ScriptedLink
        let clock: VirtualLoopClock
        let beats: [Double]
    }

    /// Runs the daemon's loop until virtual second `until`; `during` runs at each move of the clock.
    func runDaemon(
        until end: Double, script: @escaping @Sendable (Double) -> ScriptedLink.Behaviour,
        during: @escaping @Sendable (Double, ReplicaStore, ManualClock) -> Void = { _, _, _ in }
    ) async throws -> Run {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let wall = ManualClock()
        let hub = try InProcessHubTests().makeHub(dir, clock: wall)
        let (identity, store, node) = try InProcessHubTests.enrolledNode(hub, dir, clock: wall)
        let clock = VirtualLoopClock(wall: wall)
        let link = ScriptedLink(InProcessHub(hub: hub, node: node), clock: clock, script: script)
        let agent = NodeAgent(store: store, hub: link, identity: identity, clock: wall, batchBytes: 8 * 1024)
        let stopping = NodeService.StopFlag()
        let beats = Mutex<[Double]>([])
        clock.onMove = { t in
            during(t, store, wall)
            if t >= end { stopping.set() }
        }
        var logger = Logger(label: "ferry.test.daemon")
        logger.logLevel = .critical
        var service = NodeService(agent: agent, intervalSeconds: 300, debounceSeconds: 5, retry: RetryPolicy(baseSeconds: 5, capSeconds: 600), logger: logger)
        service.clock = clock
        service.random = { 0.5 }
        service.heartbeat = { beats.withLock { $0.append(clock.now) } }
        try await service.loop(stopping)
        return Run(hub: hub, store: store, link: link, clock: clock, beats: beats.withLock { $0 })
    }

    /// Starts of syncs: an exchange that follows a gap of at least a second.
    func syncStarts(_ attempts: [(at: Double, ok: Bool)]) -> [Double] {
        var starts: [Double] = []
        var last = -10.0
        for a in attempts {
            if a.at - last >= 1 { starts.append(a.at) }
            last = a.at
        }
        return starts
    }

    @Test("an idle node syncs every interval; writes are synced once they settle for the debounce; wall-clock jumps of days either way change nothing")
    func scheduleAndDebounce() async throws {
        let run = try await runDaemon(
            until: 3600, script: { _ in .up },
            during: { t, store, wall in
                // A clerk's write at 1000 s and a burst at 2000–2003 s.
                if t == 1000 || (2000...2003).contains(t) {
                    try? store.execute("INSERT INTO member (id, unit_id, name) VALUES ('m\(Int(t))', 'u-a', '写\(Int(t))')")
                }
                // The wall clock is set three days ahead, then three days back.
                if t == 1500 { wall.advance(by: 3 * 86_400_000) }
                if t == 2500 { wall.set(wall.nowMillis() - 6 * 86_400_000) }
            })
        let starts = syncStarts(run.link.attempts)
        // First contact and the scrubbed second sync at 0, then the schedule, with the writes'
        // syncs 5 s after they settled.
        #expect(starts.contains { $0 >= 1005 && $0 <= 1007 }, "the write at 1000 s is synced once settled: \(starts)")
        #expect(starts.contains { $0 >= 2008 && $0 <= 2010 }, "the burst is synced 5 s after its last write: \(starts)")
        #expect(!starts.contains { $0 > 2000 && $0 < 2008 }, "no sync in the middle of the burst: \(starts)")
        let gaps = zip(starts.dropFirst(), starts).map { $0 - $1 }
        #expect(gaps.allSatisfy { $0 <= 301 }, "never longer than the interval between syncs, wall clock jumps included: \(gaps)")
        #expect(starts.count >= 12 && starts.count <= 16, "an hour idle is about 12 scheduled syncs plus the writes': \(starts.count)")
        #expect(try run.store.pendingRows(for: Peer(id: run.hub.nodeID, direction: .upstream)) == 0)
        #expect(try run.hub.store.syncedContents(of: "member") == run.store.syncedContents(of: "member"))
        let beatGaps = zip(run.beats.dropFirst(), run.beats).map { $0 - $1 }
        #expect(beatGaps.max() ?? 0 <= 1.5, "the waiting loop beats every second")
    }

    @Test("a link that is down backs off growing up to the cap, and writes do not shorten the wait; when it returns the node catches up at once")
    func backoffWhileDown() async throws {
        let run = try await runDaemon(
            until: 5000, script: { t in (100..<3000).contains(t) ? .down : .up },
            during: { t, store, _ in
                if t.truncatingRemainder(dividingBy: 50) == 0 && t > 100 && t < 3000 {
                    try? store.execute("INSERT INTO member (id, unit_id, name) VALUES ('m\(Int(t))', 'u-a', '离线\(Int(t))')")
                }
            })
        let failed = run.link.attempts.filter { !$0.ok }.map(\.at)
        let waits = zip(failed.dropFirst(), failed).map { $0 - $1 }
        // Policy 5 s doubling to 600 s, jitter 0.5: 2.5, 5, 10, … capped at 300 (half of 600).
        #expect(waits.count >= 6, "\(waits)")
        #expect(zip(waits.dropFirst(), waits).allSatisfy { $0.0 >= $0.1 - 1 }, "waits only grow while nothing gets through: \(waits)")
        #expect(waits.max()! >= 250 && waits.max()! <= 301, "up to the cap (with jitter 0.5): \(waits)")
        #expect(failed.count <= 20, "writes every 50 s did not bring attempts forward: \(failed.count) attempts in 2900 s")
        let back = try #require(run.link.attempts.first { $0.ok && $0.at >= 3000 })
        #expect(back.at <= 3000 + 301)
        #expect(try run.store.pendingRows(for: Peer(id: run.hub.nodeID, direction: .upstream)) == 0, "everything written offline got through")
    }

    @Test("on a link that loses every second answer (after the hub took the batch) the next attempt comes within 1–3 s, never after a growing backoff")
    func progressResetsTheBackoff() async throws {
        let run = try await runDaemon(
            until: 1200, script: { t in (200..<900).contains(t) ? .cutEveryOther : .up },
            during: { t, store, _ in
                if t == 205 {
                    try? store.executeAll((0..<400).map { ("INSERT INTO member (id, unit_id, name, note) VALUES (?, 'u-a', ?, ?)", [.text("b\($0)"), .text("名\($0)"), .text(String(repeating: "记", count: 60))]) })
                }
            })
        let cut = run.link.attempts.filter { !$0.ok && $0.at >= 200 && $0.at < 900 }.map(\.at)
        let waits = zip(cut.dropFirst(), cut).map { $0 - $1 }
        #expect(cut.count >= 10, "\(cut)")
        // Each attempt got one batch acknowledged, lost the next answer (2 s of link time), then
        // waited 2 s (jitter 0.5 of 1–3 s).
        let catchingUp = waits.prefix { $0 < 100 }
        #expect(catchingUp.count >= 10 && catchingUp.allSatisfy { $0 <= 6 }, "retries follow progress at once: \(waits)")
        // Once caught up, the cut idle syncs are the schedule's (300 s), never a grown backoff.
        #expect(waits.dropFirst(catchingUp.count).allSatisfy { $0 >= 290 && $0 <= 310 }, "\(waits)")
        #expect(try run.store.pendingRows(for: Peer(id: run.hub.nodeID, direction: .upstream)) == 0)
        #expect(try run.hub.store.syncedContents(of: "member") == run.store.syncedContents(of: "member"))
    }

    @Test("a sync that progresses for 20 minutes beats the watchdog for every batch; one stuck for 20 minutes does not beat at all")
    func watchdogBeatsOnProgress() async throws {
        // 60 s of link time per exchange, batches of 8 KiB: a long, progressing sync.
        let slow = try await runDaemon(
            until: 2400, script: { t in t >= 100 ? .slow(seconds: 60) : .up },
            during: { t, store, _ in
                if t == 150 {
                    try? store.executeAll((0..<900).map { ("INSERT INTO member (id, unit_id, name, note) VALUES (?, 'u-a', ?, ?)", [.text("s\($0)"), .text("名\($0)"), .text(String(repeating: "记", count: 60))]) })
                }
            })
        let syncing = slow.link.attempts.filter { $0.ok && $0.at >= 100 }
        #expect(syncing.count >= 20, "the sync ran for at least 20 exchanges of 60 s: \(syncing.count)")
        let gaps = zip(slow.beats.dropFirst(), slow.beats).map { $0 - $1 }
        #expect(gaps.max()! <= 61, "a beat for every batch; the watchdog's 420 s limit is never reached: \(gaps.max()!)")
        #expect(Heartbeatless.longestSilence(slow.beats) < 420)

        // A transfer stuck for 20 minutes: no beat in all that time, so systemd restarts it.
        let stuck = try await runDaemon(until: 1700, script: { t in (300..<400).contains(t) ? .stuck(seconds: 1200) : .up })
        #expect(Heartbeatless.longestSilence(stuck.beats) >= 1200, "a stuck sync must go silent for the watchdog")
    }
}

enum Heartbeatless {
    static func longestSilence(_ beats: [Double]) -> Double { zip(beats.dropFirst(), beats).map { $0 - $1 }.max() ?? 0 }
}
