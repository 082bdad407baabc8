import FerryCore
import FerryHub
import FerryNode
import FerryStore
import FerryTestSupport
import FerryTestTraits
import FerryTrust
import FerryWire
import Foundation
import Testing

/// The node's agent against the hub object itself: the sync logic without HTTP.
struct InProcessHub: HubConnection {
    let hub: Hub
    let node: NodeRecord
    var clockOffsetMillis: Int64 { 0 }
    var hubStandardVersion: String? { hub.signedStandard.version }
    func fetchStandard() throws(SyncFailure) -> SignedStandard { hub.signedStandard }
    func exchange(_ body: [UInt8]) throws(SyncFailure) -> [UInt8] {
        do { return try hub.session { () throws(WireError) in try hub.exchange(from: node, body: body) } } catch { throw SyncFailure(error) }
    }
    func reconcile(_ request: ReconcileRequest) throws(SyncFailure) -> ReconcileResponse {
        do { return try hub.reconcile(from: node, request: request) } catch { throw SyncFailure(error) }
    }
}

/// The enrolment request a node holding `key` makes with `token`.
func enrolment(_ token: String, _ key: SigningKey, hostname: String = "box") -> EnrolRequest {
    EnrolRequest(token: EnrolmentToken(parsing: token) ?? EnrolmentToken(parsing: String(repeating: "0", count: 32))!, key: key, hostname: hostname)
}

@Suite("Hub logic in-process", .offThePool)
struct InProcessHubTests {
    func makeHub(_ dir: TemporaryDirectory, clock: ManualClock, maxSessions: Int = 32) throws -> Hub {
        var settings = HubSettings()
        settings.maxConcurrentSessions = maxSessions
        let text = try String(contentsOfFile: Repository.path("Tests/Fixtures/test-standard.toml"), encoding: .utf8)
        let hub = try Hub(directory: dir.file("hub"), standard: text, settings: settings, clock: clock)
        _ = try hub.addUnit(OrgUnit(id: "prov", name: "省", parentID: nil, level: .province, industry: nil, region: nil))
        return hub
    }

    /// Unit u-a added and one node of it enrolled, with its replica in `dir`.
    static func enrolledNode(_ hub: Hub, _ dir: TemporaryDirectory, clock: ManualClock) throws -> (NodeIdentity, ReplicaStore, NodeRecord) {
        let token = try hub.addUnit(OrgUnit(id: "u-a", name: "甲", parentID: "prov", level: .unit, industry: "education", region: nil))
        let key = SigningKey()
        let answer = try hub.enrol(enrolment(token, key))
        let identity = NodeIdentity(
            hubURL: "in-process", nodeID: answer.nodeID, unitID: "u-a", unitName: "甲", hubNodeID: answer.hubNodeID,
            hubPublicKey: answer.hubPublicKey, privateKey: key.base64, gzip: false)
        let store = try ReplicaStore(
            path: dir.file("unit.db"), standard: hub.store.standard,
            identity: ReplicaIdentity(node: NodeID(unchecked: answer.nodeID), role: .unit("u-a")), clock: clock)
        guard let node = try hub.registry.node(answer.nodeID) else { throw CocoaError(.fileNoSuchFile) }
        return (identity, store, node)
    }

