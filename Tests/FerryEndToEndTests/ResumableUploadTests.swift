import FerryCore
import FerryHub
@testable import FerryHubServer
@testable import FerryNode
import FerryStore
import FerryTestSupport
import FerryTestTraits
import FerryTrust
import FerryWire
import Foundation
import GRDB
import Hummingbird
import Synchronization
import Testing

/// A hub served over real HTTP on loopback in this process, with units enrolled on demand.
struct LoopbackHub {
    let dir: TemporaryDirectory
    let hub: Hub
    let port: Int
    let serving: Task<Void, any Error>
    let server: HubServer

    static func start() async throws -> LoopbackHub {
        let dir = try TemporaryDirectory()
        let text = try String(contentsOfFile: Repository.path("Tests/Fixtures/test-standard.toml"), encoding: .utf8)
        let hub = try Hub(directory: dir.file("hub"), standard: text)
        _ = try hub.addUnit(OrgUnit(id: "prov", name: "省", parentID: nil, level: .province, industry: nil, region: nil))
        let server = try HubServer(hub: hub, host: "127.0.0.1", port: 0)
        let bound = Mutex(0)
        let app = server.application { p in bound.withLock { $0 = p } }
        let serving = Task { try await app.runService() }
        while bound.withLock({ $0 }) == 0 { try await Task.sleep(for: .milliseconds(20)) }
        return LoopbackHub(dir: dir, hub: hub, port: bound.withLock { $0 }, serving: serving, server: server)
    }

    /// Enrols a new unit over HTTP; its node reaches the hub at `viaPort` (a proxy) when given.
    func enrol(_ unit: String, viaPort: Int? = nil) throws -> (NodeIdentity, ReplicaStore) {
        let token = try hub.addUnit(OrgUnit(id: unit, name: unit, parentID: "prov", level: .unit, industry: "education", region: nil))
        let key = SigningKey()
        let answer = try HTTPHubConnection.enrol(hubURL: "http://127.0.0.1:\(port)", token: token, key: key, hostname: unit)
        let identity = NodeIdentity(
            hubURL: "http://127.0.0.1:\(viaPort ?? port)", nodeID: answer.nodeID, unitID: answer.unitID, unitName: answer.unitName,
            hubNodeID: answer.hubNodeID, hubPublicKey: answer.hubPublicKey, privateKey: key.base64, gzip: true)
        let store = try ReplicaStore(
            path: dir.file("\(unit).db"), standard: hub.store.standard,
            identity: ReplicaIdentity(node: try NodeID(answer.nodeID), role: .unit(unit)), clock: SystemClock())
        return (identity, store)
    }

    func stop() async {
        serving.cancel()
        _ = await serving.result
        dir.remove()
    }
}

