import FerryCore

/// Errors of the replica store, with what to do about them.
public enum StoreError: Error, CustomStringConvertible, Sendable {
    /// The changeset or a value broke the standard or the sender's scope; nothing was applied.
    case rejected(CoreError)
    /// The database file is not a Ferry replica of this identity or standard.
    case identityMismatch(String)
    /// Sync metadata could not be read; the file may be damaged.
    case corruptMetadata(String)
    /// A conflict id that does not exist or was already settled.
    case noSuchConflict(Int64)
    /// A quarantined row that does not exist or was already settled.
    case noSuchQuarantine(Int64)
    /// A row arrived without a value for a NOT NULL column it needs.
    case incompleteRow(String)
    /// A conflict's losing value cannot be put back as it is (the row's other values no
    /// longer allow it).
    case cannotRestore(table: String, key: [Value], reason: String)
    /// Opened read-only, but the database must first be migrated or converted by this build
    /// (a writable open does it).
    case needsUpgrade

    public var description: String {
        switch self {
        case .rejected(let e): return "changeset rejected, nothing applied: \(e.message)"
        case .identityMismatch(let s): return s
        case .corruptMetadata(let s): return "sync metadata is damaged (\(s)); restore the database from a backup or re-enrol the node"
        case .noSuchConflict(let id): return "conflict \(id) does not exist or is already settled; list conflicts to see open ones"
        case .noSuchQuarantine(let id): return "quarantined row \(id) does not exist or is already settled; list the quarantine to see held rows"
        case .incompleteRow(let s): return "changeset rejected, nothing applied: \(s)"
        case .needsUpgrade: return "this database must be upgraded by this build of Ferry first; open it writable (ferry sync or ferry node run)"
        case .cannotRestore(let t, let k, let reason):
            return "the value cannot be put back into \(t) (\(k.map(\.description).joined(separator: ", "))): \(reason); change the row by hand, then dismiss the conflict"
        }
    }
}
