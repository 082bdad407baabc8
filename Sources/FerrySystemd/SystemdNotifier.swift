#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Tells systemd how the service is doing, over the sd_notify protocol.
///
/// The protocol is one datagram of `KEY=value` lines to the Unix socket named by
/// `$NOTIFY_SOCKET` (a file path, or an abstract socket when it starts with `@`). It is
/// small enough to speak directly, so Ferry does not link libsystemd. Outside systemd (no
/// `NOTIFY_SOCKET`) every call is a no-op that returns `false`, so callers need no
/// `if systemd` branches.
///
/// A socket failure throws `SystemdNotifyError`; log it and carry on — the worst outcome
/// is that systemd times the start out or the watchdog restarts the service, which is
/// what should happen if systemd cannot hear us.
///
///     let notifier = SystemdNotifier()
///     // … once the hub is listening / the node has opened its store:
///     try? notifier.ready(status: "listening on 127.0.0.1:7700")
///     // … when graceful shutdown begins:
///     try? notifier.stopping()
public struct SystemdNotifier: Sendable {
    /// Where notifications go.
    public enum Destination: Sendable, Equatable {
        /// A socket file, e.g. `/run/systemd/notify`.
        case path(String)
        /// A socket in Linux's abstract namespace; the name without the leading `@`.
        case abstract(String)
    }

    /// The socket named by `$NOTIFY_SOCKET`; nil when unset, empty, or of a kind this
    /// implementation does not speak (systemd ≥ 254 may hand a VM an `vsock:` address).
    public let destination: Destination?

    /// How long systemd waits for a watchdog ping before it restarts the service
    /// (`WatchdogSec=`, passed as `$WATCHDOG_USEC`). Nil when the unit has no watchdog, or
    /// `$WATCHDOG_PID` names another process (the variables were inherited, not meant for us).
    public let watchdogTimeout: Duration?

    /// The recommended ping period: half of `watchdogTimeout`, as sd_watchdog_enabled(3)
    /// advises. Nil when there is no watchdog to ping.
    public var watchdogInterval: Duration? { watchdogTimeout.map { $0 / 2 } }

    /// True when running under systemd with a notify socket.
    public var isEnabled: Bool { destination != nil }

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from `environment`.
    ///
    /// - Parameters:
    ///   - environment: The process environment; tests pass their own.
    ///   - pid: This process's id, compared with `$WATCHDOG_PID`.
    public init(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        pid: Int32 = ProcessInfo.processInfo.processIdentifier
    ) {
        destination = Self.destination(environment["NOTIFY_SOCKET"] ?? "")
        watchdogTimeout = Self.watchdogTimeout(
            usec: environment["WATCHDOG_USEC"], pid: environment["WATCHDOG_PID"], ourPID: pid)
    }

    static func destination(_ value: String) -> Destination? {
        if value.hasPrefix("/") { return .path(value) }
        if value.hasPrefix("@") && value.count > 1 { return .abstract(String(value.dropFirst())) }
        return nil
    }

    static func watchdogTimeout(usec: String?, pid: String?, ourPID: Int32) -> Duration? {
        guard let usec, let micros = Int64(usec), micros > 0 else { return nil }
        // Like sd_watchdog_enabled(3): a WATCHDOG_PID for someone else means not ours;
        // an absent one means the variables are for whoever reads them.
        if let pid, Int32(pid) != ourPID { return nil }
        return .microseconds(micros)
    }

    // MARK: - Notifications

    /// `READY=1`: start-up is finished (for `Type=notify`, systemd holds dependent units
    /// and `systemctl start` until this arrives). An optional status goes in the same datagram.
    @discardableResult
    public func ready(status text: String? = nil) throws(SystemdNotifyError) -> Bool {
        try send(["READY=1"] + (text.map { [Self.statusLine($0)] } ?? []))
    }

    /// `STOPPING=1`: graceful shutdown has begun.
    @discardableResult
    public func stopping() throws(SystemdNotifyError) -> Bool { try send(["STOPPING=1"]) }

