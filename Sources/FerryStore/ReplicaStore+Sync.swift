import FerryCore
import Foundation
import GRDB
import GRDBSQLite

extension ReplicaStore {
    // MARK: Extraction

    /// The next batch of changes `peer` has not acknowledged, at most about `maxBytes`
    /// of values (a single row larger than that travels alone). `nil` when there is
    /// nothing to send.
    ///
    /// Each row carries the latest version of every cell that changed since the peer's
    /// last complete acknowledgement, so ten edits of one cell ship once.
    public func extract(for peer: Peer, maxBytes: Int = 256 * 1024) throws -> Changeset? {
        try write { db, nodes in
            _ = try stamp(db, nodes)
            let cursor = try loadCursor(db, peer.id)
            var tables: [String: [RowChange]] = [:]
            var tableOrder: [String] = []
            var bytes = 0
            var through = cursor.progress
            var reachedEnd = true
            let rowsStmt: Statement
            switch peer.direction {
            case .downstream(unit: let u?):
                rowsStmt = try db.cachedStatement(
                    sql: "SELECT tbl, pk, scope, cl, seq, cells FROM ferry_rows WHERE seq > ? AND (scope = ? OR scope IS NULL) ORDER BY seq")
                try rowsStmt.setArguments([cursor.progress, u])
            default:
                rowsStmt = try db.cachedStatement(
                    sql: "SELECT tbl, pk, scope, cl, seq, cells FROM ferry_rows WHERE seq > ? ORDER BY seq")
                try rowsStmt.setArguments([cursor.progress])
            }
            let rows = try Row.fetchCursor(rowsStmt)
            while let r = try rows.next() {
                if bytes >= maxBytes {
                    reachedEnd = false
                    break
                }
                let seq: Int64 = r[4]
                through = seq
                let tableID: Int = r[0]
                guard let t = tablesByID[tableID], t.isSynced else { continue }
                if !includes(t, scope: r[2], for: peer) { continue }
                let pkBytes = [UInt8](r[1] as Data)
                let meta = RowMeta(
                    causalLength: UInt32(r[3] as Int64), seq: seq, scope: r[2],
                    cells: try RowMeta.decodeCells([UInt8](r[5] as Data), nodes))
                guard let change = try rowChange(db, t, pkBytes, meta, base: cursor.base, for: peer) else { continue }
                bytes += Self.estimatedSize(change)
                if tables[t.name] == nil { tableOrder.append(t.name) }
                tables[t.name, default: []].append(change)
            }
            if tables.isEmpty {
                // Nothing the peer needs: move its cursor past what was looked at.
                if through > cursor.progress || (reachedEnd && cursor.base < through) {
                    try saveCursor(db, peer.id, base: reachedEnd ? through : cursor.base, progress: through, batches: cursor.batches)
                }
                return nil
            }
            let sequence = cursor.batches + 1
            try saveCursor(db, peer.id, base: cursor.base, progress: cursor.progress, batches: sequence)
            return Changeset(
                origin: identity.node, standardVersion: standard.version,
                batch: BatchPosition(sequence: UInt64(sequence), through: UInt64(through), isFinal: reachedEnd),
                tables: tableOrder.map { TableChanges(name: $0, rows: tables[$0]!) })
        }
    }

    func includes(_ t: TableDefinition, scope: String?, for peer: Peer) -> Bool {
        switch (peer.direction, t.ownership) {
        case (_, .local): return false
        case (.upstream, .hub): return false  // reference data flows down only
        case (.upstream, _): return true
        case (.downstream(unit: nil), _): return true
        case (.downstream(unit: let u?), .unit): return scope == u
        case (.downstream(unit: let u?), .hub(let recipient)): return recipient == nil || scope == nil || scope == u
        }
    }

    func rowChange(
        _ db: Database, _ t: TableDefinition, _ pk: [UInt8], _ meta: RowMeta, base: Int64, for peer: Peer
    ) throws -> RowChange? {
        let key = try KeyEncoding.decode(pk)
        if !meta.exists {
            let cells = meta.cells.keys.sorted().map { i in
                CellChange(column: t.columns[i].name, value: nil, version: meta.cells[i]!.version)
            }
            return RowChange(key: key, scope: meta.scope, causalLength: meta.causalLength, cells: cells)
        }
        var wanted: [Int] = []
        // Key columns and a unit row's unit travel once, in the row's header (key, scope).
        let implied = Set(t.primaryKeyIndices + (t.isUnitWritable ? t.scopeColumn.flatMap(t.columnIndex(named:)).map { [$0] } ?? [] : []))
        for i in meta.cells.keys.sorted() {
            let c = meta.cells[i]!
            guard c.seq > base, c.version.origin != peer.id, !implied.contains(i) else { continue }
            let col = t.columns[i]
            switch (col.classification, peer.direction) {
            case (.local, _): continue
            case (.masked, .downstream): continue
            default: wanted.append(i)
            }
        }
        guard !wanted.isEmpty else { return nil }
        let values = try readValues(db, t, key: key, columns: wanted)
        guard let values else {
            throw StoreError.corruptMetadata("table \(t.name) row \(key) is live in sync metadata but missing from the table")
        }
        var cells: [CellChange] = []
        for (n, i) in wanted.enumerated() {
            var v = values[n]
            if case .masked(let rule) = t.columns[i].classification { v = rule.apply(to: v) }
            cells.append(CellChange(column: t.columns[i].name, value: v, version: meta.cells[i]!.version))
        }
        return RowChange(key: key, scope: meta.scope, causalLength: meta.causalLength, cells: cells)
    }