/// Issue #14: a cut upload resumes from the bytes the hub holds, not from the batch's start.
@Suite("Resumable uploads", .serialized, .offThePool)
struct ResumableUploadTests {
    /// Rows whose text barely compresses, so a batch is tens of kilobytes on the wire.
    func writeRows(_ store: ReplicaStore, unit: String, seed: UInt64) throws {
        var random = SeededRandom(seed: seed)
        let alphabet = Array("的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据导影失拿网香似斯专石若兵弟谁校读志飞观争究包组造落视济喜离虽坏兴切")
        let rows: [(sql: String, arguments: [Value])] = (0..<600).map { i in
            let note = String((0..<40).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] })
            return (sql: "INSERT INTO member (id, unit_id, name, note) VALUES (?, ?, ?, ?)", arguments: [.text("m\(i)"), .text(unit), .text("党员\(i)"), .text(note)])
        }
        try store.executeAll(rows)
    }

    /// Syncs through SyncRetry's rule until done; returns the attempts.
    func syncThrough(_ agent: NodeAgent) throws -> Int {
        var retry = SyncRetry()
        var attempts = 0
        while true {
            attempts += 1
            do {
                _ = try agent.syncOnce()
                return attempts
            } catch {
                guard retry.next(after: error, random: 0.5) != nil, attempts < 40 else { throw error }
            }
        }
    }

    @Test("a batch cut every ~12 KB on the way up is resumed where the hub's copy ends: bytes up stay within 15 % of a clean upload")
    func cutUploadsResume() async throws {
        let loop = try await LoopbackHub.start()
        defer { Task { await loop.stop() } }
        var up: [Bool: Int] = [:]
        var cutsSeen = 0
        for cutting in [false, true] {
            let unit = cutting ? "u-cut" : "u-clean"
            let plan = FaultPlan(cutAfterBytes: cutting ? 10_000...14_000 : nil, directions: [.toServer], seed: 5)
            let proxy = try FaultProxy(upstreamPort: loop.port, plan: plan)
            defer { proxy.stop() }
            let (identity, store) = try loop.enrol(unit, viaPort: proxy.port)
            let clock = SystemClock()
            let agent = NodeAgent(store: store, hub: try HTTPHubConnection(identity: identity, clock: clock), identity: identity, clock: clock, batchBytes: 256 * 1024)
            _ = try syncThrough(agent)  // first contact
            try writeRows(store, unit: unit, seed: 9)
            let before = proxy.stats.bytesToServer
            let attempts = try syncThrough(agent)
            up[cutting] = proxy.stats.bytesToServer - before
            if cutting { cutsSeen = proxy.stats.cuts }
            let held = try loop.hub.store.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM member WHERE unit_id = ?", arguments: [unit]) ?? 0 }
            #expect(held == 600, "\(unit): the hub holds \(held) of 600 rows")
            print("measured: \(unit): \(up[cutting]!) bytes up, \(attempts) attempt(s), \(proxy.stats.cuts) cuts")
        }
        let clean = try #require(up[false])
        let cut = try #require(up[true])
        #expect(cutsSeen >= 3, "the plan should cut the upload several times; it cut \(cutsSeen)")
        #expect(Double(cut) <= Double(clean) * 1.15, "a cut upload cost \(cut) bytes against \(clean) clean: it was not resumed")
        #expect(loop.server.partials.totalBytes == 0, "a completed upload leaves no part behind")
    }
}

extension ResumableUploadTests {
    @Test("an exchange whose answer was lost after the hub took the whole batch is sent again as headers alone")
    func lostAnswersCostNoSecondUpload() async throws {
        let loop = try await LoopbackHub.start()
        defer { Task { await loop.stop() } }
        var up: [Bool: Int] = [:]
        var firstContactAnswers = 0
        for losing in [false, true] {
            let unit = losing ? "u-lst" : "u-cln"
            let proxy = try FaultProxy(upstreamPort: loop.port)
            defer { proxy.stop() }
            let (identity, store) = try loop.enrol(unit, viaPort: proxy.port)
            let clock = SystemClock()
            // The connection is cut 150 bytes into the answer after the first contact's: the
            // answer to the push. The batch arrives, its acknowledgement does not.
            if losing { proxy.plan = FaultPlan(cutAfterBytes: (firstContactAnswers + 150)...(firstContactAnswers + 150), directions: [.toClient], seed: 1) }
            let agent = NodeAgent(store: store, hub: try HTTPHubConnection(identity: identity, clock: clock), identity: identity, clock: clock, batchBytes: 256 * 1024)
            _ = try agent.syncOnce()
            if !losing { firstContactAnswers = proxy.stats.bytesToClient }
            try writeRows(store, unit: unit, seed: 4)
            let before = proxy.stats.bytesToServer
            if losing {
                #expect(throws: SyncFailure.self) { try agent.syncOnce() }
                #expect(proxy.stats.cuts >= 1)
                let held = try loop.hub.store.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM member WHERE unit_id = ?", arguments: [unit]) ?? 0 }
                #expect(held == 600, "the hub applied the batch whose answer was lost")
                proxy.plan = FaultPlan()
            }
            _ = try agent.syncOnce()
            up[losing] = proxy.stats.bytesToServer - before
            #expect(try store.pendingRows(for: Peer(id: loop.hub.nodeID, direction: .upstream)) == 0)
        }
        let clean = try #require(up[false])
        let lost = try #require(up[true])
        print("measured: \(clean) bytes up clean, \(lost) when the push's answer was lost")
        #expect(Double(lost) <= Double(clean) * 1.1, "the batch was sent again: \(lost) bytes against \(clean)")
    }

