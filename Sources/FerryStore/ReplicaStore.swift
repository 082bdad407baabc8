import FerryCore
import Foundation
import GRDB
import GRDBSQLite
import Synchronization

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
        /// it; `nil`: every row (a peer of the same unit, or tests). Local columns never go
        /// down; masked ones go down masked, to the unit's other nodes.
        case downstream(unit: String?)
    }
    public var id: NodeID
    public var direction: Direction
    public init(id: NodeID, direction: Direction) {
        self.id = id
        self.direction = direction
    }
}

/// A row this replica could not apply, and why: what the sender is told.
public struct HeldRow: Sendable, Equatable, Hashable {
    public enum Kind: String, Sendable {
        /// A value fails the standard's checks.
        case value
        /// The row arrived without a column it needs, because this replica never held it;
        /// the sender is asked to send it whole.
        case incomplete
        /// The row names a record the sender may not refer to (a directive not addressed to it).
        case reference
        /// Storing the row failed for another reason (a counter at its limit, a constraint).
        case unstorable
        /// A write made here that cannot be synced (a counter at its limit, a write a program
        /// made past the guards). Only ever recorded by the node itself, never sent.
        case local
    }
    public var table: String
    public var key: [Value]
    public var column: String?
    public var kind: Kind
    public var reason: String
    public var reasonZh: String
    public init(table: String, key: [Value], column: String?, kind: Kind, reason: String, reasonZh: String) {
        self.table = table
        self.key = key
        self.column = column
        self.kind = kind
        self.reason = reason
        self.reasonZh = reasonZh
    }
}

/// What one apply did.
public struct ApplyReport: Sendable, Equatable {
    public var rows = 0
    public var cellsAdopted = 0
    public var rowsInserted = 0
    public var rowsDeleted = 0
    public var conflictsLogged = 0
    /// Rows set aside (quarantined): a value failed the standard's checks, the row arrived
    /// incomplete, or it could not be stored.
    public var quarantined = 0
    /// Rows the sender should send again whole: this replica lacks them (see `HeldRow.Kind.incomplete`).
    public var resendWhole: [RowRef] = []
    /// Incoming cells whose version the sender may not author, set aside unused.
    public var refusedVersions = 0
    /// Cells whose value anti-entropy repaired.
    public var repairedCells = 0
    /// Rows removed because they left this replica's scope.
    public var rowsLeft = 0
    /// Set when a remote clock was too far ahead to adopt: by how much it led local time.
    public var boundedClockAheadMillis: UInt64?
}

