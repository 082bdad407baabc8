import FerryCore
import Foundation
import GRDB
import GRDBSQLite

/// Whether a replica is a unit's node or a supervisor's hub.
public enum ReplicaRole: Sendable, Hashable {
    /// A unit's node; it writes only rows of `unit`.
    case unit(String)
    /// A hub: it writes reference data and may correct any unit's rows.
    case hub

    var authority: Authority {
        if case .hub = self { return .supervisor }
        return .unit
    }
}

/// Who this replica is.
public struct ReplicaIdentity: Sendable, Hashable {
    public var node: NodeID
    public var role: ReplicaRole
    public init(node: NodeID, role: ReplicaRole) {
        self.node = node
        self.role = role
    }
}

/// The other end of a sync link, as seen from this replica.
public struct Peer: Sendable, Hashable {
    public enum Direction: Sendable, Hashable {
        /// Our supervisor: masked columns go masked, local ones never.
        case upstream
        /// A node below us. `unit`: only that unit's rows and the reference data meant for
        /// it; `nil`: every row (a peer of the same unit, or tests). Masked and local
        /// columns are never sent down (the unit holds the real values).
        case downstream(unit: String?)
    }
    public var id: NodeID
    public var direction: Direction
    public init(id: NodeID, direction: Direction) {
        self.id = id
        self.direction = direction
    }
}

/// What one apply did.
public struct ApplyReport: Sendable, Equatable {
    public var rows = 0
    public var cellsAdopted = 0
    public var rowsInserted = 0
    public var rowsDeleted = 0
    public var conflictsLogged = 0
    /// Rows set aside because a value failed the standard's checks.
    public var quarantined = 0
    /// Set when a remote clock was too far ahead to adopt: by how much it led local time.
    public var boundedClockAheadMillis: UInt64?
}

/// A unit's or hub's SQLite database with Ferry's capture, metadata and merge.
///
/// Opening a database creates the standard's tables and installs capture triggers, so
/// writes by any process are recorded. Call `stampPendingChanges()` (extraction and apply
/// do it themselves) to give captured writes their clock and version.
///
/// All methods are safe to call from any thread; writes are serialized by SQLite's single
/// writer (GRDB's writer queue in-process, the file lock across processes).
public final class ReplicaStore: Sendable {
    public let standard: Standard
    public let identity: ReplicaIdentity
    public let path: String
    let pool: any DatabaseWriter
    let clock: any WallClock
    let maxForwardDriftMillis: UInt64
    let tableIDs: [String: Int]
    let tablesByID: [Int: TableDefinition]
    private let nodes: NodeCache

