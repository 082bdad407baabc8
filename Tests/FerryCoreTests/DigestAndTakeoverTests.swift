import FerryCore
import FerryTestTraits
import Testing

@Suite("Row digests and merge order (issue 13, finding 6 and anti-entropy)", .offThePool)
struct DigestAndTakeoverTests {
    @Test("SipHash-2-4 matches the reference vectors (key 00…0f, messages 00…, the paper's and the reference implementation's table)")
    func sipHashReferenceVectors() {
        // vectors.h of the reference implementation (github.com/veorq/SipHash), 64-bit
        // output, little-endian words: entries 0, 1, 7, 8, 15 and 63.
        let expected: [Int: UInt64] = [
            0: 0x726f_db47_dd0e_0e31, 1: 0x74f8_39c5_93dc_67fd, 7: 0xab02_00f5_8b01_d137, 8: 0x93f5_f579_9a93_2462,
            15: 0xa129_ca61_49be_45e5, 63: 0x958a_324c_eb06_4572,
        ]
        let k0: UInt64 = 0x0706_0504_0302_0100
        let k1: UInt64 = 0x0f0e_0d0c_0b0a_0908
        for (length, value) in expected {
            var h = SipHasher(k0: k0, k1: k1)
            h.add((0..<length).map { UInt8($0) })
            #expect(h.finish() == value, "message of \(length) bytes")
        }
        // Byte at a time and all at once agree.
        var a = SipHasher(k0: k0, k1: k1)
        for b in 0..<15 { a.add(UInt8(b)) }
        #expect(a.finish() == 0xa129_ca61_49be_45e5)
    }

