import FerryCore
import FerryStandardFile
import FerryStore
import FerryTrust
import FerryWire
import Foundation

/// Moves a node to the standard its hub publishes: fetch, verify the hub's signature, check
/// that it only adds to the node's standard, save it, and migrate the database (done by
/// `ReplicaStore` when it opens with the new standard).
public enum StandardUpgrade {
    /// Whether the hub publishes a newer standard than `current`, as last observed.
    public static func isAvailable(_ hub: any HubConnection, current: Standard) -> Bool {
        guard let seen = hub.hubStandardVersion.flatMap(StandardVersion.init(parsing:)) else { return false }
        return seen > current.version
    }

    /// Fetches and installs the hub's standard in `directory`; returns it. The caller reopens
    /// the store (and so migrates the database) with it.
    public static func install(from hub: any HubConnection, identity: NodeIdentity, current: Standard, directory: String) throws -> Standard {
        let signed = try hub.fetchStandard()
        guard let key = Data(base64Encoded: identity.hubPublicKey),
            Trust.verify(publicKey: [UInt8](key), signatureBase64: signed.signature, data: SignedStandard.signedBytes(signed.standard))
        else {
            throw SyncFailure(
                kind: .hub(.badSignature), message: "the standard from the hub is not signed by the hub's key; it was not installed",
                messageZh: "上级发布的数据标准签名无效，未安装", isRetryable: false)
        }
        let next = try StandardFile.parse(signed.standard, file: "standard \(signed.version) from the hub")
        guard next.version.major == current.version.major else {
            throw SyncFailure(
                kind: .hub(.standardMismatch), message: "the hub publishes standard \(next.version), a new major version; it needs an explicit migration",
                messageZh: "上级发布了新的主版本数据标准，需要专门迁移", isRetryable: false)
        }
        let problems = StandardEvolution.incompatibilities(from: current, to: next)
        guard problems.isEmpty else {
            throw SyncFailure(
                kind: .hub(.standardMismatch), message: "the hub's standard \(next.version) would break this node: \(problems.map(\.description).joined(separator: "; "))",
                messageZh: "上级发布的数据标准与本地不兼容", isRetryable: false)
        }
        try signed.standard.write(toFile: "\(directory)/standard.toml", atomically: true, encoding: .utf8)
        return next
    }
}
