import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Keeps the files that hold keys, password hashes or personal data (`hub.db`,
/// `registry.db`, `report.db`, `unit.db` with their `-wal`/`-shm`, `hub.key`, `node.json`)
/// private to the user running Ferry: files 0600 in folders 0700, whatever the umask.
///
/// Files and folders written by older releases (0644 and 0755 under the usual umask 022)
/// are tightened when they are opened, with one warning log line each.
///
/// A folder the operator opened to a group on purpose — group-writable, as
/// deploy/README.md shows for a clerk's tool running as another user — keeps its group's
/// access (files 0660, folder 0770); others lose every bit.
///
/// SQLite gives a database's `-wal` and `-shm` files the database file's own mode, so
/// creating the database file 0600 before SQLite opens it (`preparePrivateFile`) is enough
/// for its companions too.
public enum FilePermissions {
    /// The mode of a new private folder.
    public static let privateFolderMode: mode_t = 0o700
    /// The mode of a new private file.
    public static let privateFileMode: mode_t = 0o600

    /// The default logger of the warnings (libraries never bootstrap one).
    public static let logger = Logger(label: "ferry.files")

    /// Creates `path` as a private folder (missing parents get the system's default mode),
    /// or tightens an existing one. A shared folder such as /tmp (sticky bit) is refused:
    /// Ferry needs a folder of its own.
    public static func ensurePrivateDirectory(_ path: String, logger: Logger = logger) throws {
        var info = stat()
        if stat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFDIR else {
                throw FilePermissionError(path: path, operation: .notAFolder, code: ENOTDIR)
            }
            guard info.st_mode & S_ISVTX == 0 else { throw FilePermissionError(path: path, operation: .sharedFolder, code: EPERM) }
            tighten(path, logger: logger)
            return
        }
        let parent = parentFolder(of: path)
        if !parent.isEmpty && !FileManager.default.fileExists(atPath: parent) {
            do { try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true) } catch {
                throw FilePermissionError(path: parent, operation: .create, reason: error.localizedDescription)
            }
        }
        guard mkdir(path, privateFolderMode) == 0 || errno == EEXIST else {
            throw FilePermissionError(path: path, operation: .create, code: errno)
        }
        // mkdir's mode passes through the umask; chmod sets it exactly.
        guard chmod(path, privateFolderMode) == 0 else { throw FilePermissionError(path: path, operation: .tighten, code: errno) }
    }

    /// Before SQLite opens the database at `path`: creates it empty as a private file when
    /// it is missing, or tightens it and its `-wal`, `-shm` and `-journal` when present.
    /// ":memory:" and "" (SQLite's private databases) are left alone.
    public static func preparePrivateFile(_ path: String, logger: Logger = logger) throws {
        guard !path.isEmpty, path != ":memory:", !path.hasPrefix("file:") else { return }
        let mode = fileMode(besideFolderOf: path)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        if fd >= 0 {
            defer { close(fd) }
            guard fchmod(fd, mode) == 0 else { throw FilePermissionError(path: path, operation: .tighten, code: errno) }
            return
        }
        guard errno == EEXIST else { throw FilePermissionError(path: path, operation: .create, code: errno) }
        for p in [path, path + "-wal", path + "-shm", path + "-journal"] where FileManager.default.fileExists(atPath: p) {
            tighten(p, logger: logger)
        }
    }

    /// Writes `data` to `path` as a private file, atomically: a temporary file created
    /// private, flushed to disk, then renamed over `path`.
    public static func writePrivateFile(_ data: Data, to path: String) throws {
        let mode = fileMode(besideFolderOf: path)
        let temporary = "\(path).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw FilePermissionError(path: path, operation: .create, code: errno) }
        var failure: Int32?
        if fchmod(fd, mode) != 0 { failure = errno }
        data.withUnsafeBytes { raw in
            var offset = 0
            while failure == nil && offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno != EINTR { failure = errno }
                } else {
                    offset += n
                }
            }
        }
        if failure == nil && fsync(fd) != 0 { failure = errno }
        close(fd)
        if failure == nil && rename(temporary, path) != 0 { failure = errno }
        if let failure {
            unlink(temporary)
            throw FilePermissionError(path: path, operation: .write, code: failure)
        }
    }

    /// Takes from an existing file or folder the access its policy does not allow (see the
    /// type's summary), logging a warning when that changed anything; returns whether it did.
    /// A file Ferry cannot change (another user's) is logged and left as it is: the command
    /// still works, and the warning says what to fix.
    @discardableResult
    public static func tighten(_ path: String, logger: Logger = logger) -> Bool {
        var info = stat()
        guard stat(path, &info) == 0 else { return false }
        let current = info.st_mode & 0o7777
        let isFolder = info.st_mode & S_IFMT == S_IFDIR
        // A sticky folder is shared by design (/tmp); never take it from its other users.
        if isFolder && info.st_mode & S_ISVTX != 0 { return false }
        let allowed = isFolder ? folderMode(current) : fileMode(besideFolderOf: path)
        let wanted = current & allowed
        guard wanted != current else { return false }
        let from = String(current, radix: 8)
        let to = String(wanted, radix: 8)
        guard chmod(path, wanted) == 0 else {
            logger.warning(
                "cannot tighten permissions",
                metadata: [LogKey.path: "\(path)", LogKey.mode: "\(from)", LogKey.wanted: "\(to)", LogKey.error: "\(String(cString: strerror(errno)))"])
            return false
        }
        logger.warning("tightened permissions", metadata: [LogKey.path: "\(path)", LogKey.from: "\(from)", LogKey.to: "\(to)"])
        return true
    }

    /// The folder `path` is in: "" for a bare name ("node"), "/" for a name at the root.
    /// Written by hand because this Foundation's `NSString.deletingLastPathComponent` traps
    /// on a one-component relative path, which is what an operator types (`--dir node`).
    static func parentFolder(of path: String) -> String {
        var p = Substring(path)
        while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        guard let slash = p.lastIndex(of: "/") else { return "" }
        if slash == p.startIndex { return "/" }
        var parent = p[..<slash]
        while parent.count > 1 && parent.hasSuffix("/") { parent = parent.dropLast() }
        return String(parent)
    }

    /// 0600, or 0660 in a folder the operator made group-writable.
    static func fileMode(besideFolderOf path: String) -> mode_t {
        var parent = parentFolder(of: path)
        if parent.isEmpty { parent = "." }
        var info = stat()
        guard stat(parent, &info) == 0, info.st_mode & S_IWGRP != 0 else { return privateFileMode }
        return 0o660
    }

    /// 0700, or 0770 for a folder the operator made group-writable; a set-group-ID bit
    /// (which gives new files the folder's group) is kept.
    static func folderMode(_ current: mode_t) -> mode_t { (current & S_IWGRP != 0 ? 0o770 : privateFolderMode) | S_ISGID }

    /// Metadata keys of the warnings.
    enum LogKey {
        static let path = "path"
        static let from = "from_mode"
        static let to = "to_mode"
        static let mode = "mode"
        static let wanted = "wanted_mode"
        static let error = "error"
    }
}

