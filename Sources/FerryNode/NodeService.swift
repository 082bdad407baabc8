import FerryCore
import FerryStore
import Foundation
import Logging
import ServiceLifecycle

/// The node daemon's loop: sync on a schedule, soon after local writes, and back off with
/// jitter after failures (never sooner than the hub's Retry-After).
public struct NodeService: Service {
    public let agent: NodeAgent
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
        var failures = 0
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let wait: Double
            do {
                _ = try await Self.inBackground { () throws(SyncFailure) in try agent.syncOnce() }
                failures = 0
                wait = intervalSeconds
            } catch let f as SyncFailure {
                failures += 1
                wait = f.isRetryable
                    ? retry.delay(attempt: failures, retryAfter: f.retryAfter, random: Double.random(in: 0..<1))
                    : max(intervalSeconds, retry.capSeconds)
                logger.info("next attempt", metadata: ["in_seconds": "\(Int(wait))", "failures": "\(failures)"])
            }
            try? await waitForWork(upTo: wait)
        }
    }

    /// Sleeps up to `seconds`, returning early once local writes have settled for the debounce.
    func waitForWork(upTo seconds: Double) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        var changedSince: Date? = nil
        while Date() < deadline && !Task.isShuttingDownGracefully {
            try await Task.sleep(for: .seconds(1))
            let captured = (try? agent.store.capturedWrites()) ?? 0
            if captured > 0 {
                if changedSince == nil { changedSince = Date() }
                if Date().timeIntervalSince(changedSince!) >= debounceSeconds { return }
            }
        }
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
