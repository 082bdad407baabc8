import Hummingbird

/// The request context of the hub's routes: Hummingbird's basics and the address of the
/// connection's other end, for the per-address limits, the supervisor's login throttle and
/// the audit log. (`BasicRequestContext` keeps no address; behind a reverse proxy resolve the
/// client with `ClientAddress`.)
public struct HubRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The IP address of the peer (a reverse proxy's, behind one); nil over a Unix socket or in-process.
    public let peerAddress: String?
    /// The peer's address as the per-address limits count it ("unknown" without a socket).
    public var clientAddress: String { peerAddress ?? "unknown" }

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        peerAddress = source.channel.remoteAddress?.ipAddress
    }
}