/// A unit's or hub's SQLite database with Ferry's capture, metadata and merge.
///
/// Opening a database creates the standard's tables and installs capture triggers, so
/// writes by any process are recorded. Call `stampPendingChanges()` (extraction and apply
/// do it themselves) to give captured writes their clock and version.
///
/// At a hub a unit-owned row is stored under its unit and its key together: two units may
/// use the same key, and no unit can occupy or probe another unit's keys.
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
    let nodes: NodeCache
    /// Who this replica's new versions name as their origin: the node, or its incarnation
    /// after a restore was found (see `beginIncarnation`).
    let writerLock: Mutex<NodeID>
    public var writer: NodeID { writerLock.withLock { $0 } }

    /// The metadata layout this build writes (release 1 wrote 1).
    static let format = 3

    public init(
        path: String, standard: Standard, identity: ReplicaIdentity, clock: any WallClock,
        maxForwardDriftMillis: UInt64 = HybridLogicalClock.defaultMaxForwardDriftMillis, busyTimeoutSeconds: Double = 30,
        readOnly: Bool = false
    ) throws {
        // Tightened even when only looking: an older release may have left it open to others.
        if readOnly {
            for p in [path, path + "-wal", path + "-shm", path + "-journal"] where FileManager.default.fileExists(atPath: p) { FilePermissions.tighten(p) }
        } else {
            try FilePermissions.preparePrivateFile(path)
        }
        self.path = path
        self.standard = standard
        self.identity = identity
        self.clock = clock
        self.maxForwardDriftMillis = maxForwardDriftMillis
        var config = Configuration()
        // For looking only (`ferry status`): no migration, no trigger rebuild, no write lock,
        // so it never waits behind a clerk's open transaction in the sqlite3 shell.
        config.readonly = readOnly
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
        if readOnly {
            try pool.read { db in
                // A database this build has still to migrate or convert is not read as it is.
                guard try db.tableExists("ferry_tables"), try db.tableExists("ferry_state"), try Self.migrator.hasCompletedMigrations(db) else {
                    throw StoreError.needsUpgrade
                }
                let format = try Int.fetchOne(db, sql: "SELECT value FROM ferry_state WHERE key = 'format'")
                let follows = try String.fetchOne(db, sql: "SELECT value FROM ferry_state WHERE key = 'standard'")
                guard (format ?? 1) >= Self.format, follows == standard.version.description else { throw StoreError.needsUpgrade }
                (ids, byID) = try Self.tableNumbers(db, standard)
            }
            tableIDs = ids
            tablesByID = byID
            writerLock = Mutex(identity.node)
            return
        }
        try Self.migrator.migrate(pool)
        let role = identity.role
        try pool.write { db in
            try Self.checkIdentity(db, identity: identity, standard: standard)
            // Triggers first: a table another table's trigger names cannot be rebuilt while
            // that trigger exists (SQLite checks every trigger when a table is renamed).
            let installed = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'ferry\\_%' ESCAPE '\\'")
            for trig in installed { try db.execute(sql: "DROP TRIGGER \(SchemaSQL.quote(trig))") }
            for t in standard.tables {
                try Self.createOrMigrate(db, t, role: role)
                try db.execute(sql: "INSERT OR IGNORE INTO ferry_tables(name) VALUES (?)", arguments: [t.name])
            }
            (ids, byID) = try Self.tableNumbers(db, standard)
            for t in standard.tables {
                for sql in SchemaSQL.triggers(t, tableID: ids[t.name]!, role: role, standard: standard) {
                    try db.execute(sql: sql)
                }
            }
            if case .hub = role {
                // Anti-entropy reads one unit's rows of one table at a time.
                try db.execute(sql: "CREATE INDEX IF NOT EXISTS ferry_rows_by_scope_tbl ON ferry_rows (scope, tbl)")
            }
        }
        tableIDs = ids
        tablesByID = byID
        writerLock = Mutex(identity.node)
        try upgradeFormatIfNeeded()
        let incarnation = try pool.read { db in try Int.fetchOne(db, sql: "SELECT value FROM ferry_state WHERE key = 'incarnation_n'") } ?? 0
        writerLock.withLock { $0 = identity.node.incarnation(incarnation) }
        // The epoch beside the database is newer than the one inside it: the file was put back
        // from an older copy while Ferry was not looking. Write as a new incarnation at once.
        if let beside = Self.readEpochFile(path), beside > (try epoch()) {
            try beginIncarnation(atLeast: beside)
        }
    }

    /// The number each of the standard's tables has in this database (`ferry_tables`).
    static func tableNumbers(_ db: Database, _ standard: Standard) throws -> ([String: Int], [Int: TableDefinition]) {
        var ids: [String: Int] = [:]
        var byID: [Int: TableDefinition] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT id, name FROM ferry_tables") {
            let id: Int = row[0]
            let name: String = row[1]
            if let t = standard.table(named: name) {
                ids[name] = id
                byID[id] = t
            }
        }
        return (ids, byID)
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
        // Release 2: write-time capture clocks, row fingerprints and their digests (anti-
        // entropy), rows to send whole, rows that left a unit's scope, rows the hub holds
        // back, whole-row images of deleted values, and the kind of a quarantined row. The
        // row metadata itself is re-encoded by `upgradeFormatIfNeeded` (it needs the standard).
        m.registerMigration("v3-anti-entropy") { db in
            try db.execute(
                sql: """
                    ALTER TABLE ferry_capture ADD COLUMN at INTEGER;
                    ALTER TABLE ferry_rows ADD COLUMN fp INTEGER NOT NULL DEFAULT 0;
                    CREATE TABLE ferry_digest (
                        scope TEXT NOT NULL, tbl INTEGER NOT NULL, sum INTEGER NOT NULL, n INTEGER NOT NULL,
                        PRIMARY KEY (scope, tbl)) STRICT, WITHOUT ROWID;
                    CREATE TABLE ferry_resend (
                        peer TEXT NOT NULL, tbl INTEGER NOT NULL, pk BLOB NOT NULL, repair INTEGER NOT NULL DEFAULT 0,
                        PRIMARY KEY (peer, tbl, pk)) STRICT, WITHOUT ROWID;
                    CREATE TABLE ferry_exits (
                        scope TEXT NOT NULL, tbl INTEGER NOT NULL, pk BLOB NOT NULL, seq INTEGER NOT NULL,
                        PRIMARY KEY (scope, tbl, pk)) STRICT, WITHOUT ROWID;
                    CREATE INDEX ferry_exits_by_seq ON ferry_exits (scope, seq);
                    CREATE TABLE ferry_held (
                        tbl TEXT NOT NULL, pk BLOB NOT NULL, col TEXT, kind TEXT NOT NULL, reason TEXT NOT NULL,
                        reason_zh TEXT NOT NULL, PRIMARY KEY (tbl, pk)) STRICT, WITHOUT ROWID;
                    ALTER TABLE ferry_quarantine ADD COLUMN kind TEXT NOT NULL DEFAULT 'value';
                    ALTER TABLE ferry_quarantine ADD COLUMN reason_zh TEXT;
                    ALTER TABLE ferry_conflicts ADD COLUMN row_image BLOB;
                    CREATE INDEX ferry_quarantine_open ON ferry_quarantine (status, scope);
                    """)
        }
        // Release 2.1: conflicts settled since a time, for telling each unit of a
        // supervisor's decisions (`settledConflicts`).
        m.registerMigration("v4-settled-conflicts") { db in
            try db.execute(sql: "CREATE INDEX ferry_conflicts_by_settled ON ferry_conflicts (settled_at) WHERE settled_at IS NOT NULL")
        }
        // Release 2.1: deletes a peer sent, left out of what goes back to it (`ferry_echo`:
        // a row's tombstone as that peer's push made it, at the sequence it made it; cleared
        // as the peer's cursor passes it).
        m.registerMigration("v5-echoes") { db in
            try db.execute(
                sql: """
                    CREATE TABLE ferry_echo (
                        peer TEXT NOT NULL, tbl INTEGER NOT NULL, pk BLOB NOT NULL, seq INTEGER NOT NULL,
                        PRIMARY KEY (peer, tbl, pk)) STRICT, WITHOUT ROWID
                    """)
        }
        return m
    }

    /// Creates a standard table, or brings an existing one to this standard's definition.
    ///
    /// Columns are only ever appended within a major version, so the table is rebuilt with
    /// the new definition (new columns, widened checks) and its rows copied across, in the
    /// open transaction: a failure leaves the old table as it was. The caller has dropped
    /// Ferry's triggers first.
    static func createOrMigrate(_ db: Database, _ t: TableDefinition, role: ReplicaRole) throws {
        let wanted = SchemaSQL.createTable(t, scopedKey: Self.scopedKey(t, role))
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
            throw StoreError.identityMismatch(
                "table \(t.name) cannot be migrated to the new standard (\((error as? DatabaseError)?.message ?? "\(error)")); the rows that fail its checks must be corrected first")
        }
        // Indexes on the old table (the hub's report indexes) go with it; their owners recreate them.
        try db.execute(sql: "DROP TABLE \(SchemaSQL.quote(t.name))")
        try db.execute(sql: "ALTER TABLE \(SchemaSQL.quote(temp)) RENAME TO \(SchemaSQL.quote(t.name))")
    }

    /// Whether `t`'s rows are stored under their unit and key together: unit tables at a hub.
    static func scopedKey(_ t: TableDefinition, _ role: ReplicaRole) -> Bool {
        if case .hub = role, t.isUnitWritable { return true }
        return false
    }

    func scopedKey(_ t: TableDefinition) -> Bool { Self.scopedKey(t, identity.role) }

    /// The columns that identify a stored row: the key, and at a hub a unit row's unit first.
    func storageKeyColumns(_ t: TableDefinition) -> [String] {
        scopedKey(t) ? [t.scopeColumn!] + t.primaryKey : t.primaryKey
    }

    /// The values naming a stored row (see `storageKeyColumns`).
    func storageKey(_ t: TableDefinition, key: [Value], scope: String?) -> [Value] {
        scopedKey(t) ? [scope.map(Value.text) ?? .null] + key : key
    }

    /// The standard's key and the unit of a stored row's storage key.
    func splitStorageKey(_ t: TableDefinition, _ storage: [Value]) -> (key: [Value], scope: String?) {
        guard scopedKey(t), let first = storage.first else { return (storage, nil) }
        return (Array(storage.dropFirst()), first.textValue)
    }

    static func checkIdentity(_ db: Database, identity: ReplicaIdentity, standard: Standard) throws {
        if let text = try String.fetchOne(db, sql: "SELECT value FROM ferry_state WHERE key = 'standard'"),
            let stored = StandardVersion(parsing: text), stored > standard.version
        {
            throw StoreError.identityMismatch(
                "this database already follows standard \(stored), newer than \(standard.version); open it with the newer standard (a database is never downgraded)")
        }
        let roleText = Self.roleText(identity.role)
        let stored = try String.fetchOne(db, sql: "SELECT value FROM ferry_state WHERE key = 'node'")
        let storedRole = try String.fetchOne(db, sql: "SELECT value FROM ferry_state WHERE key = 'role'")
        if let stored, stored != identity.node.rawValue || storedRole != roleText {
            throw StoreError.identityMismatch(
                "this database belongs to node '\(stored)' (\(storedRole ?? "?")), not '\(identity.node)' (\(roleText)); open it with its own identity or use another file")
        }
        try db.execute(
            sql: "INSERT OR REPLACE INTO ferry_state(key, value) VALUES ('node', ?), ('role', ?), ('standard', ?)",
            arguments: [identity.node.rawValue, roleText, standard.version.description])
        if try Int.fetchOne(db, sql: "SELECT count(*) FROM ferry_state WHERE key = 'incarnation'") == 0 {
            // A database made by this build starts in the current format; one from release 1
            // (which has rows but no format key) is converted by `upgradeFormatIfNeeded`.
            let fresh = try Int.fetchOne(db, sql: "SELECT count(*) FROM ferry_rows") == 0
                && Int.fetchOne(db, sql: "SELECT count(*) FROM ferry_capture") == 0
            if fresh, try Int.fetchOne(db, sql: "SELECT count(*) FROM ferry_state WHERE key = 'format'") == 0 {
                try db.execute(sql: "INSERT INTO ferry_state(key, value) VALUES ('format', ?)", arguments: [Self.format])
            }
            try db.execute(
                sql: "INSERT INTO ferry_state(key, value) VALUES ('incarnation', ?)",
                arguments: [Int64.random(in: 1...Int64.max)])
        }
    }

    static func roleText(_ role: ReplicaRole) -> String {
        switch role {
        case .hub: return "hub"
        case .unit(let u): return "unit:" + u
        }
    }

    // MARK: Epochs and incarnations

    /// The replica epoch its hub last gave it (0 before the first exchange).
    public func epoch() throws -> UInt64 {
        try pool.read { db in
            UInt64(bitPattern: try Int64.fetchOne(db, sql: "SELECT value FROM ferry_state WHERE key = 'app.epoch'") ?? 0)
        }
    }

    /// Stores the epoch the hub gave, in the database and in a small file beside it
    /// (`unit.db-epoch`): a database restored from an older copy then shows an older epoch
    /// than the file when it is next opened.
    public func recordEpoch(_ e: UInt64) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO ferry_state(key, value) VALUES ('app.epoch', ?)", arguments: [Int64(bitPattern: e)])
        }
        guard path != ":memory:" else { return }
        try FilePermissions.writePrivateFile(Data(String(e).utf8), to: path + "-epoch")
    }

    static func readEpochFile(_ path: String) -> UInt64? {
        guard path != ":memory:" else { return nil }
        return (try? String(contentsOfFile: path + "-epoch", encoding: .utf8)).flatMap { UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// From now on this replica writes as a new incarnation of itself (`u1-n1.2`): its
    /// database went back in time (restored from a copy), so the versions it made after that
    /// copy may be out there, and its new writes must not be ordered as if they came after
    /// them. Their values stay; a later conflict between them is settled and logged as one.
    ///
    /// The number is at least `atLeast`: an epoch, which only the hub (or the epoch file
    /// beside the database) counts, so it keeps growing even when the same old copy is put
    /// back twice — the count kept inside the database went back with it.
    public func beginIncarnation(atLeast: UInt64 = 0) throws {
        let next = try pool.write { db -> Int in
            let stored = try Int.fetchOne(db, sql: "SELECT value FROM ferry_state WHERE key = 'incarnation_n'") ?? 0
            let n = max(stored + 1, Int(clamping: atLeast))
            try db.execute(sql: "INSERT OR REPLACE INTO ferry_state(key, value) VALUES ('incarnation_n', ?)", arguments: [n])
            return n
        }
        let writer = identity.node.incarnation(next)
        guard writer != identity.node else {
            throw StoreError.identityMismatch(
                "node id '\(identity.node)' is too long to write as incarnation \(next) (at most 64 characters); enrol a replacement node with: ferry node init --restore BACKUP")
        }
        writerLock.withLock { $0 = writer }
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

    /// This replica's clock offset to its hub, ms (hub minus ours; 0 at a hub or before contact).
    func clockOffset(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT value FROM ferry_state WHERE key = 'clock_offset'") ?? 0
    }

    /// Wall time corrected by the known offset to the hub: what clocks are taken from.
    func correctedNow(_ db: Database) throws -> UInt64 {
        UInt64(max(0, Int64(clock.nowMillis()) + (try clockOffset(db))))
    }

    /// Records the replica's clock offset to its hub (hub minus ours, ms), observed on each
    /// contact. Captured writes are stamped with their write time plus this offset, so a
    /// unit whose clock is hours off still orders its edits by when they really happened.
    public func setClockOffset(_ millis: Int64) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO ferry_state(key, value) VALUES ('clock_offset', ?)", arguments: [millis])
        }
    }

    /// Runs `body` in one write transaction with the node table loaded and the digest
    /// changes flushed at the end.
    func write<T>(_ body: (Database, Transaction) throws -> T) throws -> T {
        try pool.write { db in
            let tx = Transaction(nodes: try nodes.table(db))
            do {
                let result = try body(db, tx)
                let added = tx.nodes.takePending()
                for (i, id) in added {
                    try db.execute(sql: "INSERT INTO ferry_nodes(idx, id) VALUES (?, ?)", arguments: [i, id.rawValue])
                }
                nodes.noteFlushed(added.count)
                try tx.flushDigests(db)
                return result
            } catch {
                tx.nodes.discardPending()
                throw error
            }
        }
    }

    // MARK: Row metadata

    func loadMeta(_ db: Database, table: Int, pk: [UInt8], nodes: NodeTable) throws -> RowMeta? {
        guard let t = tablesByID[table] else { return nil }
        let stmt = try db.cachedStatement(sql: "SELECT cl, seq, scope, cells, fp FROM ferry_rows WHERE tbl = ? AND pk = ?")
        guard try stmt.firstRow([.integer(Int64(table))], blobs: [(2, pk)]) else { return nil }
        defer { sqlite3_reset(stmt.sqliteStatement) }
        guard case .integer(let cl) = stmt.columnValue(0), case .integer(let seq) = stmt.columnValue(1) else {
            throw StoreError.corruptMetadata("ferry_rows row without causal length or sequence")
        }
        guard (0...Int64(UInt32.max)).contains(cl) else { throw StoreError.corruptMetadata("causal length \(cl) out of range") }
        var fp: UInt64 = 0
        if case .integer(let f) = stmt.columnValue(4) { fp = UInt64(bitPattern: f) }
        return RowMeta(
            causalLength: UInt32(cl), seq: seq, scope: stmt.columnValue(2).textValue,
            cells: try RowMeta.decodeCells(stmt.columnBytes(3), t, nodes), fingerprint: fp)
    }

    /// Stores a row's metadata with its new fingerprint, and moves the fingerprint from
    /// `before` to the new one in the digests.
    func saveMeta(_ db: Database, table: Int, pk: [UInt8], meta: RowMeta, before: RowMeta?, tx: Transaction) throws {
        let t = tablesByID[table]!
        let stmt = try db.cachedStatement(
            sql: "INSERT OR REPLACE INTO ferry_rows(tbl, pk, scope, cl, seq, cells, fp) VALUES (?, ?, ?, ?, ?, ?, ?)")
        sqlite3_reset(stmt.sqliteStatement)
        try stmt.bind([.integer(Int64(table))])
        try stmt.bindBlob(pk, at: 2)
        try stmt.bind(
            [meta.scope.map(Value.text) ?? .null, .integer(Int64(meta.causalLength)), .integer(meta.seq)], from: 3)
        try stmt.bindBlob(meta.encodeCells(t, tx.nodes), at: 6)
        try stmt.bind([.integer(Int64(bitPattern: meta.fingerprint))], from: 7)
        let rc = sqlite3_step(stmt.sqliteStatement)
        sqlite3_reset(stmt.sqliteStatement)
        guard rc == SQLITE_DONE else { throw stmt.failure(rc) }
        if let b = before, b.fingerprint != 0 { tx.digest(scope: b.scope, table: table).remove(b.fingerprint) }
        tx.digest(scope: meta.scope, table: table).add(meta.fingerprint)
    }

    /// Forgets a row entirely (it left this replica's scope): data, metadata and digest.
    func forgetRow(_ db: Database, _ t: TableDefinition, table: Int, pk: [UInt8], storage: [Value], meta: RowMeta?, tx: Transaction) throws {
        try db.cachedStatement(sql: "DELETE FROM \(SchemaSQL.quote(t.name)) WHERE \(whereKey(t))").run(storage)
        let stmt = try db.cachedStatement(sql: "DELETE FROM ferry_rows WHERE tbl = ? AND pk = ?")
        sqlite3_reset(stmt.sqliteStatement)
        try stmt.bind([.integer(Int64(table))])
        try stmt.bindBlob(pk, at: 2)
        let rc = sqlite3_step(stmt.sqliteStatement)
        sqlite3_reset(stmt.sqliteStatement)
        guard rc == SQLITE_DONE else { throw stmt.failure(rc) }
        if let m = meta, m.fingerprint != 0 { tx.digest(scope: m.scope, table: table).remove(m.fingerprint) }
    }

    /// Recomputes a row's fingerprint from its current data (a deleted row: from its metadata).
    ///
    /// With `dataMayBeAhead` (stamping a chunk of captures while later ones wait), a live row
    /// whose data is already gone gets a placeholder: the delete captured after it fixes it.
    func fingerprint(_ db: Database, _ t: TableDefinition, storage: [Value], meta: RowMeta, dataMayBeAhead: Bool = false) throws -> UInt64 {
        let key = splitStorageKey(t, storage).key
        guard meta.exists else { return meta.computeFingerprint(t, key: key, values: nil) }
        let columns = t.syncedColumnIndices
        guard let values = try readValues(db, t, storage: storage, columns: columns) else {
            if dataMayBeAhead { return SipHasher.hash(KeyEncoding.encode(storage)) | 1 }
            throw StoreError.corruptMetadata("table \(t.name) row \(key) is live in sync metadata but missing from the table")
        }
        var byIndex: [Int: Value] = [:]
        for (n, i) in columns.enumerated() { byIndex[i] = values[n] }
        return meta.computeFingerprint(t, key: key, values: byIndex)
    }

    func whereKey(_ t: TableDefinition) -> String {
        storageKeyColumns(t).map { "\(SchemaSQL.quote($0)) = ?" }.joined(separator: " AND ")
    }

    func readValues(_ db: Database, _ t: TableDefinition, storage: [Value], columns: [Int]) throws -> [Value]? {
        let cols = columns.isEmpty ? "1" : columns.map { SchemaSQL.quote(t.columns[$0].name) }.joined(separator: ", ")
        let stmt = try db.cachedStatement(sql: "SELECT \(cols) FROM \(SchemaSQL.quote(t.name)) WHERE \(whereKey(t))")
        guard try stmt.firstRow(storage) else { return nil }
        defer { sqlite3_reset(stmt.sqliteStatement) }
        return columns.isEmpty ? [] : (0..<columns.count).map { stmt.columnValue(Int32($0)) }
    }
}

