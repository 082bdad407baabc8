import FerryCore
import Foundation
import GRDB

/// One value set aside by a merge: what it was, whose it was, and what beat it.
public struct ConflictRecord: Sendable, Equatable {
    public var id: Int64
    public var table: String
    public var key: [Value]
    /// The unit the row belongs to, at a hub (where keys are per unit); nil at a node.
    public var scope: String?
    public var column: String
    public var kind: ConflictKind
    public var status: ConflictStatus
    public var policy: ConflictPolicy
    /// The value that lost.
    public var lostValue: Value
    public var lostOrigin: NodeID
    public var lostClock: HLCTimestamp
    /// The version that won, when a version won (a delete has none).
    public var winnerOrigin: NodeID?
    public var winnerClock: HLCTimestamp?
    /// Local wall time of recording, ms since the epoch.
    public var recordedAt: UInt64
}

/// A conflict a supervisor settled at the hub, as the unit's node is told of it.
public struct SettledConflict: Sendable, Equatable {
    public var table: String
    public var key: [Value]
    public var column: String
    public var lostOrigin: String
    public var lostClock: UInt64
    /// `resolved` or `restored`.
    public var outcome: String
    public var settledAt: UInt64
    public init(table: String, key: [Value], column: String, lostOrigin: String, lostClock: UInt64, outcome: String, settledAt: UInt64 = 0) {
        self.table = table
        self.key = key
        self.column = column
        self.lostOrigin = lostOrigin
        self.lostClock = lostClock
        self.outcome = outcome
        self.settledAt = settledAt
    }
}

extension ReplicaStore {
    /// Conflicts in the log, oldest first; `status` narrows to one status.
    public func conflicts(status: ConflictStatus? = nil) throws -> [ConflictRecord] {
        try pool.read { db in
            var sql = """
                SELECT id, tbl, pk, col, kind, status, policy, lost_value, lost_origin, lost_clock,
                       winner_origin, winner_clock, recorded_at FROM ferry_conflicts
                """
            var args: StatementArguments = []
            if let status {
                sql += " WHERE status = ?"
                args = [status.rawValue]
            }
            sql += " ORDER BY id"
            return try Row.fetchAll(db, sql: sql, arguments: args).map(conflict)
        }
    }

    func conflict(_ r: Row) throws -> ConflictRecord {
        let winnerOrigin: String? = r[10]
        let winnerClock: Int64? = r[11]
        let storage = try KeyEncoding.decode([UInt8](r[2] as Data))
        let (key, scope) = standard.table(named: r[1]).map { splitStorageKey($0, storage) } ?? (storage, nil)
        return ConflictRecord(
            id: r[0], table: r[1], key: key, scope: scope, column: r[3],
            kind: ConflictKind(rawValue: r[4]) ?? .concurrentEdit,
            status: ConflictStatus(rawValue: r[5]) ?? .overwritten,
            policy: ConflictPolicy(rawValue: r[6]) ?? .lww,
            lostValue: Value(r[7] as DatabaseValue), lostOrigin: try NodeID(r[8] as String),
            lostClock: HLCTimestamp(rawValue: UInt64(bitPattern: r[9])),
            winnerOrigin: try winnerOrigin.map { try NodeID($0) },
            winnerClock: winnerClock.map { HLCTimestamp(rawValue: UInt64(bitPattern: $0)) },
            recordedAt: UInt64(r[12] as Int64))
    }

