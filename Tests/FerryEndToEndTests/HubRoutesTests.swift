import FerryCompression
import FerryConfig
import FerryCore
import FerryHub
import FerryNode
@testable import FerryHubServer
import FerryTestSupport
import FerryTestTraits
import FerryTrust
import FerryWire
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// A hub with one enrolled node, served in-process (HummingbirdTesting), and the node's key.
struct RoutedHub {
    let dir: TemporaryDirectory
    let clock = ManualClock()
    let hub: Hub
    let server: HubServer
    let key = SigningKey()
    let nodeID: String

    init() throws {
        dir = try TemporaryDirectory()
        let text = try String(contentsOfFile: Repository.path("Tests/Fixtures/test-standard.toml"), encoding: .utf8)
        hub = try Hub(directory: dir.file("hub"), standard: text, clock: clock)
        _ = try hub.addUnit(OrgUnit(id: "prov", name: "省", parentID: nil, level: .province, industry: nil, region: nil))
        let token = try hub.addUnit(OrgUnit(id: "u-a", name: "甲", parentID: "prov", level: .unit, industry: "education", region: nil))
        nodeID = try hub.enrol(EnrolRequest(token: EnrolmentToken(parsing: token)!, key: key, hostname: "box")).nodeID
        server = try HubServer(hub: hub, port: 0)
    }

    /// Headers a node signs for `body` (as sent), `Ferry-Content-SHA256` included unless `legacy`.
    func signed(_ method: String, _ path: String, body: [UInt8], legacy: Bool = false) throws -> HTTPFields {
        var fields = HTTPFields()
        for (name, value) in try key.signedHeaders(node: nodeID, method: method, path: path, body: body, nowMillis: clock.nowMillis())
        where !(legacy && name == WireHeader.contentSHA256) {
            fields[HTTPField.Name(name)!] = value
        }
        return fields
    }

    /// An exchange body pushing one member row.
    func changeset(_ id: String) throws -> [UInt8] {
        let cs = ChangesetCodec.encode(
            Changeset(
                origin: try NodeID(nodeID), standardVersion: StandardVersion(1, 0, 0),
                batch: BatchPosition(sequence: 1, through: 1, isFinal: true),
                tables: [TableChanges(name: "member", rows: [row(id, unit: "u-a", node: nodeID)])]))
        let header = try JSONEncoder().encode(
            ExchangeRequest(maxBytes: 65536, standardVersion: "1.0.0", pendingRows: 0, clockMillis: clock.nowMillis(), epoch: 0))
        return ExchangeEnvelope(header: [UInt8](header), changeset: cs).encode()
    }

    func audit() throws -> [String] { try hub.registry.auditLog().map(\.outcome) }
}

func wireError(_ response: TestResponse) -> WireError? {
    try? JSONDecoder().decode(WireError.self, from: Data(response.body.readableBytesView))
}

/// Every response in the one Ferry error shape, and the order in which a signed request is
/// admitted (issue #12), tested against the routes in-process.
@Suite("Hub routes in-process", .offThePool)
struct HubRoutesTests {
    @Test("an unknown path is 404 not_found and a known path with another method 405 method_not_allowed, in the error shape with the hub's headers")
    func unknownRoutesHaveTheErrorShape() async throws {
        let h = try RoutedHub()
        defer { h.dir.remove() }
        try await h.server.application().test(.router) { client in
            try await client.execute(uri: "/v1/nothing", method: .get) { r in
                #expect(r.status == .notFound)
                #expect(wireError(r)?.code == .notFound && wireError(r)?.retryable == false)
                #expect(r.headers[HTTPField.Name(WireHeader.hubTime)!] == String(h.clock.nowMillis()))
                #expect(r.headers[HTTPField.Name(WireHeader.standardVersion)!] == h.hub.signedStandard.version)
            }
            try await client.execute(uri: "/v1/exchange", method: .get) { r in
                #expect(r.status == .methodNotAllowed)
                #expect(wireError(r)?.code == .methodNotAllowed)
                #expect(r.headers[.allow] == "POST")
                #expect(r.headers[HTTPField.Name(WireHeader.hubTime)!] != nil)
            }
            // The supervisor's view answers with the hub's headers too.
            try await client.execute(uri: "/v1/report/freshness", method: .get) { r in
                #expect(r.status == .unauthorized && wireError(r)?.code == .unauthenticated)
                #expect(r.headers[HTTPField.Name(WireHeader.hubTime)!] != nil)
                #expect(r.headers[HTTPField.Name(WireHeader.standardVersion)!] != nil)
            }
            try await client.execute(uri: "/v1/health", method: .get) { r in
                #expect(r.status == .ok && r.headers[HTTPField.Name(WireHeader.standardVersion)!] != nil)
            }
        }
    }

