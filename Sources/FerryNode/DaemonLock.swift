import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Whether a node daemon (`ferry node run`) is running on a node folder: it holds an
/// exclusive `flock` on `daemon.lock` for as long as it lives, and the kernel releases the
/// lock when the process ends however it ends (a `kill -9` included). So `ferry status` can
/// tell "connected" from "the daemon is not running", and a second daemon on the same folder
/// is refused instead of syncing the same database twice.
public final class DaemonLock: @unchecked Sendable {
    let fd: Int32

    static func path(_ directory: String) -> String { "\(directory)/daemon.lock" }

    private init(fd: Int32) { self.fd = fd }

    deinit { close(fd) }

    /// Takes the lock for this process, or fails naming what holds it.
    public static func acquire(directory: String) throws -> DaemonLock {
        let fd = open(path(directory), O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw DaemonLockError("cannot open \(path(directory)) (\(String(cString: strerror(errno)))); check the node folder's permissions")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: path(directory), encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(fd)
            throw DaemonLockError(
                "另一个 ferry node run 正在使用 \(directory)（进程 \(holder.isEmpty ? "?" : holder)）；同一节点只能运行一个后台同步。\nanother ferry node run is already running on \(directory) (pid \(holder.isEmpty ? "?" : holder)); one node folder has one daemon")
        }
        ftruncate(fd, 0)
        let pid = "\(getpid())\n"
        _ = pid.withCString { write(fd, $0, strlen($0)) }
        return DaemonLock(fd: fd)
    }

    /// true: a daemon runs on `directory` now; false: none does (it stopped, or was killed);
    /// nil: no daemon ever ran there.
    public static func isHeld(directory: String) -> Bool? {
        let fd = open(path(directory), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return false
        }
        return errno == EWOULDBLOCK
    }
}

public struct DaemonLockError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ d: String) { description = d }
}