    @Test("a row's fingerprint changes with any value, version, seen list, causal length, table or key")
    func fingerprintsSeeEveryDifference() {
        let v = CellVersion(generation: 1, clock: HLCTimestamp(physicalMillis: 10, counter: 0), origin: NodeID(unchecked: "a"))
        func fp(table: String = "m", key: Value = .text("k"), causalLength: UInt32 = 1, _ cells: [RowDigest.Cell]) -> UInt64 {
            RowDigest.fingerprint(table: table, key: [key], causalLength: causalLength, cells: cells)
        }
        let cells = [RowDigest.Cell(position: 0, version: v, value: .text("1")), RowDigest.Cell(position: 1, version: v, value: .integer(2))]
        let base = fp(cells)
        var later = v
        later.clock = HLCTimestamp(physicalMillis: 11, counter: 0)
        var seen = v
        seen.seen = [VersionID(clock: HLCTimestamp(physicalMillis: 5, counter: 0), origin: NodeID(unchecked: "b"))]
        var gen = v
        gen.generation = 2
        let variants: [(String, UInt64)] = [
            ("value", fp([cells[0], RowDigest.Cell(position: 1, version: v, value: .integer(3))])),
            ("type", fp([cells[0], RowDigest.Cell(position: 1, version: v, value: .text("2"))])),
            ("NULL vs absent", fp([cells[0], RowDigest.Cell(position: 1, version: v, value: nil)])),
            ("clock", fp([cells[0], RowDigest.Cell(position: 1, version: later, value: .integer(2))])),
            ("seen", fp([cells[0], RowDigest.Cell(position: 1, version: seen, value: .integer(2))])),
            ("generation", fp([cells[0], RowDigest.Cell(position: 1, version: gen, value: .integer(2))])),
            ("position", fp([cells[0], RowDigest.Cell(position: 2, version: v, value: .integer(2))])),
            ("a cell fewer", fp([cells[0]])),
            ("causal length", fp(causalLength: 3, cells)),
            ("table", fp(table: "n", cells)),
            ("key", fp(key: .text("k2"), cells)),
        ]
        for (what, f) in variants { #expect(f != base, "\(what) does not change the fingerprint") }
        #expect(fp(cells) == base)
    }

    @Test("lww: a writer that takes over a cell does not beat a later concurrent edit by the writer it took over from")
    func takeoverDoesNotBeatALaterConcurrentEdit() throws {
        let a = NodeID(unchecked: "u-a-n1"), b = NodeID(unchecked: "u-a-n2")
        let first = try CellVersion.successor(of: nil, writer: a, authority: .unit, clock: HLCTimestamp(physicalMillis: 100, counter: 0), policy: .lww)
        // b edits on top of a's version (a takeover: generation + 1) at 200 ms…
        let takeover = try CellVersion.successor(of: first, writer: b, authority: .unit, clock: HLCTimestamp(physicalMillis: 200, counter: 0), policy: .lww)
        // …while a, not having seen it, edits again at 300 ms.
        let later = try CellVersion.successor(of: first, writer: a, authority: .unit, clock: HLCTimestamp(physicalMillis: 300, counter: 0), policy: .lww)
        #expect(CellVersion.areConcurrent(takeover, later))
        #expect(ConflictPolicy.lww.prefers(later, over: takeover), "the earlier edit won: \(takeover) over \(later)")
        // Once b has seen a's later edit, b's next edit wins by causality whatever the clocks.
        let informed = try CellVersion.successor(of: later, writer: b, authority: .unit, clock: HLCTimestamp(physicalMillis: 50, counter: 0), policy: .lww)
        #expect(informed.knows(later) && informed.knows(first))
        #expect(ConflictPolicy.lww.prefers(informed, over: later))
    }

    @Test("a version knows the writers its history saw, so a replica that missed intermediate versions logs no conflict for the original")
    func seenListsMakeSkippedVersionsKnown() throws {
        let a = NodeID(unchecked: "u-a-n1"), hub = NodeID(unchecked: "hub")
        let original = try CellVersion.successor(of: nil, writer: a, authority: .unit, clock: HLCTimestamp(physicalMillis: 10, counter: 0), policy: .review)
        let corrected = try CellVersion.successor(of: original, writer: hub, authority: .supervisor, clock: HLCTimestamp(physicalMillis: 20, counter: 0), policy: .review)
        let again = try CellVersion.successor(of: corrected, writer: a, authority: .unit, clock: HLCTimestamp(physicalMillis: 30, counter: 0), policy: .review)
        let last = try CellVersion.successor(of: again, writer: hub, authority: .supervisor, clock: HLCTimestamp(physicalMillis: 40, counter: 0), policy: .review)
        // A replica that holds only `original` receives `last`: not concurrent, nothing held.
        #expect(last.knows(original) && !CellVersion.areConcurrent(last, original))
        let local = LocalRow(causalLength: 1, versions: ["v": original])
        let incoming = RowChange(key: [.text("k")], scope: nil, causalLength: 1, cells: [CellChange(column: "v", value: .text("final"), version: last)])
        let plan = RowMerge.plan(local: local, incoming: incoming, policy: .review)
        #expect(plan.lostLocal.isEmpty && plan.lostIncoming.isEmpty, "\(plan)")
    }

    @Test("successor never overflows: a counter at the decode bound still leaves room, one past the 32-bit limit throws")
    func checkedSuccessor() throws {
        let huge = CellVersion(generation: CellVersion.maxCounter, clock: HLCTimestamp(physicalMillis: 1, counter: 0), origin: NodeID(unchecked: "x"))
        let next = try CellVersion.successor(of: huge, writer: NodeID(unchecked: "hub"), authority: .supervisor, clock: HLCTimestamp(physicalMillis: 2, counter: 0), policy: .lww)
        #expect(next.generation == CellVersion.maxCounter + 1)
        let full = CellVersion(generation: UInt32.max, clock: HLCTimestamp(physicalMillis: 1, counter: 0), origin: NodeID(unchecked: "x"))
        #expect(throws: CoreError.self) {
            try CellVersion.successor(of: full, writer: NodeID(unchecked: "hub"), authority: .supervisor, clock: HLCTimestamp(physicalMillis: 2, counter: 0), policy: .lww)
        }
    }

