import FerryHub
import FerryWire
import Foundation
import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import Synchronization

/// The connection limits of one listener, shared by all its connections.
final class ConnectionLimiter: Sendable {
    private let counts: Mutex<ConnectionCounts>
    let logger: Logger

    init(settings: TransportSettings, logger: Logger) {
        counts = Mutex(ConnectionCounts(maxTotal: settings.maxConnections, maxPerAddress: settings.maxConnectionsPerAddress))
        self.logger = logger
    }

    func open(_ address: String) -> ConnectionCounts.Refusal? { counts.withLock { $0.open(address) } }
    func close(_ address: String) { counts.withLock { $0.close(address) } }
    var open: Int { counts.withLock { $0.total } }
}

/// Wraps the listener's child channel (HTTP/1.1, or TLS around it) with the connection
/// limits: a connection over the total or its address's limit is closed as soon as it is
/// accepted, before a byte of it is read.
struct LimitedChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let limiter: ConnectionLimiter

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let address = channel.remoteAddress?.ipAddress ?? "unknown"
        if let refusal = limiter.open(address) {
            // Debug only: a flood would fill the journal; ferry_hub_connections_refused_total counts them.
            limiter.logger.debug("connection refused", metadata: ["address": "\(address)", "limit": "\(refusal.rawValue)"])
            TransportMetrics.connectionsRefused(refusal.rawValue)
            return base.setup(channel: channel, logger: logger).map { value in
                channel.close(promise: nil)
                return value
            }
        }
        let limiter = self.limiter
        channel.closeFuture.whenComplete { _ in limiter.close(address) }
        return base.setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

/// Headers stamped on every response the hub writes, and the error body of one it writes
/// itself (a request that could not be parsed).
struct ResponseStamp: Sendable {
    let fields: @Sendable () -> HTTPFields

    func errorBody(_ e: WireError) -> ByteBuffer { ByteBuffer(bytes: (try? JSONEncoder().encode(e)) ?? Data()) }
}

/// Enforces `ConnectionDeadlines` on one HTTP/1.1 connection, closes a connection after a
/// response that says `Connection: close` (a refusal sent before the body was read, so the
/// body is never read at all), and gives the bare 400 that answers an unparsable request
/// the Ferry error shape.
///
/// Hummingbird's `idleTimeout` covers a part of this with one value for heads, bodies and
/// idle connections; this handler keeps the head and body deadlines apart, and adds the rest.
final class ConnectionGuardHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private var deadlines: ConnectionDeadlines?
    private let headTimeout: Double
    private let bodyTimeout: Double
    private let stamp: ResponseStamp
    private let logger: Logger
    private var check: Scheduled<Void>?
    private var checkAt: Double?
    private var closeAfterResponse = false
    private var parseFailed = false
    private var replacingBody = false

    init(settings: TransportSettings, stamp: ResponseStamp, logger: Logger) {
        headTimeout = Double(settings.requestHeadTimeoutSeconds)
        bodyTimeout = Double(settings.bodyProgressTimeoutSeconds)
        self.stamp = stamp
        self.logger = logger
    }

    static func now() -> Double { Double(NIODeadline.now().uptimeNanoseconds) / 1e9 }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        check?.cancel()
        check = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        check?.cancel()
        check = nil
        context.fireChannelInactive()
    }

    private func start(_ context: ChannelHandlerContext) {
        guard deadlines == nil else { return }
        deadlines = ConnectionDeadlines(headTimeout: headTimeout, bodyTimeout: bodyTimeout, now: Self.now())
        schedule(context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let now = Self.now()
        switch unwrapInboundIn(data) {
        case .head: deadlines?.headReceived(now: now)
        case .body: deadlines?.bodyReceived(now: now)
        case .end: deadlines?.requestEnded(now: now)
        }
        schedule(context)
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is HTTPParserError { parseFailed = true }
        context.fireErrorCaught(error)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head):
            if parseFailed && head.status == .badRequest {
                // Hummingbird answers an unparsable request with an empty 400; say what happened.
                // Retryable: from a node, an unparsable request is one damaged on the way.
                let body = stamp.errorBody(
                    WireError(.corrupted, "the request could not be parsed as HTTP/1.1; it was probably damaged on the way — send it again"))
                head.headerFields.append(contentsOf: stamp.fields())
                head.headerFields[.contentType] = WireMediaType.json
                head.headerFields[.contentLength] = String(body.readableBytes)
                context.write(wrapOutboundOut(.head(head)), promise: nil)
                context.write(wrapOutboundOut(.body(body)), promise: promise)
                replacingBody = true
                closeAfterResponse = true
                return
            }
            if head.headerFields[.connection]?.lowercased() == "close" { closeAfterResponse = true }
            context.write(data, promise: promise)
        case .body:
            if replacingBody {
                promise?.succeed()
                return
            }
            context.write(data, promise: promise)
        case .end:
            replacingBody = false
            deadlines?.responseEnded(now: Self.now())
            if closeAfterResponse {
                context.writeAndFlush(data, promise: promise)
                context.close(promise: nil)
                return
            }
            context.write(data, promise: promise)
            schedule(context)
        }
    }

    /// Makes sure a check runs at the connection's deadline (earlier if it moved earlier).
    private func schedule(_ context: ChannelHandlerContext) {
        guard let deadline = deadlines?.deadline else { return }
        if let at = checkAt, at <= deadline, check != nil { return }
        check?.cancel()
        checkAt = deadline
        let delay = TimeAmount.nanoseconds(Int64(max(0, deadline - Self.now()) * 1e9) + 1_000_000)
        check = context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in
            check = nil
            checkAt = nil
            guard let expiry = deadlines?.expired(now: Self.now()) else {
                schedule(context)
                return
            }
            logger.info(
                "connection timed out",
                metadata: [
                    "address": "\(context.channel.remoteAddress?.ipAddress ?? "unknown")", "waiting_for": "\(expiry.rawValue)",
                ])
            TransportMetrics.timeouts(expiry.rawValue)
            context.close(promise: nil)
        }
    }
}

@available(*, unavailable)
extension ConnectionGuardHandler: Sendable {}
