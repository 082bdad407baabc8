import FerryCore
import Foundation
import GRDB
import GRDBSQLite

/// What a scrub found: rows whose stored fingerprint no longer matched their data, and
/// data and metadata that had lost each other.
public struct ScrubReport: Sendable, Equatable {
    public var rows = 0
    /// Rows whose data changed without a captured write (fingerprint recomputed).
    public var changed = 0
    /// Rows in a data table without sync metadata: captured now as new writes (a unit's own
    /// rows), or removed (rows only a peer may write).
    public var untracked = 0
    /// Live rows in the metadata whose data row is gone: captured as deletes (a unit's own
    /// rows), or left for anti-entropy to bring back.
    public var missing = 0
}

/// Anti-entropy: digests of what a replica holds, by table and key range, so that two
/// replicas find every row they hold differently — whatever the cause — in a few small
/// messages (see `Reconciliation`).
///
/// At a node the compared set is everything it holds. At a hub, for the node of unit `u`,
/// it is what that node should hold: the unit's rows and the reference data meant for it.
/// Rows held back (quarantined) are left out on both sides: they are listed instead.
extension ReplicaStore {
    /// The digest of every synced table this replica holds for `unit` (nil: everything),
    /// leaving out `excluding`. Cheap: read from the maintained per-table sums.
    public func digestRoot(unit: String?, excluding: [RowRef] = []) throws -> UInt64 {
        DigestSum.root(try digestTables(unit: unit, excluding: excluding).map { ($0.key, $0.value) })
    }

    /// Per-table digests (see `digestRoot`).
    public func digestTables(unit: String?, excluding: [RowRef] = []) throws -> [String: DigestSum] {
        try write { db, tx in
            var out: [String: DigestSum] = [:]
            let rows: [Row]
            if let unit {
                rows = try Row.fetchAll(db, sql: "SELECT tbl, sum, n FROM ferry_digest WHERE scope IN (?, '')", arguments: [unit])
            } else {
                rows = try Row.fetchAll(db, sql: "SELECT tbl, sum, n FROM ferry_digest")
            }
            for r in rows {
                guard let t = tablesByID[r[0]], t.isSynced else { continue }
                out[t.name, default: DigestSum()].add(DigestSum(sum: UInt64(bitPattern: r[1] as Int64), count: r[2]))
            }
            for ex in excluding {
                guard let t = standard.table(named: ex.table), let id = tableIDs[ex.table] else { continue }
                let pk = KeyEncoding.encode(storageKey(t, key: ex.key, scope: ex.scope ?? unit))
                if let m = try loadMeta(db, table: id, pk: pk, nodes: tx.nodes), m.fingerprint != 0,
                    unit == nil || m.scope == nil || m.scope == unit
                {
                    out[t.name, default: DigestSum()].remove(m.fingerprint)
                }
            }
            return out.filter { !$0.value.isEmpty }
        }
    }

