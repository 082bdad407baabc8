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
    /// First come the rows the peer asked for whole (it lacked them, or anti-entropy found
    /// them different), then — for a unit below a hub — the rows that left its scope, then
    /// every row changed since the peer's last acknowledgement, each with the latest version
    /// of every cell that changed since then, so ten edits of one cell ship once.
    public func extract(for peer: Peer, maxBytes: Int = 256 * 1024) throws -> Changeset? {
        try write { db, tx in
            _ = try stamp(db, tx)
            let cursor = try loadCursor(db, peer.id)
            var tables: [String: [RowChange]] = [:]
            var tableOrder: [String] = []
            var bytes = 0
            func take(_ t: TableDefinition, _ change: RowChange) {
                bytes += Self.estimatedSize(change)
                if tables[t.name] == nil { tableOrder.append(t.name) }
                tables[t.name, default: []].append(change)
            }
            let sequence = cursor.batches + 1

            // Rows the peer asked for whole, until acknowledged.
            var sentWhole: [(Int, [UInt8])] = []
            var sentWholeKeys = Set<[UInt8]>()
            for r in try Row.fetchAll(
                db, sql: "SELECT tbl, pk, repair FROM ferry_resend WHERE peer = ? ORDER BY tbl, pk LIMIT 2000",
                arguments: [peer.id.rawValue])
            {
                if bytes >= maxBytes { break }
                let tableID: Int = r[0]
                let pk = [UInt8](r[1] as Data)
                guard let t = tablesByID[tableID], let meta = try loadMeta(db, table: tableID, pk: pk, nodes: tx.nodes),
                    includes(t, scope: meta.scope, for: peer)
                else {
                    try db.execute(sql: "DELETE FROM ferry_resend WHERE peer = ? AND tbl = ? AND pk = ?", arguments: [peer.id.rawValue, tableID, Data(pk)])
                    continue
                }
                var flags: RowFlags = [.whole]
                if (r[2] as Int) & 1 != 0 { flags.insert(.repair) }
                if let change = try rowChange(db, t, pk, meta, base: 0, for: peer, flags: flags) { take(t, change) }
                sentWhole.append((tableID, pk))
                sentWholeKeys.insert(KeyEncoding.encode([.integer(Int64(tableID))]) + pk)
            }
            for (tableID, pk) in sentWhole {
                try db.execute(
                    sql: "UPDATE ferry_resend SET repair = repair | 2 WHERE peer = ? AND tbl = ? AND pk = ?",
                    arguments: [peer.id.rawValue, tableID, Data(pk)])
            }
            if !sentWhole.isEmpty {
                // They stay queued until the peer acknowledges a batch at least this recent.
                try db.execute(
                    sql: "INSERT OR REPLACE INTO ferry_state(key, value) VALUES (?, ?)",
                    arguments: ["resend_batch:" + peer.id.rawValue, sequence])
            }

            var through = cursor.progress
            var reachedEnd = true
            let rowsStmt: Statement
            switch peer.direction {
            case .downstream(unit: let u?):
                rowsStmt = try db.cachedStatement(
                    sql: "SELECT tbl, pk, scope, cl, seq, cells, fp FROM ferry_rows WHERE seq > ? AND (scope = ? OR scope IS NULL) ORDER BY seq")
                try rowsStmt.setArguments([cursor.progress, u])
            default:
                rowsStmt = try db.cachedStatement(
                    sql: "SELECT tbl, pk, scope, cl, seq, cells, fp FROM ferry_rows WHERE seq > ? ORDER BY seq")
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
                if !sentWholeKeys.isEmpty, sentWholeKeys.contains(KeyEncoding.encode([.integer(Int64(tableID))]) + pkBytes) { continue }
                let meta = RowMeta(
                    causalLength: UInt32(r[3] as Int64), seq: seq, scope: r[2],
                    cells: try RowMeta.decodeCells([UInt8](r[5] as Data), t, tx.nodes))
                guard let change = try rowChange(db, t, pkBytes, meta, base: cursor.base, for: peer) else { continue }
                take(t, change)
            }
            // Rows that left a unit's scope since its last acknowledgement.
            if case .downstream(unit: let u?) = peer.direction {
                let upper = reachedEnd ? Int64.max : through
                for e in try Row.fetchAll(
                    db,
                    sql: """
                        SELECT e.tbl, e.pk, e.seq, r.cl, r.scope FROM ferry_exits e LEFT JOIN ferry_rows r ON r.tbl = e.tbl AND r.pk = e.pk
                        WHERE e.scope IN (?, '*') AND e.seq > ? AND e.seq <= ? ORDER BY e.seq
                        """,
                    arguments: [u, cursor.progress, upper])
                {
                    let tableID: Int = e[0]
                    let scope: String? = e[4]
                    guard let t = tablesByID[tableID], scope != u else { continue }
                    let storage = try KeyEncoding.decode([UInt8](e[1] as Data))
                    let cl = UInt32(e[3] as Int64? ?? 1)
                    take(t, RowChange(key: splitStorageKey(t, storage).key, scope: nil, causalLength: max(cl, 1), cells: [], flags: .leave))
                    through = max(through, e[2])
                }
            }
            if tables.isEmpty {
                // Nothing the peer needs: move its cursor past what was looked at.
                if through > cursor.progress || (reachedEnd && cursor.base < through) {
                    try saveCursor(db, peer.id, base: reachedEnd ? through : cursor.base, progress: through, batches: cursor.batches)
                }
                return nil
            }
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

    /// The columns that travel in a row's header rather than as cells: the key, and a unit
    /// row's unit.
    func impliedColumns(_ t: TableDefinition) -> Set<Int> {
        Set(t.primaryKeyIndices + (t.isUnitWritable ? t.scopeColumn.flatMap(t.columnIndex(named:)).map { [$0] } ?? [] : []))
    }

    func rowChange(
        _ db: Database, _ t: TableDefinition, _ pk: [UInt8], _ meta: RowMeta, base: Int64, for peer: Peer, flags: RowFlags = []
    ) throws -> RowChange? {
        let storage = try KeyEncoding.decode(pk)
        let key = splitStorageKey(t, storage).key
        let whole = flags.contains(.whole)
        if !meta.exists {
            // The peer's own delete, not changed since it sent it: it holds this already.
            if !whole, try isEcho(db, t, pk, seq: meta.seq, to: peer.id) { return nil }
            let cells = meta.cells.keys.sorted().map { i in
                CellChange(column: t.columns[i].name, value: nil, version: meta.cells[i]!.version)
            }
            return RowChange(key: key, scope: meta.scope, causalLength: meta.causalLength, cells: cells, flags: flags)
        }
        var wanted: [Int] = []
        let implied = impliedColumns(t)
        for i in meta.cells.keys.sorted() {
            let c = meta.cells[i]!
            guard !implied.contains(i), t.columns[i].isSynced else { continue }
            // A row sent whole carries the peer's own versions too: it may have lost them.
            guard whole || (c.seq > base && c.version.origin.node != peer.id) else { continue }
            wanted.append(i)
        }
        guard !wanted.isEmpty else { return nil }
        let values = try readValues(db, t, storage: storage, columns: wanted)
        guard let values else {
            throw StoreError.corruptMetadata("table \(t.name) row \(key) is live in sync metadata but missing from the table")
        }
        var cells: [CellChange] = []
        for (n, i) in wanted.enumerated() {
            var v = values[n]
            // Masked columns leave the unit masked; below a hub they are already.
            if case .masked(let rule) = t.columns[i].classification, case .upstream = peer.direction { v = rule.apply(to: v) }
            cells.append(CellChange(column: t.columns[i].name, value: v, version: meta.cells[i]!.version))
        }
        return RowChange(key: key, scope: meta.scope, causalLength: meta.causalLength, cells: cells, flags: flags)
    }

    /// Whether the row's tombstone at `seq` is one `peer`'s push made (`ferry_echo`).
    func isEcho(_ db: Database, _ t: TableDefinition, _ pk: [UInt8], seq: Int64, to peer: NodeID) throws -> Bool {
        guard let tableID = tableIDs[t.name] else { return false }
        let stmt = try db.cachedStatement(sql: "SELECT 1 FROM ferry_echo WHERE peer = ? AND tbl = ? AND pk = ? AND seq = ?")
        return try Int.fetchOne(stmt, arguments: [peer.rawValue, tableID, Data(pk), seq]) != nil
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
        // What the peer has acknowledged needs no note of its own deletes any more.
        try db.cachedStatement(sql: "DELETE FROM ferry_echo WHERE peer = ? AND seq <= ?").execute(arguments: [peer.rawValue, base])
    }

    /// Forgets what `peer` acknowledged, so everything is sent again (after the peer moved to
    /// a newer standard it must receive the columns it could not store before; merging is
    /// idempotent, so the resend is harmless).
    public func resetCursor(for peer: NodeID) throws {
        try write { db, _ in
            try db.execute(sql: "UPDATE ferry_peers SET base = 0, progress = 0 WHERE peer = ?", arguments: [peer.rawValue])
            // Everything again, its own deletes too.
            try db.execute(sql: "DELETE FROM ferry_echo WHERE peer = ?", arguments: [peer.rawValue])
        }
    }

    /// Moves `peer`'s cursor to this replica's latest change: nothing before it is sent
    /// again (a replacement node restored from a backup, which anti-entropy then brings up
    /// to date with only the differences).
    public func skipCursorToLatest(for peer: NodeID) throws {
        try write { db, _ in
            let top = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM ferry_rows") ?? 0
            let c = try loadCursor(db, peer)
            try saveCursor(db, peer, base: max(c.base, top), progress: max(c.progress, top), batches: c.batches)
        }
    }

    /// Records that `peer` durably applied the batch at `position`. Acknowledging an old or
    /// repeated batch changes nothing.
    public func acknowledge(_ position: BatchPosition, from peer: NodeID) throws {
        try write { db, _ in
            // Rows sent whole in this batch (or an earlier one) have arrived.
            if let sentIn = try Int64.fetchOne(db, sql: "SELECT value FROM ferry_state WHERE key = ?", arguments: ["resend_batch:" + peer.rawValue]),
                Int64(position.sequence) >= sentIn
            {
                try db.execute(sql: "DELETE FROM ferry_resend WHERE peer = ? AND repair & 2 != 0", arguments: [peer.rawValue])
            }
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

    /// Asks for these rows to be sent to `peer` whole in the next batches (the peer lacks
    /// them, or anti-entropy found them different; `repair` settles equal versions with
    /// different values).
    public func sendWhole(_ rows: [RowRef], to peer: NodeID, repair: Bool = false) throws {
        guard !rows.isEmpty else { return }
        try write { db, _ in
            for r in rows {
                guard let t = standard.table(named: r.table), let id = tableIDs[r.table], r.key.count == t.primaryKey.count else { continue }
                let pk = KeyEncoding.encode(storageKey(t, key: r.key, scope: r.scope))
                try db.execute(
                    sql: "INSERT OR REPLACE INTO ferry_resend(peer, tbl, pk, repair) VALUES (?, ?, ?, ?)",
                    arguments: [peer.rawValue, id, Data(pk), repair ? 1 : 0])
            }
        }
    }

    /// How many rows hold changes `peer` has not acknowledged and would be sent (captured
    /// writes not yet stamped count one each).
    public func pendingRows(for peer: Peer) throws -> Int {
        try pool.read { db in
            let nodes = NodeTable()
            try nodes.load(try Row.fetchAll(db, sql: "SELECT idx, id FROM ferry_nodes").map { ($0[0] as Int, $0[1] as String) })
            let c = try loadCursor(db, peer.id)
            let captured = try Int.fetchOne(db, sql: "SELECT count(*) FROM ferry_capture") ?? 0
            let whole = try Int.fetchOne(db, sql: "SELECT count(*) FROM ferry_resend WHERE peer = ?", arguments: [peer.id.rawValue]) ?? 0
            var rows = 0
            let cursor = try Row.fetchCursor(db, sql: "SELECT tbl, scope, cl, cells, pk, seq FROM ferry_rows WHERE seq > ?", arguments: [c.progress])
            while let r = try cursor.next() {
                guard let t = tablesByID[r[0]], includes(t, scope: r[1], for: peer) else { continue }
                if (r[2] as Int64) % 2 == 0 {
                    if try isEcho(db, t, [UInt8](r[4] as Data), seq: r[5], to: peer.id) { continue }
                    rows += 1
                    continue
                }
                let cells = try RowMeta.decodeCells([UInt8](r[3] as Data), t, nodes)
                let implied = impliedColumns(t)
                if cells.contains(where: { i, cell in
                    cell.seq > c.base && cell.version.origin.node != peer.id && t.columns[i].isSynced && !implied.contains(i)
                }) {
                    rows += 1
                }
            }
            return rows + captured + whole
        }
    }
}
