/// A source of wall-clock time in milliseconds since the Unix epoch.
///
/// Logic never reads the time itself; it is handed one of these (the system clock in
/// production, a manual or skewed clock in tests).
public protocol WallClock: Sendable {
    func nowMillis() -> UInt64
}

/// When to try again after a failed sync: exponential backoff with full jitter, never
/// sooner than the hub's Retry-After.
///
/// `delay(attempt:retryAfter:random:)` is pure: pass `random` in `0..<1`.
public struct RetryPolicy: Sendable, Equatable {
    /// The first backoff ceiling, seconds (default 5).
    public var baseSeconds: Double
    /// The largest backoff, seconds (default 600: a weak link is retried at least every 10 min).
    public var capSeconds: Double

    public init(baseSeconds: Double = Double(FerryDefaults.Node.retryBaseSeconds), capSeconds: Double = Double(FerryDefaults.Node.retryCapSeconds)) {
        self.baseSeconds = baseSeconds
        self.capSeconds = capSeconds
    }

    /// Seconds to wait before attempt `attempt + 1` (attempt counts failures so far, from 1).
    public func delay(attempt: Int, retryAfter: Double?, random: Double) -> Double {
        let ceiling = min(capSeconds, baseSeconds * pow2(max(0, attempt - 1)))
        let jittered = max(1, ceiling * random)
        return max(jittered, retryAfter ?? 0)
    }

    private func pow2(_ n: Int) -> Double { n >= 62 ? Double(Int64.max) : Double(Int64(1) << Int64(n)) }
}
