import FerryFuzzTargets
import FerryTestSupport
import FerryTestTraits
import Foundation
import Testing

/// One committed input under Tests/Fixtures/fuzz/<target>/: a crash the fuzzer found, or a
/// seed kept because it reaches a path worth replaying on every run.
struct FuzzFixture: Sendable, CustomTestStringConvertible {
    var target: FuzzTarget
    var name: String
    var path: String { Self.folder(target) + "/" + name }
    var testDescription: String { "\(target.rawValue)/\(name)" }
    var knownFinding: KnownFinding? { target.openFindings.first { $0.fixture == name } }

    static func folder(_ target: FuzzTarget) -> String { Repository.path("Tests/Fixtures/fuzz/\(target.rawValue)") }

    static func committed(for target: FuzzTarget) -> [FuzzFixture] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder(target))) ?? []
        return names.filter { !$0.hasPrefix(".") && $0 != "README.md" }.sorted().map { FuzzFixture(target: target, name: $0) }
    }

    static var everyCommitted: [FuzzFixture] { FuzzTarget.allCases.flatMap { committed(for: $0) } }
}

/// The fuzz targets' checks over every committed fuzz input, without libFuzzer, so the
/// inputs are checked on every test run and a fixed crash stays fixed.
@Suite("Fuzz fixtures", .offThePool)
struct FuzzFixtureTests {
    @Test("every fuzz target has committed inputs to replay")
    func everyTargetHasFixtures() {
        for target in FuzzTarget.allCases {
            #expect(!FuzzFixture.committed(for: target).isEmpty, "Tests/Fixtures/fuzz/\(target.rawValue)/ is empty or missing")
        }
    }

    @Test("every open known finding names a committed fixture")
    func knownFindingsHaveFixtures() {
        for finding in KnownFinding.open {
            #expect(
                FileManager.default.fileExists(atPath: FuzzFixture.folder(finding.target) + "/" + finding.fixture),
                "\(finding.target.rawValue)/\(finding.fixture)")
        }
    }

    // Each input runs in a child process: a trap inside Ferry would otherwise end the whole
    // test run instead of failing this one case.
    @Test("a fuzz input runs through its target's checks without a crash or a finding", arguments: FuzzFixture.everyCommitted)
    func replay(_ fixture: FuzzFixture) async throws {
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: fixture.path)))
        if let known = fixture.knownFinding {
            await withKnownIssue("open fuzz finding: \(known.summary)") { await Self.runsCleanly(fixture, bytes) }
        } else {
            await Self.runsCleanly(fixture, bytes)
        }
    }

    // The expectation reports the signal or exit code; the fuzz binary on the same file
    // (FERRY_FUZZ_KNOWN=run for an open finding) prints the message and the stack.
    static func runsCleanly(_ fixture: FuzzFixture, _ bytes: [UInt8]) async {
        let target: String = fixture.target.rawValue
        await #expect(processExitsWith: .success, "\(fixture.testDescription)") {
            [target = target as String, bytes = bytes as [UInt8]] in
            FuzzTarget(rawValue: target)!.runOrTrap(bytes)
        }
    }
}
