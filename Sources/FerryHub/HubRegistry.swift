import FerryCore
import FerryStore
import Foundation
import FerryWire
import GRDB
import Logging

/// An enrolled node as the hub knows it.
public struct NodeRecord: Sendable, Equatable {
    public var id: NodeID
    public var unitID: String
    public var publicKey: [UInt8]
    public var hostname: String
    public var enrolledAt: UInt64
    public var revokedAt: UInt64?
    public var lastSeenAt: UInt64?
    public var lastSyncAt: UInt64?
    public var standardVersion: String?
    public var pendingRows: Int?
    public var clockSkewMillis: Int64?
    /// The highest replica epoch the node has reported (see `ExchangeRequest.epoch`).
    public var epoch: UInt64 = 0
    /// The newest clock of a version this node authored, as the hub received it.
    public var maxClock: UInt64 = 0
}

/// The hub's own bookkeeping (org tree, tokens, nodes, nonces, audit) in `registry.db`.
public final class HubRegistry: Sendable {
    let pool: DatabasePool
    /// How failed supervisor logins slow down the next ones.
    public let throttle: LoginThrottle
    /// Every audited event is also one log line (see `audit`).
    let logger: Logger

    /// Opens (or creates) the registry at `path`, a private file (see `FilePermissions`):
    /// it holds password hashes and node keys.
    public init(path: String, throttle: LoginThrottle = LoginThrottle(), logger: Logger = Logger(label: "ferry.hub")) throws {
        try FilePermissions.preparePrivateFile(path)
        self.throttle = throttle
        self.logger = logger
        var config = Configuration()
        config.busyMode = .timeout(30)
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        pool = try DatabasePool(path: path, configuration: config)
        var m = DatabaseMigrator()
        m.registerMigration("v1-registry") { db in
            try db.execute(
                sql: """
                    CREATE TABLE org_units (
                        id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, parent_id TEXT, level TEXT NOT NULL,
                        industry TEXT, region TEXT, created_at INTEGER NOT NULL) STRICT;
                    CREATE TABLE tokens (
                        digest TEXT PRIMARY KEY NOT NULL, unit_id TEXT NOT NULL, created_at INTEGER NOT NULL,
                        expires_at INTEGER NOT NULL, used_at INTEGER, used_by TEXT) STRICT;
                    CREATE TABLE nodes (
                        id TEXT PRIMARY KEY NOT NULL, unit_id TEXT NOT NULL, public_key BLOB NOT NULL,
                        hostname TEXT NOT NULL, enrolled_at INTEGER NOT NULL, revoked_at INTEGER,
                        last_seen_at INTEGER, last_sync_at INTEGER, standard_version TEXT,
                        pending_rows INTEGER, clock_skew_ms INTEGER) STRICT;
                    CREATE TABLE nonces (
                        node TEXT NOT NULL, nonce TEXT NOT NULL, seen_at INTEGER NOT NULL,
                        PRIMARY KEY (node, nonce)) STRICT, WITHOUT ROWID;
                    CREATE INDEX nonces_by_age ON nonces (seen_at);
                    CREATE TABLE audit (
                        id INTEGER PRIMARY KEY, at INTEGER NOT NULL, node TEXT, unit_id TEXT,
                        action TEXT NOT NULL, batch INTEGER, through INTEGER, rows INTEGER, bytes INTEGER,
                        outcome TEXT NOT NULL, detail TEXT) STRICT;
                    """)
        }
        Self.registerAdminMigration(&m)
        // Release 2: tokens are checked by proof (the token itself is never stored or sent);
        // a node's replica epoch and the newest clock it authored, to notice a restored
        // database.
        m.registerMigration("v3-trust") { db in
            try db.execute(
                sql: """
                    ALTER TABLE tokens ADD COLUMN proof_key BLOB;
                    ALTER TABLE nodes ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE nodes ADD COLUMN max_clock INTEGER NOT NULL DEFAULT 0;
                    CREATE INDEX nodes_by_unit ON nodes (unit_id);
                    """)
        }
        m.registerMigration("v3-audit-client") { db in
            try db.execute(
                sql: """
                    ALTER TABLE audit ADD COLUMN client TEXT;
                    ALTER TABLE audit ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
                    ALTER TABLE audit ADD COLUMN last_at INTEGER;
                    CREATE INDEX audit_by_client ON audit (client, at) WHERE client IS NOT NULL;
                    CREATE INDEX audit_from_clients ON audit (at) WHERE client IS NOT NULL;
                    """)
        }
        Self.registerLoginThrottleMigration(&m)
        try m.migrate(pool)
    }

