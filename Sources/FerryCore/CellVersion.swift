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
/// - `generation` counts the distinct writers the cell's history passed through: a write
///   on top of another replica's version adds one, a replica's further writes on top of
///   its own keep it. A causally later write therefore never has a lower generation, which
///   is what lets a merge respect causality even when clocks are skewed.
/// - `supervisorGeneration` counts supervisor (hub) writes in the cell's history; every
///   supervisor write adds one. `supervisor-wins` orders by it first.
/// - `base` names the other replica's version this replica's run of writes built on;
///   `nil` for the first write. It tells a sequential overwrite from a concurrent one,
///   so only concurrent losers go to the conflict log.
public struct CellVersion: Hashable, Sendable, CustomStringConvertible {
    public var generation: UInt32
    public var supervisorGeneration: UInt32
    public var clock: HLCTimestamp
    public var origin: NodeID
    public var authority: Authority
    public var base: VersionID?

    public init(
        generation: UInt32, supervisorGeneration: UInt32 = 0, clock: HLCTimestamp, origin: NodeID,
        authority: Authority = .unit, base: VersionID? = nil
    ) {
        self.generation = generation
        self.supervisorGeneration = supervisorGeneration
        self.clock = clock
        self.origin = origin
        self.authority = authority
        self.base = base
    }

    public var id: VersionID { VersionID(clock: clock, origin: origin) }

    /// The version of a local write by `writer` (with `authority`) at `clock`, on top of
    /// `previous` (the cell's current version, `nil` if the cell was never written), in a
    /// table with `policy`.
    ///
    /// Under `review` and `append-only` the earliest concurrent version wins, so a writer's
    /// own later write must rise a generation to beat its own earlier one; under `lww` and
    /// `supervisor-wins` the later clock already does that, and keeping the generation lets
    /// concurrent edits be settled by clock.
    public static func successor(
        of previous: CellVersion?, writer: NodeID, authority: Authority, clock: HLCTimestamp,
        policy: ConflictPolicy
    ) -> CellVersion {
        guard let p = previous else {
            return CellVersion(
                generation: 1, supervisorGeneration: authority == .supervisor ? 1 : 0, clock: clock,
                origin: writer, authority: authority, base: nil)
        }
        let own = p.origin == writer
        let earliestWins = policy == .review || policy == .appendOnly
        return CellVersion(
            generation: own && !earliestWins ? p.generation : p.generation &+ 1,
            supervisorGeneration: p.supervisorGeneration &+ (authority == .supervisor ? 1 : 0),
            clock: clock, origin: writer, authority: authority,
            base: own ? p.base : p.id)
    }

    /// Whether `self` was written knowing `other`: it is `other`, a later write of the
    /// same replica, or built directly on it.
    public func knows(_ other: CellVersion) -> Bool {
        if id == other.id { return true }
        if origin == other.origin { return clock >= other.clock }
        return base == other.id
    }

    /// Neither version was written knowing the other.
    public static func areConcurrent(_ a: CellVersion, _ b: CellVersion) -> Bool {
        !a.knows(b) && !b.knows(a)
    }

    public var description: String {
        "g\(generation)/s\(supervisorGeneration) \(clock)@\(origin)" + (base.map { " on \($0)" } ?? "")
    }
}

extension ConflictPolicy {
    /// Whether `a` beats `b` under this policy. A strict total order on versions with
    /// distinct ids, and the same on every replica.
    public func prefers(_ a: CellVersion, over b: CellVersion) -> Bool {
        func later(_ x: CellVersion, _ y: CellVersion) -> Bool {
            (x.clock, x.origin) > (y.clock, y.origin)
        }
        switch self {
        case .lww:
            if a.generation != b.generation { return a.generation > b.generation }
            return later(a, b)
        case .supervisorWins:
            if a.supervisorGeneration != b.supervisorGeneration {
                return a.supervisorGeneration > b.supervisorGeneration
            }
            if a.generation != b.generation { return a.generation > b.generation }
            return later(a, b)
        case .review:
            if a.generation != b.generation { return a.generation > b.generation }
            return later(b, a)  // the earliest concurrent value stays
        case .appendOnly:
            return later(b, a)  // the first written version stays
        }
    }
}
