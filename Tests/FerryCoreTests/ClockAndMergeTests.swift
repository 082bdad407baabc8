import FerryCore
import FerryTestSupport
import FerryTestTraits
import Testing

@Suite("Hybrid logical clock", .offThePool)
struct HybridLogicalClockTests {
    @Test("readings never go backwards, even when the wall clock does")
    func monotonic() {
        var clock = HybridLogicalClock()
        var rng = SeededRandom(seed: 3)
        var last = HLCTimestamp.zero
        var wall: UInt64 = 1_767_225_600_000
        for _ in 0..<10_000 {
            wall = rng.chance(0.2) ? wall - UInt64.random(in: 0...5000, using: &rng) : wall + UInt64.random(in: 0...3, using: &rng)
            let t = clock.tick(now: wall)
            #expect(t > last)
            last = t
        }
    }

    @Test("a reading too far ahead is bounded, not adopted; a near one is adopted")
    func farFutureBounded() {
        var clock = HybridLogicalClock(maxForwardDriftMillis: 60_000)
        let now: UInt64 = 1_767_225_600_000
        let far = HLCTimestamp(physicalMillis: now + 3 * 86_400_000, counter: 0)
        #expect(clock.observe(far, now: now) == .bounded(aheadMillis: 3 * 86_400_000))
        #expect(clock.tick(now: now).physicalMillis == now)
        let near = HLCTimestamp(physicalMillis: now + 30_000, counter: 5)
        #expect(clock.observe(near, now: now) == .adopted)
        #expect(clock.tick(now: now) > near)
    }

    @Test("the counter overflowing borrows the next millisecond")
    func counterOverflow() {
        var clock = HybridLogicalClock(latest: HLCTimestamp(physicalMillis: 10, counter: .max))
        #expect(clock.tick(now: 10) == HLCTimestamp(physicalMillis: 11, counter: 0))
    }
}

@Suite("Merge rules", .offThePool)
struct MergeRuleTests {
    static let nodes = ["a", "b", "hub"].map { NodeID(unchecked: $0) }

    static func randomVersion(_ rng: inout SeededRandom) -> CellVersion {
        let o = nodes.randomElement(using: &rng)!
        return CellVersion(
            generation: UInt32.random(in: 1...3, using: &rng), supervisorGeneration: UInt32.random(in: 0...2, using: &rng),
            clock: HLCTimestamp(physicalMillis: UInt64.random(in: 1...4, using: &rng), counter: 0), origin: o,
            authority: o.rawValue == "hub" ? .supervisor : .unit)
    }

    @Test("every policy is a strict total order on distinct versions", arguments: ConflictPolicy.allCases)
    func policiesAreTotalOrders(policy: ConflictPolicy) {
        var rng = SeededRandom(seed: 5)
        for _ in 0..<3000 {
            let a = Self.randomVersion(&rng), b = Self.randomVersion(&rng), c = Self.randomVersion(&rng)
            // Two writes never share an id (a replica's clock readings are unique).
            guard a.id != b.id else { continue }
            #expect(policy.prefers(a, over: b) != policy.prefers(b, over: a))
            if policy.prefers(a, over: b) && policy.prefers(b, over: c) { #expect(policy.prefers(a, over: c)) }
        }
    }

    @Test("a write made on top of another always beats it, under every policy", arguments: ConflictPolicy.allCases)
    func successorsWin(policy: ConflictPolicy) throws {
        guard policy != .appendOnly else { return }  // append-only rows are never updated
        var rng = SeededRandom(seed: 9)
        for _ in 0..<2000 {
            let prev = Self.randomVersion(&rng)
            let writer = Self.nodes.randomElement(using: &rng)!
            let clock = HLCTimestamp(rawValue: prev.clock.rawValue + UInt64.random(in: 1...100, using: &rng))
            let next = try CellVersion.successor(
                of: prev, writer: writer, authority: writer.rawValue == "hub" ? .supervisor : .unit, clock: clock, policy: policy)
            #expect(policy.prefers(next, over: prev))
            #expect(next.knows(prev) && !CellVersion.areConcurrent(next, prev))
        }
    }

    @Test("supervisor-wins: a hub edit beats a concurrent unit edit with a later clock")
    func supervisorBeatsConcurrentUnit() throws {
        let base = CellVersion(generation: 1, clock: HLCTimestamp(physicalMillis: 1, counter: 0), origin: NodeID(unchecked: "a"))
        let hub = try CellVersion.successor(of: base, writer: NodeID(unchecked: "hub"), authority: .supervisor, clock: HLCTimestamp(physicalMillis: 2, counter: 0), policy: .supervisorWins)
        let unit = try CellVersion.successor(of: base, writer: NodeID(unchecked: "b"), authority: .unit, clock: HLCTimestamp(physicalMillis: 9, counter: 0), policy: .supervisorWins)
        #expect(ConflictPolicy.supervisorWins.prefers(hub, over: unit))
        #expect(ConflictPolicy.lww.prefers(unit, over: hub))
        #expect(CellVersion.areConcurrent(hub, unit))
    }

    @Test("a delete beats a concurrent edit, and the edit is reported lost")
    func deleteBeatsConcurrentEdit() throws {
        let a = NodeID(unchecked: "a")
        let v1 = CellVersion(generation: 1, clock: HLCTimestamp(physicalMillis: 1, counter: 0), origin: a)
        let edit = try CellVersion.successor(of: v1, writer: NodeID(unchecked: "b"), authority: .unit, clock: HLCTimestamp(physicalMillis: 5, counter: 0), policy: .lww)
        let local = LocalRow(causalLength: 1, versions: ["name": edit])
        let tomb = RowChange(key: [.text("k")], scope: nil, causalLength: 2, cells: [CellChange(column: "name", value: nil, version: v1)])
        let plan = RowMerge.plan(local: local, incoming: tomb, policy: .lww)
        #expect(plan.action == .delete)
        #expect(plan.lostLocal.map(\.kind) == [.deletedByPeer])
    }
}