    @Test("a token works once, and not after it expires")
    func tokensAreOneTimeAndExpire() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let clock = ManualClock()
        let hub = try makeHub(dir, clock: clock)
        let token = try hub.addUnit(OrgUnit(id: "u-a", name: "甲", parentID: "prov", level: .unit, industry: "education", region: nil))
        let key = SigningKey()
        let first = try hub.enrol(enrolment(token.lowercased(), key))
        #expect(first.nodeID == "u-a-n1" && first.unitID == "u-a")
        // The same node retrying after a lost answer gets the same record; anyone else is refused.
        #expect(try hub.enrol(enrolment(token, key)).nodeID == "u-a-n1")
        #expect(throws: WireError.self) { try hub.enrol(enrolment(token, SigningKey())) }
        let late = try hub.issueToken(unitID: "u-a")
        clock.advance(by: 8 * 86_400_000)
        #expect {
            try hub.enrol(enrolment(late, key))
        } throws: { ($0 as? WireError)?.code == .tokenExpired }
        #expect {
            try hub.enrol(enrolment("NOPE-NOPE", key))
        } throws: { ($0 as? WireError)?.code == .tokenInvalid }
    }

    @Test("the hub sheds sessions beyond its bound with a retryable error")
    func loadIsShed() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let hub = try makeHub(dir, clock: ManualClock(), maxSessions: 1)
        #expect {
            try hub.session { () throws(WireError) in try hub.session { () throws(WireError) in 1 } }
        } throws: { ($0 as? WireError)?.code == .overloaded && ($0 as? WireError)?.retryable == true }
        #expect(try hub.session { () throws(WireError) in 2 } == 2)
    }

    @Test("a node's agent syncs both ways with the hub object, batch by batch")
    func agentSyncsInProcess() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let clock = ManualClock()
        let hub = try makeHub(dir, clock: clock)
        let (identity, store, node) = try InProcessHubTests.enrolledNode(hub, dir, clock: clock)
        try store.executeAll((0..<500).map { ("INSERT INTO member (id, unit_id, name) VALUES (?, 'u-a', ?)", [.text("m\($0)"), .text("名\($0)")]) })
        let agent = NodeAgent(
            store: store, hub: InProcessHub(hub: hub, node: node), identity: identity,
            clock: clock, batchBytes: 4096)
        let up = try agent.syncOnce()
        #expect(up.pushedRows == 500 && up.pushedBatches > 5)
        try hub.store.execute("UPDATE member SET note = '核' WHERE id = 'm7'")
        let down = try agent.syncOnce()
        #expect(down.pushedRows == 0 && down.pulledRows >= 1)
        #expect(try store.syncedContents(of: "member") == hub.store.syncedContents(of: "member"))
        #expect(try store.pendingRows(for: Peer(id: hub.nodeID, direction: .upstream)) == 0)
        #expect(try hub.registry.node(identity.nodeID)?.lastSyncAt != nil)
    }
}

@Suite("Retry policy", .offThePool)
struct RetryPolicyTests {
    @Test("backoff grows, is capped, jitters, and honours Retry-After")
    func backoff() {
        let p = RetryPolicy(baseSeconds: 5, capSeconds: 600)
        #expect(p.delay(attempt: 1, retryAfter: nil, random: 0.999) <= 5)
        #expect(p.delay(attempt: 4, retryAfter: nil, random: 0.999) > 35)
        #expect(p.delay(attempt: 40, retryAfter: nil, random: 0.999) <= 600)
        #expect(p.delay(attempt: 1, retryAfter: 30, random: 0.1) == 30)
        #expect(p.delay(attempt: 3, retryAfter: nil, random: 0) >= 1)
    }
}

/// A link that drops: every exchange whose number `cut` picks fails as a transport error
/// before it reaches the hub (the hub itself is real, in-process).
final class CuttingLink: HubConnection, @unchecked Sendable {
    let inner: InProcessHub
    let cut: (Int) -> Bool
    private(set) var exchanges = 0
    private(set) var cuts = 0
    private(set) var askedBytes: [Int] = []
    init(_ inner: InProcessHub, cut: @escaping (Int) -> Bool) {
        self.inner = inner
        self.cut = cut
    }
    var clockOffsetMillis: Int64 { 0 }
    var hubStandardVersion: String? { inner.hubStandardVersion }
    func fetchStandard() throws(SyncFailure) -> SignedStandard { try inner.fetchStandard() }
    func exchange(_ body: [UInt8]) throws(SyncFailure) -> [UInt8] {
        exchanges += 1
        if let envelope = try? ExchangeEnvelope.decode(body), let r = try? JSONDecoder().decode(ExchangeRequest.self, from: Data(envelope.header)) {
            askedBytes.append(r.maxBytes)
        }
        if cut(exchanges) {
            cuts += 1
            throw SyncFailure(kind: .transport, message: "the connection was cut", messageZh: "连接中断", isRetryable: true)
        }
        return try inner.exchange(body)
    }
    func reconcile(_ request: ReconcileRequest) throws(SyncFailure) -> ReconcileResponse { try inner.reconcile(request) }
}

