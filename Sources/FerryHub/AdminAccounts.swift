import FerryTrust
import FerryWire
import Foundation
import GRDB

/// A supervisor's account for the dashboard and the report API.
public struct AdminAccount: Sendable, Equatable, Codable {
    public var name: String
    /// The org node the account sees, with everything below it; a county supervisor on the
    /// province hub sees only the county.
    public var orgID: String
    public var createdAt: UInt64
}

/// A logged-in session.
public struct AdminSession: Sendable, Equatable {
    public var account: AdminAccount
    /// Must accompany every form that changes something (the dashboard's resolve buttons).
    public var csrfToken: String
    public var expiresAt: UInt64
}

/// Accounts (scrypt-hashed passwords) and sessions (only the token's SHA-256 is stored,
/// so a copied registry holds no usable session) in `registry.db`.
extension HubRegistry {
    static func registerAdminMigration(_ m: inout DatabaseMigrator) {
        m.registerMigration("v2-admin") { db in
            try db.execute(
                sql: """
                    CREATE TABLE admins (
                        name TEXT PRIMARY KEY NOT NULL, password_hash TEXT NOT NULL, org_id TEXT NOT NULL,
                        created_at INTEGER NOT NULL) STRICT;
                    CREATE TABLE admin_sessions (
                        digest TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, csrf TEXT NOT NULL,
                        created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, one_time INTEGER NOT NULL DEFAULT 0) STRICT;
                    CREATE INDEX admin_sessions_by_expiry ON admin_sessions (expires_at);
                    """)
        }
    }

