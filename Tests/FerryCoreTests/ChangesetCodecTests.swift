import FerryCore
import FerryTestSupport
import FerryTestTraits
import Foundation
import Testing

@Suite("Changeset codec", .offThePool)
struct ChangesetCodecTests {
    @Test("every vector decodes to its changeset and re-encodes to the same bytes")
    func vectorsRoundTripByteForByte() throws {
        if ProcessInfo.processInfo.environment["FERRY_WRITE_VECTORS"] != nil { try VectorWriter.writeAll() }
        let vectors = try ChangesetVector.loadAll()
        #expect(vectors.count >= 12)
        #expect(vectors.contains { $0.format == 1 }, "a release-1 vector must keep proving that format still decodes")
        for v in vectors {
            if let code = v.error {
                #expect(throws: CoreError.self, "\(v.name)") { try ChangesetCodec.decode(v.bytes) }
                do {
                    _ = try ChangesetCodec.decode(v.bytes)
                } catch {
                    #expect(error.code.rawValue == code, "\(v.name): \(error)")
                }
            } else {
                let expected = try #require(v.changeset).changeset
                let decoded = try ChangesetCodec.decode(v.bytes)
                #expect(decoded == expected, "\(v.name)")
                // Older formats still decode; only the current one is written.
                if v.format == nil { #expect(Hex.encode(ChangesetCodec.encode(expected)) == v.hex, "\(v.name)") }
            }
        }
    }

    @Test("random changesets survive encode and decode unchanged")
    func randomChangesetsRoundTrip() throws {
        var rng = SeededRandom(seed: 7)
        for _ in 0..<500 {
            let cs = RandomChangeset.make(&rng)
            #expect(try ChangesetCodec.decode(ChangesetCodec.encode(cs)) == cs)
        }
    }

    @Test("every truncation is refused with a typed error, never a crash")
    func truncationsAreRefused() {
        let bytes = ChangesetCodec.encode(Samples.changeset)
        for n in 0..<bytes.count {
            #expect(throws: CoreError.self) { try ChangesetCodec.decode(Array(bytes[0..<n])) }
        }
    }

    @Test("any single flipped byte is detected")
    func corruptionIsDetected() {
        let bytes = ChangesetCodec.encode(Samples.changeset)
        for i in bytes.indices {
            var b = bytes
            b[i] ^= 0x5A
            do {
                _ = try ChangesetCodec.decode(b)
                Issue.record("flipping byte \(i) went unnoticed")
            } catch {
                #expect(i < 5 ? [.unsupportedFormat].contains(error.code) : error.code == .corrupted, "byte \(i): \(error)")
            }
        }
    }

    @Test("oversized input is refused before it is parsed")
    func oversizedRefused() {
        let bytes = ChangesetCodec.encode(Samples.changeset)
        #expect {
            try ChangesetCodec.decode(bytes, maxBytes: bytes.count - 1)
        } throws: { ($0 as? CoreError)?.code == .oversized }
    }

    @Test("random garbage with a valid checksum is refused with a typed error")
    func garbageWithValidChecksumRefused() {
        var rng = SeededRandom(seed: 11)
        for _ in 0..<2000 {
            var body = ChangesetCodec.magic + [ChangesetCodec.formatVersion]
            body += (0..<Int.random(in: 0...80, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            var w = ByteWriter()
            w.append(body)
            w.fixed32(CRC32C.checksum(body))
            do {
                let cs = try ChangesetCodec.decode(w.bytes)
                // Whatever decodes survives a further round trip unchanged.
                #expect(try ChangesetCodec.decode(ChangesetCodec.encode(cs)) == cs)
            } catch {
                #expect(error.code != .corrupted)
            }
        }
    }

    @Test("CRC-32C matches the published check value")
    func crcCheckValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
    }
}

enum RandomChangeset {
    static func value(_ rng: inout SeededRandom) -> Value {
        switch Int.random(in: 0..<5, using: &rng) {
        case 0: return .null
        case 1: return .integer(Int64.random(in: .min ... .max, using: &rng))
        case 2: return .real(Double.random(in: -1e9...1e9, using: &rng))
        case 3: return .text(String((0..<Int.random(in: 0...12, using: &rng)).map { _ in "a党员z7".randomElement(using: &rng)! }))
        default: return .blob((0..<Int.random(in: 0...9, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) })
        }
    }