    /// Answers for reconciliation ranges, from a scan of the stored fingerprints: for each
    /// range its digest, and its rows when there are at most `RangeAnswer.leafLimit` (or
    /// `leaves` asks for them), else the digests of its 16 sub-ranges. A range whose digest
    /// equals the asker's (`known`) is answered with its digest alone.
    public func rangeAnswers(
        unit: String?, ranges: [DigestRange], excluding: [RowRef] = [], leaves: Set<DigestRange> = [], children: Set<DigestRange> = [],
        known: [DigestRange: DigestSum] = [:]
    ) throws -> [RangeAnswer] {
        let skip = Set(excluding.map { Reconciliation.RowKey(table: $0.table, key: $0.key) })
        return try pool.read { db in
            var out: [RangeAnswer] = []
            var byTable: [String: [DigestRange]] = [:]
            for r in ranges where r.isValid { byTable[r.table, default: []].append(r) }
            for (table, wanted) in byTable.sorted(by: { $0.key < $1.key }) {
                guard let t = standard.table(named: table), t.isSynced, let id = tableIDs[table] else {
                    out += wanted.map { RangeAnswer(range: $0, digest: DigestSum(), leaves: [:]) }
                    continue
                }
                let rows = try rangeRows(db, t, id: id, unit: unit, skip: skip)
                for range in wanted {
                    var digest = DigestSum()
                    var inRange: [(hash: UInt64, key: [Value], fp: UInt64)] = []
                    for row in rows where range.contains(row.hash) {
                        digest.add(row.fp)
                        inRange.append(row)
                    }
                    if let theirs = known[range], theirs == digest {
                        out.append(RangeAnswer(range: range, digest: digest))
                        continue
                    }
                    let asLeaves = leaves.contains(range) || (!children.contains(range) && (inRange.count <= RangeAnswer.leafLimit || range.prefix.count >= 16))
                    if asLeaves {
                        var l: [[Value]: UInt64] = [:]
                        for row in inRange { l[row.key] = row.fp }
                        out.append(RangeAnswer(range: range, digest: digest, leaves: l))
                    } else {
                        var c: [String: DigestSum] = [:]
                        for row in inRange {
                            let nibble = DigestRange.prefix(of: row.hash, nibbles: range.prefix.count + 1).suffix(1)
                            c[String(nibble), default: DigestSum()].add(row.fp)
                        }
                        out.append(RangeAnswer(range: range, digest: digest, children: c))
                    }
                }
            }
            return out
        }
    }

    /// The digest of each range as this replica holds it (for `unit`, leaving out
    /// `excluding`): what an asker sends with its question (`WireRange.digest`).
    public func rangeDigests(unit: String?, ranges: [DigestRange], excluding: [RowRef] = []) throws -> [DigestRange: DigestSum] {
        let skip = Set(excluding.map { Reconciliation.RowKey(table: $0.table, key: $0.key) })
        return try pool.read { db in
            var out: [DigestRange: DigestSum] = [:]
            var byTable: [String: [DigestRange]] = [:]
            for r in ranges where r.isValid { byTable[r.table, default: []].append(r) }
            for (table, wanted) in byTable {
                for r in wanted { out[r] = DigestSum() }
                guard let t = standard.table(named: table), t.isSynced, let id = tableIDs[table] else { continue }
                // A whole table's digest is kept up to date; only sub-ranges need a scan.
                if wanted.allSatisfy({ $0.prefix.isEmpty }), skip.isEmpty {
                    var sum = DigestSum()
                    let sql = unit == nil ? "SELECT sum, n FROM ferry_digest WHERE tbl = ?" : "SELECT sum, n FROM ferry_digest WHERE tbl = ? AND scope IN (?, '')"
                    let args: StatementArguments = unit.map { [id, $0] } ?? [id]
                    for r in try Row.fetchAll(db, sql: sql, arguments: args) { sum.add(DigestSum(sum: UInt64(bitPattern: r[0] as Int64), count: r[1])) }
                    for r in wanted { out[r] = sum }
                    continue
                }
                for row in try rangeRows(db, t, id: id, unit: unit, skip: skip) {
                    for r in wanted where r.contains(row.hash) { out[r, default: DigestSum()].add(row.fp) }
                }
            }
            return out
        }
    }

    /// Every row of table `t` this replica holds for `unit`: its key hash, key and fingerprint.
    func rangeRows(_ db: Database, _ t: TableDefinition, id: Int, unit: String?, skip: Set<Reconciliation.RowKey>) throws -> [(hash: UInt64, key: [Value], fp: UInt64)] {
        var rows: [(hash: UInt64, key: [Value], fp: UInt64)] = []
        let sql: String
        var args: StatementArguments = [id]
        if let unit {
            sql = "SELECT pk, fp FROM ferry_rows WHERE tbl = ? AND (scope = ? OR scope IS NULL)"
            args += [unit]
        } else {
            sql = "SELECT pk, fp FROM ferry_rows WHERE tbl = ?"
        }
        let cursor = try Row.fetchCursor(db, sql: sql, arguments: args)
        while let r = try cursor.next() {
            let key = splitStorageKey(t, try KeyEncoding.decode([UInt8](r[0] as Data))).key
            if !skip.isEmpty, skip.contains(Reconciliation.RowKey(table: t.name, key: key)) { continue }
            rows.append((RowDigest.keyHash(table: t.name, key: key), key, UInt64(bitPattern: r[1] as Int64)))
        }
        return rows
    }