    @Test("an empty or non-exchange body is malformed (permanent), not retryable truncated")
    func pushWithoutAChangesetIsMalformed() async throws {
        let h = try RoutedHub()
        defer { h.dir.remove() }
        try await h.server.application().test(.router) { client in
            for body in [[UInt8](), Array("{\"rows\": []}".utf8)] {
                try await client.execute(uri: "/v1/exchange", method: .post, headers: try h.signed("POST", "/v1/exchange", body: body), body: ByteBuffer(bytes: body)) { r in
                    #expect(r.status == .badRequest)
                    #expect(wireError(r)?.code == .malformed && wireError(r)?.retryable == false, "\(String(buffer: r.body))")
                }
            }
        }
    }

    @Test("a body that differs from its signed Ferry-Content-SHA256 is corrupted (retryable) and audited as damaged, not as a bad signature")
    func damagedBodyIsCorruptedNotBadSignature() async throws {
        let h = try RoutedHub()
        defer { h.dir.remove() }
        let body = try h.changeset("x1")
        var damaged = body
        damaged[damaged.count / 2] ^= 0x10
        let arrived = damaged
        try await h.server.application().test(.router) { client in
            try await client.execute(uri: "/v1/exchange", method: .post, headers: try h.signed("POST", "/v1/exchange", body: body), body: ByteBuffer(bytes: arrived)) { r in
                #expect(r.status == .badRequest)
                #expect(wireError(r)?.code == .corrupted && wireError(r)?.retryable == true)
            }
            try await client.execute(uri: "/v1/exchange", method: .post, headers: try h.signed("POST", "/v1/exchange", body: body), body: ByteBuffer(bytes: body)) { r in
                #expect(r.status == .ok)
            }
        }
        let audit = try h.audit()
        #expect(audit.contains("damaged") && audit.contains("applied"))
        #expect(!audit.contains("bad_signature"))
    }

    @Test("a request is authenticated from its headers before its body is read: a forged one is refused without reading it, and the connection closes")
    func forgedRequestIsRefusedBeforeItsBody() async throws {
        let h = try RoutedHub()
        defer { h.dir.remove() }
        let body = try h.changeset("x1")
        var headers = try h.signed("POST", "/v1/exchange", body: body)
        headers[HTTPField.Name(WireHeader.signature)!] = try SigningKey().sign(Array("forged".utf8))
        let forged = headers
        try await h.server.application().test(.router) { client in
            try await client.execute(uri: "/v1/exchange", method: .post, headers: forged, body: ByteBuffer(bytes: body)) { r in
                #expect(r.status == .unauthorized && wireError(r)?.code == .badSignature)
                #expect(r.headers[.connection] == "close")
            }
        }
        #expect(try h.hub.store.syncedContents(of: "member").isEmpty)
    }

    @Test("a signed request without Ferry-Content-SHA256 (release 1) is refused before its body is read, saying to upgrade the node")
    func requestWithoutContentHashIsRefusedUnread() async throws {
        let h = try RoutedHub()
        defer { h.dir.remove() }
        let body = try h.changeset("x1")
        try await h.server.application().test(.router) { client in
            try await client.execute(uri: "/v1/exchange", method: .post, headers: try h.signed("POST", "/v1/exchange", body: body, legacy: true), body: ByteBuffer(bytes: body)) { r in
                #expect(r.status == .badRequest, "\(String(buffer: r.body))")
                #expect(String(buffer: r.body).contains("upgrade the node") && r.headers[.connection] == "close")
            }
        }
        #expect(try h.hub.store.syncedContents(of: "member").isEmpty)
    }

