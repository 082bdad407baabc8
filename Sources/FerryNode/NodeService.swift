import FerryCore
import FerryStore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The node daemon's loop: sync on a schedule, soon after local writes, and back off with
/// jitter after failures (never sooner than the hub's Retry-After).
public struct NodeService: Service {
    public let agent: NodeAgent
    /// Called after each successful sync: returns a new agent when the node moved to a newer
    /// standard (its database migrated), nil otherwise.
    public var upgrade: @Sendable (NodeAgent) throws -> NodeAgent? = { _ in nil }
    /// Called whenever the loop makes progress (the watchdog pings only while it does).
    public var heartbeat: @Sendable () -> Void = {}
    /// Seconds between scheduled syncs when nothing changes (default 300).
    public var intervalSeconds: Double
    /// Seconds to wait after the last local write before syncing it (default 5).
    public var debounceSeconds: Double
    public var retry: RetryPolicy
    let logger: Logger

    public init(agent: NodeAgent, intervalSeconds: Double = 300, debounceSeconds: Double = 5, retry: RetryPolicy = RetryPolicy(), logger: Logger = Logger(label: "ferry.node")) {
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
        var retries = SyncRetry(policy: retry)
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
            var wait: Double
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
                retries.succeeded()
                wait = intervalSeconds
                if report.rollbackDetected || !started {
                    // Scrub, then compare again at once.
                    scrub = true
                    wait = 0
                }
                started = true
                do {
                    if let upgraded = try upgrade(current) {
                        agent = upgraded
                        logger.info("standard upgraded", metadata: ["version": "\(upgraded.store.standard.version)"])
                        wait = 0
                    }
                } catch {
                    logger.error("standard upgrade failed", metadata: ["error": "\(error)"])
                }
            } catch let f as SyncFailure {
                // Moved data before the link dropped: go on at once. Nothing moved: back off.
                // Needs a person: try again only at the schedule's pace.
                wait = retries.next(after: f, random: Double.random(in: 0..<1)) ?? max(intervalSeconds, retry.capSeconds)
                logger.info(
                    "next attempt",
                    metadata: ["in_seconds": "\(Int(wait))", "failures_without_progress": "\(retries.failuresWithoutProgress)", "progressed": "\(f.progressed)"])
            }
            if wait > 0 && !stopping.isSet { try? await waitForWork(upTo: wait, agent: agent, stopping: stopping) }
        }
    }

    /// Sleeps up to `seconds`, returning early once local writes have settled for the debounce.
    /// Measured on the monotonic clock: a wall clock set back (or forward) by days neither
    /// stalls nor skips the schedule.
    func waitForWork(upTo seconds: Double, agent: NodeAgent, stopping: StopFlag) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: .milliseconds(Int64(seconds * 1000)))
        var changedSince: ContinuousClock.Instant? = nil
        while clock.now < deadline && !stopping.isSet {
            try await Task.sleep(for: .seconds(1))
            heartbeat()
            let captured = (try? agent.store.capturedWrites()) ?? 0
            if captured > 0 {
                if changedSince == nil { changedSince = clock.now }
                if changedSince!.duration(to: clock.now) >= .milliseconds(Int64(debounceSeconds * 1000)) { return }
            }
        }
    }

    /// Set once a graceful shutdown begins; read from the sync thread between batches.
    final class StopFlag: Sendable {
        private let flag = Mutex(false)
        func set() { flag.withLock { $0 = true } }
        var isSet: Bool { flag.withLock { $0 } }
    }

    /// Runs blocking work (SQLite, libcurl) on a thread of its own, off the cooperative pool.
    static func inBackground<T: Sendable>(_ work: @escaping @Sendable () throws(SyncFailure) -> T) async throws -> T {
        try await withCheckedThrowingContinuation { c in
            Thread.detachNewThread {
                do { c.resume(returning: try work()) } catch { c.resume(throwing: error) }
            }
        }
    }
}