    /// Whether a write made past the database's guards added a row this replica may not
    /// write (a program that attached Ferry's apply marker): such a row has no metadata, so
    /// only `scrub()` finds it, and the node runs one before it next compares with its hub.
    public var scrubDue: Bool {
        (try? pool.read { db in try Int.fetchOne(db, sql: "SELECT 1 FROM ferry_state WHERE key = 'scrub_due'") }) != nil
    }

    /// The names of the synced tables, for a reconciliation's first question.
    public var syncedTableNames: [String] { standard.syncedTables.map(\.name) }

    /// Recomputes every row's fingerprint from its data and rebuilds the digests, so a
    /// change that bypassed capture (a write with Ferry's triggers dropped, a damaged page,
    /// a hand edit of Ferry's own tables) shows in the next comparison, where anti-entropy
    /// settles each cell by its version's author. Rows that appeared or vanished without
    /// Ferry are captured as inserts and deletes where this replica writes them (a unit's
    /// own rows), and otherwise removed or left for anti-entropy to bring back. Runs at the
    /// daemon's start, after a detected restore, and on a schedule: it reads the whole database.
    @discardableResult
    public func scrub() throws -> ScrubReport {
        var strays: [(TableDefinition, [Value])] = []
        let report = try write { db, tx in
            _ = try stamp(db, tx)
            var report = ScrubReport()
            for t in standard.tables where t.isSynced {
                guard let id = tableIDs[t.name] else { continue }
                let ownRows = ownsRows(t)
                var tracked = Set<[UInt8]>()
                let metas = try Row.fetchAll(db, sql: "SELECT pk, cl, seq, scope, cells, fp FROM ferry_rows WHERE tbl = ?", arguments: [id])
                for r in metas {
                    report.rows += 1
                    let pk = [UInt8](r[0] as Data)
                    tracked.insert(pk)
                    let storage = try KeyEncoding.decode(pk)
                    var meta = RowMeta(
                        causalLength: UInt32(r[1] as Int64), seq: r[2], scope: r[3],
                        cells: try RowMeta.decodeCells([UInt8](r[4] as Data), t, tx.nodes), fingerprint: UInt64(bitPattern: r[5] as Int64))
                    if meta.exists, try readValues(db, t, storage: storage, columns: []) == nil {
                        report.missing += 1
                        if ownRows { try captureScrubbed(db, t, tableID: id, op: .delete, storage: storage, scope: meta.scope) }
                        // Until then the fingerprint says "gone", so the difference shows.
                        let before = meta
                        meta.fingerprint = SipHasher.hash(pk) | 1
                        if meta.fingerprint != before.fingerprint {
                            try db.execute(sql: "UPDATE ferry_rows SET fp = ? WHERE tbl = ? AND pk = ?", arguments: [Int64(bitPattern: meta.fingerprint), id, Data(pk)])
                        }
                        continue
                    }
                    let fp = try fingerprint(db, t, storage: storage, meta: meta)
                    if fp != meta.fingerprint {
                        report.changed += 1
                        // The values changed with no new version: anti-entropy settles each cell
                        // by its version's author (the unit's own edits stand, a correction by
                        // the hub comes back).
                        try db.execute(sql: "UPDATE ferry_rows SET fp = ? WHERE tbl = ? AND pk = ?", arguments: [Int64(bitPattern: fp), id, Data(pk)])
                    }
                }
                let keyColumns = storageKeyColumns(t)
                let scopeColumn = t.scopeColumn.map(SchemaSQL.quote) ?? "NULL"
                for r in try Row.fetchAll(db, sql: "SELECT \(keyColumns.map(SchemaSQL.quote).joined(separator: ", ")), \(scopeColumn) FROM \(SchemaSQL.quote(t.name))") {
                    let storage = (0..<keyColumns.count).map { Value(r[$0] as DatabaseValue) }
                    guard !tracked.contains(KeyEncoding.encode(storage)) else { continue }
                    report.untracked += 1
                    let scope = Value(r[keyColumns.count] as DatabaseValue).textValue
                    if ownRows {
                        try captureScrubbed(db, t, tableID: id, op: .insert, storage: storage, scope: scope)
                    } else {
                        strays.append((t, storage))
                    }
                }
            }
            try rebuildDigests(db)
            _ = try stamp(db, tx)
            try db.execute(sql: "DELETE FROM ferry_state WHERE key = 'scrub_due'")
            return report
        }
        // Rows only a peer may write, found without metadata: removed as an apply would, past
        // the database's guards and without being captured. Anti-entropy brings back the
        // peer's own if it has them.
        if !strays.isEmpty {
            try applyTransaction { db, _ in
                for sql in SchemaSQL.suppressCaptureWhileApplying { try db.execute(sql: sql) }
                for (t, storage) in strays {
                    try db.cachedStatement(sql: "DELETE FROM \(SchemaSQL.quote(t.name)) WHERE \(whereKey(t))").run(storage)
                }
            }
        }
        return report
    }