    public init(
        path: String, standard: Standard, identity: ReplicaIdentity, clock: any WallClock,
        maxForwardDriftMillis: UInt64 = HybridLogicalClock.defaultMaxForwardDriftMillis, busyTimeoutSeconds: Double = 30
    ) throws {
        try FilePermissions.preparePrivateFile(path)
        self.path = path
        self.standard = standard
        self.identity = identity
        self.clock = clock
        self.maxForwardDriftMillis = maxForwardDriftMillis
        var config = Configuration()
        // Another process (the clerk's sqlite3 shell, a backup) may hold the write lock; wait
        // this long before giving up with a retryable error.
        config.busyMode = .timeout(busyTimeoutSeconds)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        // ":memory:" gives a private in-memory replica (property tests); files use WAL so the
        // clerk's sqlite3 shell and the node can work on one database at once.
        pool = path == ":memory:" ? try DatabaseQueue(configuration: config) : try DatabasePool(path: path, configuration: config)
        var ids: [String: Int] = [:]
        var byID: [Int: TableDefinition] = [:]
        nodes = NodeCache()
        try Self.migrator.migrate(pool)
        try pool.write { db in
            try Self.checkIdentity(db, identity: identity, standard: standard)
            for t in standard.tables {
                try Self.createOrMigrate(db, t)
                try db.execute(sql: "INSERT OR IGNORE INTO ferry_tables(name) VALUES (?)", arguments: [t.name])
            }
            for row in try Row.fetchAll(db, sql: "SELECT id, name FROM ferry_tables") {
                let id: Int = row[0]
                let name: String = row[1]
                if let t = standard.table(named: name) {
                    ids[name] = id
                    byID[id] = t
                }
            }
            let installed = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'ferry\\_%' ESCAPE '\\'")
            for trig in installed { try db.execute(sql: "DROP TRIGGER \(SchemaSQL.quote(trig))") }
            for t in standard.tables {
                for sql in SchemaSQL.triggers(t, tableID: ids[t.name]!, role: identity.role) {
                    try db.execute(sql: sql)
                }
            }
        }
        tableIDs = ids
        tablesByID = byID
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1-sync-metadata") { db in
            try db.execute(
                sql: """
                    CREATE TABLE ferry_state (key TEXT PRIMARY KEY NOT NULL, value ANY) STRICT;
                    CREATE TABLE ferry_tables (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE) STRICT;
                    CREATE TABLE ferry_nodes (idx INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE) STRICT;
                    CREATE TABLE ferry_capture (
                        seq INTEGER PRIMARY KEY, tbl INTEGER NOT NULL, op INTEGER NOT NULL,
                        mask INTEGER NOT NULL, scope ANY,
                        k1 ANY, k2 ANY, k3 ANY, k4 ANY) STRICT;
                    CREATE TABLE ferry_applying (active INTEGER) STRICT;
                    CREATE TABLE ferry_rows (
                        tbl INTEGER NOT NULL, pk BLOB NOT NULL, scope TEXT, cl INTEGER NOT NULL,
                        seq INTEGER NOT NULL, cells BLOB NOT NULL,
                        PRIMARY KEY (tbl, pk)) STRICT, WITHOUT ROWID;
                    CREATE INDEX ferry_rows_by_seq ON ferry_rows (seq);
                    CREATE INDEX ferry_rows_by_scope ON ferry_rows (scope, seq);
                    CREATE TABLE ferry_peers (
                        peer TEXT PRIMARY KEY NOT NULL, base INTEGER NOT NULL DEFAULT 0,
                        progress INTEGER NOT NULL DEFAULT 0, batches INTEGER NOT NULL DEFAULT 0,
                        acknowledged_at INTEGER) STRICT;
                    CREATE TABLE ferry_conflicts (
                        id INTEGER PRIMARY KEY, tbl TEXT NOT NULL, pk BLOB NOT NULL, col TEXT NOT NULL,
                        kind TEXT NOT NULL, status TEXT NOT NULL, policy TEXT NOT NULL,
                        lost_value ANY, lost_origin TEXT NOT NULL, lost_clock INTEGER NOT NULL,
                        winner_origin TEXT, winner_clock INTEGER,
                        recorded_at INTEGER NOT NULL, settled_at INTEGER,
                        UNIQUE (tbl, pk, col, lost_origin, lost_clock)) STRICT;
                    CREATE INDEX ferry_conflicts_by_status ON ferry_conflicts (status);
                    """)
        }
        m.registerMigration("v2-quarantine") { db in
            try db.execute(
                sql: """
                    CREATE TABLE ferry_quarantine (
                        id INTEGER PRIMARY KEY, tbl TEXT NOT NULL, pk BLOB NOT NULL, scope TEXT, origin TEXT NOT NULL,
                        col TEXT NOT NULL, value ANY, reason TEXT NOT NULL, received_at INTEGER NOT NULL,
                        status TEXT NOT NULL DEFAULT 'held', row BLOB NOT NULL) STRICT;
                    """)
        }
        return m
    }

    /// Creates a standard table, or brings an existing one to this standard's definition.
    ///
    /// Columns are only ever appended within a major version, so the table is rebuilt with
    /// the new definition (new columns, widened checks) and its rows copied across, in the
    /// open transaction: a failure leaves the old table as it was.
    static func createOrMigrate(_ db: Database, _ t: TableDefinition) throws {
        let wanted = SchemaSQL.createTable(t)
        let stored = try String.fetchOne(db, sql: "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", arguments: [t.name])
        guard let stored else {
            try db.execute(sql: wanted)
            return
        }
        guard stored != wanted.replacingOccurrences(of: "CREATE TABLE IF NOT EXISTS", with: "CREATE TABLE") else { return }
        let existing = Set(try Row.fetchAll(db, sql: "SELECT name FROM pragma_table_info(?)", arguments: [t.name]).map { $0[0] as String })
        let common = t.columns.map(\.name).filter(existing.contains).map(SchemaSQL.quote).joined(separator: ", ")
        let temp = "ferry_rebuild_\(t.name)"
        try db.execute(sql: "DROP TABLE IF EXISTS \(SchemaSQL.quote(temp))")
        try db.execute(sql: wanted.replacingOccurrences(of: "CREATE TABLE IF NOT EXISTS \(SchemaSQL.quote(t.name))", with: "CREATE TABLE \(SchemaSQL.quote(temp))"))
        do {
            try db.execute(sql: "INSERT INTO \(SchemaSQL.quote(temp)) (\(common)) SELECT \(common) FROM \(SchemaSQL.quote(t.name))")
        } catch {
            throw StoreError.identityMismatch("table \(t.name) cannot be migrated to the new standard: \(error); the rows that fail its checks must be corrected first")
        }
        try db.execute(sql: "DROP TABLE \(SchemaSQL.quote(t.name))")
        try db.execute(sql: "ALTER TABLE \(SchemaSQL.quote(temp)) RENAME TO \(SchemaSQL.quote(t.name))")
    }

    static func checkIdentity(_ db: Database, identity: ReplicaIdentity, standard: Standard) throws {
        if let text = try String.fetchOne(db, sql: "SELECT value FROM ferry_state WHERE key = 'standard'"),
            let stored = StandardVersion(parsing: text), stored > standard.version
        {
            throw StoreError.identityMismatch(
                "this database already follows standard \(stored), newer than \(standard.version); open it with the newer standard (a database is never downgraded)")
        }
        let roleText: String
        switch identity.role {
        case .hub: roleText = "hub"
        case .unit(let u): roleText = "unit:" + u
        }
        let stored = try String.fetchOne(db, sql: "SELECT value FROM ferry_state WHERE key = 'node'")
        let storedRole = try String.fetchOne(db, sql: "SELECT value FROM ferry_state WHERE key = 'role'")
        if let stored, stored != identity.node.rawValue || storedRole != roleText {
            throw StoreError.identityMismatch(
                "this database belongs to node '\(stored)' (\(storedRole ?? "?")), not '\(identity.node)' (\(roleText)); open it with its own identity or use another file")
        }
        try db.execute(
            sql: "INSERT OR REPLACE INTO ferry_state(key, value) VALUES ('node', ?), ('role', ?), ('standard', ?)",
            arguments: [identity.node.rawValue, roleText, standard.version.description])
    }

    /// Closes the database; the store is unusable afterwards.
    public func close() throws {
        if let p = pool as? DatabasePool { try p.close() } else if let q = pool as? DatabaseQueue { try q.close() }
    }

    // MARK: State kept in ferry_state

    struct Counters {
        var clock: HybridLogicalClock
        var nextSeq: Int64
    }

    func loadCounters(_ db: Database) throws -> Counters {
        let hlc = try Int64.fetchOne(db, sql: "SELECT value FROM ferry_state WHERE key = 'hlc'") ?? 0
        let next = try Int64.fetchOne(db, sql: "SELECT value FROM ferry_state WHERE key = 'next_seq'") ?? 1
        return Counters(
            clock: HybridLogicalClock(
                latest: HLCTimestamp(rawValue: UInt64(bitPattern: hlc)), maxForwardDriftMillis: maxForwardDriftMillis),
            nextSeq: next)
    }

    func saveCounters(_ db: Database, _ c: Counters) throws {
        try db.execute(
            sql: "INSERT OR REPLACE INTO ferry_state(key, value) VALUES ('hlc', ?), ('next_seq', ?)",
            arguments: [Int64(bitPattern: c.clock.latest.rawValue), c.nextSeq])
    }

    /// Runs `body` in one write transaction with the node table loaded and flushed.
    func write<T>(_ body: (Database, NodeTable) throws -> T) throws -> T {
        try pool.write { db in
            let table = try nodes.table(db)
            do {
                let result = try body(db, table)
                let added = table.takePending()
                for (i, id) in added {
                    try db.execute(sql: "INSERT INTO ferry_nodes(idx, id) VALUES (?, ?)", arguments: [i, id.rawValue])
                }
                nodes.noteFlushed(added.count)
                return result
            } catch {
                table.discardPending()
                throw error
            }
        }
    }

    // MARK: Row metadata

    func loadMeta(_ db: Database, table: Int, pk: [UInt8], nodes: NodeTable) throws -> RowMeta? {
        let stmt = try db.cachedStatement(sql: "SELECT cl, seq, scope, cells FROM ferry_rows WHERE tbl = ? AND pk = ?")
        guard try stmt.firstRow([.integer(Int64(table))], blobs: [(2, pk)]) else { return nil }
        defer { sqlite3_reset(stmt.sqliteStatement) }
        guard case .integer(let cl) = stmt.columnValue(0), case .integer(let seq) = stmt.columnValue(1) else {
            throw StoreError.corruptMetadata("ferry_rows row without causal length or sequence")
        }
        return RowMeta(
            causalLength: UInt32(cl), seq: seq, scope: stmt.columnValue(2).textValue,
            cells: try RowMeta.decodeCells(stmt.columnBytes(3), nodes))
    }

    func saveMeta(_ db: Database, table: Int, pk: [UInt8], meta: RowMeta, nodes: NodeTable) throws {
        let stmt = try db.cachedStatement(
            sql: "INSERT OR REPLACE INTO ferry_rows(tbl, pk, scope, cl, seq, cells) VALUES (?, ?, ?, ?, ?, ?)")
        sqlite3_reset(stmt.sqliteStatement)
        try stmt.bind([.integer(Int64(table))])
        try stmt.bindBlob(pk, at: 2)
        try stmt.bind([meta.scope.map(Value.text) ?? .null, .integer(Int64(meta.causalLength)), .integer(meta.seq)], from: 3)
        try stmt.bindBlob(meta.encodeCells(nodes), at: 6)
        let rc = sqlite3_step(stmt.sqliteStatement)
        sqlite3_reset(stmt.sqliteStatement)
        guard rc == SQLITE_DONE else { throw stmt.failure(rc) }
    }

    // MARK: Stamping captured writes

    /// Gives every captured local write its clock, version and change sequence. Returns
    /// the number of captured writes processed. Extraction and apply call it first.
    @discardableResult
    public func stampPendingChanges() throws -> Int {
        try write { db, nodes in try stamp(db, nodes) }
    }

    /// Stamps captured writes in chunks, so a unit back from months offline stamps in
    /// bounded memory.
    func stamp(_ db: Database, _ nodes: NodeTable) throws -> Int {
        var total = 0
        while true {
            let n = try stampChunk(db, nodes, limit: 2000)
            total += n
            if n < 2000 { return total }
        }
    }

    func stampChunk(_ db: Database, _ nodes: NodeTable, limit: Int) throws -> Int {
        let captured = try Row.fetchAll(
            db, sql: "SELECT seq, tbl, op, mask, scope, k1, k2, k3, k4 FROM ferry_capture ORDER BY seq LIMIT ?", arguments: [limit])
        guard !captured.isEmpty else { return 0 }
        var counters = try loadCounters(db)
        // A captured write is stamped with the injected clock when Ferry stamps it, not
        // when the trigger ran: triggers cannot call the node's clock (the sqlite3 shell has
        // none), and the node stamps within its change-detection debounce while it runs.
        let now = clock.nowMillis()
        let me = identity.node
        let authority = identity.role.authority
        struct Key: Hashable {
            var table: Int
            var pk: [UInt8]
        }
        var metas: [Key: RowMeta?] = [:]
        var order: [Key] = []
        for c in captured {
            let tableID: Int = c[1]
            guard let t = tablesByID[tableID] else { continue }
            let op = SchemaSQL.Op(rawValue: c[2]) ?? .update
            let mask: Int64 = c[3]
            let keyValues = (0..<t.primaryKey.count).map { Value(c[5 + $0] as DatabaseValue) }
            let key = Key(table: tableID, pk: KeyEncoding.encode(keyValues))
            if metas[key] == nil {
                metas[key] = .some(try loadMeta(db, table: tableID, pk: key.pk, nodes: nodes))
                order.append(key)
            }
            var meta = metas[key]!
            let stamp = counters.clock.tick(now: now)
            let seq = counters.nextSeq
            counters.nextSeq += 1
            let synced = t.syncedColumnIndices
            func stampCells(_ columns: [Int], into m: inout RowMeta) {
                for i in columns {
                    let v = CellVersion.successor(
                        of: m.cells[i]?.version, writer: me, authority: authority, clock: stamp, policy: t.policy)
                    m.cells[i] = RowMeta.StoredCell(version: v, seq: seq)
                }
                m.seq = seq
            }
            let scope: String? = c[4]
            switch op {
            case .insert, .update:
                if var m = meta, m.exists {
                    let columns = op == .insert ? synced : synced.enumerated().filter { mask & (1 << $0.offset) != 0 }.map(\.element)
                    if columns.isEmpty { continue }
                    stampCells(columns, into: &m)
                    if t.scopeColumn != nil { m.scope = scope }  // a hub row's recipient may change, to NULL too
                    meta = m
                } else {
                    // A new row, or one written again after a delete: a new lifetime.
                    var m = meta ?? RowMeta(causalLength: 0, seq: seq, scope: scope, cells: [:])
                    m.causalLength += 1
                    m.scope = scope
                    stampCells(synced, into: &m)
                    meta = m
                }
            case .delete:
                guard var m = meta, m.exists else { continue }
                m.causalLength += 1
                m.seq = seq
                meta = m
            }
            metas[key] = .some(meta)
        }
        for key in order {
            if let meta = metas[key]!, meta.causalLength > 0 {
                try saveMeta(db, table: key.table, pk: key.pk, meta: meta, nodes: nodes)
            }
        }
        let last: Int64 = captured.last![0]
        try db.execute(sql: "DELETE FROM ferry_capture WHERE seq <= ?", arguments: [last])
        try saveCounters(db, counters)
        return captured.count
    }
}

