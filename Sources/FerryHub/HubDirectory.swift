import FerryCore
import FerryStore
import Foundation
import Logging

/// Which commands may create a hub: only `ferry hub init`, `ferry hub serve` (a first start
/// under systemd) and `ferry hub sample`. Every other command opens an existing hub and
/// fails, creating nothing, on a folder that holds none — so a mistyped `--dir` cannot
/// leave a new hub with a fresh signing key behind and report success.
extension Hub {
    /// The files every hub's folder holds; a folder with none of them holds no hub.
    public static let hubFiles = ["hub.key", "standard.toml", "hub.db", "registry.db"]

    /// Whether `directory` holds a hub (all of `hubFiles`).
    public static func exists(in directory: String) -> Bool {
        hubFiles.allSatisfy { FileManager.default.fileExists(atPath: "\(directory)/\($0)") }
    }

    /// Fails with what to do unless `directory` holds a complete hub; creates nothing.
    public static func requireExisting(_ directory: String) throws(HubDirectoryError) {
        let missing = hubFiles.filter { !FileManager.default.fileExists(atPath: "\(directory)/\($0)") }
        guard missing.isEmpty else {
            throw missing.count == hubFiles.count ? .noHub(directory) : .incomplete(directory, missing: missing)
        }
    }

    /// Opens the hub in `directory`; fails, creating nothing, when there is none.
    public static func open(
        existing directory: String, settings: HubSettings = HubSettings(), clock: any WallClock = SystemClock(),
        logger: Logger = Logger(label: "ferry.hub")
    ) throws -> Hub {
        try requireExisting(directory)
        return try Hub(directory: directory, settings: settings, clock: clock, logger: logger)
    }

    /// Creates a new hub in `directory` (missing, or an empty folder): its signing key, the
    /// standard it publishes (`standard` is its TOML text; nil is the built-in
    /// party-building standard) and empty databases. Fails if the folder already holds a
    /// hub or other files.
    public static func create(
        directory: String, standard: String? = nil, settings: HubSettings = HubSettings(), clock: any WallClock = SystemClock(),
        logger: Logger = Logger(label: "ferry.hub")
    ) throws -> Hub {
        if exists(in: directory) { throw HubDirectoryError.alreadyExists(directory) }
        try requireEmpty(directory)
        return try Hub(directory: directory, standard: standard, settings: settings, clock: clock, logger: logger)
    }

    /// The hub in `directory`, created there first if the folder is missing or empty (the
    /// first start of `ferry hub serve`). `standard` is used only when creating.
    public static func openOrCreate(
        directory: String, standard: String? = nil, settings: HubSettings = HubSettings(), clock: any WallClock = SystemClock(),
        logger: Logger = Logger(label: "ferry.hub")
    ) throws -> Hub {
        if exists(in: directory) { return try Hub(directory: directory, settings: settings, clock: clock, logger: logger) }
        let present = hubFiles.filter { FileManager.default.fileExists(atPath: "\(directory)/\($0)") }
        guard present.isEmpty else { throw HubDirectoryError.incomplete(directory, missing: hubFiles.filter { !present.contains($0) }) }
        try requireEmpty(directory)
        logger.notice("creating a new hub", metadata: ["dir": "\(directory)"])
        return try Hub(directory: directory, standard: standard, settings: settings, clock: clock, logger: logger)
    }

    /// A hub makes its folder private (0700): never do that to a folder holding anything else.
    static func requireEmpty(_ directory: String) throws(HubDirectoryError) {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isFolder) else { return }
        guard isFolder.boolValue, (try? FileManager.default.contentsOfDirectory(atPath: directory))?.isEmpty == true else {
            throw .notEmpty(directory)
        }
    }
}

/// A hub command pointed at the wrong folder; the message names the folder and what to do,
/// Chinese first.
public enum HubDirectoryError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The folder holds no hub at all (a mistyped or missing `--dir`).
    case noHub(String)
    /// Some of the hub's files are missing (deleted, or a restore left them out).
    case incomplete(String, missing: [String])
    /// `ferry hub init` on a folder that already holds a hub.
    case alreadyExists(String)
    /// A hub would be created in a folder that holds other files.
    case notEmpty(String)

    public var description: String {
        switch self {
        case .noHub(let d):
            return """
                目录 \(Self.named(d)) 中没有上级数据（没有 hub.key、hub.db 等文件），未做任何改动。请用 --dir 指定上级的数据目录（如 /var/lib/ferry-hub）；要在此新建上级，请运行 ferry hub init --dir \(d)。
                \(Self.named(d)) holds no hub (no hub.key, hub.db, …); nothing was changed. Pass --dir with the hub's data directory (e.g. /var/lib/ferry-hub), or create a hub there with: ferry hub init --dir \(d)
                """
        case .incomplete(let d, let missing):
            return """
                目录 \(Self.named(d)) 中的上级数据不完整，缺少 \(missing.joined(separator: "、"))，未做任何改动。请从备份恢复这些文件。
                the hub in \(Self.named(d)) is incomplete: \(missing.joined(separator: ", ")) \(missing.count == 1 ? "is" : "are") missing; nothing was changed. Restore \(missing.count == 1 ? "it" : "them") from a backup.
                """
        case .alreadyExists(let d):
            return """
                目录 \(Self.named(d)) 中已有上级数据，未做任何改动。要新建另一个上级，请换一个目录。
                \(Self.named(d)) already holds a hub; nothing was changed. To create another hub, choose another folder.
                """
        case .notEmpty(let d):
            return """
                目录 \(Self.named(d)) 不是空目录，也没有上级数据；上级只在新目录或空目录中新建（其目录权限将设为仅本用户可访问）。请换一个目录。
                \(Self.named(d)) is not empty and holds no hub; a hub is only created in a new or empty folder (it makes the folder private to its user). Choose another folder.
                """
        }
    }

    /// The folder as given, with its absolute path when it was relative.
    static func named(_ d: String) -> String {
        guard !d.hasPrefix("/") else { return d }
        return "\(d) (\(FileManager.default.currentDirectoryPath)/\(d))"
    }
}

/// What a serving hub records in its folder (`serving.json`) for the commands run beside it:
/// the address it listens on (for `ferry hub admin link`) and the settings its views use (so
/// `ferry report` counts a unit silent exactly as the dashboard does). Written at each start
/// of `ferry hub serve`; the commands' own flags still win.
public struct HubServing: Codable, Sendable, Equatable {
    /// The URL the hub serves on, as a browser on this machine reaches it.
    public var url: String
    public var silentAfterDays: Int
    /// The config file the hub was started with, if any.
    public var config: String?

    public init(url: String, silentAfterDays: Int, config: String?) {
        self.url = url
        self.silentAfterDays = silentAfterDays
        self.config = config
    }

    enum CodingKeys: String, CodingKey {
        case url
        case silentAfterDays = "silent_after_days"
        case config
    }

    static func path(_ directory: String) -> String { "\(directory)/serving.json" }

    /// Records it; a failure to write is not worth failing the hub for (the commands then use
    /// their defaults), so it is only reported.
    public func record(in directory: String) throws {
        try FilePermissions.writePrivateFile(try JSONEncoder().encode(self), to: Self.path(directory))
    }

    /// What the hub in `directory` last recorded, nil when it never served.
    public static func recorded(in directory: String) -> HubServing? {
        guard let data = FileManager.default.contents(atPath: path(directory)) else { return nil }
        return try? JSONDecoder().decode(HubServing.self, from: data)
    }
}