    /// Whether this replica authors `t`'s rows: a unit its own unit table rows, a hub
    /// everything it stores.
    func ownsRows(_ t: TableDefinition) -> Bool {
        switch identity.role {
        case .hub: return true
        case .unit: return t.isUnitWritable
        }
    }

    func captureScrubbed(_ db: Database, _ t: TableDefinition, tableID: Int, op: SchemaSQL.Op, storage: [Value], scope: String?) throws {
        let key = splitStorageKey(t, storage).key
        let keys = (0..<4).map { $0 < key.count ? key[$0].databaseValue : DatabaseValue.null }
        try db.execute(
            sql: "INSERT INTO ferry_capture (tbl, op, mask, scope, at, k1, k2, k3, k4) VALUES (?, ?, -1, ?, NULL, ?, ?, ?, ?)",
            arguments: StatementArguments([tableID.databaseValue, op.rawValue.databaseValue, scope.databaseValue] + keys))
    }

    func rebuildDigests(_ db: Database) throws {
        var sums: [Transaction.DigestKey: DigestSum] = [:]
        let cursor = try Row.fetchCursor(db, sql: "SELECT tbl, scope, fp FROM ferry_rows")
        while let r = try cursor.next() {
            let fp = UInt64(bitPattern: r[2] as Int64)
            guard fp != 0 else { continue }
            sums[Transaction.DigestKey(scope: (r[1] as String?) ?? "", table: r[0]), default: DigestSum()].add(fp)
        }
        try db.execute(sql: "DELETE FROM ferry_digest")
        for (k, d) in sums where !d.isEmpty {
            try db.execute(
                sql: "INSERT INTO ferry_digest(scope, tbl, sum, n) VALUES (?, ?, ?, ?)",
                arguments: [k.scope, k.table, Int64(bitPattern: d.sum), d.count])
        }
    }

    // MARK: Held rows

    /// Rows held back at a hub for `unit` (quarantined, waiting for a correction or a
    /// decision), newest first, at most `limit`, with how many there are in all.
    public func heldRows(unit: String, limit: Int = 100) throws -> (rows: [HeldRow], total: Int) {
        try pool.read { db in
            let total = try Int.fetchOne(db, sql: "SELECT count(*) FROM ferry_quarantine WHERE status = 'held' AND scope = ?", arguments: [unit]) ?? 0
            let rows = try Row.fetchAll(
                db,
                sql: "SELECT tbl, pk, col, kind, reason, reason_zh FROM ferry_quarantine WHERE status = 'held' AND scope = ? ORDER BY id DESC LIMIT ?",
                arguments: [unit, limit]
            ).map { r in
                HeldRow(
                    table: r[0], key: try KeyEncoding.decode([UInt8](r[1] as Data)), column: (r[2] as String?).flatMap { $0.isEmpty ? nil : $0 },
                    kind: HeldRow.Kind(rawValue: r[3]) ?? .value, reason: r[4], reasonZh: (r[5] as String?) ?? r[4])
            }
            return (rows, total)
        }
    }

