import FerryCore
import Foundation
import GRDB

/// What the supervisor's view needs from a replica beyond syncing: a consistent read
/// snapshot for computing indicators, the unit a logged conflict belongs to, the value a
/// cell holds now, and settling quarantined rows.
extension ReplicaStore {
    /// Runs `body` in one read snapshot of the replica (never blocks writers in WAL mode).
    public func read<T>(_ body: (Database) throws -> T) throws -> T {
        try pool.read(body)
    }

    /// The highest change sequence given out so far: a watermark for incremental readers.
    public func latestChangeSequence() throws -> Int64 {
        try pool.read { db in try Int64.fetchOne(db, sql: "SELECT max(seq) FROM ferry_rows") ?? 0 }
    }

    /// (table, scope) pairs of rows changed after `sequence`; the scope is the unit a row
    /// belongs to, nil for reference data.
    public func changedScopes(after sequence: Int64) throws -> [(table: String, scope: String?)] {
        try pool.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT DISTINCT t.name, r.scope FROM ferry_rows r JOIN ferry_tables t ON t.id = r.tbl WHERE r.seq > ?",
                arguments: [sequence]
            ).map { ($0[0], $0[1]) }
        }
    }

    /// The unit each of the given conflicts' rows belongs to (absent for reference data).
    public func scopes(ofConflicts ids: [Int64]) throws -> [Int64: String] {
        try pool.read { db in
            var out: [Int64: String] = [:]
            for r in try Row.fetchAll(
                db,
                sql: """
                    SELECT c.id, r.scope FROM ferry_conflicts c JOIN ferry_tables t ON t.name = c.tbl
                    JOIN ferry_rows r ON r.tbl = t.id AND r.pk = c.pk WHERE r.scope IS NOT NULL
                    """)
            {
                out[r[0]] = r[1]
            }
            let wanted = Set(ids)
            return out.filter { wanted.contains($0.key) }
        }
    }

    /// The value `column` of the row `key` (of unit `scope`, at a hub) holds now; nil when
    /// the row does not exist.
    public func currentValue(table: String, key: [Value], scope: String? = nil, column: String) throws -> Value? {
        guard let t = standard.table(named: table), let id = tableIDs[table], let ci = t.columnIndex(named: column) else { return nil }
        return try pool.read { db in
            try readValues(db, t, storage: try inspectedStorageKey(db, t, tableID: id, key: key, scope: scope), columns: [ci])?.first
        }
    }

    /// Settles a conflict with a new value chosen by a supervisor: the value is written as
    /// this replica's own edit (so it syncs like any other) and the conflict is marked
    /// `resolved`, in one transaction.
    public func resolve(conflict id: Int64, with value: Value) throws {
        let now = clock.nowMillis()
        try write { db, _ in
            guard let r = try Row.fetchOne(db, sql: "SELECT tbl, pk, col, status FROM ferry_conflicts WHERE id = ?", arguments: [id]),
                let t = standard.table(named: r[0]), ["held", "overwritten"].contains(r[3] as String)
            else { throw StoreError.noSuchConflict(id) }
            let storage = try KeyEncoding.decode([UInt8](r[1] as Data))
            do {
                try db.execute(
                    sql: "UPDATE \(SchemaSQL.quote(t.name)) SET \(SchemaSQL.quote(r[2] as String)) = ? WHERE \(whereKey(t))",
                    arguments: StatementArguments([value.databaseValue] + storage.map(\.databaseValue)))
            } catch let e as DatabaseError where e.isRowProblem {
                // The database's own rules refuse the value (a guard, a reference): a decision to
                // change, not a failure to retry.
                throw StoreError.cannotRestore(table: t.name, key: splitStorageKey(t, storage).key, reason: e.message ?? "\(e.resultCode)")
            }
            guard db.changesCount > 0 else { throw StoreError.noSuchConflict(id) }
            try db.execute(sql: "UPDATE ferry_conflicts SET status = 'resolved', settled_at = ? WHERE id = ?", arguments: [Int64(now), id])
        }
    }

    /// Settles a quarantined row.
    ///
    /// With a `correction`, the held row is applied as its unit sent it but with the
    /// corrected value, and the correction is then written again as this replica's own edit.
    /// That edit is causally after the unit's version, so it replaces the bad value at the
    /// unit too. Without one (discard), the row is deleted here with a delete that knows none
    /// of the unit's values: the unit removes the row too and keeps its values in its
    /// conflict log, where the clerk can see them and put them back corrected.
    public func settleQuarantine(_ id: Int64, correction: Value?) throws {
        guard
            let held = try pool.read({ db in
                try Row.fetchOne(db, sql: "SELECT row, col, scope, status FROM ferry_quarantine WHERE id = ?", arguments: [id])
            }), (held[3] as String) == "held"
        else { throw StoreError.noSuchQuarantine(id) }
        var cs = try ChangesetCodec.decode([UInt8](held[0] as Data))
        let column: String = held[1]
        let scope: String? = held[2]
        guard let table = cs.tables.first, let t = standard.table(named: table.name), let row = table.rows.first, let tableID = tableIDs[t.name]
        else { throw StoreError.noSuchQuarantine(id) }
        let storage = storageKey(t, key: row.key, scope: scope)
        var correction = correction
        if correction == nil, let ci = t.columnIndex(named: column),
            let current = try pool.read({ db in try readValues(db, t, storage: storage, columns: [ci]) })
        {
            // The hub holds the row (the held change was an edit of it): discarding the edit
            // means the hub's value stands, written over the unit's so the unit takes it too.
            correction = current[0]
        }
        guard let correction else {
            let now = clock.nowMillis()
            try write { db, tx in
                let pk = KeyEncoding.encode(storage)
                let meta = try loadMeta(db, table: tableID, pk: pk, nodes: tx.nodes)
                let cl = max(meta?.causalLength ?? 0, row.causalLength)
                if cl % 2 == 1 {
                    var counters = try loadCounters(db)
                    let seq = counters.nextSeq
                    counters.nextSeq += 1
                    var tomb = RowMeta(causalLength: cl + 1, seq: seq, scope: scope, cells: [:])
                    tomb.fingerprint = tomb.computeFingerprint(t, key: row.key, values: nil)
                    try saveMeta(db, table: tableID, pk: pk, meta: tomb, before: meta, tx: tx)
                    try saveCounters(db, counters)
                }
                try db.execute(sql: "UPDATE ferry_quarantine SET status = 'discarded', received_at = ? WHERE id = ? AND status = 'held'", arguments: [Int64(now), id])
            }
            return
        }
        guard let ci = t.columnIndex(named: column) else {
            throw StoreError.rejected(CoreError(.unknownColumn, "the held row's problem is not in one column; discard it instead"))
        }
        if let problem = t.columns[ci].problem(with: correction) {
            throw StoreError.rejected(CoreError(problem.code, "\(t.name).\(column): \(problem.english)"))
        }
        guard let bit = t.syncedColumnIndices.firstIndex(of: ci) else { return }
        var fixed = row
        fixed.cells = row.cells.map { $0.column == column ? CellChange(column: column, value: correction, version: $0.version) : $0 }
        cs.tables = [TableChanges(name: t.name, rows: [fixed])]
        let report = try apply(cs, sender: scope.map { SenderScope.unit($0) } ?? .trusted, quarantine: true)
        guard report.quarantined == 0 else {
            throw StoreError.rejected(CoreError(.notAllowed, "the corrected row still cannot be stored; see the quarantine list for why"))
        }
        try write { db, _ in
            if try readValues(db, t, storage: storage, columns: [ci]) != nil {
                // The value is already in place, so an UPDATE would not fire the column's
                // capture trigger; record the capture row that trigger would have written.
                let keys = (0..<4).map { $0 < row.key.count ? row.key[$0].databaseValue : DatabaseValue.null }
                try db.execute(
                    sql: "INSERT INTO ferry_capture (tbl, op, mask, scope, at, k1, k2, k3, k4) VALUES (?, 2, ?, ?, ?, ?, ?, ?, ?)",
                    arguments: StatementArguments(
                        [tableID.databaseValue, (Int64(1) << Int64(bit)).databaseValue, row.scope.databaseValue, Int64(clock.nowMillis()).databaseValue]
                            + keys))
            }
            try db.execute(sql: "UPDATE ferry_quarantine SET status = 'corrected' WHERE id = ?", arguments: [id])
        }
    }
}
