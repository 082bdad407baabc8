import FerryCore
import Foundation
import GRDB

extension ReplicaStore {
    // MARK: Stamping captured writes

    /// Gives every captured local write its clock, version and change sequence. Returns
    /// the number of captured writes processed. Extraction and apply call it first.
    @discardableResult
    public func stampPendingChanges() throws -> Int {
        try write { db, tx in try stamp(db, tx) }
    }

    /// Stamps captured writes in chunks, so a unit back from months offline stamps in
    /// bounded memory.
    func stamp(_ db: Database, _ tx: Transaction) throws -> Int {
        var total = 0
        while true {
            let n = try stampChunk(db, tx, limit: 2000)
            total += n
            if n < 2000 { return total }
        }
    }

    /// Why this replica may not turn a captured write into a version, or nil. The database's
    /// guards refuse these writes where they are made; this catches a write that got past
    /// them (a program that disabled the guards), so it never becomes a version a peer
    /// refuses. The row's data then differs from what was synced, which anti-entropy finds
    /// and repairs from the peer.
    func captureProblem(_ t: TableDefinition, op: SchemaSQL.Op, scope: String?) -> String? {
        if t.policy == .appendOnly, op != .insert { return "table \(t.name) is append-only" }
        guard case .unit(let unit) = identity.role else { return nil }
        switch t.ownership {
        case .hub: return "table \(t.name) is maintained by the supervisor"
        case .unit: return scope == unit ? nil : "table \(t.name) row belongs to unit '\(scope ?? "none")', not '\(unit)'"
        case .local: return nil
        }
    }