    func whereKey(_ t: TableDefinition) -> String {
        t.primaryKey.map { "\(SchemaSQL.quote($0)) = ?" }.joined(separator: " AND ")
    }

    func readValues(_ db: Database, _ t: TableDefinition, key: [Value], columns: [Int]) throws -> [Value]? {
        let cols = columns.map { SchemaSQL.quote(t.columns[$0].name) }.joined(separator: ", ")
        let stmt = try db.cachedStatement(sql: "SELECT \(cols) FROM \(SchemaSQL.quote(t.name)) WHERE \(whereKey(t))")
        guard try stmt.firstRow(key) else { return nil }
        defer { sqlite3_reset(stmt.sqliteStatement) }
        return (0..<columns.count).map { stmt.columnValue(Int32($0)) }
    }

    static func estimatedSize(_ r: RowChange) -> Int {
        var n = 8
        for v in r.key { n += size(v) }
        for c in r.cells { n += 4 + (c.value.map(size) ?? 0) }
        return n
    }

    static func size(_ v: Value) -> Int {
        switch v {
        case .null: return 1
        case .integer: return 5
        case .real: return 9
        case .text(let s): return 2 + s.utf8.count
        case .blob(let b): return 2 + b.count
        }
    }

    // MARK: Cursors

    struct Cursor {
        var base: Int64
        var progress: Int64
        var batches: Int64
    }

    func loadCursor(_ db: Database, _ peer: NodeID) throws -> Cursor {
        guard let r = try Row.fetchOne(db, sql: "SELECT base, progress, batches FROM ferry_peers WHERE peer = ?", arguments: [peer.rawValue]) else {
            return Cursor(base: 0, progress: 0, batches: 0)
        }
        return Cursor(base: r[0], progress: r[1], batches: r[2])
    }

    func saveCursor(_ db: Database, _ peer: NodeID, base: Int64, progress: Int64, batches: Int64) throws {
        try db.execute(
            sql: """
                INSERT INTO ferry_peers(peer, base, progress, batches) VALUES (?, ?, ?, ?)
                ON CONFLICT(peer) DO UPDATE SET base = excluded.base, progress = excluded.progress, batches = excluded.batches
                """,
            arguments: [peer.rawValue, base, progress, batches])
    }

    /// Forgets what `peer` acknowledged, so everything is sent again (after the peer moved to
    /// a newer standard it must receive the columns it could not store before; merging is
    /// idempotent, so the resend is harmless).
    public func resetCursor(for peer: NodeID) throws {
        try write { db, _ in try db.execute(sql: "UPDATE ferry_peers SET base = 0, progress = 0 WHERE peer = ?", arguments: [peer.rawValue]) }
    }

    /// Records that `peer` durably applied the batch at `position`. Acknowledging an old or
    /// repeated batch changes nothing.
    public func acknowledge(_ position: BatchPosition, from peer: NodeID) throws {
        try write { db, _ in
            let c = try loadCursor(db, peer)
            let through = Int64(position.through)
            guard through >= c.progress else { return }
            let base = position.isFinal ? max(c.base, through) : c.base
            try saveCursor(db, peer, base: base, progress: through, batches: c.batches)
            try db.execute(
                sql: "UPDATE ferry_peers SET acknowledged_at = ? WHERE peer = ?",
                arguments: [Int64(clock.nowMillis()), peer.rawValue])
        }
    }