    @Test("an enrolment body over the limit is too_large from its Content-Length, and a gzip body never expands past it")
    func enrolmentBodiesAreSmall() async throws {
        let h = try RoutedHub()
        defer { h.dir.remove() }
        let bomb = try Gzip.compress([UInt8](repeating: 0x20, count: 8 << 20))
        #expect(bomb.count < h.hub.settings.transport.maxEnrolBodyBytes)
        try await h.server.application().test(.router) { client in
            let big = [UInt8](repeating: 0x20, count: 64 * 1024)
            try await client.execute(uri: "/v1/enrol", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(bytes: big)) { r in
                #expect(r.status == .contentTooLarge && wireError(r)?.code == .tooLarge)
            }
            try await client.execute(
                uri: "/v1/enrol", method: .post, headers: [.contentType: "application/json", .contentEncoding: "gzip"], body: ByteBuffer(bytes: bomb)
            ) { r in
                #expect(r.status == .contentTooLarge && wireError(r)?.code == .tooLarge)
            }
        }
    }

    /// The signed answer's body as sent (still gzip'd), checked against the hub's key.
    static func signedByHub(_ r: TestResponse, nonce: String, hub: Hub) -> Bool {
        let body = [UInt8](r.body.readableBytesView)
        let canonical = ResponseSigning.canonical(
            requestNonce: nonce, status: Int(r.status.code), hubTime: r.headers[HTTPField.Name(WireHeader.hubTime)!] ?? "",
            bodySHA256Hex: Trust.sha256Hex(body))
        guard let sig = r.headers[HTTPField.Name(WireHeader.hubSignature)!], let key = Data(base64Encoded: hub.publicKeyBase64) else { return false }
        return Trust.verify(publicKey: [UInt8](key), signatureBase64: sig, data: canonical)
    }

    @Test("the standard travels gzip'd, signed as sent, to a node that accepts gzip: in the enrolment answer and from /v1/standard; plain to one that does not")
    func theStandardTravelsCompressed() async throws {
        let h = try RoutedHub()
        defer { h.dir.remove() }
        let standard = h.hub.signedStandard.standard
        let tokens = try (0..<2).map { i in
            EnrolmentToken(parsing: try h.hub.addUnit(OrgUnit(id: "u-z\(i)", name: "乙\(i)", parentID: "prov", level: .unit, industry: "education")))!
        }
        try await h.server.application().test(.router) { client in
            for (token, gzip) in zip(tokens, [true, false]) {
                let request = EnrolRequest(token: token, key: SigningKey(), hostname: "box")
                var headers: HTTPFields = [.contentType: "application/json"]
                if gzip { headers[.acceptEncoding] = "gzip" }
                try await client.execute(uri: "/v1/enrol", method: .post, headers: headers, body: ByteBuffer(bytes: try JSONEncoder().encode(request))) { r in
                    #expect(r.status == .ok)
                    #expect((r.headers[.contentEncoding] == "gzip") == gzip)
                    let raw = [UInt8](r.body.readableBytesView)
                    let body = gzip ? try Gzip.decompress(raw, maxBytes: 1 << 20) : raw
                    #expect(try JSONDecoder().decode(EnrolResponse.self, from: Data(body)).standard == standard)
                    #expect(Self.signedByHub(r, nonce: request.nonce, hub: h.hub), "signed over the bytes as sent")
                    if gzip { #expect(raw.count * 3 < standard.utf8.count, "\(raw.count) bytes for a \(standard.utf8.count)-byte standard") }
                }
            }
            for gzip in [true, false] {
                var headers = try h.signed("GET", "/v1/standard", body: [])
                if gzip { headers[.acceptEncoding] = "gzip" }
                let nonce = headers[HTTPField.Name(WireHeader.nonce)!]!
                try await client.execute(uri: "/v1/standard", method: .get, headers: headers) { r in
                    #expect(r.status == .ok && (r.headers[.contentEncoding] == "gzip") == gzip)
                    let raw = [UInt8](r.body.readableBytesView)
                    let body = gzip ? try Gzip.decompress(raw, maxBytes: 1 << 20) : raw
                    #expect(try JSONDecoder().decode(SignedStandard.self, from: Data(body)) == h.hub.signedStandard)
                    #expect(Self.signedByHub(r, nonce: nonce, hub: h.hub))
                }
            }
        }
    }
}

/// The listener's limits and deadlines as plain values, with an injected clock.
@Suite("Admission and deadlines", .offThePool)
struct AdmissionTests {
    @Test("connections beyond the total or the per-address limit are refused, and counted back when they close")
    func connectionCounts() {
        var c = ConnectionCounts(maxTotal: 3, maxPerAddress: 2)
        #expect(c.open("a") == nil && c.open("a") == nil)
        #expect(c.open("a") == .perAddress)
        #expect(c.open("b") == nil)
        #expect(c.open("c") == .total)
        c.close("a")
        #expect(c.open("c") == nil)
        #expect(c.total == 3 && c.perAddress["a"] == 1)
    }