    /// Puts a conflict's losing value back as a new local edit (which then syncs like any
    /// other), and marks the conflict `restored`. A row that was deleted is re-inserted
    /// whole, as it was before the delete that set it aside.
    public func restore(conflict id: Int64) throws {
        let now = clock.nowMillis()
        try write { db, _ in
            guard let r = try Row.fetchOne(db, sql: "SELECT tbl, pk, col, lost_value, status, row_image FROM ferry_conflicts WHERE id = ?", arguments: [id]),
                let t = standard.table(named: r[0]), (r[4] as String) != ConflictStatus.restored.rawValue
            else { throw StoreError.noSuchConflict(id) }
            let pkData: Data = r[1]
            let storage = try KeyEncoding.decode([UInt8](pkData))
            let column: String = r[2]
            let value = Value(r[3] as DatabaseValue)
            let exists = try readValues(db, t, storage: storage, columns: []) != nil
            var settled: [Int64] = [id]
            do {
                if exists {
                    try db.execute(
                        sql: "UPDATE \(SchemaSQL.quote(t.name)) SET \(SchemaSQL.quote(column)) = ? WHERE \(whereKey(t))",
                        arguments: StatementArguments([value.databaseValue] + storage.map(\.databaseValue)))
                } else {
                    // Re-insert the row as it was: its whole image when the conflict kept one
                    // (release 2 on), else every value set aside for it over the key.
                    var values: [String: Value] = [:]
                    for (i, k) in storageKeyColumns(t).enumerated() { values[k] = storage[i] }
                    let siblings = try Row.fetchAll(
                        db,
                        sql: "SELECT id, col, lost_value FROM ferry_conflicts WHERE tbl = ? AND pk = ? AND status != 'restored' ORDER BY id",
                        arguments: [t.name, pkData])
                    if let blob = r[5] as Data?, let image = try? KeyEncoding.decode([UInt8](blob)) {
                        for (i, v) in image.enumerated() where i < t.columns.count { values[t.columns[i].name] = v }
                        for (i, k) in storageKeyColumns(t).enumerated() { values[k] = storage[i] }
                    }
                    for s in siblings { values[s[1] as String] = Value(s[2] as DatabaseValue) }
                    settled = siblings.map { $0[0] as Int64 }
                    let cols = t.columns.map(\.name).filter { values[$0] != nil }
                    try db.execute(
                        sql: "INSERT INTO \(SchemaSQL.quote(t.name)) (\(cols.map(SchemaSQL.quote).joined(separator: ", "))) VALUES (\(cols.map { _ in "?" }.joined(separator: ", ")))",
                        arguments: StatementArguments(cols.map { values[$0]!.databaseValue }))
                }
            } catch let e as DatabaseError {
                throw StoreError.cannotRestore(table: t.name, key: splitStorageKey(t, storage).key, reason: e.message ?? "\(e.resultCode)")
            }
            for s in settled {
                try db.execute(sql: "UPDATE ferry_conflicts SET status = 'restored', settled_at = ? WHERE id = ?", arguments: [Int64(now), s])
            }
        }
    }

    /// Settles a conflict by keeping the current value; the losing value stays in the log.
    public func dismiss(conflict id: Int64) throws {
        let now = clock.nowMillis()
        try write { db, _ in
            try db.execute(
                sql: "UPDATE ferry_conflicts SET status = 'resolved', settled_at = ? WHERE id = ? AND status IN ('held', 'overwritten')",
                arguments: [Int64(now), id])
            if db.changesCount == 0 { throw StoreError.noSuchConflict(id) }
        }
    }

    // MARK: Settled at the hub

    /// Whether any conflict waits for a decision or may still be restored.
    public func hasOpenConflicts() throws -> Bool {
        try pool.read { db in try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM ferry_conflicts WHERE status IN ('held', 'overwritten'))") ?? false }
    }

    /// Conflicts of `unit` settled here (by a supervisor) at or after `since` (ms, this
    /// replica's wall clock), oldest first, at most `limit`.
    public func settledConflicts(unit: String, since: UInt64, limit: Int) throws -> [SettledConflict] {
        try pool.read { db in
            var out: [SettledConflict] = []
            let rows = try Row.fetchCursor(
                db,
                sql: """
                    SELECT tbl, pk, col, lost_origin, lost_clock, status, settled_at FROM ferry_conflicts
                    WHERE settled_at >= ? AND status IN ('resolved', 'restored') ORDER BY settled_at, id
                    """,
                arguments: [Int64(clamping: since)])
            while let r = try rows.next(), out.count < limit {
                guard let t = standard.table(named: r[0]) else { continue }
                let (key, scope) = splitStorageKey(t, try KeyEncoding.decode([UInt8](r[1] as Data)))
                guard scope == unit else { continue }
                out.append(
                    SettledConflict(
                        table: t.name, key: key, column: r[2], lostOrigin: r[3], lostClock: UInt64(bitPattern: r[4]), outcome: r[5],
                        settledAt: UInt64(r[6] as Int64)))
            }
            return out
        }
    }