    /// How many rows hold changes `peer` has not acknowledged and would be sent (captured
    /// writes not yet stamped count one each).
    public func pendingRows(for peer: Peer) throws -> Int {
        try write { db, nodes in
            let c = try loadCursor(db, peer.id)
            let captured = try Int.fetchOne(db, sql: "SELECT count(*) FROM ferry_capture") ?? 0
            var rows = 0
            let cursor = try Row.fetchCursor(db, sql: "SELECT tbl, scope, cl, cells FROM ferry_rows WHERE seq > ?", arguments: [c.progress])
            while let r = try cursor.next() {
                guard let t = tablesByID[r[0]], includes(t, scope: r[1], for: peer) else { continue }
                if (r[2] as Int64) % 2 == 0 {
                    rows += 1
                    continue
                }
                let cells = try RowMeta.decodeCells([UInt8](r[3] as Data), nodes)
                if cells.contains(where: { i, cell in cell.seq > c.base && cell.version.origin != peer.id && t.columns[i].isSynced }) {
                    rows += 1
                }
            }
            return rows + captured
        }
    }

    // MARK: Apply

    /// Validates `changeset` against the standard and `sender`'s scope, then merges it in
    /// one transaction. A changeset that fails validation, or any error during the merge,
    /// leaves the database exactly as it was. Applying the same changeset again changes
    /// nothing.
    ///
    /// With `quarantine`, a row whose values fail the standard's checks is set aside in
    /// `ferry_quarantine` with its reason, and the rest of the batch is applied (the hub does
    /// this, so one bad value never blocks a unit's later batches).
    ///
    /// `source` names the peer the changeset came from. When that peer had acknowledged
    /// everything this replica held, whatever the apply changes came from it, so its cursor
    /// moves past the apply: a new node that pulls its unit's 100,000 rows does not push
    /// them all back on its next sync. (Sending them back would be harmless, only wasteful.)
    @discardableResult
    public func apply(_ changeset: Changeset, sender: SenderScope, quarantine: Bool = false, from source: NodeID? = nil) throws -> ApplyReport {
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
        return try write { db, nodes in
            for q in quarantined {
                // The whole row is kept (as a one-row changeset) so it can be re-applied once corrected.
                let original = Changeset(
                    origin: changeset.origin, standardVersion: changeset.standardVersion, batch: changeset.batch,
                    tables: [TableChanges(name: q.table, rows: [rowsByTable[q.table]![q.rowIndex]])])
                try db.execute(
                    sql: "INSERT INTO ferry_quarantine (tbl, pk, scope, origin, col, value, reason, received_at, row) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    arguments: [
                        q.table, Data(KeyEncoding.encode(q.key)), q.scope, changeset.origin.rawValue, q.column, q.value.databaseValue,
                        q.reason, Int64(now), Data(ChangesetCodec.encode(original)),
                    ])
            }
            _ = try stamp(db, nodes)
            // After stamping, so a local write not yet sent makes the cursor stay put.
            var sourceCursor: Cursor?
            var seqBefore: Int64 = 0
            if let source {
                seqBefore = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM ferry_rows") ?? 0
                let c = try loadCursor(db, source)
                if c.base >= seqBefore { sourceCursor = c }
            }
            for sql in SchemaSQL.suppressCaptureWhileApplying { try db.execute(sql: sql) }
            try db.execute(sql: "INSERT INTO ferry_applying(active) VALUES (1)")
            try db.execute(sql: "INSERT INTO temp.ferry_applying_here(active) VALUES (1)")
            var counters = try loadCounters(db)
            var report = ApplyReport()
            for tc in changeset.tables {
                let t = standard.table(named: tc.name)!
                let tableID = tableIDs[t.name]!
                for row in tc.rows {
                    report.rows += 1
                    try applyRow(db, nodes, t, tableID, row, sender: sender, counters: &counters, report: &report, now: now)
                }
            }
            let maxClock = changeset.clockRange.upperBound
            if maxClock > .zero, case .bounded(let ahead) = counters.clock.observe(maxClock, now: now) {
                report.boundedClockAheadMillis = ahead
            }
            try saveCounters(db, counters)
            try db.execute(sql: "DELETE FROM ferry_applying")
            try db.execute(sql: "DELETE FROM temp.ferry_applying_here")
            if let source, let c = sourceCursor {
                let after = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM ferry_rows") ?? 0
                if after > seqBefore { try saveCursor(db, source, base: after, progress: after, batches: c.batches) }
            }
            report.quarantined = quarantined.count
            return report
        }
    }

    func applyRow(
        _ db: Database, _ nodes: NodeTable, _ t: TableDefinition, _ tableID: Int, _ row: RowChange,
        sender: SenderScope, counters: inout Counters, report: inout ApplyReport, now: UInt64
    ) throws {
        let pk = KeyEncoding.encode(row.key)
        let meta = try loadMeta(db, table: tableID, pk: pk, nodes: nodes)
        if case .unit = sender, let m = meta, m.scope != row.scope {
            throw StoreError.rejected(
                CoreError(.outOfScope, "table '\(t.name)', row (\(row.key.map(\.description).joined(separator: ", "))) belongs to unit '\(m.scope ?? "none")'"))
        }
        let plan = RowMerge.plan(local: meta?.localRow(t), incoming: row, policy: t.policy)
        guard plan.changesState || !plan.lostIncoming.isEmpty || !plan.lostLocal.isEmpty else { return }

        // Keep every losing value before anything is overwritten.
        if !plan.lostLocal.isEmpty {
            let idx = plan.lostLocal.map { t.columnIndex(named: $0.column)! }
            let values = try readValues(db, t, key: row.key, columns: idx)
            for (n, lost) in plan.lostLocal.enumerated() {
                guard let values else { break }
                let incomingValue = row.cells.first { $0.column == lost.column }?.value
                if incomingValue == values[n] { continue }  // same value: nothing was lost
                report.conflictsLogged += try logConflict(
                    db, t, pk, column: lost.column, kind: lost.kind, value: values[n], lost: lost.version,
                    winner: lost.winner, now: now)
            }
        }
        for lost in plan.lostIncoming {
            guard let value = lost.cell.value else { continue }
            if lost.kind == .concurrentEdit, let current = try readValues(db, t, key: row.key, columns: [t.columnIndex(named: lost.cell.column)!]),
                current[0] == value
            {
                continue
            }
            report.conflictsLogged += try logConflict(
                db, t, pk, column: lost.cell.column, kind: lost.kind, value: value, lost: lost.cell.version,
                winner: lost.winner, now: now)
        }
        guard plan.changesState else { return }

        let quotedTable = SchemaSQL.quote(t.name)
        switch plan.action {
        case .none: break
        case .delete:
            try db.cachedStatement(sql: "DELETE FROM \(quotedTable) WHERE \(whereKey(t))").run(row.key)
            report.rowsDeleted += 1
        case .insert:
            var columns = t.primaryKey
            var values = row.key
            if let s = t.scopeColumn, !columns.contains(s), !plan.adopt.contains(where: { $0.column == s }), let scope = row.scope {
                columns.append(s)
                values.append(.text(scope))
            }
            for c in plan.adopt where !columns.contains(c.column) {
                columns.append(c.column)
                values.append(c.value ?? .null)
            }
            for c in t.columns where !c.nullable && c.defaultValue == nil && !columns.contains(c.name) {
                throw StoreError.incompleteRow(
                    "table '\(t.name)', row (\(row.key.map(\.description).joined(separator: ", "))) arrived without column '\(c.name)', which is required")
            }
            let sql = "INSERT INTO \(quotedTable) (\(columns.map(SchemaSQL.quote).joined(separator: ", "))) VALUES (\(columns.map { _ in "?" }.joined(separator: ", ")))"
            try db.cachedStatement(sql: sql).run(values)
            report.rowsInserted += 1
            report.cellsAdopted += plan.adopt.count
        case .update, .replace:
            let adopt = plan.adopt.filter { !t.primaryKey.contains($0.column) }
            if !adopt.isEmpty {
                let sets = adopt.map { "\(SchemaSQL.quote($0.column)) = ?" }.joined(separator: ", ")
                try db.cachedStatement(sql: "UPDATE \(quotedTable) SET \(sets) WHERE \(whereKey(t))")
                    .run(adopt.map { $0.value ?? .null } + row.key)
            }
            report.cellsAdopted += plan.adopt.count
        }

        // New metadata: adopted cells take a fresh local sequence so they travel on.
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
        try saveMeta(
            db, table: tableID, pk: pk,
            meta: RowMeta(causalLength: plan.causalLength, seq: seq, scope: row.scope ?? meta?.scope, cells: cells),
            nodes: nodes)
    }

    func logConflict(
        _ db: Database, _ t: TableDefinition, _ pk: [UInt8], column: String, kind: ConflictKind, value: Value,
        lost: CellVersion, winner: CellVersion?, now: UInt64
    ) throws -> Int {
        let status: ConflictStatus = (t.policy == .review || t.policy == .appendOnly) && kind == .concurrentEdit ? .held : .overwritten
        try db.execute(
            sql: """
                INSERT OR IGNORE INTO ferry_conflicts
                  (tbl, pk, col, kind, status, policy, lost_value, lost_origin, lost_clock, winner_origin, winner_clock, recorded_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                t.name, Data(pk), column, kind.rawValue, status.rawValue, t.policy.rawValue, value.databaseValue,
                lost.origin.rawValue, Int64(bitPattern: lost.clock.rawValue), winner?.origin.rawValue,
                winner.map { Int64(bitPattern: $0.clock.rawValue) }, Int64(now),
            ])
        return db.changesCount
    }
}