    /// Replaces what this node knows of the rows its hub holds back.
    public func setHeldByHub(_ rows: [HeldRow]) throws {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM ferry_held WHERE kind != 'local'")
            for h in rows where h.kind != .local {
                try db.execute(
                    sql: "INSERT OR REPLACE INTO ferry_held (tbl, pk, col, kind, reason, reason_zh) VALUES (?, ?, ?, ?, ?, ?)",
                    arguments: [h.table, Data(KeyEncoding.encode(h.key)), h.column, h.kind.rawValue, h.reason, h.reasonZh])
            }
        }
    }

    /// Rows held back: by the hub (as it last said), and local writes that cannot be synced.
    public func held() throws -> [HeldRow] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT tbl, pk, col, kind, reason, reason_zh FROM ferry_held ORDER BY tbl, pk").map { r in
                HeldRow(
                    table: r[0], key: try KeyEncoding.decode([UInt8](r[1] as Data)), column: r[2],
                    kind: HeldRow.Kind(rawValue: r[3]) ?? .value, reason: r[4], reasonZh: r[5])
            }
        }
    }

    /// Forgets rows this replica holds that the peer says are not in its scope (a hub row
    /// retargeted away while an exit was lost, or one that never was ours).
    public func forget(_ rows: [RowRef]) throws -> Int {
        guard !rows.isEmpty else { return 0 }
        return try applyTransaction { db, tx in
            var n = 0
            for r in rows {
                guard let t = standard.table(named: r.table), let id = tableIDs[r.table], !ownsRows(t) else { continue }
                let storage = storageKey(t, key: r.key, scope: r.scope)
                let pk = KeyEncoding.encode(storage)
                guard let meta = try loadMeta(db, table: id, pk: pk, nodes: tx.nodes) else { continue }
                for sql in SchemaSQL.suppressCaptureWhileApplying { try db.execute(sql: sql) }
                try forgetRow(db, t, table: id, pk: pk, storage: storage, meta: meta, tx: tx)
                n += 1
            }
            return n
        }
    }
}

extension ReplicaStore {
    /// Writes a consistent copy of the database to `path` (SQLite's online backup), as a
    /// clerk's backup would be: data and Ferry's metadata together.
    public func backup(to path: String) throws {
        try? FileManager.default.removeItem(atPath: path)
        let copy = try DatabaseQueue(path: path)
        try pool.backup(to: copy)
        try copy.close()
    }

    /// Makes the database at `path` (a copy of another node's, restored on a replacement
    /// box) the database of `identity`, a node of the same unit: the replica's name changes,
    /// its cursors and epoch start over, and its data and versions stay as they are (the
    /// versions keep naming the node that wrote them). The hub, told the node restores,
    /// starts its cursor at the present, and anti-entropy brings over only what the copy lacks.
    public static func adopt(path: String, as identity: ReplicaIdentity) throws {
        let q = try DatabaseQueue(path: path)
        defer { try? q.close() }
        try q.write { db in
            guard let role = try String.fetchOne(db, sql: "SELECT value FROM ferry_state WHERE key = 'role'") else {
                throw StoreError.identityMismatch("\(path) is not a Ferry unit database")
            }
            guard role == roleText(identity.role) else {
                throw StoreError.identityMismatch(
                    "\(path) is the database of \(role.replacingOccurrences(of: "unit:", with: "unit ")), not of \(roleText(identity.role).replacingOccurrences(of: "unit:", with: "unit ")); restore a backup of this unit")
            }
            try db.execute(sql: "UPDATE ferry_state SET value = ? WHERE key = 'node'", arguments: [identity.node.rawValue])
            try db.execute(sql: "DELETE FROM ferry_state WHERE key IN ('app.epoch', 'app.pull_ack', 'app.last_sync_ok_at', 'app.last_error', 'app.last_error_zh')")
            // The cursor towards the hub stays: what the copy had sent, the hub has.
            try db.execute(sql: "DELETE FROM ferry_resend")
        }
    }
}