    static func make(_ rng: inout SeededRandom) -> Changeset {
        let nodes = ["a", "b", "hub", "n-9"].map { NodeID(unchecked: $0) }
        func version() -> CellVersion {
            let o = nodes.randomElement(using: &rng)!
            let others = nodes.filter { $0 != o && rng.chance(0.3) }
            return CellVersion(
                generation: UInt32.random(in: 1...500, using: &rng), supervisorGeneration: UInt32.random(in: 0...3, using: &rng),
                clock: HLCTimestamp(rawValue: UInt64.random(in: 1 << 40...1 << 62, using: &rng)), origin: o,
                authority: o.rawValue == "hub" ? .supervisor : .unit,
                seen: others.sorted().map { VersionID(clock: HLCTimestamp(rawValue: UInt64.random(in: 0...HLCTimestamp.maxAccepted.rawValue, using: &rng)), origin: $0) })
        }
        var tables: [TableChanges] = []
        for ti in 0..<Int.random(in: 0...3, using: &rng) {
            var rows: [RowChange] = []
            for _ in 0..<Int.random(in: 0...4, using: &rng) {
                let deleted = rng.chance(0.2)
                let cols = ["c0", "c1", "c2", "c3", "c4"].shuffled(using: &rng).prefix(Int.random(in: deleted ? 0...3 : 1...5, using: &rng))
                let shared = version()
                rows.append(
                    RowChange(
                        key: (0..<Int.random(in: 1...4, using: &rng)).map { _ in value(&rng) },
                        scope: rng.chance(0.5) ? "u-\(Int.random(in: 0...9, using: &rng))" : nil,
                        causalLength: UInt32.random(in: 0...20, using: &rng) * 2 + (deleted ? 2 : 1),
                        cells: cols.map { CellChange(column: $0, value: deleted ? nil : value(&rng), version: rng.chance(0.6) ? shared : version()) },
                        flags: RowFlags(rawValue: UInt8.random(in: 0...7, using: &rng)).subtracting(deleted ? [.leave] : [.leave])))
            }
            tables.append(TableChanges(name: "t\(ti)", rows: rows))
        }
        return Changeset(
            origin: nodes.randomElement(using: &rng)!,
            standardVersion: StandardVersion(UInt32.random(in: 0...9, using: &rng), UInt32.random(in: 0...99, using: &rng), 0),
            batch: BatchPosition(sequence: UInt64.random(in: 1...1000, using: &rng), through: UInt64.random(in: 0...UInt64.max, using: &rng), isFinal: rng.chance(0.5)),
            tables: tables)
    }
}

/// Writes protocol/vectors anew (FERRY_WRITE_VECTORS=1 swift test --filter Codec): only when
/// the format changes on purpose, since the vectors pin its bytes.
enum VectorWriter {
    static func writeAll() throws {
        let sample = Samples.changeset
        let bytes = ChangesetCodec.encode(sample)
        var ok: [(String, String, Changeset)] = [
            ("basic", "Three tables: a live member row with a masked phone and one cell of its own version, a deleted row carrying a version without a value, a composite-key attendance row and an integer.", sample),
            (
                "empty", "A batch with no tables: what a final, empty acknowledgement round looks like.",
                Changeset(origin: Samples.hub, standardVersion: StandardVersion(2, 1, 0), batch: BatchPosition(sequence: 1, through: 0, isFinal: true), tables: [])
            ),
        ]
        var rng = SeededRandom(seed: 2026)
        ok.append(("random-values", "Every value kind, 64-bit extremes, versions that have seen other writers, and row flags.", RandomChangeset.make(&rng)))
        ok.append(("seen-and-flags", "A unit's batch: its unit written once as the default scope, a version that has seen two other writers, a row sent whole for repair, and a directive leaving the receiver's scope.", Samples.wholeAndLeave))
        for (name, description, cs) in ok {
            try ChangesetVector(name: name, description: description, hex: Hex.encode(ChangesetCodec.encode(cs)), changeset: JSONChangeset(cs), error: nil).write()
        }
        ok = []
        for (name, description, cs) in ok {
            try ChangesetVector(name: name, description: description, hex: Hex.encode(ChangesetCodec.encode(cs)), changeset: JSONChangeset(cs), error: nil).write()
        }
        var corrupted = bytes
        corrupted[20] ^= 0x01
        var version = bytes
        version[4] = 9
        var trailing = Array(bytes.dropLast(4)) + [0x00]
        trailing += withCRC(trailing)
        // Counters and clocks past what a receiver accepts, in otherwise valid bytes.
        func single(_ v: CellVersion, cl: UInt32 = 1) -> [UInt8] {
            ChangesetCodec.encode(
                Changeset(
                    origin: Samples.nodeA, standardVersion: StandardVersion(1, 0, 0), batch: BatchPosition(sequence: 1, through: 1, isFinal: true),
                    tables: [TableChanges(name: "member", rows: [RowChange(key: [.text("m1")], scope: "u-a", causalLength: cl, cells: [CellChange(column: "name", value: .text("x"), version: v)])])]))
        }
        let bad: [(String, String, [UInt8], CoreError.Code)] = [
            ("error-corrupted", "One bit flipped in the body: the checksum fails.", corrupted, .corrupted),
            ("error-truncated", "The basic vector cut to 3 bytes.", Array(bytes.prefix(3)), .truncated),
            ("error-unknown-version", "Format version 9.", version, .unsupportedFormat),
            ("error-trailing-bytes", "A valid body followed by one extra byte, with a valid checksum.", trailing, .malformed),
            ("error-empty", "An empty body.", [], .malformed),
            ("error-generation-limit", "A generation of 2^31 + 1: above what any replica decodes, so no counter it stores is ever near wrapping.", single(Samples.version(CellVersion.maxCounter + 1)), .malformed),
            ("error-causal-length-limit", "A causal length of 2^32 − 1, which the release-1 format allowed and a receiver's next delete would overflow.", single(Samples.version(), cl: UInt32.max), .malformed),
            ("error-clock-limit", "A clock past the year 6429 (physical time 2^47 ms).", single(Samples.version(1, HLCTimestamp(rawValue: HLCTimestamp.maxAccepted.rawValue + 1))), .malformed),
        ]
        for (name, description, b, code) in bad {
            try ChangesetVector(name: name, description: description, hex: Hex.encode(b), changeset: nil, error: code.rawValue).write()
        }
    }

    static func withCRC(_ body: [UInt8]) -> [UInt8] {
        var w = ByteWriter()
        w.fixed32(CRC32C.checksum(body))
        return w.bytes
    }
}
