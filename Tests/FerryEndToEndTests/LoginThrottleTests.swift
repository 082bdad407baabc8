import FerryCore
import FerryHub
import FerryTestSupport
import FerryTestTraits
import FerryWire
import Foundation
import Synchronization
import Testing

@Suite("Supervisors' logins: throttle, password checks, audit", .serialized, .offThePool)
struct LoginThrottleTests {
    static let password = "a long enough password"

    /// A hub with one account, `analyst`, on a clock that moves only when told.
    func hub(_ dir: TemporaryDirectory, clock: ManualClock) throws -> Hub {
        let hub = try Hub(directory: dir.file("hub"), clock: clock)
        _ = try hub.addUnit(OrgUnit(id: "prov", name: "省", parentID: nil, level: .province, industry: nil, region: nil))
        try hub.registry.setAdmin(name: "analyst", password: Self.password, orgID: "prov", now: clock.nowMillis())
        return hub
    }

    /// The login's outcome: "ok", or the wire code with its Retry-After.
    func attempt(_ hub: Hub, as name: String = "analyst", _ password: String, from client: String) -> (outcome: String, retryAfter: Int?, seconds: Double) {
        let start = ContinuousClock.now
        do throws(WireError) {
            _ = try hub.registry.login(name: name, password: password, client: client, now: hub.now(), lifetimeSeconds: 3600)
            return ("ok", nil, (ContinuousClock.now - start) / .seconds(1))
        } catch { return (error.code.rawValue, error.retryAfterSeconds, (ContinuousClock.now - start) / .seconds(1)) }
    }

    @Test("five failed logins are free; then an attempt waits 30 s, doubling per failure, refused before the password is hashed even when it is right")
    func failedLoginsAreThrottled() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let clock = ManualClock()
        let hub = try hub(dir, clock: clock)
        var checked: [Double] = []
        for n in 1...5 {
            let r = attempt(hub, "wrong password \(n)", from: "192.0.2.1")
            #expect(r.outcome == "unauthenticated", "failure \(n) is free")
            checked.append(r.seconds)
        }
        let refused = attempt(hub, Self.password, from: "192.0.2.1")
        #expect(refused.outcome == "rate_limited" && refused.retryAfter == 30, "\(refused)")
        // No scrypt ran: the refusal costs a fraction of one password check.
        #expect(refused.seconds < checked.min()! / 4, "refused in \(refused.seconds) s; a password check takes \(checked.min()!) s")
        clock.advance(by: 29_000)
        #expect(attempt(hub, Self.password, from: "192.0.2.1").retryAfter == 1)
        clock.advance(by: 1_000)
        #expect(attempt(hub, "wrong again", from: "192.0.2.1").outcome == "unauthenticated")
        #expect(attempt(hub, Self.password, from: "192.0.2.1").retryAfter == 60, "the delay doubled")
        // Counted per account and per address: another address for this account, or this
        // address for another account, waits as well.
        #expect(attempt(hub, Self.password, from: "198.51.100.9").outcome == "rate_limited")
        #expect(attempt(hub, as: "nobody", "x", from: "192.0.2.1").outcome == "rate_limited")
        // An IPv6 client counts by its /64: moving to the next address of it does not help.
        for n in 1...5 { #expect(attempt(hub, as: "v6-\(n)", "x", from: "2001:db8:1:2::\(n)").outcome == "unauthenticated") }
        #expect(attempt(hub, as: "v6-6", "x", from: "2001:db8:1:2:ffff::1").outcome == "rate_limited")

        // After the wait, the right password from elsewhere logs in and the account starts afresh.
        clock.advance(by: 60_000)
        #expect(attempt(hub, Self.password, from: "203.0.113.4").outcome == "ok")
        for n in 1...5 {
            #expect(attempt(hub, "wrong \(n)", from: "203.0.113.5").outcome == "unauthenticated", "failure \(n) after a success is free again")
        }
        #expect(attempt(hub, Self.password, from: "203.0.113.6").outcome == "rate_limited")
        // Fifteen quiet minutes forget a count.
        clock.advance(by: 15 * 60_000 + 1)
        #expect(attempt(hub, Self.password, from: "203.0.113.5").outcome == "ok")
    }