    /// `WATCHDOG=1`: the service is alive. Send at least every `watchdogInterval`; prefer
    /// `WatchdogService`, which sends it only while the main loop makes progress.
    @discardableResult
    public func watchdog() throws(SystemdNotifyError) -> Bool { try send(["WATCHDOG=1"]) }

    /// `STATUS=…`: one line shown by `systemctl status`. Newlines become spaces.
    @discardableResult
    public func status(_ text: String) throws(SystemdNotifyError) -> Bool { try send([Self.statusLine(text)]) }

    /// `RELOADING=1` with `MONOTONIC_USEC`: configuration is being reloaded; send `ready()`
    /// when done. systemd ≥ 253 needs the monotonic timestamp for `Type=notify-reload`.
    @discardableResult
    public func reloading() throws(SystemdNotifyError) -> Bool {
        try send(["RELOADING=1", "MONOTONIC_USEC=\(Self.monotonicMicroseconds())"])
    }

    /// `EXTEND_TIMEOUT_USEC=…`: asks for more time to start or stop (for example during a
    /// long database migration), measured from now.
    @discardableResult
    public func extendTimeout(by duration: Duration) throws(SystemdNotifyError) -> Bool {
        let (seconds, attoseconds) = duration.components
        return try send(["EXTEND_TIMEOUT_USEC=\(max(0, seconds * 1_000_000 + attoseconds / 1_000_000_000_000))"])
    }

    /// Sends the given `KEY=value` assignments as one datagram.
    ///
    /// - Returns: false when not running under systemd (nothing sent), true when sent.
    @discardableResult
    public func send(_ assignments: [String]) throws(SystemdNotifyError) -> Bool {
        guard let destination else { return false }
        try Self.send(Array(assignments.joined(separator: "\n").utf8), to: destination)
        return true
    }

    static func statusLine(_ text: String) -> String {
        "STATUS=" + text.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ")
    }

    static func monotonicMicroseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }

    #if os(Linux)
    static func send(_ message: [UInt8], to destination: Destination) throws(SystemdNotifyError) {
        let name: String
        // A file path's address length counts its terminating NUL; an abstract name's does not
        // (the leading NUL marks it abstract and every following byte is part of the name).
        let pathBytes: [UInt8]
        switch destination {
        case .path(let p):
            name = p
            pathBytes = Array(p.utf8) + [0]
        case .abstract(let n):
            name = "@" + n
            pathBytes = [0] + Array(n.utf8)
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        guard pathBytes.count <= MemoryLayout.size(ofValue: address.sun_path) else {
            throw SystemdNotifyError(socket: name, problem: "the socket path is longer than a Unix socket address allows")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: pathBytes) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + pathBytes.count)

        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemdNotifyError(socket: name, problem: "cannot create a socket", errno: errno) }
        defer { close(fd) }
        var sent: Int
        repeat {
            sent = message.withUnsafeBytes { bytes in
                withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), $0, length)
                    }
                }
            }
        } while sent < 0 && errno == EINTR
        guard sent >= 0 else { throw SystemdNotifyError(socket: name, problem: "cannot send", errno: errno) }
    }
    #else
    static func send(_ message: [UInt8], to destination: Destination) throws(SystemdNotifyError) {
        throw SystemdNotifyError(socket: "\(destination)", problem: "sd_notify is supported on Linux only")
    }
    #endif
}

/// A notification systemd could not be sent.
public struct SystemdNotifyError: Error, CustomStringConvertible, Sendable {
    /// `$NOTIFY_SOCKET` as given.
    public let socket: String
    public let problem: String
    /// The `errno` of the failing call, if any.
    public let errno: Int32?

    init(socket: String, problem: String, errno: Int32? = nil) {
        self.socket = socket
        self.problem = problem
        self.errno = errno
    }

    public var description: String {
        let cause = errno.map { ": \(String(cString: strerror($0))) (errno \($0))" } ?? ""
        return "sd_notify to \(socket): \(problem)\(cause); systemd will not see this state change "
            + "(check that the unit is Type=notify with NotifyAccess=main and the socket exists)"
    }
}
