import FerryCore
import FerryStandardFile
import Foundation

/// A property of Ferry's handling of untrusted bytes that one input broke.
///
/// Traps inside Ferry are findings too, but those end the process by themselves; this is for
/// the cases where Ferry carried on and got the answer wrong (a changeset that no longer
/// decodes after re-encoding, a merge that is not idempotent).
public struct FuzzFinding: Error, CustomStringConvertible, Sendable {
    public let target: FuzzTarget
    public let message: String
    public var description: String { "fuzz target '\(target.rawValue)': \(message)" }
}

/// The parsers that face input from outside the process, each with the checks it must pass.
///
/// Kept in the root package, not in Fuzz/, so that the replay test runs exactly the same
/// checks on the committed fixtures without libFuzzer, and so that a change of a core API
/// breaks the ordinary build rather than only the fuzz build.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// Changeset bytes as a push or pull body carries them: decode, re-encode, validate, merge.
    case changeset
    /// The JSON bodies of enrol, pull, the acknowledgements, the standard and errors.
    case wireJSON = "wire-json"
    /// A standard file, as the hub publishes it and nodes upgrade to it.
    case standard

    public func run(_ input: [UInt8]) throws(FuzzFinding) {
        switch self {
        case .changeset: try ChangesetTarget.run(input)
        case .wireJSON: try WireJSONTarget.run(input)
        case .standard: try StandardTarget.run(input)
        }
    }

    /// The libFuzzer entry point's body: a finding must end the process so libFuzzer saves
    /// the input. Inputs that reproduce an open known finding are stepped over unless
    /// FERRY_FUZZ_KNOWN=run is set (to watch one crash again under the fuzz build).
    public func runOrTrap(_ data: UnsafePointer<UInt8>?, _ size: Int) {
        let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
        if Self.screensKnownFindings, openFindings.contains(where: { $0.reproduces(input) }) { return }
        runOrTrap(input)
    }

    /// Runs `input` through the checks and ends the process on a finding, screening nothing.
    public func runOrTrap(_ input: [UInt8]) {
        do { try run(input) } catch { fatalError(error.description) }
    }

    /// The open known findings of this target.
    public var openFindings: [KnownFinding] { KnownFinding.open.filter { $0.target == self } }

    static let screensKnownFindings = ProcessInfo.processInfo.environment["FERRY_FUZZ_KNOWN"] != "run"

    func finding(_ message: String) -> FuzzFinding { FuzzFinding(target: self, message: message) }
}

/// The standards inputs are checked against: the built-in one every deployment starts
/// from, and the tests' small one that the vectors in protocol/vectors were written for.
enum FuzzStandards {
    static let all: [Standard] = {
        var standards: [Standard] = []
        do { standards.append(try StandardFile.builtIn()) } catch {
            fatalError("the built-in standard does not load, so nothing can be fuzzed against it: \(error)")
        }
        if let s = try? StandardFile.load(path: repositoryPath("Tests/Fixtures/test-standard.toml")) {
            standards.append(s)
        }
        return standards
    }()

    static var builtIn: Standard { all[0] }

    /// Found from this file's place in the checkout, as the test support does, so the fuzz
    /// binaries need no working directory or environment to find the fixtures.
    static func repositoryPath(_ relative: String) -> String {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.appendingPathComponent(relative).path
    }
}