    /// Adds an account, or replaces its password and scope.
    public func setAdmin(name: String, password: String, orgID: String, now: UInt64) throws {
        guard !name.isEmpty, name.count <= 64, !name.contains(where: { $0.isWhitespace }) else {
            throw HubError.invalid("account name '\(name)' must be 1–64 characters without spaces")
        }
        guard password.count >= 10 else {
            throw HubError.invalid("the password must have at least 10 characters; a sentence you remember is best")
        }
        guard try unit(orgID) != nil else {
            throw HubError.invalid("org node '\(orgID)' is not in the org tree; list it with ferry hub unit list")
        }
        let hash = try PasswordHash.make(password)
        try pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO admins (name, password_hash, org_id, created_at) VALUES (?, ?, ?, ?)
                    ON CONFLICT(name) DO UPDATE SET password_hash = excluded.password_hash, org_id = excluded.org_id
                    """,
                arguments: [name, hash, orgID, Int64(now)])
            // A changed password ends the account's sessions.
            try db.execute(sql: "DELETE FROM admin_sessions WHERE name = ?", arguments: [name])
        }
    }

    public func removeAdmin(name: String) throws -> Bool {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM admin_sessions WHERE name = ?", arguments: [name])
            try db.execute(sql: "DELETE FROM admins WHERE name = ?", arguments: [name])
            return db.changesCount > 0
        }
    }

    public func admins() throws -> [AdminAccount] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT name, org_id, created_at FROM admins ORDER BY name").map {
                AdminAccount(name: $0[0], orgID: $0[1], createdAt: UInt64($0[2] as Int64))
            }
        }
    }

    /// Checks a password and opens a session; returns the session token (shown once).
    /// `client` is the address the attempt came from: failures are throttled per account
    /// and per address (`LoginThrottle`, checked before the password is hashed) and audited
    /// with it. Run it through `passwordChecks` when attempts can arrive concurrently.
    public func login(
        name: String, password: String, client: String? = nil, now: UInt64, lifetimeSeconds: UInt64
    ) throws(WireError) -> (token: String, session: AdminSession) {
        try admitLogin(name: name, client: client, now: now)
        let row: Row?
        do { row = try pool.read { db in try Row.fetchOne(db, sql: "SELECT password_hash, org_id, created_at FROM admins WHERE name = ?", arguments: [name]) } } catch {
            throw WireError.hubStorage(error, doing: "check the account's login")
        }
        // Hash even for an unknown name, so timing does not tell which names exist.
        let stored: String = row?[0] ?? "scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
        guard PasswordHash.verify(password, against: stored), let row else {
            noteLoginFailure(name: name, client: client, now: now)
            audit(node: nil, unit: nil, action: "login", outcome: "refused", detail: name, client: client, now: now)
            throw WireError(.unauthenticated, "wrong account name or password", zh: "用户名或密码错误")
        }
        forgetLoginFailures(name: name)
        let account = AdminAccount(name: name, orgID: row[1], createdAt: UInt64(row[2] as Int64))
        do {
            let (token, session) = try openSession(account, now: now, lifetimeSeconds: lifetimeSeconds, oneTime: false)
            audit(node: nil, unit: nil, action: "login", outcome: "ok", detail: name, client: client, now: now)
            return (token, session)
        } catch { throw WireError.hubStorage(error, doing: "check the account's login") }
    }

    /// A one-time login link for `name`, valid for `lifetimeSeconds` (for a supervisor
    /// who cannot type a password on the machine, and for headless browser checks).
    public func loginTicket(name: String, now: UInt64, lifetimeSeconds: UInt64 = 600) throws -> String {
        guard let account = try admins().first(where: { $0.name == name }) else {
            throw HubError.invalid("no account named '\(name)'; add one with ferry hub admin add")
        }
        return try openSession(account, now: now, lifetimeSeconds: lifetimeSeconds, oneTime: true).token
    }

    func openSession(_ account: AdminAccount, now: UInt64, lifetimeSeconds: UInt64, oneTime: Bool) throws -> (token: String, session: AdminSession) {
        let token = Trust.randomHex(bytes: 32)
        let csrf = Trust.randomHex(bytes: 16)
        let expires = now + lifetimeSeconds * 1000
        try pool.write { db in
            try db.execute(sql: "DELETE FROM admin_sessions WHERE expires_at < ?", arguments: [Int64(now)])
            try db.execute(
                sql: "INSERT INTO admin_sessions (digest, name, csrf, created_at, expires_at, one_time) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [Trust.sha256Hex(Array(token.utf8)), account.name, csrf, Int64(now), Int64(expires), oneTime])
        }
        return (token, AdminSession(account: account, csrfToken: csrf, expiresAt: expires))
    }

    /// The live session of `token`, or nil when unknown, expired or a one-time ticket.
    public func session(token: String, now: UInt64) -> AdminSession? {
        try? pool.read { db in
            guard
                let r = try Row.fetchOne(
                    db,
                    sql: """
                        SELECT a.name, a.org_id, a.created_at, s.csrf, s.expires_at FROM admin_sessions s
                        JOIN admins a ON a.name = s.name WHERE s.digest = ? AND s.expires_at > ? AND s.one_time = 0
                        """,
                    arguments: [Trust.sha256Hex(Array(token.utf8)), Int64(now)])
            else { return nil }
            return AdminSession(
                account: AdminAccount(name: r[0], orgID: r[1], createdAt: UInt64(r[2] as Int64)), csrfToken: r[3], expiresAt: UInt64(r[4] as Int64))
        }
    }

    /// Exchanges a one-time ticket for a normal session (the ticket is spent either way);
    /// `client` is audited with it.
    public func redeem(ticket: String, client: String? = nil, now: UInt64, lifetimeSeconds: UInt64) throws(WireError) -> (token: String, session: AdminSession) {
        let digest = Trust.sha256Hex(Array(ticket.utf8))
        let account: AdminAccount?
        do {
            account = try pool.write { db -> AdminAccount? in
                let r = try Row.fetchOne(
                    db,
                    sql: """
                        SELECT a.name, a.org_id, a.created_at FROM admin_sessions s JOIN admins a ON a.name = s.name
                        WHERE s.digest = ? AND s.expires_at > ? AND s.one_time = 1
                        """,
                    arguments: [digest, Int64(now)])
                try db.execute(sql: "DELETE FROM admin_sessions WHERE digest = ?", arguments: [digest])
                return r.map { AdminAccount(name: $0[0], orgID: $0[1], createdAt: UInt64($0[2] as Int64)) }
            }
        } catch { throw WireError.hubStorage(error, doing: "check the account's login") }
        guard let account else {
            audit(node: nil, unit: nil, action: "login", outcome: "bad_link", client: client, now: now)
            throw WireError(.unauthenticated, "this login link is unknown, used or expired; ask for a new one (ferry hub admin link)", zh: "登录链接无效、已使用或已过期")
        }
        do {
            let opened = try openSession(account, now: now, lifetimeSeconds: lifetimeSeconds, oneTime: false)
            audit(node: nil, unit: nil, action: "login", outcome: "ok", detail: "\(account.name) (link)", client: client, now: now)
            return opened
        } catch { throw WireError.hubStorage(error, doing: "check the account's login") }
    }

    public func logout(token: String) {
        _ = try? pool.write { db in
            try db.execute(sql: "DELETE FROM admin_sessions WHERE digest = ?", arguments: [Trust.sha256Hex(Array(token.utf8))])
        }
    }

    public func recordResolution(admin: String, unit: String?, detail: String, now: UInt64) {
        audit(node: nil, unit: unit, action: "resolve", outcome: "ok", detail: "\(admin): \(detail)", now: now)
    }
}