@Suite("Syncing through cuts", .offThePool)
struct SyncThroughCutsTests {
    @Test("after a failure that moved data the next attempt comes at once and the backoff restarts; one that moved nothing backs off; one that needs a person is not retried")
    func retryFollowsProgress() {
        var r = SyncRetry(policy: RetryPolicy(baseSeconds: 5, capSeconds: 600))
        var stalled = SyncFailure(kind: .transport, message: "cut", messageZh: "断", isRetryable: true)
        var waits: [Double] = []
        for _ in 0..<5 { waits.append(r.next(after: stalled, random: 0.999)!) }
        #expect(r.failuresWithoutProgress == 5)
        #expect(waits[4] > 70 && waits[4] <= 80, "\(waits)")
        var moved = stalled
        moved.progressed = true
        let soon = r.next(after: moved, random: 0.999)!
        #expect(soon >= 1 && soon <= 3 && r.failuresWithoutProgress == 0)
        #expect(r.next(after: stalled, random: 0.999)! <= 5, "the backoff starts again after progress")
        moved.retryAfter = 20
        #expect(r.next(after: moved, random: 0) == 20, "Retry-After is honoured even after progress")
        stalled.isRetryable = false
        #expect(r.next(after: stalled, random: 0.5) == nil)
        r.succeeded()
        #expect(r.failuresWithoutProgress == 0)
    }

    @Test("batches shrink after a cut and grow back after exchanges that move data; retrying on progress gets every row through")
    func batchesAdaptToTheLink() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let clock = ManualClock()
        let hub = try InProcessHubTests().makeHub(dir, clock: clock)
        let (identity, store, node) = try InProcessHubTests.enrolledNode(hub, dir, clock: clock)
        try store.executeAll((0..<3000).map { ("INSERT INTO member (id, unit_id, name, note) VALUES (?, 'u-a', ?, ?)", [.text("m\($0)"), .text("名\($0)"), .text(String(repeating: "记录", count: 20))]) })
        // Every third exchange is cut.
        let link = CuttingLink(InProcessHub(hub: hub, node: node), cut: { $0 % 3 == 0 })
        let full = 64 * 1024
        let agent = NodeAgent(store: store, hub: link, identity: identity, clock: clock, batchBytes: full)
        var retry = SyncRetry()
        var attempts = 0
        var sizes: [Int] = []
        while true {
            attempts += 1
            do {
                _ = try agent.syncOnce()
                break
            } catch {
                sizes.append(agent.currentBatchBytes)
                let next = retry.next(after: error, random: 0.5)
                let wait = try #require(next, "\(error)")
                #expect(wait <= 3 || !error.progressed)
                #expect(retry.failuresWithoutProgress <= 1, "every attempt but a first-contact one moved data")
            }
            #expect(attempts < 200)
            if attempts >= 200 { break }
        }
        #expect(link.cuts > 3)
        #expect(sizes.first == full / 2, "halved after the first cut: \(sizes)")
        #expect(sizes.min()! >= NodeAgent.minimumBatchBytes)
        #expect(link.askedBytes.contains { $0 > sizes.min()! }, "grew again after successes")
        #expect(try store.syncedContents(of: "member") == hub.store.syncedContents(of: "member"))
        #expect(try store.pendingRows(for: Peer(id: hub.nodeID, direction: .upstream)) == 0)
    }
}

