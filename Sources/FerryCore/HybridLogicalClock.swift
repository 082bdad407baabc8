/// A hybrid logical clock reading: 48 bits of physical time in milliseconds since the Unix
/// epoch, then a 16-bit logical counter.
///
/// Readings order by their raw value; the zero reading precedes every real one.
public struct HLCTimestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64

    public static let zero = HLCTimestamp(rawValue: 0)
    static let counterBits: UInt64 = 16
    static let counterMask: UInt64 = (1 << counterBits) - 1
    /// The largest physical time a reading can carry (year 10889).
    public static let maxPhysicalMillis: UInt64 = (1 << 48) - 1

    /// The latest reading a replica accepts from a peer: physical time 2^47 ms (the year
    /// 6429). Far beyond any real clock, and far enough below the format's limit that a
    /// cell's successors (each one tick later) can never run out of readings.
    public static let maxAccepted = HLCTimestamp(rawValue: (UInt64(1) << 47) << 16)

    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public init(physicalMillis: UInt64, counter: UInt16) {
        precondition(physicalMillis <= Self.maxPhysicalMillis, "physical time out of range")
        rawValue = (physicalMillis << Self.counterBits) | UInt64(counter)
    }

    public var physicalMillis: UInt64 { rawValue >> Self.counterBits }
    public var counter: UInt16 { UInt16(rawValue & Self.counterMask) }

    public static func < (lhs: HLCTimestamp, rhs: HLCTimestamp) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { "\(physicalMillis).\(counter)" }
}

/// A hybrid logical clock (Kulkarni et al., 2014): readings that follow physical time when
/// it moves forward and never go backwards when it does not.
///
/// The clock never reads time itself; callers pass the current wall time in milliseconds
/// (`now`), so tests drive it with a manual clock and a skewed unit can be simulated.
///
/// A remote reading more than `maxForwardDriftMillis` ahead of `now` is *bounded*, not
/// adopted: the clock keeps its own time, so one unit with a clock days ahead cannot drag
/// every other replica's clock into the future. The remote reading still orders the cell
/// it belongs to, so merges stay deterministic on every replica.
///
/// ```swift
/// var clock = HybridLogicalClock()
/// let t1 = clock.tick(now: 1_700_000_000_000)
/// let t2 = clock.tick(now: 1_699_999_999_000)   // wall clock went back: t2 > t1 anyway
/// ```
public struct HybridLogicalClock: Sendable, Equatable {
    /// The latest reading issued or observed.
    public private(set) var latest: HLCTimestamp
    /// How far ahead of local time a remote reading may be and still be adopted
    /// (milliseconds; default 5 minutes).
    public var maxForwardDriftMillis: UInt64

    public static let defaultMaxForwardDriftMillis: UInt64 = 5 * 60 * 1000

    public init(latest: HLCTimestamp = .zero, maxForwardDriftMillis: UInt64 = Self.defaultMaxForwardDriftMillis) {
        self.latest = latest
        self.maxForwardDriftMillis = maxForwardDriftMillis
    }

    /// Issues a reading for a local event that happened at wall time `now` (ms).
    public mutating func tick(now: UInt64) -> HLCTimestamp {
        let physical = min(now, HLCTimestamp.maxPhysicalMillis)
        if physical > latest.physicalMillis {
            latest = HLCTimestamp(physicalMillis: physical, counter: 0)
        } else if latest.counter < UInt16.max {
            latest = HLCTimestamp(physicalMillis: latest.physicalMillis, counter: latest.counter + 1)
        } else {
            // Counter exhausted within one millisecond: borrow the next millisecond.
            latest = HLCTimestamp(physicalMillis: latest.physicalMillis + 1, counter: 0)
        }
        return latest
    }

    /// What observing a remote reading did to the clock.
    public enum Observation: Sendable, Equatable {
        /// The reading was at or behind the local clock, or close enough ahead: adopted.
        case adopted
        /// The reading was too far ahead of `now` and was not adopted; `aheadMillis` says by
        /// how much it leads local wall time.
        case bounded(aheadMillis: UInt64)
    }

    /// Observes a reading received from another replica at local wall time `now` (ms).
    @discardableResult
    public mutating func observe(_ remote: HLCTimestamp, now: UInt64) -> Observation {
        if remote.physicalMillis > now &+ maxForwardDriftMillis {
            return .bounded(aheadMillis: remote.physicalMillis - now)
        }
        if remote > latest { latest = remote }
        return .adopted
    }
}
