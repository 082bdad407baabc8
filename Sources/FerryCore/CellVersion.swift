/// Names one write of one cell: the clock reading and the replica that made it.
public struct VersionID: Hashable, Sendable, CustomStringConvertible {
    public var clock: HLCTimestamp
    public var origin: NodeID
    public init(clock: HLCTimestamp, origin: NodeID) {
        self.clock = clock
        self.origin = origin
    }
    public var description: String { "\(clock)@\(origin)" }
}

/// The version of one cell: everything the merge needs to order two writes of it.
///
/// - `clock` is the hybrid logical clock of the write, taken when the write was made
///   (corrected by the replica's known offset to its hub) and always later than the clock
///   of the version it overwrote: a causally later write therefore has a later clock,
///   whatever the replicas' clocks say, and `lww` can order by clock alone.
/// - `generation` counts the writes of the cell's history under `review` and `append-only`
///   (every write adds one) and the distinct writers under the other policies. `review`
///   orders by it first, so a write made on top of another always beats it.
/// - `supervisorGeneration` counts supervisor (hub) writes in the cell's history; every
///   supervisor write adds one. `supervisor-wins` orders by it first.
/// - `seen` names, for every other replica whose writes are in this version's history, the
///   latest of them: a compact version vector. It tells a sequential overwrite from a
///   concurrent one, so only concurrent losers go to the conflict log, even when a replica
///   missed the intermediate versions (coalesced batches ship only the latest).
///
/// Counters arriving from the wire are bounded by `CellVersion.maxCounter`, so the local
/// arithmetic on them (every successor adds at most one) can never overflow.
public struct CellVersion: Hashable, Sendable, CustomStringConvertible {
    public var generation: UInt32
    public var supervisorGeneration: UInt32
    public var clock: HLCTimestamp
    public var origin: NodeID
    public var authority: Authority
    /// Sorted by origin, at most one entry per origin, never `origin` itself.
    public var seen: [VersionID]

    /// The largest generation, supervisor generation or causal length a replica decodes:
    /// 2^31. Far above anything real, and far below `UInt32.max`: the versions a replica
    /// makes on top of accepted ones (each adds at most one) stay decodable by its peers.
    public static let maxCounter: UInt32 = 1 << 31
    /// The largest counter a hub accepts in a version a unit authored, and the largest
    /// causal length of a unit's row: 2^30 (a cell rewritten every second for 34 years). The
    /// 2^30 between this and `maxCounter` is the room every replica's later writes need, so
    /// a unit that plants a huge counter cannot make the hub's next correction undecodable.
    public static let maxAuthoredCounter: UInt32 = 1 << 30
    /// How many other writers a version remembers; beyond this the oldest are forgotten,
    /// which can only make the merge log a loser it could have skipped, never lose one.
    public static let maxSeen = 16

    public init(
        generation: UInt32, supervisorGeneration: UInt32 = 0, clock: HLCTimestamp, origin: NodeID,
        authority: Authority = .unit, seen: [VersionID] = []
    ) {
        self.generation = generation
        self.supervisorGeneration = supervisorGeneration
        self.clock = clock
        self.origin = origin
        self.authority = authority
        self.seen = seen
    }

    public var id: VersionID { VersionID(clock: clock, origin: origin) }

    /// The version of a local write by `writer` (with `authority`) at `clock`, on top of
    /// `previous` (the cell's current version, `nil` if the cell was never written), in a
    /// table with `policy`.
    ///
    /// The write's clock is raised above `previous`'s when the writer's own clock is behind
    /// it (a peer's clock ahead of ours, or a clock set back), so causality is kept per cell
    /// without dragging the replica's clock forward. Throws `CoreError.malformed` when a
    /// counter of `previous` leaves no room (only a forged version can do that: see
    /// `maxCounter`).
    public static func successor(
        of previous: CellVersion?, writer: NodeID, authority: Authority, clock: HLCTimestamp,
        policy: ConflictPolicy
    ) throws(CoreError) -> CellVersion {
        guard let p = previous else {
            return CellVersion(
                generation: 1, supervisorGeneration: authority == .supervisor ? 1 : 0, clock: clock,
                origin: writer, authority: authority, seen: [])
        }
        let own = p.origin == writer
        let everyWriteCounts = policy == .review || policy == .appendOnly
        let generation = own && !everyWriteCounts ? (partialValue: p.generation, overflow: false) : p.generation.addingReportingOverflow(1)
        let supervisor = authority == .supervisor ? p.supervisorGeneration.addingReportingOverflow(1) : (partialValue: p.supervisorGeneration, overflow: false)
        guard !generation.overflow, !supervisor.overflow, p.clock.rawValue < UInt64.max else {
            throw CoreError(.malformed, "the cell's version \(p) has no room for another write (a counter or clock at its limit)")
        }
        var seen = p.seen.filter { $0.origin != writer }
        if !own { seen = Self.merging(p.id, into: seen) }
        if seen.count > maxSeen {
            // Forget the writers seen longest ago.
            seen = Array(seen.sorted { $0.clock > $1.clock }.prefix(maxSeen)).sorted { $0.origin < $1.origin }
        }
        return CellVersion(
            generation: generation.partialValue, supervisorGeneration: supervisor.partialValue,
            clock: max(clock, HLCTimestamp(rawValue: p.clock.rawValue + 1)), origin: writer, authority: authority,
            seen: seen)
    }

