import FerryWire

/// What a node needs from its hub. The HTTP implementation is `HTTPHubConnection`; tests
/// can pass the hub object itself.
public protocol HubConnection: Sendable {
    func push(_ changeset: [UInt8]) throws(SyncFailure) -> PushAcknowledgement
    /// The next batch, or nil when the node is up to date.
    func pull(_ request: PullRequest) throws(SyncFailure) -> [UInt8]?
    func acknowledgePull(_ ack: PullAcknowledgement) throws(SyncFailure)
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
        /// The link failed: timeout, stall, refused connection, TLS.
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