    /// A resumption the hub cannot complete into the very body the node signed changes nothing.
    @Test("a resumption from bytes the hub does not hold, or onto a damaged part, is refused, retryably, before anything is applied")
    func resumptionsCannotBeForged() async throws {
        let loop = try await LoopbackHub.start()
        defer { Task { await loop.stop() } }
        let (identity, _) = try loop.enrol("u-a")
        let connection = try HTTPHubConnection(identity: identity, clock: SystemClock())
        var random = SeededRandom(seed: 3)
        let body = (0..<20_000).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        let sha = Trust.sha256Hex(body)
        let headers = [("Content-Type", WireMediaType.exchange)]
        // Nothing held: the offset is refused, the connection is told to send it whole.
        #expect(try connection.heldOffset(sha) == 0)
        #expect {
            try connection.send("POST", "/v1/exchange", body: body, from: 8_000, headers: headers, resendOnCut: false)
        } throws: { error in
            guard let f = error as? SyncFailure, case .hub(.truncated) = f.kind else { return false }
            return f.isRetryable
        }
        // A part whose bytes were damaged: the whole does not hash to what was signed.
        var damaged = Array(body[0..<8_000])
        damaged[100] ^= 0x20
        loop.server.partials.keep(node: identity.nodeID, sha256: sha, bytes: damaged)
        #expect(try connection.heldOffset(sha) == 8_000)
        #expect(throws: SyncFailure.self) {
            try connection.send("POST", "/v1/exchange", body: body, from: 8_000, headers: headers, resendOnCut: false)
        }
        #expect(loop.server.partials.totalBytes == 0, "a part that failed its hash is dropped")
        // Another node's part is not this node's: the offset it reports is 0.
        let (other, _) = try loop.enrol("u-b")
        loop.server.partials.keep(node: other.nodeID, sha256: sha, bytes: Array(body[0..<8_000]))
        #expect(try connection.heldOffset(sha) == 0)
        // A sound part and the right rest make the signed body (here not an exchange, so the
        // hub refuses it for what it is, after reassembly).
        loop.server.partials.keep(node: identity.nodeID, sha256: sha, bytes: Array(body[0..<8_000]))
        #expect {
            try connection.send("POST", "/v1/exchange", body: body, from: 8_000, headers: headers, resendOnCut: false)
        } throws: { error in
            guard let f = error as? SyncFailure, case .hub(.malformed) = f.kind else { return false }
            return true
        }
        let rows = try loop.hub.store.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM member") ?? 0 }
        #expect(rows == 0)
    }
}

/// Issue #14: the standard file (the largest thing a node downloads before any record) goes
/// over the wire gzip'd, at enrolment and on every upgrade fetch.
@Suite("The standard on the wire", .offThePool)
struct StandardOnTheWireTests {
    @Test("a node's enrolment and its standard fetch each cost less than half the standard's bytes on the wire")
    func theStandardArrivesCompressed() async throws {
        let h = try await LoopbackHub.start()
        let proxy = try FaultProxy(upstreamPort: h.port)
        let standard = h.hub.signedStandard.standard.utf8.count
        let token = try h.hub.addUnit(OrgUnit(id: "u-s", name: "丙", parentID: "prov", level: .unit, industry: "education"))
        let key = SigningKey()
        let answer = try HTTPHubConnection.enrol(hubURL: "http://127.0.0.1:\(proxy.port)", token: token, key: key, hostname: "box")
        let enrolled = proxy.stats.bytesToClient
        #expect(answer.standard == h.hub.signedStandard.standard)
        #expect(enrolled * 2 < standard, "enrolment answer: \(enrolled) bytes on the wire for a \(standard)-byte standard")

        let identity = NodeIdentity(
            hubURL: "http://127.0.0.1:\(proxy.port)", nodeID: answer.nodeID, unitID: answer.unitID, unitName: answer.unitName,
            hubNodeID: answer.hubNodeID, hubPublicKey: answer.hubPublicKey, privateKey: key.base64, gzip: true)
        let fetched = try HTTPHubConnection(identity: identity, clock: SystemClock()).fetchStandard()
        let fetch = proxy.stats.bytesToClient - enrolled
        #expect(fetched == h.hub.signedStandard)
        #expect(fetch * 2 < standard, "standard fetch: \(fetch) bytes on the wire for a \(standard)-byte standard")
        proxy.stop()
        await h.stop()
    }
}