    // MARK: Org tree

    public func addUnit(_ u: OrgUnit, now: UInt64) throws {
        try pool.write { db in
            if let p = u.parentID, try Int.fetchOne(db, sql: "SELECT 1 FROM org_units WHERE id = ?", arguments: [p]) == nil {
                throw HubError.invalid("parent '\(p)' is not in the org tree; add it first (ferry hub unit add --id \(p) --level …)")
            }
            try db.execute(
                sql: """
                    INSERT INTO org_units (id, name, parent_id, level, industry, region, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT(id) DO UPDATE SET name = excluded.name, parent_id = excluded.parent_id,
                      level = excluded.level, industry = excluded.industry, region = excluded.region
                    """,
                arguments: [u.id, u.name, u.parentID, u.level.rawValue, u.industry, u.region, Int64(now)])
        }
    }

    public func unit(_ id: String) throws -> OrgUnit? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT id, name, parent_id, level, industry, region FROM org_units WHERE id = ?", arguments: [id]).map(Self.orgUnit)
        }
    }

    public func units() throws -> [OrgUnit] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT id, name, parent_id, level, industry, region FROM org_units ORDER BY id").map(Self.orgUnit)
        }
    }

    static func orgUnit(_ r: Row) -> OrgUnit {
        OrgUnit(id: r[0], name: r[1], parentID: r[2], level: OrgUnit.Level(rawValue: r[3]) ?? .unit, industry: r[4], region: r[5])
    }

    // MARK: Tokens and enrolment

    public func addToken(digest: String, proofKey: [UInt8], unitID: String, now: UInt64, expiresAt: UInt64) throws {
        try pool.write { db in
            try db.execute(
                sql: "INSERT INTO tokens (digest, proof_key, unit_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                arguments: [digest, Data(proofKey), unitID, Int64(now), Int64(expiresAt)])
        }
    }

    /// Consumes a token and records the node, in one transaction: a token works once.
    /// `proof` must be the token's proof over this node's key, host name and nonce.
    func enrol(tokenDigest: String, proof: (([UInt8]) -> Bool), publicKey: [UInt8], hostname: String, now: UInt64) throws -> NodeRecord {
        try pool.write { db in
            guard let t = try Row.fetchOne(db, sql: "SELECT unit_id, expires_at, used_at, proof_key FROM tokens WHERE digest = ?", arguments: [tokenDigest]) else {
                throw WireError(.tokenInvalid, "this enrolment token is not known to the hub; check it was typed correctly, or ask the supervisor for a new one")
            }
            guard let proofKey = t[3] as Data?, proof([UInt8](proofKey)) else {
                throw WireError(
                    .tokenInvalid,
                    (t[3] as Data?) == nil
                        ? "this enrolment token was issued by an older release of the hub; ask the supervisor for a new one"
                        : "the proof of the enrolment token does not match; check the token was typed correctly")
            }
            if (t[2] as Int64?) != nil {
                // A node whose enrolment answer was lost on a bad link retries with the same
                // key: give it the same record instead of burning the token.
                if let usedBy = try String.fetchOne(db, sql: "SELECT used_by FROM tokens WHERE digest = ?", arguments: [tokenDigest]),
                    let existing = try Row.fetchOne(db, sql: "SELECT \(Self.nodeColumns) FROM nodes WHERE id = ?", arguments: [usedBy]).map(Self.nodeRecord),
                    existing.publicKey == publicKey, existing.revokedAt == nil
                {
                    return existing
                }
                throw WireError(.tokenUsed, "this enrolment token was already used; each token enrols one node. Ask the supervisor for a new one")
            }
            if UInt64(t[1] as Int64) < now { throw WireError(.tokenExpired, "this enrolment token has expired; ask the supervisor for a new one") }
            let unitID: String = t[0]
            let n = try Int.fetchOne(db, sql: "SELECT count(*) FROM nodes WHERE unit_id = ?", arguments: [unitID]) ?? 0
            let id = try NodeID("\(unitID)-n\(n + 1)")
            try db.execute(
                sql: "INSERT INTO nodes (id, unit_id, public_key, hostname, enrolled_at) VALUES (?, ?, ?, ?, ?)",
                arguments: [id.rawValue, unitID, Data(publicKey), hostname, Int64(now)])
            try db.execute(sql: "UPDATE tokens SET used_at = ?, used_by = ? WHERE digest = ?", arguments: [Int64(now), id.rawValue, tokenDigest])
            return NodeRecord(
                id: id, unitID: unitID, publicKey: publicKey, hostname: hostname, enrolledAt: now, revokedAt: nil,
                lastSeenAt: nil, lastSyncAt: nil, standardVersion: nil, pendingRows: nil, clockSkewMillis: nil)
        }
    }

    public func node(_ id: String) throws -> NodeRecord? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT \(Self.nodeColumns) FROM nodes WHERE id = ?", arguments: [id]).map(Self.nodeRecord)
        }
    }

    public func nodes() throws -> [NodeRecord] {
        try pool.read { db in try Row.fetchAll(db, sql: "SELECT \(Self.nodeColumns) FROM nodes ORDER BY id").map(Self.nodeRecord) }
    }

    static let nodeColumns = "id, unit_id, public_key, hostname, enrolled_at, revoked_at, last_seen_at, last_sync_at, standard_version, pending_rows, clock_skew_ms, epoch, max_clock"

    static func nodeRecord(_ r: Row) throws -> NodeRecord {
        func u(_ i: Int) -> UInt64? { (r[i] as Int64?).map { UInt64(bitPattern: $0) } }
        return NodeRecord(
            id: try NodeID(r[0] as String), unitID: r[1], publicKey: [UInt8](r[2] as Data), hostname: r[3],
            enrolledAt: u(4) ?? 0, revokedAt: u(5), lastSeenAt: u(6), lastSyncAt: u(7), standardVersion: r[8],
            pendingRows: r[9], clockSkewMillis: r[10], epoch: u(11) ?? 0, maxClock: u(12) ?? 0)
    }

    /// The ids of every node ever enrolled for `unitID` (revoked ones too: their versions
    /// are still the unit's).
    public func nodeIDs(ofUnit unitID: String) throws -> Set<NodeID> {
        try pool.read { db in
            Set(try String.fetchAll(db, sql: "SELECT id FROM nodes WHERE unit_id = ?", arguments: [unitID]).compactMap { try? NodeID($0) })
        }
    }

    /// Records the epoch a node reported and the newest clock it authored; returns the
    /// epoch the node should store next, and whether its database went back in time.
    func noteEpoch(node: String, reported: UInt64, maxClock: UInt64) throws -> (next: UInt64, rolledBack: Bool, clockFloor: UInt64) {
        try pool.write { db in
            guard let r = try Row.fetchOne(db, sql: "SELECT epoch, max_clock FROM nodes WHERE id = ?", arguments: [node]) else {
                return (reported + 1, false, 0)
            }
            let seen = UInt64(bitPattern: r[0] as Int64)
            let floor = max(UInt64(bitPattern: r[1] as Int64), maxClock)
            let rolledBack = reported < seen
            let high = max(seen, reported)
            try db.execute(
                sql: "UPDATE nodes SET epoch = ?, max_clock = ? WHERE id = ?",
                arguments: [Int64(bitPattern: high), Int64(bitPattern: floor), node])
            return (high + 1, rolledBack, floor)
        }
    }

    /// Records a node that was enrolled elsewhere (a registry being rebuilt, a sample
    /// province), with what is known of its contact; returns its id.
    @discardableResult
    public func importNode(
        unitID: String, publicKey: [UInt8], hostname: String, enrolledAt: UInt64, lastSyncAt: UInt64?, standardVersion: String?,
        pendingRows: Int?, clockSkewMillis: Int64?
    ) throws -> NodeID {
        try pool.write { db in
            guard try Int.fetchOne(db, sql: "SELECT 1 FROM org_units WHERE id = ? AND level = 'unit'", arguments: [unitID]) != nil else {
                throw HubError.invalid("unit '\(unitID)' is not in the org tree")
            }
            let n = try Int.fetchOne(db, sql: "SELECT count(*) FROM nodes WHERE unit_id = ?", arguments: [unitID]) ?? 0
            let id = try NodeID("\(unitID)-n\(n + 1)")
            try db.execute(
                sql: """
                    INSERT INTO nodes (id, unit_id, public_key, hostname, enrolled_at, last_seen_at, last_sync_at, standard_version, pending_rows, clock_skew_ms)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    id.rawValue, unitID, Data(publicKey), hostname, Int64(enrolledAt), lastSyncAt.map { Int64($0) }, lastSyncAt.map { Int64($0) },
                    standardVersion, pendingRows, clockSkewMillis,
                ])
            return id
        }
    }

    public func revoke(_ id: String, now: UInt64) throws -> Bool {
        try pool.write { db in
            try db.execute(sql: "UPDATE nodes SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", arguments: [Int64(now), id])
            return db.changesCount > 0
        }
    }

    /// Records a nonce; false when the node already used it (a replay).
    func useNonce(node: String, nonce: String, now: UInt64, window: UInt64) throws -> Bool {
        try pool.write { db in
            try db.execute(sql: "INSERT OR IGNORE INTO nonces (node, nonce, seen_at) VALUES (?, ?, ?)", arguments: [node, nonce, Int64(now)])
            let fresh = db.changesCount > 0
            // Nonces older than twice the accepted window can no longer be replayed.
            try db.execute(sql: "DELETE FROM nonces WHERE seen_at < ?", arguments: [Int64(now) - Int64(2 * window)])
            return fresh
        }
    }

    func noteContact(node: String, now: UInt64, standardVersion: String? = nil, pendingRows: Int? = nil, skew: Int64? = nil, synced: Bool = false) throws {
        try pool.write { db in
            try db.execute(
                sql: """
                    UPDATE nodes SET last_seen_at = ?,
                      standard_version = coalesce(?, standard_version), pending_rows = coalesce(?, pending_rows),
                      clock_skew_ms = coalesce(?, clock_skew_ms), last_sync_at = CASE WHEN ? THEN ? ELSE last_sync_at END
                    WHERE id = ?
                    """,
                arguments: [Int64(now), standardVersion, pendingRows, skew, synced, Int64(now), node])
        }
    }

    // MARK: Audit

    public struct AuditEntry: Sendable, Equatable {
        public var at: UInt64
        public var node: String?
        public var action: String
        public var rows: Int?
        public var outcome: String
        public var detail: String?
        /// The address the request came from, when the caller passed it.
        public var client: String?
        /// How many events this row stands for (see `audit`); 1 for most.
        public var attempts: Int
        /// When the last of them happened, if more than one.
        public var lastAt: UInt64?
    }

    /// Bounds on the audit rows a client can cause without an account (see `audit`).
    static let auditFoldMillis: Int64 = 60_000
    static let auditRowsPerClientPerHour = 60
    static let auditRowsFromAllClientsPerMinute = 600
    /// The `client` of rows that fold events from more addresses than the per-minute bound.
    public static let manyClients = "*"

    /// Appends a row to the audit log; `client` is the address the request came from.
    ///
    /// Anyone can make the hub audit something — every failed login, bad signature or
    /// spent token is a row — so rows from a `client` that carry no batch, row or byte
    /// counts are bounded, and what would exceed the bound is counted, never dropped:
    ///
    /// - an event identical to one from the same client less than a minute before (same
    ///   node, unit, action, outcome and detail) adds one to that row's `attempts` and sets
    ///   its `last_at`;
    /// - once a client has 60 rows in the last hour, its further events fold into its
    ///   latest row of the same action and outcome (whatever the detail, so not every
    ///   account name a guesser tried is kept);
    /// - once all clients together have 600 rows in the last minute (many addresses at
    ///   once), further events fold into one row per action and outcome with client `*`.
    ///
    /// So one address adds at most about one row a minute per kind of event and 60 an
    /// hour, and the whole log grows at most by 600 such rows a minute. Rows of pushes and
    /// pulls (with batch, rows or bytes) are always appended.
    func audit(
        node: String?, unit: String?, action: String, batch: UInt64? = nil, through: UInt64? = nil, rows: Int? = nil, bytes: Int? = nil,
        outcome: String, detail: String? = nil, client: String? = nil, now: UInt64
    ) {
        // Auditing must not turn a served request into a failed one; a failure here is logged by the caller's metrics.
        let appended = try? pool.write { db -> Bool in
            var client = client
            if let c = client, batch == nil, through == nil, rows == nil, bytes == nil {
                switch try Self.fold(db, client: c, node: node, unit: unit, action: action, outcome: outcome, detail: detail, now: Int64(now)) {
                case .folded: return false
                case .asManyClients: client = Self.manyClients
                case .append: break
                }
            }
            try db.execute(
                sql: "INSERT INTO audit (at, node, unit_id, action, batch, through, rows, bytes, outcome, detail, client) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                arguments: [
                    Int64(now), node, unit, action, batch.map { Int64(bitPattern: $0) }, through.map { Int64(bitPattern: $0) }, rows, bytes, outcome, detail,
                    client,
                ])
            return true
        }
        // A burst folded into one audit row (the same failure again and again from one
        // address) is one log line too: the log cannot be flooded past what the audit keeps.
        guard appended ?? true else { return }
        var fields: Logger.Metadata = ["action": "\(action)", "outcome": "\(outcome)"]
        if let node { fields["node"] = "\(node)" }
        if let unit { fields["unit"] = "\(unit)" }
        if let batch { fields["batch"] = "\(batch)" }
        if let rows { fields["rows"] = "\(rows)" }
        if let bytes { fields["bytes"] = "\(bytes)" }
        if let client { fields["client"] = "\(client)" }
        // Details of pushes may quote values a unit sent (personal data): never logged.
        // (An applied push's detail is counts only.)
        if let detail, outcome == "applied" || !["push", "pull", "repair", "receive"].contains(action) { fields["detail"] = "\(detail.prefix(200))" }
        logger.log(level: Self.level(action: action, outcome: outcome), "\(action) \(outcome)", metadata: fields)
    }

    /// How loud an audited event is: routine traffic is info, a supervisor's act notice,
    /// anything refused, damaged or suspicious a warning.
    static func level(action: String, outcome: String) -> Logger.Level {
        switch (action, outcome) {
        case (_, "ok") where ["revoke", "resolve", "enrol", "login"].contains(action): return .notice
        case (_, "ok"), (_, "applied"), (_, "sent"): return .info
        default: return .warning
        }
    }

    enum AuditFold { case folded, asManyClients, append }

    /// Applies `audit`'s bounds: folds the event into an existing row when one applies.
    static func fold(_ db: Database, client: String, node: String?, unit: String?, action: String, outcome: String, detail: String?, now: Int64) throws -> AuditFold {
        let plain = "batch IS NULL AND through IS NULL AND rows IS NULL AND bytes IS NULL"
        func bump(_ id: Int64) throws -> AuditFold {
            try db.execute(sql: "UPDATE audit SET attempts = attempts + 1, last_at = ? WHERE id = ?", arguments: [now, id])
            return .folded
        }
        if let id = try Int64.fetchOne(
            db,
            sql: """
                SELECT id FROM audit WHERE client = ? AND at >= ? AND action = ? AND outcome = ? AND node IS ? AND unit_id IS ? AND detail IS ?
                AND \(plain) ORDER BY id DESC LIMIT 1
                """,
            arguments: [client, now - auditFoldMillis, action, outcome, node, unit, detail])
        {
            return try bump(id)
        }
        let hour = now - 3_600_000
        if try Int.fetchOne(db, sql: "SELECT count(*) FROM audit WHERE client = ? AND at >= ?", arguments: [client, hour]) ?? 0 >= auditRowsPerClientPerHour,
            let id = try Int64.fetchOne(
                db, sql: "SELECT id FROM audit WHERE client = ? AND at >= ? AND action = ? AND outcome = ? AND \(plain) ORDER BY id DESC LIMIT 1",
                arguments: [client, hour, action, outcome])
        {
            return try bump(id)
        }
        let minute = now - auditFoldMillis
        guard try Int.fetchOne(db, sql: "SELECT count(*) FROM audit WHERE client IS NOT NULL AND at >= ? AND \(plain)", arguments: [minute]) ?? 0
            >= auditRowsFromAllClientsPerMinute
        else { return .append }
        if let id = try Int64.fetchOne(
            db, sql: "SELECT id FROM audit WHERE client = ? AND at >= ? AND action = ? AND outcome = ? ORDER BY id DESC LIMIT 1",
            arguments: [manyClients, minute, action, outcome])
        {
            return try bump(id)
        }
        return .asManyClients
    }

    public func auditLog(limit: Int = 100) throws -> [AuditEntry] {
        try pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT at, node, action, rows, outcome, detail, client, attempts, last_at FROM audit ORDER BY id DESC LIMIT ?", arguments: [limit]
            ).map {
                AuditEntry(
                    at: UInt64($0[0] as Int64), node: $0[1], action: $0[2], rows: $0[3], outcome: $0[4], detail: $0[5], client: $0[6], attempts: $0[7],
                    lastAt: ($0[8] as Int64?).map { UInt64($0) })
            }
        }
    }
}
