import FerryCore
import Foundation

/// The machine's wall clock, optionally shifted by a fixed offset (for a unit whose clock
/// is known to be wrong, or to simulate one).
public struct SystemClock: WallClock {
    public var offsetMillis: Int64
    public init(offsetMillis: Int64 = 0) { self.offsetMillis = offsetMillis }
    public func nowMillis() -> UInt64 {
        UInt64(max(0, Int64(Date().timeIntervalSince1970 * 1000) + offsetMillis))
    }
}
