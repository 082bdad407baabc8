import FerryCore
import FerryWire

/// What a node needs from its hub. The HTTP implementation is `HTTPHubConnection`; tests
/// can pass the hub object itself.
public protocol HubConnection: Sendable {
    /// One exchange: an `ExchangeEnvelope` out, the hub's envelope back (its signature
    /// already checked by an HTTP connection).
    func exchange(_ body: [UInt8]) throws(SyncFailure) -> [UInt8]
    /// One round of anti-entropy's questions.
    func reconcile(_ request: ReconcileRequest) throws(SyncFailure) -> ReconcileResponse
    /// The hub's clock minus ours, ms, as last observed (0 before any contact).
    var clockOffsetMillis: Int64 { get }
    /// The standard version the hub publishes, as last observed (nil before any contact).
    var hubStandardVersion: String? { get }
    /// The hub's current standard, signed.
    func fetchStandard() throws(SyncFailure) -> SignedStandard
}

/// Why a sync attempt failed, and whether and when to try again.
public struct SyncFailure: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The hub answered with an error.
        case hub(WireErrorCode)
        /// The link failed: timeout, stall, refused connection, TLS, a damaged answer.
        case transport
        /// This replica failed (database, decoding what the hub sent).
        case local
    }
    public var kind: Kind
    public var message: String
    public var messageZh: String
    public var isRetryable: Bool
    /// The hub's Retry-After, seconds.
    public var retryAfter: Double?
    /// Whether the failed sync moved data before it failed (a batch acknowledged either way,
    /// or rows repaired): on a link that cuts, the next attempt is then made at once instead
    /// of after a growing backoff (`SyncRetry`).
    public var progressed = false
    /// What the failed sync had done before it failed.
    public var partial = SyncReport()

    public init(kind: Kind, message: String, messageZh: String, isRetryable: Bool, retryAfter: Double? = nil) {
        self.kind = kind
        self.message = message
        self.messageZh = messageZh
        self.isRetryable = isRetryable
        self.retryAfter = retryAfter
    }

    public init(_ e: WireError, retryAfter: Double? = nil) {
        self.init(kind: .hub(e.code), message: e.message, messageZh: e.messageZh, isRetryable: e.retryable, retryAfter: retryAfter)
    }

    public var description: String { message }
}

/// What to do after a failed sync, for the daemon and for `ferry sync`: a failure that needs a
/// person is not retried (nil); a sync that moved data before the link dropped is retried at
/// once, after a short jitter (1 to 3 s), and resets the backoff; a sync that moved nothing
/// backs off with `RetryPolicy` (jittered, growing, never sooner than the hub's Retry-After).
/// Long waits therefore happen only when nothing gets through.
public struct SyncRetry: Sendable, Equatable {
    public var policy: RetryPolicy
    /// Failed attempts in a row that moved nothing.
    public private(set) var failuresWithoutProgress = 0

    public init(policy: RetryPolicy = RetryPolicy()) { self.policy = policy }

    /// Seconds to wait before the next attempt, or nil when the failure is not worth retrying.
    /// `random` is uniform in 0..<1.
    public mutating func next(after failure: SyncFailure, random: Double) -> Double? {
        guard failure.isRetryable else { return nil }
        if failure.progressed {
            failuresWithoutProgress = 0
            return max(1 + 2 * random, failure.retryAfter ?? 0)
        }
        failuresWithoutProgress += 1
        return policy.delay(attempt: failuresWithoutProgress, retryAfter: failure.retryAfter, random: random)
    }

    /// A sync completed.
    public mutating func succeeded() { failuresWithoutProgress = 0 }
}
