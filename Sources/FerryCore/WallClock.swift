/// A source of wall-clock time in milliseconds since the Unix epoch.
///
/// Logic never reads the time itself; it is handed one of these (the system clock in
/// production, a manual or skewed clock in tests).
public protocol WallClock: Sendable {
    func nowMillis() -> UInt64
}