/// Records the JSON header of every exchange the agent sends, then passes it on.
final class HeaderRecorder: HubConnection, @unchecked Sendable {
    let inner: InProcessHub
    var headers: [[String: Any]] = []
    init(_ inner: InProcessHub) { self.inner = inner }
    var clockOffsetMillis: Int64 { 0 }
    var hubStandardVersion: String? { inner.hubStandardVersion }
    func fetchStandard() throws(SyncFailure) -> SignedStandard { try inner.fetchStandard() }
    func exchange(_ body: [UInt8]) throws(SyncFailure) -> [UInt8] {
        if let e = try? ExchangeEnvelope.decode(body), let json = try? JSONSerialization.jsonObject(with: Data(e.header)) as? [String: Any] {
            headers.append(json)
        }
        return try inner.exchange(body)
    }
    func reconcile(_ request: ReconcileRequest) throws(SyncFailure) -> ReconcileResponse { try inner.reconcile(request) }
}

@Suite("The unit hears of the hub's decisions", .offThePool)
struct SettledAtHubTests {
    @Test("a conflict a supervisor settles at the hub leaves the unit's list at its next sync; exchanges without open conflicts carry nothing for it")
    func settledConflictsCloseAtTheUnit() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let clock = ManualClock()
        let hub = try InProcessHubTests().makeHub(dir, clock: clock)
        let (identity, store, node) = try InProcessHubTests.enrolledNode(hub, dir, clock: clock)
        let link = HeaderRecorder(InProcessHub(hub: hub, node: node))
        let agent = NodeAgent(store: store, hub: link, identity: identity, clock: clock, batchBytes: 4096)
        try store.executeAll([("INSERT INTO evaluation (id, unit_id, rating, year) VALUES ('e1', 'u-a', 'qualified', 2026)", [])])
        _ = try agent.syncOnce()
        #expect(link.headers.allSatisfy { $0["settled_since"] == nil }, "no open conflicts: nothing asked")

        // The supervisor corrects the rating while the clerk changes it too (supervisor-wins):
        // both replicas set the clerk's value aside.
        try hub.store.execute("UPDATE evaluation SET rating = 'excellent' WHERE id = 'e1'")
        clock.advance(by: 1000)
        try store.execute("UPDATE evaluation SET rating = 'basic' WHERE id = 'e1'")
        _ = try agent.syncOnce()
        let open = try store.conflicts().filter { $0.status == .overwritten || $0.status == .held }
        #expect(open.count == 1 && open.first?.table == "evaluation")
        let view = try SupervisorView(hub: hub)
        let atHub = try #require(try view.conflicts(org: nil, root: "prov").first { $0.table == "evaluation" })
        #expect(atHub.otherValue == "basic" && atHub.otherOrigin == identity.nodeID)

        // Not settled yet: the unit asks and hears of nothing; the list stays.
        link.headers.removeAll()
        let before = try agent.syncOnce()
        #expect(before.settledAtHub == 0 && link.headers.contains { $0["settled_since"] != nil })
        #expect(try store.hasOpenConflicts())

        clock.advance(by: 60_000)
        try view.resolve(conflict: atHub.id, .keep, admin: "analyst", root: "prov")
        let after = try agent.syncOnce()
        #expect(after.settledAtHub == 1)
        // The hub lists it to this unit only, and only to a node that has not heard of it yet.
        let listed = try hub.store.settledConflicts(unit: "u-a", since: 0, limit: 10)
        #expect(listed.count == 1 && listed[0].lostOrigin == identity.nodeID && listed[0].outcome == "resolved")
        #expect(try hub.store.settledConflicts(unit: "u-b", since: 0, limit: 10).isEmpty)
        #expect(try hub.store.settledConflicts(unit: "u-a", since: listed[0].settledAt + 1, limit: 10).isEmpty)
        #expect(try store.hasOpenConflicts() == false)
        #expect(try store.conflicts(status: .resolved).count == 1)
        #expect(try store.currentValue(table: "evaluation", key: [.text("e1")], column: "rating") == .text("excellent"))

        // Nothing open any more: the next exchange carries nothing for it again.
        link.headers.removeAll()
        _ = try agent.syncOnce()
        #expect(!link.headers.isEmpty && link.headers.allSatisfy { $0["settled_since"] == nil })
    }
}