    /// One side of a reconciliation as protocol/HTTP.md describes an answer: a range whose
    /// digest the asker sent and matches is answered with its digest alone; else with its
    /// rows when at most `RangeAnswer.leafLimit` (or when the other side answered with rows),
    /// else with its 16 sub-ranges' digests.
    static func answers(
        _ rows: [Reconciliation.RowKey: UInt64], _ ranges: [DigestRange], known: [DigestRange: DigestSum] = [:],
        leaves: Set<DigestRange> = [], children: Set<DigestRange> = []
    ) -> [RangeAnswer] {
        ranges.map { range in
            let inRange = rows.filter { $0.key.table == range.table && range.contains(RowDigest.keyHash(table: range.table, key: $0.key.key)) }
            var digest = DigestSum()
            for fp in inRange.values { digest.add(fp) }
            if known[range] == digest { return RangeAnswer(range: range, digest: digest) }
            if leaves.contains(range) || (!children.contains(range) && (inRange.count <= RangeAnswer.leafLimit || range.prefix.count >= 16)) {
                return RangeAnswer(range: range, digest: digest, leaves: Dictionary(uniqueKeysWithValues: inRange.map { ($0.key.key, $0.value) }))
            }
            var c: [String: DigestSum] = [:]
            for (k, fp) in inRange {
                let nibble = String(DigestRange.prefix(of: RowDigest.keyHash(table: range.table, key: k.key), nibbles: range.prefix.count + 1).suffix(1))
                c[nibble, default: DigestSum()].add(fp)
            }
            return RangeAnswer(range: range, digest: digest, children: c)
        }
    }

    @Test("reconciliation finds exactly the rows two replicas hold differently, for random replicas of up to 3,000 rows and up to 300 differences, in at most 17 rounds")
    func reconciliationFindsEveryDifference() {
        var rng = SplitMix(seed: 0x5eed_0013)
        let tables = ["member", "attendance", "meeting"]
        for trial in 0..<40 {
            var here: [Reconciliation.RowKey: UInt64] = [:]
            let size = Int(rng.next() % 3000)
            for i in 0..<size {
                here[Reconciliation.RowKey(table: tables[Int(rng.next() % 3)], key: [.text("k\(i)")])] = rng.next()
            }
            var there = here
            var different: Set<Reconciliation.RowKey> = [], onlyHere: Set<Reconciliation.RowKey> = [], onlyThere: Set<Reconciliation.RowKey> = []
            let changes = trial == 0 ? 0 : Int(rng.next() % 300)
            for c in 0..<changes {
                switch rng.next() % 3 {
                case 0:
                    guard let k = there.keys.randomElement(using: &rng), !onlyHere.contains(k), !onlyThere.contains(k) else { continue }
                    there[k] = rng.next()
                    different.insert(k)
                case 1:
                    guard let k = there.keys.randomElement(using: &rng), !different.contains(k), !onlyThere.contains(k) else { continue }
                    there[k] = nil
                    onlyHere.insert(k)
                default:
                    let k = Reconciliation.RowKey(table: tables[Int(rng.next() % 3)], key: [.text("new\(c)")])
                    there[k] = rng.next()
                    onlyThere.insert(k)
                }
            }
            var walk = Reconciliation(tables: tables)
            while !walk.pending.isEmpty && walk.rounds < 24 {
                // The asker sends its digests; the other side answers; the asker computes its
                // own side in the shape of the answer.
                let own = Dictionary(uniqueKeysWithValues: Self.answers(here, walk.pending).map { ($0.range, $0.digest) })
                let theirs = Self.answers(there, walk.pending, known: own)
                let leaves = Set(theirs.filter { $0.leaves != nil }.map(\.range))
                let children = Set(theirs.filter { $0.children != nil }.map(\.range))
                var mine = Dictionary(uniqueKeysWithValues: walk.pending.map { ($0, RangeAnswer(range: $0, digest: own[$0]!)) })
                for a in Self.answers(here, walk.pending.filter { leaves.contains($0) || children.contains($0) }, leaves: leaves, children: children) {
                    mine[a.range] = a
                }
                walk.receive(theirs: theirs, mine: mine)
            }
            #expect(walk.pending.isEmpty && walk.rounds <= 17, "trial \(trial): \(walk.rounds) rounds")
            #expect(Set(walk.result.different) == different, "trial \(trial)")
            #expect(Set(walk.result.onlyHere) == onlyHere, "trial \(trial)")
            #expect(Set(walk.result.onlyThere) == onlyThere, "trial \(trial)")
            if changes == 0 { #expect(walk.rounds == 1, "equal replicas take one round") }
        }
    }
}

/// SplitMix64: a small seeded generator, so a failing trial replays.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
