import FerryWire
import Foundation
import GRDB

/// How failed supervisor logins slow down the next attempt, counted per account name and
/// per client address (an IPv6 client by its /64, see `ClientAddress.throttleKey`).
///
/// The first `freeFailures` (5) failures cost nothing; after them each attempt must wait
/// `firstDelaySeconds` (30 s) after the last failure, doubling with every further failure
/// up to `maxDelaySeconds` (15 minutes). A count with no failure for `forgetAfterSeconds`
/// (15 minutes) is forgotten. A successful login forgets its account's count, not its
/// address's: logging into one's own account must not reopen guessing at others' from the
/// same address. Names that are no account are counted like real ones, so the answers do
/// not tell which names exist.
///
/// Refusals are decided before any password is hashed and cost one indexed read.
public struct LoginThrottle: Sendable, Equatable {
    public var freeFailures = 5
    public var firstDelaySeconds: UInt64 = 30
    public var maxDelaySeconds: UInt64 = 15 * 60
    public var forgetAfterSeconds: UInt64 = 15 * 60

    public init() {}

    /// When (ms) the next attempt may run after `failures` failures, the last at `lastAt`;
    /// `now` forgets an old count.
    public func nextAttemptAt(failures: Int, lastAt: UInt64, now: UInt64) -> UInt64 {
        guard failures >= freeFailures, now <= lastAt + forgetAfterSeconds * 1000 else { return 0 }
        let delay = min(firstDelaySeconds << UInt64(min(failures - freeFailures, 30)), maxDelaySeconds)
        return lastAt + delay * 1000
    }

    /// The count after one more failure at `now`.
    public func failures(after previous: Int, lastAt: UInt64, now: UInt64) -> Int {
        now > lastAt + forgetAfterSeconds * 1000 ? 1 : previous + 1
    }
}

/// The throttle's state lives in registry.db (`login_failures`), not in memory, so that it
/// holds for every process serving this hub directory and survives a restart (a restart
/// must not hand out five fresh guesses). Its size is bounded: each failure deletes the
/// rows nobody has failed under for `forgetAfterSeconds`, and failures arrive no faster
/// than two password checks at a time (`passwordChecks`) can produce them.
extension HubRegistry {
    /// Every password check of this process passes through here: at most two run at once;
    /// a login waits for its turn up to a short deadline, then is told the hub is busy.
    public static let passwordChecks = ConcurrencyGate(limit: 2, maxWaiting: 32)

    static func registerLoginThrottleMigration(_ m: inout DatabaseMigrator) {
        m.registerMigration("v4-login-failures") { db in
            try db.execute(
                sql: """
                    CREATE TABLE login_failures (
                        key TEXT PRIMARY KEY NOT NULL, failures INTEGER NOT NULL, last_at INTEGER NOT NULL) STRICT, WITHOUT ROWID;
                    CREATE INDEX login_failures_by_age ON login_failures (last_at);
                    """)
        }
    }

    static func throttleKeys(name: String, client: String?) -> [String] {
        ["account:" + name] + (client.map { ["address:" + ClientAddress.throttleKey($0)] } ?? [])
    }

    /// Refuses, with `rate_limited` and the seconds to wait, an attempt to log in as `name`
    /// from `client` that the throttle holds back; the refusal is audited. Call it before
    /// spending anything on the attempt; `login` calls it again.
    public func admitLogin(name: String, client: String?, now: UInt64) throws(WireError) {
        let keys = Self.throttleKeys(name: name, client: client)
        let rows: [Row]
        do {
            rows = try pool.read { db in
                try Row.fetchAll(
                    db, sql: "SELECT failures, last_at FROM login_failures WHERE key IN (\(keys.map { _ in "?" }.joined(separator: ",")))",
                    arguments: StatementArguments(keys))
            }
        } catch { throw WireError.hubStorage(error, doing: "check the account's login") }
        let until = rows.map { throttle.nextAttemptAt(failures: $0[0], lastAt: UInt64($0[1] as Int64), now: now) }.max() ?? 0
        guard until > now else { return }
        let seconds = Int((until - now + 999) / 1000)
        audit(node: nil, unit: nil, action: "login", outcome: WireErrorCode.rateLimited.rawValue, detail: name, client: client, now: now)
        let wait = seconds < 120 ? "\(seconds) s" : "\((seconds + 59) / 60) min"
        let waitZh = seconds < 120 ? "\(seconds) 秒" : "\((seconds + 59) / 60) 分钟"
        throw WireError(
            .rateLimited,
            "too many failed logins for this account or from this address; try again in \(wait). An administrator can set a new password with ferry hub admin add",
            zh: "该账号或本机登录失败次数过多，请 \(waitZh)后再试；如忘记密码，请管理员用 ferry hub admin add 重设", retryAfterSeconds: seconds)
    }

    /// Counts one failed login as `name` from `client`, and forgets counts nobody added to lately.
    func noteLoginFailure(name: String, client: String?, now: UInt64) {
        let throttle = self.throttle
        try? pool.write { db in
            for key in Self.throttleKeys(name: name, client: client) {
                let previous = try Row.fetchOne(db, sql: "SELECT failures, last_at FROM login_failures WHERE key = ?", arguments: [key])
                let failures = previous.map { throttle.failures(after: $0[0], lastAt: UInt64($0[1] as Int64), now: now) } ?? 1
                try db.execute(
                    sql: "INSERT INTO login_failures (key, failures, last_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET failures = excluded.failures, last_at = excluded.last_at",
                    arguments: [key, failures, Int64(now)])
            }
            try db.execute(sql: "DELETE FROM login_failures WHERE last_at < ?", arguments: [Int64(now) - Int64(throttle.forgetAfterSeconds * 1000)])
        }
    }

    /// A successful login: the account starts afresh.
    func forgetLoginFailures(name: String) {
        _ = try? pool.write { db in try db.execute(sql: "DELETE FROM login_failures WHERE key = ?", arguments: ["account:" + name]) }
    }
}
