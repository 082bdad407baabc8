import FerryCore
import Foundation
import GRDB

extension ReplicaStore {
    /// Converts a database written by release 1 to this build's metadata, in one
    /// transaction ("format-3"; the schema changes themselves are the migration
    /// "v3-anti-entropy"):
    ///
    /// - every row's cell versions are re-encoded (packed; the single `base` becomes a
    ///   one-entry `seen` list) and given a fingerprint, and the digests are built;
    /// - at a hub, every unit row is stored under its unit and key together, and the
    ///   conflict log follows (the data tables were rebuilt with their new keys already).
    ///
    /// A failure leaves the database as release 1 wrote it.
    func upgradeFormatIfNeeded() throws {
        let format = try pool.read { db in try Int.fetchOne(db, sql: "SELECT value FROM ferry_state WHERE key = 'format'") } ?? 1
        guard format < Self.format else { return }
        try write { db, tx in
            let old = try Row.fetchAll(db, sql: "SELECT tbl, pk, scope, cl, seq, cells FROM ferry_rows")
            try db.execute(sql: "DELETE FROM ferry_rows")
            var moved: [String: (from: Data, to: Data)] = [:]
            for r in old {
                let tableID: Int = r[0]
                guard let t = tablesByID[tableID] else { continue }
                let oldPK: Data = r[1]
                let scope: String? = r[2]
                let key = try KeyEncoding.decode([UInt8](oldPK))
                let storage = storageKey(t, key: key, scope: scope)
                let pk = KeyEncoding.encode(storage)
                var meta = RowMeta(
                    causalLength: UInt32(r[3] as Int64), seq: r[4], scope: scope,
                    cells: try LegacyRowMeta.decodeCells([UInt8](r[5] as Data), tx.nodes))
                meta.fingerprint = try fingerprint(db, t, storage: storage, meta: meta)
                try saveMeta(db, table: tableID, pk: pk, meta: meta, before: nil, tx: tx)
                if Data(pk) != oldPK { moved["\(t.name)\u{0}\(Hex.encode(oldPK))"] = (oldPK, Data(pk)) }
            }
            for (name, change) in moved {
                let table = String(name.split(separator: "\u{0}", maxSplits: 1)[0])
                try db.execute(sql: "UPDATE ferry_conflicts SET pk = ? WHERE tbl = ? AND pk = ?", arguments: [change.to, table, change.from])
            }
            try db.execute(sql: "INSERT OR REPLACE INTO ferry_state(key, value) VALUES ('format', ?)", arguments: [Self.format])
        }
    }
}
