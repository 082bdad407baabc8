import FerryTestSupport
import Testing

/// The trait of a suite whose tests block threads (child processes, polls that sleep,
/// libcurl, the sqlite3 shell): each of its tests runs on threads of its own
/// (`ThreadPerJobExecutor`), off the cooperative pool, so the whole suite can run in
/// parallel without starving the async tests. `BlockingSuitesTests` fails when a test file
/// that blocks has a suite without it.
public struct Blocking: SuiteTrait, TestTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        // The suite itself needs no thread: its tests each get their own scope.
        guard testCase != nil else { return try await function() }
        try await withTaskExecutorPreference(ThreadPerJobExecutor.shared) { try await function() }
    }
}

extension Trait where Self == Blocking {
    /// Its tests block threads: run them off the cooperative pool (see `Blocking`).
    public static var blocking: Self { Blocking() }
}