    func stampChunk(_ db: Database, _ tx: Transaction, limit: Int) throws -> Int {
        let captured = try Row.fetchAll(
            db, sql: "SELECT seq, tbl, op, mask, scope, at, k1, k2, k3, k4 FROM ferry_capture ORDER BY seq LIMIT ?",
            arguments: [limit])
        guard !captured.isEmpty else { return 0 }
        var counters = try loadCounters(db)
        // A capture carries the wall time of its statement by SQLite's clock (the only one the
        // sqlite3 shell has). What counts is its age by that same clock, taken from this
        // replica's own clock: in production the two are one, and a test's injected clock
        // still orders writes stamped at different times. Without a time (written by release
        // 1) the write is stamped now. Either is corrected by the known offset to the hub.
        let offset = try clockOffset(db)
        let now = clock.nowMillis()
        let sqliteNow = try Int64.fetchOne(db, sql: "SELECT \(SchemaSQL.captureTime)") ?? 0
        let me = writer
        let authority = identity.role.authority
        struct Key: Hashable {
            var table: Int
            var pk: [UInt8]
        }
        var metas: [Key: RowMeta?] = [:]
        var before: [Key: RowMeta?] = [:]
        var storageKeys: [Key: [Value]] = [:]
        var order: [Key] = []
        var stray = false
        for c in captured {
            let tableID: Int = c[1]
            guard let t = tablesByID[tableID] else { continue }
            let op = SchemaSQL.Op(rawValue: c[2]) ?? .update
            let mask: Int64 = c[3]
            let scope: String? = c[4]
            let at: Int64? = c[5]
            let keyValues = (0..<t.primaryKey.count).map { Value(c[6 + $0] as DatabaseValue) }
            let storage = storageKey(t, key: keyValues, scope: scope)
            let key = Key(table: tableID, pk: KeyEncoding.encode(storage))
            if metas[key] == nil {
                let m = try loadMeta(db, table: tableID, pk: key.pk, nodes: tx.nodes)
                metas[key] = .some(m)
                before[key] = .some(m)
                storageKeys[key] = storage
                order.append(key)
            }
            // Left unstamped: the row's fingerprint is still recomputed below, from its data.
            if captureProblem(t, op: op, scope: scope) != nil {
                // A row new to this replica has no metadata, so no fingerprint shows it to
                // anti-entropy: only a scrub finds it (see `scrubDue`).
                if op == .insert, metas[key]!?.exists != true { stray = true }
                continue
            }
            var meta = metas[key]!
            let age = at.map { max(0, sqliteNow &- $0) } ?? 0
            let wall = UInt64(max(0, Int64(now) &- age &+ offset))
            let stamp = counters.clock.tick(now: wall)
            let seq = counters.nextSeq
            counters.nextSeq += 1
            let synced = t.syncedColumnIndices
            func stampCells(_ columns: [Int], into m: inout RowMeta) throws {
                for i in columns {
                    let v = try CellVersion.successor(
                        of: m.cells[i]?.version, writer: me, authority: authority, clock: stamp, policy: t.policy)
                    m.cells[i] = RowMeta.StoredCell(version: v, seq: seq)
                }
                m.seq = seq
            }
            do {
                switch op {
                case .insert, .update:
                    if var m = meta, m.exists {
                        let columns = op == .insert ? synced : synced.enumerated().filter { mask & (1 << $0.offset) != 0 }.map(\.element)
                        if columns.isEmpty { continue }
                        try stampCells(columns, into: &m)
                        if t.scopeColumn != nil, m.scope != scope {
                            // A hub row's recipient changed (to NULL too): the new recipient has never
                            // seen the row, so all of it travels again, and the old one forgets it.
                            // From one unit to another: that unit forgets it. From every unit (NULL) to
                            // one: all the others forget it ('*'). To every unit: nobody does.
                            if scope != nil {
                                try db.execute(
                                    sql: "INSERT OR REPLACE INTO ferry_exits(scope, tbl, pk, seq) VALUES (?, ?, ?, ?)",
                                    arguments: [m.scope ?? "*", tableID, Data(key.pk), seq])
                            }
                            for i in m.cells.keys { m.cells[i]!.seq = seq }
                            m.scope = scope
                        }
                        meta = m
                    } else {
                        // A new row, or one written again after a delete: a new lifetime.
                        var m = meta ?? RowMeta(causalLength: 0, seq: seq, scope: scope, cells: [:])
                        guard m.causalLength < UInt32.max - 1 else { throw CoreError(.malformed, "causal length at its limit") }
                        m.causalLength += 1
                        m.scope = scope
                        try stampCells(synced, into: &m)
                        meta = m
                    }
                case .delete:
                    guard var m = meta, m.exists else { continue }
                    guard m.causalLength < UInt32.max - 1 else { throw CoreError(.malformed, "causal length at its limit") }
                    m.causalLength += 1
                    m.seq = seq
                    meta = m
                }
            } catch let e as CoreError {
                // Only a forged version received earlier can leave no room for a write; the
                // write stays in the table, is not synced, and is listed for the clerk.
                try holdLocal(db, t, key: keyValues, scope: scope, reason: e.message)
                continue
            }
            metas[key] = .some(meta)
        }
        for key in order {
            let t = tablesByID[key.table]!
            guard var meta = metas[key]!, meta.causalLength > 0 else { continue }
            let storage = storageKeys[key]!
            let previous = before[key]!
            let changed = previous.map { $0.seq != meta.seq || $0.causalLength != meta.causalLength || $0.scope != meta.scope } ?? true
            meta.fingerprint = try fingerprint(db, t, storage: storage, meta: meta, dataMayBeAhead: true)
            guard changed || meta.fingerprint != previous?.fingerprint else { continue }
            try saveMeta(db, table: key.table, pk: key.pk, meta: meta, before: previous, tx: tx)
        }
        let last: Int64 = captured.last![0]
        try db.execute(sql: "DELETE FROM ferry_capture WHERE seq <= ?", arguments: [last])
        if stray { try db.execute(sql: "INSERT OR REPLACE INTO ferry_state(key, value) VALUES ('scrub_due', 1)") }
        try saveCounters(db, counters)
        return captured.count
    }

    /// Records a local write that cannot be synced, so `ferry status` shows it.
    func holdLocal(_ db: Database, _ t: TableDefinition, key: [Value], scope: String?, reason: String) throws {
        try db.execute(
            sql: "INSERT OR REPLACE INTO ferry_held (tbl, pk, col, kind, reason, reason_zh) VALUES (?, ?, NULL, 'local', ?, ?)",
            arguments: [
                t.name, Data(KeyEncoding.encode(key)), "this write cannot be synced: \(reason)", "该修改无法同步：\(reason)",
            ])
    }
}

extension ReplicaStore {
    /// Moves this replica's clock to at least `floor` (the newest clock its hub has seen from
    /// it), after a restore from an older copy: a clock reading is never given out twice.
    public func raiseClock(toAtLeast floor: HLCTimestamp) throws {
        try write { db, tx in
            _ = try stamp(db, tx)
            var c = try loadCounters(db)
            if c.clock.latest < floor {
                c.clock = HybridLogicalClock(latest: floor, maxForwardDriftMillis: maxForwardDriftMillis)
                try saveCounters(db, c)
            }
        }
    }
}
