import FerryCore
import FerryHTTPClient
import FerryStandardFile
import FerryStore
import FerryTrust
import FerryWire
import Foundation

/// Makes a node directory: enrols with the hub by a one-time token, saves the node's key and
/// identity (`node.json`, 0600), the hub's standard, and creates `unit.db` — or, for a
/// replacement box, takes over a backup of the unit's database.
public enum NodeEnrolment {
    /// What enrolment made.
    public struct Result: Sendable {
        public var identity: NodeIdentity
        public var database: String
    }

    /// Enrols a node in `directory` (which must not hold one already).
    ///
    /// A key made by an earlier try that lost the hub's answer is kept (`enrol.key`), so the
    /// retry presents the same key and the hub recognises it instead of refusing the used token.
    /// With `restoring`, the database is a copy of `restoring` (a backup of the unit's
    /// database from its previous box) made this node's: nothing of the unit's past is sent
    /// again, and anti-entropy brings over only what the backup lacks.
    public static func enrol(
        directory: String, hubURL: String, token: String, hostname: String, restoring backup: String? = nil,
        configuration: HTTPClientConfiguration = HTTPClientConfiguration()
    ) throws -> Result {
        let fm = FileManager.default
        if fm.fileExists(atPath: NodeIdentity.path(in: directory)) { throw NodeError.alreadyEnrolled(directory) }
        if let backup {
            guard fm.fileExists(atPath: backup) else { throw NodeError.noBackup(backup) }
            // Checked before the token is spent: it must be a Ferry unit database.
            guard (try? String.fetchOneState(path: backup, key: "role"))??.hasPrefix("unit:") == true else { throw NodeError.notAUnitDatabase(backup) }
        }
        try FilePermissions.ensurePrivateDirectory(directory)
        let pendingKey = "\(directory)/enrol.key"
        let key: SigningKey
        if let saved = fm.contents(atPath: pendingKey).flatMap({ String(data: $0, encoding: .utf8) }) {
            key = try SigningKey(base64: saved)
        } else {
            key = SigningKey()
            try FilePermissions.writePrivateFile(Data(key.base64.utf8), to: pendingKey)
        }
        let answer = try HTTPHubConnection.enrol(
            hubURL: hubURL, token: token, key: key, hostname: hostname, restoring: backup != nil, configuration: configuration)
        let standard = try StandardFile.parse(answer.standard, file: "standard from hub")
        try answer.standard.write(toFile: "\(directory)/standard.toml", atomically: true, encoding: .utf8)
        let identity = NodeIdentity(
            hubURL: hubURL, nodeID: answer.nodeID, unitID: answer.unitID, unitName: answer.unitName, hubNodeID: answer.hubNodeID,
            hubPublicKey: answer.hubPublicKey, privateKey: key.base64, gzip: answer.compression.contains("gzip"))
        let database = "\(directory)/unit.db"
        let replica = ReplicaIdentity(node: try NodeID(answer.nodeID), role: .unit(answer.unitID))
        if let backup {
            try FilePermissions.writePrivateFile(try Data(contentsOf: URL(fileURLWithPath: backup)), to: database)
            try ReplicaStore.adopt(path: database, as: replica)
        }
        // The store migrates a backup made on an older standard to the hub's.
        let store = try ReplicaStore(path: database, standard: standard, identity: replica, clock: SystemClock())
        try store.close()
        try identity.save(directory: directory)
        try? fm.removeItem(atPath: pendingKey)
        return Result(identity: identity, database: database)
    }
}