    @Test("the delay after failure 5 + n is 30 s × 2^n, never above 15 minutes, and a count 15 quiet minutes old is forgotten")
    func delaySchedule() {
        let t = LoginThrottle()
        let last: UInt64 = 1_000_000
        #expect((0..<5).allSatisfy { t.nextAttemptAt(failures: $0, lastAt: last, now: last) == 0 })
        let delays = (5...12).map { (t.nextAttemptAt(failures: $0, lastAt: last, now: last) - last) / 1000 }
        #expect(delays == [30, 60, 120, 240, 480, 900, 900, 900])
        #expect(t.nextAttemptAt(failures: 40, lastAt: last, now: last) == last + 900_000)
        #expect(t.nextAttemptAt(failures: 9, lastAt: last, now: last + 900_001) == 0)
        #expect(t.failures(after: 9, lastAt: last, now: last + 900_001) == 1)
        #expect(t.failures(after: 9, lastAt: last, now: last + 900_000) == 10)
    }

    @Test("of 64 callers at a gate of two, never more than two hold it; waiters are served in turn or turned away after their wait")
    func gateBoundsConcurrency() async {
        final class Holders: Sendable {
            let count = Mutex((now: 0, most: 0))
        }
        let gate = ConcurrencyGate(limit: 2, maxWaiting: 32)
        let inside = Holders()
        let outcomes = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<64 {
                group.addTask {
                    guard await gate.enter(waitingAtMost: 0.5) else { return false }
                    inside.count.withLock { $0.now += 1; $0.most = max($0.most, $0.now) }
                    try? await Task.sleep(for: .milliseconds(40))
                    inside.count.withLock { $0.now -= 1 }
                    gate.leave()
                    return true
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(inside.count.withLock { $0.most } == 2 && gate.peakHolders == 2)
        let served = outcomes.filter { $0 }.count
        // 2 at once for 40 ms each within 0.5 s: about 25 are served; 30 never got a place in the queue.
        #expect(served >= 10 && served <= 34, "\(served) served")
        #expect(outcomes.count - served >= 30, "\(outcomes.count - served) turned away")
        #expect(gate.waitingCount == 0)
        #expect(await gate.enter(waitingAtMost: 0.1), "the gate is free again")
        gate.leave()
    }

    @Test("a guesser's failed and refused attempts are audited with its address: repeats fold into one row with a count, new names past 60 rows an hour into the latest; every attempt is counted")
    func auditIsBoundedPerClient() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let clock = ManualClock()
        let hub = try hub(dir, clock: clock)
        for n in 1...5 { _ = attempt(hub, "wrong \(n)", from: "192.0.2.1") }
        // Refused attempts cost no password check, so a guesser can send them fast.
        for _ in 0..<200 { _ = attempt(hub, "x", from: "192.0.2.1") }
        var log = try hub.registry.auditLog(limit: 1000)
        #expect(log.allSatisfy { $0.client == "192.0.2.1" })
        #expect(log.filter { $0.outcome == "refused" }.count == 1, "five identical failures within a minute are one row: \(log)")
        #expect(log.first { $0.outcome == "refused" }?.attempts == 5)
        let limited = try #require(log.first { $0.outcome == "rate_limited" })
        #expect(log.filter { $0.outcome == "rate_limited" }.count == 1 && limited.attempts == 200 && limited.lastAt != nil)

        // A guesser trying a new name each time from one address: at most 60 rows an hour, every attempt counted.
        clock.advance(by: 61_000)
        for n in 0..<300 {
            _ = attempt(hub, as: "guess-\(n)", "x", from: "192.0.2.1")
            clock.advance(by: 100)
        }
        log = try hub.registry.auditLog(limit: 1000)
        #expect(log.count <= 60 + 1, "\(log.count) rows")
        #expect(log.reduce(0) { $0 + $1.attempts } == 5 + 200 + 300)
        // Another address is not held back by the first one's allowance.
        _ = attempt(hub, as: "analyst", Self.password, from: "198.51.100.2")
        let latest = try #require(try hub.registry.auditLog(limit: 1).first)
        #expect(latest.client == "198.51.100.2" && latest.outcome == "ok" && latest.attempts == 1, "\(latest)")
    }
}