/// A private file or folder that could not be created, written or tightened.
public struct FilePermissionError: Error, CustomStringConvertible, Sendable {
    public enum Operation: Sendable {
        case create, write, tighten, notAFolder, sharedFolder
    }
    public var path: String
    public var operation: Operation
    /// The system's words for what went wrong.
    public var reason: String

    init(path: String, operation: Operation, reason: String) {
        self.path = path
        self.operation = operation
        self.reason = reason
    }

    init(path: String, operation: Operation, code: Int32) {
        self.init(path: path, operation: operation, reason: String(cString: strerror(code)))
    }

    public var description: String {
        switch operation {
        case .create:
            return "无法创建 \(path)（\(reason)），请检查其所在目录的属主和权限 / cannot create \(path) (\(reason)); check the owner and permissions of its folder"
        case .write:
            return "无法写入 \(path)（\(reason)），请检查磁盘空间及目录权限 / cannot write \(path) (\(reason)); check free disk space and the folder's permissions"
        case .tighten:
            return "无法收紧 \(path) 的权限（\(reason)），请以其属主身份运行 / cannot restrict the permissions of \(path) (\(reason)); run Ferry as its owner"
        case .sharedFolder:
            return "\(path) 是多人共用的目录（如 /tmp），请为 Ferry 指定一个专用目录 / \(path) is a folder shared by every user (like /tmp); give Ferry a folder of its own, e.g. \(path)/ferry"
        case .notAFolder:
            return "\(path) 已存在但不是目录，请换一个目录 / \(path) exists and is not a folder; choose another folder"
        }
    }
}
