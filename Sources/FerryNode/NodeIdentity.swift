import FerryCore
import FerryStore
import Foundation

/// What a node learned at enrolment and needs for every sync, kept in `node.json` (0600)
/// in the node's directory beside its database `unit.db` and the standard `standard.toml`.
public struct NodeIdentity: Codable, Sendable, Equatable {
    public var hubURL: String
    public var nodeID: String
    public var unitID: String
    public var unitName: String
    public var hubNodeID: String
    public var hubPublicKey: String
    /// The node's Ed25519 private key, base64. Never leaves the box.
    public var privateKey: String
    /// Whether the hub accepts gzip bodies.
    public var gzip: Bool

    public init(hubURL: String, nodeID: String, unitID: String, unitName: String, hubNodeID: String, hubPublicKey: String, privateKey: String, gzip: Bool) {
        self.hubURL = hubURL
        self.nodeID = nodeID
        self.unitID = unitID
        self.unitName = unitName
        self.hubNodeID = hubNodeID
        self.hubPublicKey = hubPublicKey
        self.privateKey = privateKey
        self.gzip = gzip
    }

    enum CodingKeys: String, CodingKey {
        case gzip
        case hubURL = "hub_url"
        case nodeID = "node_id"
        case unitID = "unit_id"
        case unitName = "unit_name"
        case hubNodeID = "hub_node_id"
        case hubPublicKey = "hub_public_key"
        case privateKey = "private_key"
    }

    public static func path(in directory: String) -> String { "\(directory)/node.json" }

    /// Reads `node.json`; a node directory or `node.json` left open to others by an older
    /// release is tightened (see `FilePermissions`).
    public static func load(directory: String) throws -> NodeIdentity {
        let p = path(in: directory)
        guard let data = FileManager.default.contents(atPath: p) else {
            throw NodeError.notEnrolled(directory)
        }
        FilePermissions.tighten(directory)
        FilePermissions.tighten(p)
        return try JSONDecoder().decode(NodeIdentity.self, from: data)
    }

    /// Writes `node.json` as a private file (it holds the node's private key), atomically.
    public func save(directory: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try FilePermissions.writePrivateFile(try enc.encode(self), to: Self.path(in: directory))
    }
}

/// Errors a node's operator or clerk sees, each saying what to do.
public enum NodeError: Error, CustomStringConvertible, Sendable {
    case notEnrolled(String)
    case alreadyEnrolled(String)
    case noBackup(String)
    case notAUnitDatabase(String)

    /// Chinese first, then English: whoever reads it may not have set a language.
    public var description: String { "\(chinese)\n\(english)" }

    public var chinese: String {
        switch self {
        case .notEnrolled(let d): return "目录 \(d) 中没有已登记的节点；请先登记：ferry node init --dir \(d) --hub 上级地址 --token 登记码"
        case .alreadyEnrolled(let d): return "目录 \(d) 中已有登记过的节点；请换一个目录，或移走原有数据后重新登记"
        case .noBackup(let f): return "没有找到要恢复的文件 \(f)；请指定本单位 unit.db 的备份副本"
        case .notAUnitDatabase(let f): return "\(f) 不是 Ferry 的单位数据库（unit.db）；请指定本单位 unit.db 的备份副本"
        }
    }

    public var english: String {
        switch self {
        case .notEnrolled(let d): return "no enrolled node in \(d); enrol it first: ferry node init --dir \(d) --hub URL --token TOKEN"
        case .alreadyEnrolled(let d): return "\(d) already holds an enrolled node; use another directory, or remove it to enrol again"
        case .noBackup(let f): return "there is no file \(f) to restore; name the backup copy of the unit's unit.db"
        case .notAUnitDatabase(let f): return "\(f) is not a Ferry unit database (unit.db); name the backup copy of this unit's unit.db"
        }
    }
}