/// The node table cache, reloaded when another process added nodes.
///
/// `@unchecked Sendable`: it is touched only inside the database writer's serialized
/// transactions.
final class NodeCache: @unchecked Sendable {
    private let table = NodeTable()
    private var loadedCount = -1

    func table(_ db: Database) throws -> NodeTable {
        let count = try Int.fetchOne(db, sql: "SELECT count(*) FROM ferry_nodes") ?? 0
        if count != loadedCount {
            let rows = try Row.fetchAll(db, sql: "SELECT idx, id FROM ferry_nodes").map { ($0[0] as Int, $0[1] as String) }
            try table.load(rows)
            loadedCount = count
        }
        return table
    }

    func noteFlushed(_ n: Int) { loadedCount += n }
}

extension Value {
    /// The value GRDB read from a column.
    public init(_ dbValue: DatabaseValue) {
        switch dbValue.storage {
        case .null: self = .null
        case .int64(let i): self = .integer(i)
        case .double(let d): self = .real(d)
        case .string(let s): self = .text(s)
        case .blob(let d): self = .blob([UInt8](d))
        }
    }

    /// The value as GRDB binds it.
    public var databaseValue: DatabaseValue {
        switch self {
        case .null: return .null
        case .integer(let i): return i.databaseValue
        case .real(let d): return d.databaseValue
        case .text(let s): return s.databaseValue
        case .blob(let b): return Data(b).databaseValue
        }
    }
}
