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