    @Test("enrolments are bounded at once in all, per address, and per address and minute")
    func requestAdmission() {
        var settings = TransportSettings()
        settings.maxUnauthenticatedReads = 3
        settings.maxUnauthenticatedPerAddress = 2
        settings.maxConcurrentEnrolments = 3
        settings.enrolAttemptsPerMinute = 2
        var a = RequestAdmission(settings: settings)
        #expect(a.admit(.enrol, from: "x", now: 0) == nil)
        #expect(a.admit(.enrol, from: "x", now: 0) == nil)
        #expect(a.admit(.enrol, from: "x", now: 0)?.code == .rateLimited, "two at once from one address")
        #expect(a.admit(.enrol, from: "y", now: 0) == nil)
        #expect(a.admit(.enrol, from: "z", now: 0)?.code == .overloaded, "three at once in all")
        a.release(.enrol, from: "x")
        a.release(.enrol, from: "x")
        a.release(.enrol, from: "y")
        // y made one attempt; one more this minute, then it waits for the bucket to refill.
        #expect(a.admit(.enrol, from: "y", now: 1) == nil)
        a.release(.enrol, from: "y")
        #expect(a.admit(.enrol, from: "y", now: 2)?.code == .rateLimited)
        #expect(a.admit(.enrol, from: "y", now: 32) == nil, "half a minute refills one of two")
        #expect(WireErrorCode.rateLimited.httpStatus == 429 && WireErrorCode.rateLimited.isRetryable)
    }

    @Test("hub.toml's [limits] and [timeouts] defaults are TransportSettings' defaults")
    func configDefaultsAreTheSettingsDefaults() {
        let c = HubConfig.defaults
        let t = TransportSettings()
        #expect(c.limits.maxConnections == t.maxConnections)
        #expect(c.limits.maxConnectionsPerAddress == t.maxConnectionsPerAddress)
        #expect(c.limits.maxUnauthenticatedReads == t.maxUnauthenticatedReads)
        #expect(c.limits.maxUnauthenticatedPerAddress == t.maxUnauthenticatedPerAddress)
        #expect(c.limits.maxEnrolBodyBytes == t.maxEnrolBodyBytes)
        #expect(c.limits.maxConcurrentEnrolments == t.maxConcurrentEnrolments)
        #expect(c.limits.enrolAttemptsPerMinute == t.enrolAttemptsPerMinute)
        #expect(c.timeouts.requestHeadSeconds == t.requestHeadTimeoutSeconds)
        #expect(c.timeouts.bodyProgressSeconds == t.bodyProgressTimeoutSeconds)
        #expect(c.maxConcurrentSessions == HubSettings().maxConcurrentSessions && c.maxBodyBytes == HubSettings().maxBodyBytes)
        // The settings a hub.toml at its defaults gives are the hub's defaults.
        let mapped = HubSettings(config: c)
        let plain = HubSettings()
        #expect(mapped.transport == plain.transport)
        #expect(mapped.tokenLifetimeSeconds == plain.tokenLifetimeSeconds && mapped.silentAfterDays == plain.silentAfterDays)
        #expect(mapped.adminSessionSeconds == plain.adminSessionSeconds && mapped.maxConcurrentSessions == plain.maxConcurrentSessions)
    }

