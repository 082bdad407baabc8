import ServiceLifecycle
import Synchronization

/// Pings systemd's watchdog while the service's main loop shows signs of life.
///
/// A watchdog that pings on a timer of its own only proves the process exists. This one
/// asks `liveness` before each ping and withholds the ping when the main loop has made no
/// progress, so a sync stuck in a blocking call stops the pings and systemd restarts the
/// service after `WatchdogSec=`. Under systemd a hang is thus detected within
/// (the liveness window) + `WatchdogSec=`.
///
/// Without a watchdog (`$WATCHDOG_USEC` unset, or not under systemd) the service idles
/// until shutdown instead of returning, because a service that returns ends its group.
///
/// Put it first in the `ServiceGroup`'s list: graceful shutdown runs in reverse order, so
/// it keeps pinging while the other services finish.
///
///     let heartbeat = Heartbeat()
///     // the node loop calls heartbeat.beat() on every pass and every batch
///     let watchdog = WatchdogService(liveness: heartbeat.liveness(maxSilence: .seconds(420)))
///     let group = ServiceGroup(services: [watchdog, nodeService], logger: logger)
public struct WatchdogService: Service {
    public let notifier: SystemdNotifier
    /// Time between liveness checks (and pings): `notifier.watchdogInterval` unless given.
    public let interval: Duration?
    let liveness: @Sendable () -> Bool
    let onWithheld: (@Sendable () -> Void)?

    /// - Parameters:
    ///   - notifier: Where pings go; by default from this process's environment.
    ///   - interval: Overrides the ping period (default: half of `WatchdogSec=`).
    ///   - liveness: True while the main loop made progress recently; called once per period.
    ///   - onWithheld: Called once each time pings stop because `liveness` said false —
    ///     a place to log that systemd is about to restart the service.
    public init(
        notifier: SystemdNotifier = SystemdNotifier(),
        interval: Duration? = nil,
        liveness: @escaping @Sendable () -> Bool,
        onWithheld: (@Sendable () -> Void)? = nil
    ) {
        self.notifier = notifier
        self.interval = interval ?? notifier.watchdogInterval
        self.liveness = liveness
        self.onWithheld = onWithheld
    }

    public func run() async throws {
        guard notifier.isEnabled, let interval else {
            try? await gracefulShutdown()
            return
        }
        var withholding = false
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            if liveness() {
                withholding = false
                // A failed ping is not retried sooner: if systemd cannot hear us it will
                // restart the service, which is the right outcome.
                _ = try? notifier.watchdog()
            } else if !withholding {
                withholding = true
                onWithheld?()
            }
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return
            }
        }
    }
}

/// The time the main loop last made progress, for `WatchdogService`'s liveness check.
///
/// The loop calls `beat()` whenever it gets somewhere (each pass, each batch sent); the
/// watchdog asks `isRecent(within:)`. Choose the window longer than the longest step that
/// legitimately blocks without beating — for the node, `http.total_timeout_seconds` plus
/// a margin.
public final class Heartbeat: Sendable {
    private let last: Mutex<ContinuousClock.Instant>

    /// Starts as if a beat happened at `now`, so a fresh loop counts as alive.
    public init(now: ContinuousClock.Instant = .now) {
        last = Mutex(now)
    }

    /// Records progress at `now`.
    public func beat(at now: ContinuousClock.Instant = .now) {
        last.withLock { $0 = max($0, now) }
    }

    /// True when the last beat is no older than `maxSilence` at `now`.
    public func isRecent(within maxSilence: Duration, now: ContinuousClock.Instant = .now) -> Bool {
        last.withLock { now - $0 <= maxSilence }
    }

    /// A liveness check for `WatchdogService`: true while beats are at most `maxSilence` apart.
    public func liveness(maxSilence: Duration) -> @Sendable () -> Bool {
        { [self] in isRecent(within: maxSilence) }
    }
}
