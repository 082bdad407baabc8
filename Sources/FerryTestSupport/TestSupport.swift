import FerryCore
import FerryStandardFile
import FerryStore
import Foundation
import Synchronization

/// A wall clock that moves only when told to.
public final class ManualClock: WallClock {
    private let millis: Mutex<UInt64>
    public init(_ start: UInt64 = 1_767_225_600_000) { millis = Mutex(start) }  // 2026-01-01
    public func nowMillis() -> UInt64 { millis.withLock { $0 } }
    public func advance(by ms: UInt64) { millis.withLock { $0 += ms } }
    public func set(_ ms: UInt64) { millis.withLock { $0 = ms } }
}

/// SplitMix64: a tiny, fast, seedable generator, so every random schedule can be replayed
/// from the seed a failing test prints.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    public mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &self) < p }
}

/// A directory under the system temporary directory, removed by `remove()`.
public struct TemporaryDirectory: Sendable {
    public let path: String
    /// A new directory under `base` (default: the system temporary directory).
    public init(_ prefix: String = "ferry-test", base: String? = nil) throws {
        let base = base ?? FileManager.default.temporaryDirectory.path
        path = "\(base)/\(prefix)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    public func file(_ name: String) -> String { "\(path)/\(name)" }
    public func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// The repository's root folder, found from this source file's location.
public enum Repository {
    public static var root: String {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }
    public static func path(_ relative: String) -> String { "\(root)/\(relative)" }

    /// The small standard the tests use (Tests/Fixtures/test-standard.toml).
    public static func testStandard() throws -> Standard {
        try StandardFile.load(path: path("Tests/Fixtures/test-standard.toml"))
    }
}

/// Runs the real `sqlite3` shell against a database file, as a clerk would.
public enum SQLiteShell {
    public struct Result: Sendable {
        public var status: Int32
        public var output: String
        public var error: String
    }

    public static var executable: String? {
        ["/usr/bin/sqlite3", "/usr/local/bin/sqlite3"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    @discardableResult
    public static func run(_ database: String, _ sql: String) throws -> Result {
        guard let exe = executable else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSLocalizedDescriptionKey: "sqlite3 shell not installed; run scripts/setup"])
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = ["-bail", database]
        let input = Pipe()
        let out = Pipe()
        let err = Pipe()
        p.standardInput = input
        p.standardOutput = out
        p.standardError = err
        try p.run()
        input.fileHandleForWriting.write(Data((".timeout 10000\n" + sql + "\n").utf8))
        try input.fileHandleForWriting.close()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(
            status: p.terminationStatus, output: String(decoding: o, as: UTF8.self),
            error: String(decoding: e, as: UTF8.self))
    }
}

/// A replica's own clock: a shared world clock plus a fixed skew.
public struct OffsetClock: WallClock {
    public let world: ManualClock
    public let offsetMillis: Int64
    public init(world: ManualClock, offsetMillis: Int64) {
        self.world = world
        self.offsetMillis = offsetMillis
    }
    public func nowMillis() -> UInt64 { UInt64(max(0, Int64(world.nowMillis()) + offsetMillis)) }
}
