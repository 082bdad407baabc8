import FerryTestSupport
import Testing

/// The trait every suite carries: each of its tests runs on threads of its own
/// (`ThreadPerJobExecutor`), never on the cooperative pool.
///
/// Tests block: they wait for child processes, sleep between polls, call libcurl and the
/// sqlite3 shell, or hold a thread for a minute of property checking. On the cooperative pool
/// (one thread per core, two here) two such tests side by side would leave no thread for the
/// code under test — a hub's handlers, a watchdog's pings — and the suite could only run one
/// test at a time. Off the pool, the pool belongs to the product's own tasks and the suite
/// runs in parallel. `OffThePoolTests` fails when a suite lacks the trait.
public struct OffThePool: SuiteTrait, TestTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        // The suite itself needs no thread: its tests each get their own scope.
        guard testCase != nil else { return try await function() }
        try await withTaskExecutorPreference(ThreadPerJobExecutor.shared) { try await function() }
    }
}

extension Trait where Self == OffThePool {
    /// Run the tests on threads of their own, off the cooperative pool (see `OffThePool`).
    public static var offThePool: Self { OffThePool() }
}
