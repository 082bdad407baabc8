import FerryCore
import FerryStore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The daemon's sense of time: monotonic seconds, and sleeping. A wall clock set back (or
/// forward) by days neither stalls nor skips the schedule, because the schedule never reads
/// it. Tests pass a virtual clock whose sleeps return at once.
public protocol LoopClock: Sendable {
    /// Seconds since some fixed start, never going back.
    var now: Double { get }
    func sleep(seconds: Double) async throws
}

/// `ContinuousClock`: monotonic, and it keeps counting while the machine sleeps.
public struct SystemLoopClock: LoopClock {
    let start = ContinuousClock.now
    public init() {}
    public var now: Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
    public func sleep(seconds: Double) async throws { try await Task.sleep(for: .milliseconds(Int64(seconds * 1000))) }
}

/// When the daemon syncs next: on the schedule after a sync, sooner once local writes have
/// settled for the debounce, and after a failure when `SyncRetry` says (at once after one that
/// moved data, a growing backoff after one that moved nothing, the schedule's pace for one that
/// needs a person). Writes do not cut a failure's wait short: a link that is down or a hub that
/// asked for Retry-After is not tried sooner because the clerk keeps typing.
public struct SyncSchedule: Sendable {
    public var intervalSeconds: Double
    public var debounceSeconds: Double
    public private(set) var retry: SyncRetry
    /// Monotonic seconds at which the next sync is due at the latest.
    public private(set) var dueAt: Double = 0
    /// Whether settled local writes may bring the next sync forward (not after a failure).
    public private(set) var writesBringForward = true
    private var writes: (count: Int, since: Double)?

    public init(
        intervalSeconds: Double = Double(FerryDefaults.Node.syncIntervalSeconds), debounceSeconds: Double = Double(FerryDefaults.Node.debounceSeconds),
        retry: RetryPolicy = RetryPolicy()
    ) {
        self.intervalSeconds = intervalSeconds
        self.debounceSeconds = debounceSeconds
        self.retry = SyncRetry(policy: retry)
    }

    /// A sync completed at `now`; `again`: the next one is due at once (after a restore was
    /// detected, the first sync of a daemon, a standard upgrade).
    public mutating func succeeded(at now: Double, again: Bool = false) {
        retry.succeeded()
        dueAt = now + (again ? 0 : intervalSeconds)
        writesBringForward = true
        writes = nil
    }

    /// A sync failed at `now`; returns the wait before the next attempt. `random` is uniform in 0..<1.
    @discardableResult
    public mutating func failed(_ failure: SyncFailure, at now: Double, random: Double) -> Double {
        let wait = retry.next(after: failure, random: random) ?? max(intervalSeconds, retry.policy.capSeconds)
        dueAt = now + wait
        writesBringForward = false
        writes = nil
        return wait
    }

    /// Whether to sync now, given the local writes captured and not yet synced.
    public mutating func isDue(at now: Double, capturedWrites: Int) -> Bool {
        if now >= dueAt { return true }
        guard writesBringForward, capturedWrites > 0 else {
            writes = nil
            return false
        }
        // Settled: the count has not changed for the debounce.
        if writes?.count != capturedWrites { writes = (capturedWrites, now) }
        return now - writes!.since >= debounceSeconds
    }
}

/// The node daemon's loop: sync on a schedule, soon after local writes, and back off with
/// jitter after failures (never sooner than the hub's Retry-After), by `SyncSchedule` on a
/// monotonic `LoopClock`.
public struct NodeService: Service {
    public let agent: NodeAgent
    /// Called after each successful sync: returns a new agent when the node moved to a newer
    /// standard (its database migrated), nil otherwise.
    public var upgrade: @Sendable (NodeAgent) throws -> NodeAgent? = { _ in nil }
    /// Called whenever the loop makes progress (the watchdog pings only while it does): every
    /// second while it waits, and for every batch a sync moves.
    public var heartbeat: @Sendable () -> Void = {}
    /// One line on what the loop last did and does next, after every sync (systemd's STATUS=,
    /// shown by `systemctl status ferry-node`).
    public var onStatus: @Sendable (String) -> Void = { _ in }
    /// Seconds between scheduled syncs when nothing changes (default 300).
    public var intervalSeconds: Double
    /// Seconds local writes must have settled before they are synced (default 5).
    public var debounceSeconds: Double
    public var retry: RetryPolicy
    public var clock: any LoopClock = SystemLoopClock()
    /// Uniform in 0..<1, for the retry jitter.
    public var random: @Sendable () -> Double = { Double.random(in: 0..<1) }
    let logger: Logger

    public init(
        agent: NodeAgent, intervalSeconds: Double = Double(FerryDefaults.Node.syncIntervalSeconds),
        debounceSeconds: Double = Double(FerryDefaults.Node.debounceSeconds), retry: RetryPolicy = RetryPolicy(), logger: Logger = Logger(label: "ferry.node")
    ) {
        self.agent = agent
        self.intervalSeconds = intervalSeconds
        self.debounceSeconds = debounceSeconds
        self.retry = retry
        self.logger = logger
    }

