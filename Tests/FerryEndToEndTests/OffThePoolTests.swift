import FerryTestSupport
import FerryTestTraits
import Foundation
import Synchronization
import Testing

/// The whole suite runs in parallel (scripts/test), which is safe only while no test holds
/// a thread of the cooperative pool: the code under test (a hub's handlers, a watchdog's
/// pings) needs it. Every suite carries `.offThePool`; this keeps that true as tests are added.
@Suite("Every test runs off the cooperative pool", .offThePool)
struct OffThePoolTests {
    /// Every `@Suite` line under Tests/, with its file.
    static func suites() throws -> [(file: String, line: String)] {
        let root = Repository.path("Tests")
        let files = FileManager.default.enumerator(atPath: root)?.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") } ?? []
        var out: [(String, String)] = []
        for file in files.sorted() {
            let text = try String(contentsOfFile: "\(root)/\(file)", encoding: .utf8)
            for line in text.split(separator: "\n") where line.hasPrefix("@Suite") { out.append((file, String(line))) }
        }
        return out
    }

    @Test("every suite carries .offThePool")
    func everySuiteRunsOffThePool() throws {
        let suites = try Self.suites()
        #expect(suites.count >= 60, "the scan found the suites (\(suites.count))")
        for s in suites {
            #expect(s.line.contains(".offThePool"), "\(s.file): \(s.line) lacks .offThePool; add it to the @Suite")
        }
    }

    final class Flag: Sendable {
        private let value = Mutex(false)
        func set() { value.withLock { $0 = true } }
        var isSet: Bool { value.withLock { $0 } }
    }

    /// Sleeps in 10 ms steps until `flag` is set or 10 s pass; true if it was set.
    static func blockUntil(_ flag: Flag) -> Bool {
        let deadline = Date().addingTimeInterval(10)
        while !flag.isSet && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        return flag.isSet
    }

    @Test("a test off the pool runs on threads of its own: more blocked tasks than cores leave the pool free")
    func blockedTestsLeaveThePoolFree() async throws {
        // Four children (the preference is inherited) block at once, more than the pool has
        // threads on this machine, until a task on the cooperative pool (detached: no
        // preference) sets the flag. On the pool the children would hold every thread and
        // the probe could not run before the deadline.
        let go = Flag()
        let released = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<max(4, ProcessInfo.processInfo.activeProcessorCount + 2) {
                group.addTask { Self.blockUntil(go) }
            }
            try? await Task.sleep(for: .milliseconds(200))
            await Task.detached { go.set() }.value
            return await group.reduce(true) { $0 && $1 }
        }
        #expect(released, "every blocked child saw the pool's probe")
    }
}