    /// Closes this node's open conflicts that its hub says a supervisor settled (matched
    /// by the version that lost); returns how many closed. The outcome itself arrives as
    /// the hub's edit, like any other; this only takes them off the clerk's list.
    public func closeSettledAtHub(_ settled: [SettledConflict]) throws -> Int {
        guard !settled.isEmpty else { return 0 }
        let now = clock.nowMillis()
        return try write { db, _ in
            var closed = 0
            for c in settled {
                guard let t = standard.table(named: c.table) else { continue }
                try db.execute(
                    sql: """
                        UPDATE ferry_conflicts SET status = ?, settled_at = ?
                        WHERE tbl = ? AND pk = ? AND col = ? AND lost_origin = ? AND lost_clock = ? AND status IN ('held', 'overwritten')
                        """,
                    arguments: [
                        c.outcome == ConflictStatus.restored.rawValue ? ConflictStatus.restored.rawValue : ConflictStatus.resolved.rawValue,
                        Int64(now), t.name, Data(KeyEncoding.encode(storageKey(t, key: c.key, scope: nil))), c.column, c.lostOrigin,
                        Int64(bitPattern: c.lostClock),
                    ])
                closed += db.changesCount
            }
            return closed
        }
    }

    // MARK: Inspection

    /// Every row of `table`'s synced columns, ordered by primary key: what replicas compare
    /// to prove convergence.
    public func syncedContents(of table: String) throws -> [[Value]] {
        guard let t = standard.table(named: table) else { return [] }
        let cols = t.syncedColumnIndices.map { SchemaSQL.quote(t.columns[$0].name) }.joined(separator: ", ")
        let order = storageKeyColumns(t).map(SchemaSQL.quote).joined(separator: ", ")
        return try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT \(cols) FROM \(SchemaSQL.quote(t.name)) ORDER BY \(order)").map { r in
                (0..<r.count).map { Value(r[$0] as DatabaseValue) }
            }
        }
    }

    /// A content digest (FNV-1a 64 over the encoded synced contents) of `table`.
    public func digest(of table: String) throws -> String {
        var h = FNV1a()
        for row in try syncedContents(of: table) {
            h.add(KeyEncoding.encode(row))
            h.add([0xff])
        }
        return h.hex
    }

    /// The version of one cell as this replica stores it (nil if never written). At a hub a
    /// unit row is named by its unit (`scope`) and key together; without a scope, the one
    /// unit that has the key is found (for inspection: tests, the supervisor's tools).
    public func cellVersion(table: String, key: [Value], scope: String? = nil, column: String) throws -> CellVersion? {
        guard let t = standard.table(named: table), let id = tableIDs[table], let ci = t.columnIndex(named: column) else {
            return nil
        }
        return try write { db, tx in
            let storage = try inspectedStorageKey(db, t, tableID: id, key: key, scope: scope)
            return try loadMeta(db, table: id, pk: KeyEncoding.encode(storage), nodes: tx.nodes)?.cells[ci]?.version
        }
    }

    /// The row's causal length here (0: never seen).
    public func causalLength(table: String, key: [Value], scope: String? = nil) throws -> UInt32 {
        guard let t = standard.table(named: table), let id = tableIDs[table] else { return 0 }
        return try write { db, tx in
            let storage = try inspectedStorageKey(db, t, tableID: id, key: key, scope: scope)
            return try loadMeta(db, table: id, pk: KeyEncoding.encode(storage), nodes: tx.nodes)?.causalLength ?? 0
        }
    }

    /// The storage key of a row named by its key, finding its unit at a hub when not given.
    func inspectedStorageKey(_ db: Database, _ t: TableDefinition, tableID: Int, key: [Value], scope: String?) throws -> [Value] {
        guard scopedKey(t), scope == nil else { return storageKey(t, key: key, scope: scope) }
        let suffix = KeyEncoding.encode(key)
        let matches = try Row.fetchAll(db, sql: "SELECT pk FROM ferry_rows WHERE tbl = ?", arguments: [tableID]).compactMap { r -> [UInt8]? in
            let pk = [UInt8](r[0] as Data)
            return pk.count > suffix.count && Array(pk.suffix(suffix.count)) == suffix ? pk : nil
        }
        guard matches.count == 1, let storage = try? KeyEncoding.decode(matches[0]), splitStorageKey(t, storage).key == key else {
            return storageKey(t, key: key, scope: scope)
        }
        return storage
    }

    /// The latest hybrid logical clock reading this replica issued or adopted.
    public func latestClock() throws -> HLCTimestamp {
        try pool.read { db in try loadCounters(db).clock.latest }
    }

    /// Runs SQL on the replica's own connection, as an application of the unit would.
    public func execute(_ sql: String, _ arguments: [Value] = []) throws {
        try pool.write { db in
            try db.execute(sql: sql, arguments: StatementArguments(arguments.map(\.databaseValue)))
        }
    }

    /// The same, returning how many rows the statement changed.
    @discardableResult
    public func executeCountingChanges(_ sql: String, _ arguments: [Value] = []) throws -> Int {
        try pool.write { db in
            try db.execute(sql: sql, arguments: StatementArguments(arguments.map(\.databaseValue)))
            return db.changesCount
        }
    }
}