    public func run() async throws {
        let stopping = StopFlag()
        try await withGracefulShutdownHandler {
            try await loop(stopping)
        } onGracefulShutdown: {
            stopping.set()
        }
    }

    func loop(_ stopping: StopFlag) async throws {
        var schedule = SyncSchedule(intervalSeconds: intervalSeconds, debounceSeconds: debounceSeconds, retry: retry)
        var agent = self.agent
        // A daemon that starts recomputes every row's fingerprint: a change made while it was
        // down that bypassed capture shows in the next comparison with the hub. Not before
        // the first exchange: scrubbing stamps pending writes, and the hub's first answer may
        // say the database was put back from an older copy, after which they must be stamped
        // as a new incarnation, past the clock the hub last saw.
        var scrub = false
        var started = false
        while !Task.isCancelled && !stopping.isSet {
            heartbeat()
            do {
                let current = agent
                if scrub {
                    scrub = false
                    let store = current.store
                    let log = logger
                    _ = try? await Self.inBackground { () throws(SyncFailure) in
                        if let r = try? store.scrub(), r.changed + r.untracked + r.missing > 0 {
                            log.notice("scrub found changes made outside Ferry", metadata: ["changed": "\(r.changed)", "untracked": "\(r.untracked)", "missing": "\(r.missing)"])
                        }
                    }
                }
                // Every batch moved beats the watchdog: a long sync that progresses is never
                // taken for a hung one (a stuck request ends by the transfer's own limits).
                let beat = heartbeat
                let report = try await Self.inBackground { () throws(SyncFailure) in
                    try current.syncOnce(progress: { _ in beat() }, shouldStop: { stopping.isSet })
                }
                // Scrub, then compare again at once, after a restore and on the first sync.
                var again = false
                if report.rollbackDetected || !started {
                    scrub = true
                    again = true
                }
                started = true
                do {
                    // Downloads the new standard and migrates the database: blocking work, on
                    // its own thread like the sync itself.
                    let upgrade = self.upgrade
                    if let upgraded = try await Self.inBackground({ try upgrade(current) }) {
                        agent = upgraded
                        logger.info("standard upgraded", metadata: ["version": "\(upgraded.store.standard.version)"])
                        again = true
                    }
                } catch {
                    logger.error("standard upgrade failed", metadata: ["error": "\(error)"])
                }
                schedule.succeeded(at: clock.now, again: again)
                await Self.noteNextAttempt(nil, store: agent.store)
                onStatus(
                    "synced at \(Self.timeOfDay()): \(report.pushedRows) rows up, \(report.pulledRows) down"
                        + (again ? "; comparing again" : "; next sync within \(Int(intervalSeconds)) s"))
            } catch let f as SyncFailure {
                let wait = schedule.failed(f, at: clock.now, random: random())
                await Self.noteNextAttempt(wait, store: agent.store)
                onStatus("sync failed at \(Self.timeOfDay()) (\(f.message.prefix(120))); next attempt in \(Int(wait.rounded())) s")
                logger.info(
                    "next attempt",
                    metadata: [
                        "in_seconds": "\(Int(wait))", "failures_without_progress": "\(schedule.retry.failuresWithoutProgress)", "progressed": "\(f.progressed)",
                    ])
            }
            try? await waitUntilDue(&schedule, agent: agent, stopping: stopping)
        }
    }

    /// Keeps the time of the next attempt after a failure for `ferry status` ("retrying at
    /// 14:05"); wall-clock ms, since the clerk reads it against the wall clock.
    static func noteNextAttempt(_ wait: Double?, store: ReplicaStore) async {
        let at: Value = wait.map { .integer(Int64((Date().timeIntervalSince1970 + $0) * 1000)) } ?? .null
        // A SQLite write (it may wait behind a clerk's open transaction): off the pool, like
        // the sync; status bookkeeping never fails the loop.
        _ = try? await inBackground { try store.setState(["next_attempt_at": at]) }
    }

    static func timeOfDay() -> String { Date().formatted(.iso8601.time(includingFractionalSeconds: false)) }

    /// Sleeps a second at a time until the schedule says the next sync is due.
    func waitUntilDue(_ schedule: inout SyncSchedule, agent: NodeAgent, stopping: StopFlag) async throws {
        while !stopping.isSet && !Task.isCancelled {
            let store = agent.store
            let captured = (try? await Self.inBackground { try store.capturedWrites() }) ?? 0
            if schedule.isDue(at: clock.now, capturedWrites: captured) { return }
            try await clock.sleep(seconds: 1)
            heartbeat()
        }
    }

    /// Set once a graceful shutdown begins; read from the sync thread between batches.
    final class StopFlag: Sendable {
        private let flag = Mutex(false)
        func set() { flag.withLock { $0 = true } }
        var isSet: Bool { flag.withLock { $0 } }
    }

    /// Runs blocking work (SQLite, libcurl) on a thread of its own, off the cooperative pool.
    static func inBackground<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { c in
            Thread.detachNewThread {
                do { c.resume(returning: try work()) } catch { c.resume(throwing: error) }
            }
        }
    }
}