    @Test("every key of a hub.toml and a ferry-node.toml reaches the settings the hub and the node run with")
    func configValuesReachTheSettings() throws {
        let hub = try HubConfig.parse(
            """
            dir = "/srv/hub"
            max_concurrent_sessions = 7
            max_body_bytes = 1000000
            token_lifetime_days = 3
            silent_after_days = 2
            admin_session_hours = 1
            trusted_proxies = "10.0.0.0/8"
            [limits]
            max_connections = 100
            max_connections_per_address = 5
            max_unauthenticated_reads = 3
            max_unauthenticated_per_address = 2
            max_enrol_body_bytes = 9000
            max_concurrent_enrolments = 2
            enrol_attempts_per_minute = 4
            [timeouts]
            request_head_seconds = 11
            body_progress_seconds = 12
            """)
        let s = HubSettings(config: hub)
        #expect(s.maxConcurrentSessions == 7 && s.maxBodyBytes == 1_000_000 && s.tokenLifetimeSeconds == 3 * 86_400)
        #expect(s.silentAfterDays == 2 && s.adminSessionSeconds == 3600 && s.trustedProxies.count == 1)
        #expect(s.transport.maxConnections == 100 && s.transport.maxConnectionsPerAddress == 5 && s.transport.maxUnauthenticatedReads == 3)
        #expect(s.transport.maxUnauthenticatedPerAddress == 2 && s.transport.maxEnrolBodyBytes == 9000 && s.transport.maxConcurrentEnrolments == 2)
        #expect(s.transport.enrolAttemptsPerMinute == 4 && s.transport.requestHeadTimeoutSeconds == 11 && s.transport.bodyProgressTimeoutSeconds == 12)

        let node = try NodeConfig.parse(
            """
            dir = "/srv/node"
            [sync]
            interval_seconds = 60
            debounce_seconds = 2
            batch_bytes = 16384
            [http]
            connect_timeout_seconds = 9
            total_timeout_seconds = 99
            low_speed_bytes_per_second = 10
            low_speed_seconds = 30
            ca_file = "/etc/ca.pem"
            pinned_public_key = "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
            proxy = "http://10.0.0.1:3128"
            [retry]
            base_seconds = 3
            cap_seconds = 90
            [metrics]
            listen = "127.0.0.1:9470"
            [log]
            level = "debug"
            """)
        let r = NodeRunSettings(config: node)
        #expect(r.folder.directory == "/srv/node" && r.intervalSeconds == 60 && r.debounceSeconds == 2 && r.batchBytes == 16384)
        #expect(r.folder.http.connectTimeoutSeconds == 9 && r.folder.http.totalTimeoutSeconds == 99)
        #expect(r.folder.http.lowSpeedLimitBytesPerSecond == 10 && r.folder.http.lowSpeedTimeSeconds == 30)
        #expect(r.folder.http.caFile == "/etc/ca.pem" && r.folder.http.pinnedPublicKey == "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" && r.folder.http.proxy == "http://10.0.0.1:3128")
        #expect(r.retry.baseSeconds == 3 && r.retry.capSeconds == 90 && r.metricsListen == "127.0.0.1:9470" && r.logLevel == "debug")
        #expect(r.folder.http.userAgent.hasPrefix("ferry/"))
        // At its defaults, a node config gives what the flags' defaults give.
        let plain = NodeRunSettings(config: NodeConfig())
        #expect(plain.intervalSeconds == Double(FerryDefaults.Node.syncIntervalSeconds) && plain.batchBytes == FerryDefaults.Node.batchBytes)
        #expect(plain.folder.http == NodeFolder(directory: plain.folder.directory).http && plain.retry == RetryPolicy())
    }

    @Test("a head must arrive within its timeout; a body may be slow but not silent; no deadline runs while the hub answers")
    func deadlines() {
        var d = ConnectionDeadlines(headTimeout: 30, bodyTimeout: 10, now: 0)
        #expect(d.deadline == 30 && d.expired(now: 29.9) == nil && d.expired(now: 30) == .head)
        d.headReceived(now: 5)
        // 1 KB/s keeps a 256 KB body alive for as long as it takes.
        for t in stride(from: 6.0, through: 262, by: 1) {
            d.bodyReceived(now: t)
            #expect(d.expired(now: t + 0.5) == nil)
        }
        #expect(d.expired(now: 272) == .body)
        d.requestEnded(now: 263)
        #expect(d.deadline == nil && d.expired(now: 10_000) == nil)
        d.responseEnded(now: 400)
        #expect(d.deadline == 430 && d.expired(now: 430) == .head, "an idle kept-alive connection closes")
        // A refusal answered before the body: the body deadline still runs.
        d.headReceived(now: 500)
        d.responseEnded(now: 500.1)
        #expect(d.expired(now: 510) == .body)
    }
}