    static func merging(_ id: VersionID, into list: [VersionID]) -> [VersionID] {
        var out = list
        if let i = out.firstIndex(where: { $0.origin == id.origin }) {
            if out[i].clock < id.clock { out[i] = id }
            return out
        }
        out.append(id)
        return out.sorted { $0.origin < $1.origin }
    }

    /// Whether `self` was written knowing `other`: it is `other`, a later write of the
    /// same replica, or its history holds `other`'s writer at or after `other`.
    public func knows(_ other: CellVersion) -> Bool {
        if id == other.id { return true }
        if origin == other.origin { return clock >= other.clock }
        return seen.contains { $0.origin == other.origin && $0.clock >= other.clock }
    }

    /// Neither version was written knowing the other.
    public static func areConcurrent(_ a: CellVersion, _ b: CellVersion) -> Bool {
        !a.knows(b) && !b.knows(a)
    }

    /// The first problem with a version arriving from a peer, or nil: counters within
    /// `maxCounter`, a clock within `HLCTimestamp.maxAccepted`, a well-formed `seen` list.
    public var wireProblem: String? {
        if generation < 1 { return "generation is 0; every written version has 1 or more" }
        if generation > Self.maxCounter || supervisorGeneration > Self.maxCounter {
            return "generation \(generation)/\(supervisorGeneration) is above the limit \(Self.maxCounter)"
        }
        if clock > HLCTimestamp.maxAccepted { return "clock \(clock) is beyond the year 6400" }
        if seen.count > Self.maxSeen { return "remembers \(seen.count) other writers, more than \(Self.maxSeen)" }
        for (i, s) in seen.enumerated() {
            if s.origin == origin { return "lists its own writer among the writers it has seen" }
            if i > 0, !(seen[i - 1].origin < s.origin) { return "lists the writers it has seen out of order or twice" }
            if s.clock > HLCTimestamp.maxAccepted { return "has seen a clock beyond the year 6400" }
        }
        return nil
    }

    public var description: String {
        "g\(generation)/s\(supervisorGeneration) \(clock)@\(origin)" + (seen.isEmpty ? "" : " seen \(seen)")
    }
}

extension ConflictPolicy {
    /// Whether `a` beats `b` under this policy. A strict total order on versions with
    /// distinct ids, and the same on every replica.
    ///
    /// `lww`, `supervisor-wins` and `review` keep causality: a version written on top of
    /// another beats it (by its later clock, or by its higher generation under `review`).
    /// `append-only` rows are never written on top of (capture refuses updates), so its
    /// versions of one cell are always concurrent and the first written stays.
    public func prefers(_ a: CellVersion, over b: CellVersion) -> Bool {
        func later(_ x: CellVersion, _ y: CellVersion) -> Bool {
            (x.clock, x.origin) > (y.clock, y.origin)
        }
        switch self {
        case .lww:
            return later(a, b)
        case .supervisorWins:
            if a.supervisorGeneration != b.supervisorGeneration {
                return a.supervisorGeneration > b.supervisorGeneration
            }
            return later(a, b)
        case .review:
            if a.generation != b.generation { return a.generation > b.generation }
            return later(b, a)  // the earliest concurrent value stays
        case .appendOnly:
            return later(b, a)  // the first written version stays
        }
    }
}
