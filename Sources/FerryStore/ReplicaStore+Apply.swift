import FerryCore
import Foundation
import GRDB
import GRDBSQLite

/// A row that cannot be applied as it arrived: it is set aside (quarantined), the rest of
/// the batch applies.
struct RowHeld: Error {
    var kind: HeldRow.Kind
    var column: String?
    var reason: String
    var reasonZh: String
}

extension DatabaseError {
    /// SQLite refused this row (a constraint, a type, a size), as opposed to the database
    /// being unavailable (busy, full, read-only, damaged), which fails the whole apply.
    var isRowProblem: Bool {
        [ResultCode.SQLITE_CONSTRAINT, .SQLITE_MISMATCH, .SQLITE_TOOBIG, .SQLITE_RANGE].contains(resultCode.primaryResultCode)
    }
}

extension ReplicaStore {
    // MARK: Apply

    /// Validates `changeset` against the standard and `sender`'s scope, then merges it in
    /// one transaction. A changeset that fails validation, or an error of the database
    /// itself, leaves the database exactly as it was. Applying the same changeset again
    /// changes nothing.
    ///
    /// With `quarantine`, a row that cannot be applied as it arrived — a value failing the
    /// standard's checks, a row this replica never held arriving without the columns it
    /// needs, a reference to a record the sender may not name, or one SQLite refuses — is set
    /// aside in `ferry_quarantine` with its reason, and the rest of the batch is applied, so
    /// one bad row never blocks a unit's later batches. Rows the sender should send whole
    /// are listed in `ApplyReport.resendWhole`.
    ///
    /// `authorship` says which versions the sender may author (see `Authorship`); the others
    /// are set aside unused and counted in `refusedVersions`.
    ///
    /// `source` names the peer the changeset came from. When that peer had acknowledged
    /// everything this replica held, whatever the apply changes came from it, so its cursor
    /// moves past the apply: a new node that pulls its unit's 100,000 rows does not push
    /// them all back on its next sync. (Sending them back would be harmless, only wasteful.)
    ///
    /// `sentBy` (by default `source`) names the peer that sent it, when known: a delete it
    /// sent is not sent back to it while the row stays as its push left it (`ferry_echo`),
    /// though its cursor stays where it was. The hub names the pushing node this way.
    @discardableResult
    public func apply(
        _ changeset: Changeset, sender: SenderScope, quarantine: Bool = false, from source: NodeID? = nil,
        sentBy: NodeID? = nil, authorship: Authorship = .any
    ) throws -> ApplyReport {
        let echoPeer = sentBy ?? source
        var changeset = changeset
        var rowsByTable: [String: [RowChange]] = [:]
        for t in changeset.tables { rowsByTable[t.name] = t.rows }
        let quarantined: [QuarantinedRow]
        do {
            quarantined = try changeset.check(against: standard, sender: sender, quarantineValues: quarantine)
        } catch {
            throw StoreError.rejected(error)
        }
        let held = Dictionary(grouping: quarantined, by: \.table)
        for (ti, t) in changeset.tables.enumerated() {
            guard let rows = held[t.name] else { continue }
            let drop = Set(rows.map(\.rowIndex))
            changeset.tables[ti].rows = t.rows.enumerated().filter { !drop.contains($0.offset) }.map(\.element)
        }
        let now = clock.nowMillis()
        let senderNode = changeset.origin
        // Where both sides hold one version with different values, whose value is right:
        // the replica that authored the version; for anyone else's, the hub's.
        let canonical: (CellVersion) -> Bool = { [identity] v in
            if case .hub = identity.role { return v.origin.node == senderNode.node }
            return v.origin.node != identity.node
        }
        return try applyTransaction { db, tx in
            var report = ApplyReport()
            for q in quarantined {
                let t = standard.table(named: q.table)!
                try hold(
                    db, t, row: rowsByTable[q.table]![q.rowIndex], origin: changeset.origin, standardVersion: changeset.standardVersion,
                    problem: RowHeld(kind: .value, column: q.column, reason: q.reason, reasonZh: q.reasonZh), value: q.value, now: now)
                report.quarantined += 1
            }
            _ = try stamp(db, tx)
            // After stamping, so a local write not yet sent makes the cursor stay put.
            var sourceCursor: Cursor?
            var seqBefore: Int64 = 0
            if let source {
                seqBefore = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM ferry_rows") ?? 0
                let c = try loadCursor(db, source)
                if c.base >= seqBefore { sourceCursor = c }
            }
            for sql in SchemaSQL.suppressCaptureWhileApplying { try db.execute(sql: sql) }
            var counters = try loadCounters(db)
            var open = try openQuarantine(db, sender: sender)
            var references = ReferenceCache()
            for tc in changeset.tables {
                let t = standard.table(named: tc.name)!
                let tableID = tableIDs[t.name]!
                for row in tc.rows {
                    report.rows += 1
                    try db.execute(sql: "SAVEPOINT ferry_row")
                    do {
                        try applyRow(
                            db, tx, t, tableID, row, sender: sender, echoPeer: echoPeer, authorship: authorship, canonical: canonical,
                            references: &references, counters: &counters, report: &report, now: now)
                        try db.execute(sql: "RELEASE ferry_row")
                        if !open.isEmpty, open.remove(QuarantineKey(table: t.name, key: row.key, scope: row.scope)) != nil {
                            try db.execute(
                                sql: "UPDATE ferry_quarantine SET status = 'superseded' WHERE status = 'held' AND tbl = ? AND pk = ? AND scope IS ?",
                                arguments: [t.name, Data(KeyEncoding.encode(row.key)), row.scope])
                        }
                    } catch let problem as RowHeld where quarantine {
                        try db.execute(sql: "ROLLBACK TO ferry_row")
                        try db.execute(sql: "RELEASE ferry_row")
                        try hold(db, t, row: row, origin: changeset.origin, standardVersion: changeset.standardVersion, problem: problem, value: nil, now: now)
                        report.quarantined += 1
                        if problem.kind == .incomplete { report.resendWhole.append(RowRef(table: t.name, key: row.key, scope: row.scope)) }
                    } catch let e as DatabaseError where quarantine && e.isRowProblem {
                        try db.execute(sql: "ROLLBACK TO ferry_row")
                        try db.execute(sql: "RELEASE ferry_row")
                        let problem = RowHeld(
                            kind: .unstorable, column: nil, reason: "the database refused the row: \(e.message ?? "\(e.resultCode)")",
                            reasonZh: "数据库拒绝保存该记录：\(e.message ?? "\(e.resultCode)")")
                        try hold(db, t, row: row, origin: changeset.origin, standardVersion: changeset.standardVersion, problem: problem, value: nil, now: now)
                        report.quarantined += 1
                    } catch let problem as RowHeld {
                        throw StoreError.incompleteRow(problem.reason)
                    }
                }
            }
            let maxClock = changeset.clockRange.upperBound
            if maxClock > .zero, case .bounded(let ahead) = counters.clock.observe(maxClock, now: try correctedNow(db)) {
                report.boundedClockAheadMillis = ahead
            }
            try saveCounters(db, counters)
            if let source, let c = sourceCursor {
                let after = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM ferry_rows") ?? 0
                if after > seqBefore { try saveCursor(db, source, base: after, progress: after, batches: c.batches) }
            }
            return report
        }
    }