extension ReplicaStore {
    /// A value the node keeps about itself in the database (`ferry_state`).
    public func state(_ key: String) throws -> Value {
        try pool.read { db in
            guard let r = try Row.fetchOne(db, sql: "SELECT value FROM ferry_state WHERE key = ?", arguments: ["app." + key]) else { return .null }
            return Value(r[0] as DatabaseValue)
        }
    }

    public func setState(_ values: [String: Value]) throws {
        try pool.write { db in
            for (k, v) in values {
                try db.execute(sql: "INSERT OR REPLACE INTO ferry_state(key, value) VALUES (?, ?)", arguments: ["app." + k, v.databaseValue])
            }
        }
    }

}

extension ReplicaStore {
    /// Writes captured by the triggers and not yet stamped (the node's "something changed").
    public func capturedWrites() throws -> Int {
        try pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM ferry_capture") ?? 0 }
    }
}

extension ReplicaStore {
    /// Live rows per scope (unit) and table: what has reached this replica.
    public func rowCountsByScope() throws -> [String: [String: Int]] {
        try pool.read { db in
            var out: [String: [String: Int]] = [:]
            for r in try Row.fetchAll(db, sql: "SELECT tbl, scope, count(*) FROM ferry_rows WHERE cl % 2 = 1 AND scope IS NOT NULL GROUP BY tbl, scope") {
                guard let t = tablesByID[r[0]], t.isUnitWritable else { continue }
                out[r[1] as String, default: [:]][t.name] = r[2]
            }
            return out
        }
    }
}

extension ReplicaStore {
    /// Runs many statements in one transaction on the replica's own connection (capture
    /// triggers fire as for any write); all or nothing.
    public func executeAll(_ statements: [(sql: String, arguments: [Value])]) throws {
        try pool.write { db in
            for s in statements { try db.cachedStatement(sql: s.sql).run(s.arguments) }
        }
    }
}

/// A row the hub set aside because a value failed its checks.
public struct QuarantineRecord: Sendable, Equatable {
    public var id: Int64
    public var table: String
    public var key: [Value]
    public var scope: String?
    public var origin: String
    public var column: String
    public var value: Value
    public var reason: String
    public var reasonZh: String
    public var receivedAt: UInt64
    public var status: String
}

extension ReplicaStore {
    public func quarantine() throws -> [QuarantineRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT id, tbl, pk, scope, origin, col, value, reason, received_at, status, reason_zh FROM ferry_quarantine ORDER BY id").map { r in
                QuarantineRecord(
                    id: r[0], table: r[1], key: try KeyEncoding.decode([UInt8](r[2] as Data)), scope: r[3], origin: r[4], column: r[5],
                    value: Value(r[6] as DatabaseValue), reason: r[7], reasonZh: r[10] ?? r[7], receivedAt: UInt64(r[8] as Int64), status: r[9])
            }
        }
    }
}

extension String {
    /// Reads one `ferry_state` value from a replica database without opening it as a replica.
    public static func fetchOneState(path: String, key: String) throws -> String? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let q = try DatabaseQueue(path: path)
        defer { try? q.close() }
        return try q.read { db in try String.fetchOne(db, sql: "SELECT value FROM ferry_state WHERE key = ?", arguments: [key]) }
    }
}