/// One write transaction's working state: the node table, and the changes to the digests
/// (summed in memory, written once at the end).
final class Transaction {
    let nodes: NodeTable
    private var digests: [DigestKey: DigestSum] = [:]

    struct DigestKey: Hashable {
        var scope: String
        var table: Int
    }

    init(nodes: NodeTable) { self.nodes = nodes }

    /// The pending change to the digest of (`scope`, `table`); mutate it in place.
    func digest(scope: String?, table: Int) -> DigestDelta { DigestDelta(tx: self, key: DigestKey(scope: scope ?? "", table: table)) }

    struct DigestDelta {
        let tx: Transaction
        let key: DigestKey
        func add(_ fp: UInt64) { tx.digests[key, default: DigestSum()].add(fp) }
        func remove(_ fp: UInt64) { tx.digests[key, default: DigestSum()].remove(fp) }
    }

    func flushDigests(_ db: Database) throws {
        guard !digests.isEmpty else { return }
        for (k, d) in digests where !d.isEmpty {
            // The sum is kept mod 2^64 in a signed column; SQLite's + would turn an
            // overflowing sum into a real, so the sum is added in Swift.
            let current = try Row.fetchOne(db, sql: "SELECT sum, n FROM ferry_digest WHERE scope = ? AND tbl = ?", arguments: [k.scope, k.table])
            var total = DigestSum()
            if let c = current { total = DigestSum(sum: UInt64(bitPattern: c[0] as Int64), count: c[1]) }
            total.add(d)
            try db.execute(
                sql: "INSERT OR REPLACE INTO ferry_digest(scope, tbl, sum, n) VALUES (?, ?, ?, ?)",
                arguments: [k.scope, k.table, Int64(bitPattern: total.sum), total.count])
        }
        digests = [:]
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