    /// Runs an apply in one write transaction with Ferry's apply marker attached, so the
    /// database's guards stand down for this connection only (see `SchemaSQL.notApplying`).
    func applyTransaction<T>(_ body: (Database, Transaction) throws -> T) throws -> T {
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "ATTACH DATABASE ':memory:' AS \(SchemaSQL.applyMarker)")
            defer { try? db.execute(sql: "DETACH DATABASE \(SchemaSQL.applyMarker)") }
            var result: T?
            try db.inTransaction(.immediate) {
                let tx = Transaction(nodes: try nodes.table(db))
                do {
                    result = try body(db, tx)
                    let added = tx.nodes.takePending()
                    for (i, id) in added {
                        try db.execute(sql: "INSERT INTO ferry_nodes(idx, id) VALUES (?, ?)", arguments: [i, id.rawValue])
                    }
                    nodes.noteFlushed(added.count)
                    try tx.flushDigests(db)
                } catch {
                    tx.nodes.discardPending()
                    throw error
                }
                return .commit
            }
            return result!
        }
    }

    struct QuarantineKey: Hashable {
        var table: String
        var key: [Value]
        var scope: String?
    }

    /// Rows held for the sender's unit: applying one of them later supersedes the hold.
    func openQuarantine(_ db: Database, sender: SenderScope) throws -> Set<QuarantineKey> {
        var sql = "SELECT tbl, pk, scope FROM ferry_quarantine WHERE status = 'held'"
        var args: StatementArguments = []
        if case .unit(let u) = sender {
            sql += " AND scope = ?"
            args = [u]
        }
        var out = Set<QuarantineKey>()
        for r in try Row.fetchAll(db, sql: sql, arguments: args) {
            out.insert(QuarantineKey(table: r[0], key: try KeyEncoding.decode([UInt8](r[1] as Data)), scope: r[2]))
        }
        return out
    }

    /// Sets a row aside with its reason; a row already held is replaced by its newer image.
    func hold(
        _ db: Database, _ t: TableDefinition, row: RowChange, origin: NodeID, standardVersion: StandardVersion, problem: RowHeld,
        value: Value?, now: UInt64
    ) throws {
        // The whole row is kept (as a one-row changeset) so it can be applied once corrected.
        let image = Changeset(
            origin: origin, standardVersion: standardVersion, batch: BatchPosition(sequence: 0, through: 0, isFinal: true),
            tables: [TableChanges(name: t.name, rows: [row])])
        let pk = Data(KeyEncoding.encode(row.key))
        try db.execute(
            sql: """
                UPDATE ferry_quarantine SET origin = ?, col = ?, value = ?, reason = ?, reason_zh = ?, kind = ?, received_at = ?, row = ?
                WHERE status = 'held' AND tbl = ? AND pk = ? AND scope IS ?
                """,
            arguments: [
                origin.rawValue, problem.column ?? "", value?.databaseValue, problem.reason, problem.reasonZh, problem.kind.rawValue,
                Int64(now), Data(ChangesetCodec.encode(image)), t.name, pk, row.scope,
            ])
        guard db.changesCount == 0 else { return }
        try db.execute(
            sql: """
                INSERT INTO ferry_quarantine (tbl, pk, scope, origin, col, value, reason, reason_zh, kind, received_at, row)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                t.name, pk, row.scope, origin.rawValue, problem.column ?? "", value?.databaseValue, problem.reason, problem.reasonZh,
                problem.kind.rawValue, Int64(now), Data(ChangesetCodec.encode(image)),
            ])
    }

    /// Answers "does this hub row exist, and is it meant for this unit?" once per apply.
    struct ReferenceCache {
        var known: [String: Bool] = [:]
    }

    /// A unit may refer only to hub rows it received: a directive addressed to it (or to
    /// everyone), a course that exists. The hub holds every such row, so it checks.
    func checkHubReferences(_ db: Database, _ t: TableDefinition, _ row: RowChange, unit: String, cache: inout ReferenceCache) throws {
        for cell in row.cells {
            guard let value = cell.value, !value.isNull, let ref = t.column(named: cell.column)?.references,
                let target = standard.table(named: ref.table), case .hub(let recipient) = target.ownership
            else { continue }
            let cacheKey = "\(ref.table)\u{0}\(KeyEncoding.encode([value]))"
            if cache.known[cacheKey] == nil {
                var sql = "SELECT 1 FROM \(SchemaSQL.quote(target.name)) WHERE \(SchemaSQL.quote(ref.column)) = ?"
                var args: [Value] = [value]
                if let r = recipient {
                    sql += " AND (\(SchemaSQL.quote(r)) IS NULL OR \(SchemaSQL.quote(r)) = ?)"
                    args.append(.text(unit))
                }
                let stmt = try db.cachedStatement(sql: sql)
                let found = try stmt.firstRow(args)
                if found { sqlite3_reset(stmt.sqliteStatement) }
                cache.known[cacheKey] = found
            }
            if cache.known[cacheKey] == false {
                throw RowHeld(
                    kind: .reference, column: cell.column,
                    reason: "\(t.name).\(cell.column) names \(ref.table) \(value), which does not exist or is not addressed to this unit",
                    reasonZh: "\(t.chineseName(of: cell.column))引用的\(standard.table(named: ref.table)?.chineseName ?? ref.table) \(value) 不存在或不是下发给本单位的")
            }
        }
    }

    func applyRow(
        _ db: Database, _ tx: Transaction, _ t: TableDefinition, _ tableID: Int, _ row: RowChange, sender: SenderScope,
        echoPeer: NodeID? = nil, authorship: Authorship, canonical: (CellVersion) -> Bool, references: inout ReferenceCache,
        counters: inout Counters, report: inout ApplyReport, now: UInt64
    ) throws {
        let storage = storageKey(t, key: row.key, scope: row.scope)
        let pk = KeyEncoding.encode(storage)
        let meta = try loadMeta(db, table: tableID, pk: pk, nodes: tx.nodes)
        if row.flags.contains(.leave) {
            // Only from a hub (validation refuses it from a unit): the row is no longer ours.
            guard meta != nil else { return }
            try forgetRow(db, t, table: tableID, pk: pk, storage: storage, meta: meta, tx: tx)
            report.rowsLeft += 1
            return
        }
        if case .unit = sender, let m = meta, m.scope != row.scope {
            // Only reachable at a node's peer that stores rows by key alone.
            throw StoreError.rejected(
                CoreError(.outOfScope, "table '\(t.name)', row (\(row.key.map(\.description).joined(separator: ", "))) belongs to another unit"))
        }
        if case .unit(let u) = sender, !row.isDeleted { try checkHubReferences(db, t, row, unit: u, cache: &references) }
        let plan = RowMerge.plan(local: meta?.localRow(t), incoming: row, policy: t.policy, authorship: authorship)
        report.refusedVersions += plan.refused.count
        let implied = impliedColumns(t)

        // Anti-entropy: the same version, a different value.
        var repaired = false
        if row.flags.contains(.repair), !row.isDeleted, let m = meta, m.exists, try readValues(db, t, storage: storage, columns: []) == nil {
            // The data row is gone but its metadata says it lives (a delete that bypassed
            // capture, a damaged page): put it back as the peer holds it.
            var columns = storageKeyColumns(t)
            var values = storage
            if let s = t.scopeColumn, !columns.contains(s), let scope = row.scope {
                columns.append(s)
                values.append(.text(scope))
            }
            let refused = Set(plan.refused.map(\.column))
            for c in row.cells where !columns.contains(c.column) && !refused.contains(c.column) {
                columns.append(c.column)
                values.append(c.value ?? .null)
            }
            if let missing = t.columns.first(where: { !$0.nullable && $0.defaultValue == nil && !columns.contains($0.name) }) {
                throw RowHeld(
                    kind: .incomplete, column: missing.name, reason: "table '\(t.name)': the row to repair lacks column '\(missing.name)'",
                    reasonZh: "待修复的记录缺少字段 \(t.chineseName(of: missing.name))")
            }
            try db.cachedStatement(
                sql: "INSERT INTO \(SchemaSQL.quote(t.name)) (\(columns.map(SchemaSQL.quote).joined(separator: ", "))) VALUES (\(columns.map { _ in "?" }.joined(separator: ", ")))"
            ).run(values)
            report.repairedCells += row.cells.count
            repaired = true
        }
        if !plan.repairs.isEmpty, meta?.exists == true, !repaired {
            let idx = plan.repairs.map { t.columnIndex(named: $0.column)! }
            if let current = try readValues(db, t, storage: storage, columns: idx) {
                var sets: [(String, Value)] = []
                // An append-only value never changes once written, so two values under one
                // version mean one side's data was changed past the guards (which refuse
                // every update and stamp no version for it): the hub's stored value is the
                // record. The hub keeps it, a unit takes it, whoever authored the version.
                let isHub: Bool = { if case .hub = identity.role { return true } else { return false } }()
                for (n, c) in plan.repairs.enumerated() where current[n] != c.value && (t.policy == .appendOnly ? !isHub : canonical(c.version)) {
                    if case .masked = t.columns[idx[n]].classification, RowDigest.compared(current[n], column: t.columns[idx[n]]) == c.value {
                        continue  // the unit's real value behind the hub's masked one: both are right
                    }
                    sets.append((c.column, c.value!))
                }
                if !sets.isEmpty {
                    try db.cachedStatement(
                        sql: "UPDATE \(SchemaSQL.quote(t.name)) SET \(sets.map { "\(SchemaSQL.quote($0.0)) = ?" }.joined(separator: ", ")) WHERE \(whereKey(t))"
                    ).run(sets.map(\.1) + storage)
                    report.repairedCells += sets.count
                    repaired = true
                }
            }
        }
        guard plan.changesState || repaired || !plan.lostIncoming.isEmpty || !plan.lostLocal.isEmpty else { return }

        // Keep every losing value before anything is overwritten.
        if !plan.lostLocal.isEmpty {
            let allColumns = Array(t.columns.indices)
            let image = try readValues(db, t, storage: storage, columns: allColumns)
            let rowImage = image.map { KeyEncoding.encode($0) }
            for lost in plan.lostLocal {
                guard let image, let ci = t.columnIndex(named: lost.column), !implied.contains(ci) else { continue }
                let incomingValue = row.cells.first { $0.column == lost.column }?.value
                if incomingValue == image[ci] { continue }  // same value: nothing was lost
                let whole = lost.kind == .deletedByPeer || lost.kind == .replacedByReinsert
                report.conflictsLogged += try logConflict(
                    db, t, pk, column: lost.column, kind: lost.kind, value: image[ci], lost: lost.version,
                    winner: lost.winner, now: now, rowImage: whole ? rowImage : nil)
            }
        }
        for lost in plan.lostIncoming {
            guard let value = lost.cell.value, let ci = t.columnIndex(named: lost.cell.column), !implied.contains(ci) else { continue }
            if lost.kind == .concurrentEdit, let current = try readValues(db, t, storage: storage, columns: [ci]), current[0] == value {
                continue
            }
            report.conflictsLogged += try logConflict(
                db, t, pk, column: lost.cell.column, kind: lost.kind, value: value, lost: lost.cell.version,
                winner: lost.winner, now: now, rowImage: nil)
        }
        guard plan.changesState || repaired else { return }

        let quotedTable = SchemaSQL.quote(t.name)
        switch plan.action {
        case .none: break
        case .delete:
            try db.cachedStatement(sql: "DELETE FROM \(quotedTable) WHERE \(whereKey(t))").run(storage)
            report.rowsDeleted += 1
        case .insert:
            var columns = storageKeyColumns(t)
            var values = storage
            if let s = t.scopeColumn, !columns.contains(s), !plan.adopt.contains(where: { $0.column == s }), let scope = row.scope {
                columns.append(s)
                values.append(.text(scope))
            }
            for c in plan.adopt where !columns.contains(c.column) {
                columns.append(c.column)
                values.append(c.value ?? .null)
            }
            for c in t.columns where !c.nullable && c.defaultValue == nil && !columns.contains(c.name) {
                throw RowHeld(
                    kind: .incomplete, column: c.name,
                    reason: "table '\(t.name)', row (\(row.key.map(\.description).joined(separator: ", "))) arrived without column '\(c.name)', which is required; asked the sender for the whole row",
                    reasonZh: "记录缺少必填字段 \(t.chineseName(of: c.name))，已请求对方重新发送完整记录")
            }
            let sql = "INSERT INTO \(quotedTable) (\(columns.map(SchemaSQL.quote).joined(separator: ", "))) VALUES (\(columns.map { _ in "?" }.joined(separator: ", ")))"
            try db.cachedStatement(sql: sql).run(values)
            report.rowsInserted += 1
            report.cellsAdopted += plan.adopt.count
        case .update, .replace:
            let keyColumns = Set(storageKeyColumns(t))
            let adopt = plan.adopt.filter { !keyColumns.contains($0.column) && !(implied.contains(t.columnIndex(named: $0.column)!)) }
            if t.keepsHistory, case .hub = identity.role, !adopt.isEmpty,
                let before = try readValues(db, t, storage: storage, columns: adopt.map { t.columnIndex(named: $0.column)! })
            {
                // Keep what each correction replaced (a concurrent loser is in the log already).
                let lost = Set(plan.lostLocal.map(\.column))
                for (n, c) in adopt.enumerated() where before[n] != c.value && !lost.contains(c.column) {
                    guard let old = meta?.cells[t.columnIndex(named: c.column)!]?.version else { continue }
                    _ = try logConflict(db, t, pk, column: c.column, kind: .superseded, value: before[n], lost: old, winner: c.version, now: now, rowImage: nil)
                }
            }
            if !adopt.isEmpty {
                let sets = adopt.map { "\(SchemaSQL.quote($0.column)) = ?" }.joined(separator: ", ")
                try db.cachedStatement(sql: "UPDATE \(quotedTable) SET \(sets) WHERE \(whereKey(t))")
                    .run(adopt.map { $0.value ?? .null } + storage)
            }
            report.cellsAdopted += plan.adopt.count
        }

        // New metadata: adopted cells take a fresh local sequence so they travel on.
        var next = meta ?? RowMeta(causalLength: plan.causalLength, seq: 0, scope: row.scope, cells: [:])
        if plan.changesState {
            let seq = counters.nextSeq
            counters.nextSeq += 1
            var cells: [Int: RowMeta.StoredCell] = [:]
            let adopted = Set(plan.adopt.map(\.column))
            for (column, version) in plan.versions {
                guard let i = t.columnIndex(named: column) else { continue }
                let old = meta?.cells[i]
                let changed = adopted.contains(column) || old?.version != version
                cells[i] = RowMeta.StoredCell(version: version, seq: changed ? seq : (old?.seq ?? seq))
            }
            next = RowMeta(causalLength: plan.causalLength, seq: seq, scope: row.scope ?? meta?.scope, cells: cells)
            // A delete the peer sent, now held exactly as it sent it (its causal length and
            // every version): not sent back to it (`rowChange`).
            if let echoPeer, !next.exists, next.causalLength == row.causalLength,
                Self.sameVersions(next, row, t)
            {
                try db.cachedStatement(sql: "INSERT OR REPLACE INTO ferry_echo(peer, tbl, pk, seq) VALUES (?, ?, ?, ?)")
                    .execute(arguments: [echoPeer.rawValue, tableID, Data(pk), seq])
            }
        }
        next.fingerprint = try fingerprint(db, t, storage: storage, meta: next)
        try saveMeta(db, table: tableID, pk: pk, meta: next, before: meta, tx: tx)
    }

    /// True when `meta` holds exactly the versions `row` carried, no more and no fewer.
    static func sameVersions(_ meta: RowMeta, _ row: RowChange, _ t: TableDefinition) -> Bool {
        guard meta.cells.count == row.cells.count else { return false }
        return row.cells.allSatisfy { c in t.columnIndex(named: c.column).flatMap { meta.cells[$0]?.version } == c.version }
    }

    func logConflict(
        _ db: Database, _ t: TableDefinition, _ pk: [UInt8], column: String, kind: ConflictKind, value: Value,
        lost: CellVersion, winner: CellVersion?, now: UInt64, rowImage: [UInt8]?
    ) throws -> Int {
        let status: ConflictStatus =
            kind == .superseded ? .history : (t.policy == .review || t.policy == .appendOnly) && kind == .concurrentEdit ? .held : .overwritten
        try db.execute(
            sql: """
                INSERT OR IGNORE INTO ferry_conflicts
                  (tbl, pk, col, kind, status, policy, lost_value, lost_origin, lost_clock, winner_origin, winner_clock, recorded_at, row_image)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                t.name, Data(pk), column, kind.rawValue, status.rawValue, t.policy.rawValue, value.databaseValue,
                lost.origin.rawValue, Int64(bitPattern: lost.clock.rawValue), winner?.origin.rawValue,
                winner.map { Int64(bitPattern: $0.clock.rawValue) }, Int64(now), rowImage.map { Data($0) },
            ])
        return db.changesCount
    }
}
