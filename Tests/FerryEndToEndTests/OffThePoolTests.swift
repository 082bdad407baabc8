import FerryTestSupport
import FerryTestTraits
import Foundation
import Synchronization
import Testing

/// The whole suite runs in parallel (scripts/test), which is safe only while no test blocks a
/// thread of the cooperative pool. A test that waits on a child process, sleeps in a poll or
/// calls libcurl must run off it, under `.blocking`. This keeps that true as tests are added.
@Suite("Tests that block run off the cooperative pool", .blocking)
struct BlockingSuitesTests {
    /// Calls that block the calling thread, as the test sources spell them.
    nonisolated(unsafe) static let blockingCalls = try! Regex(
        #"runCommand\(|\.waitFor\(|Thread\.sleep|usleep\(|ChildProcess\(|SQLiteShell\.|waitUntilExit|FaultProxy\(|RewritingProxy\(|HTTPClient\(|Province\(|NodeAgent\(|RawConnection"#)

    /// The suites (`@Suite` lines) of the files under Tests/ that must carry `.blocking`:
    /// every one in FerryEndToEndTests, and any in a file that makes a blocking call.
    static func suitesThatBlock() throws -> [(file: String, line: String)] {
        let root = Repository.path("Tests")
        let files = FileManager.default.enumerator(atPath: root)?.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") } ?? []
        var out: [(String, String)] = []
        for file in files.sorted() {
            let text = try String(contentsOfFile: "\(root)/\(file)", encoding: .utf8)
            guard file.hasPrefix("FerryEndToEndTests/") || text.contains(blockingCalls) else { continue }
            for line in text.split(separator: "\n") where line.hasPrefix("@Suite") { out.append((file, String(line))) }
        }
        return out
    }

    @Test("every suite whose tests block threads carries .blocking")
    func everyBlockingSuiteRunsOffThePool() throws {
        let suites = try Self.suitesThatBlock()
        #expect(suites.count >= 40, "the scan found the end-to-end suites")
        for s in suites {
            #expect(s.line.contains(".blocking"), "\(s.file): \(s.line) makes blocking calls; add .blocking to its @Suite")
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

    @Test("a .blocking test runs on threads of its own: more blocked tasks than cores leave the pool free")
    func blockingTestsLeaveThePoolFree() async throws {
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
