import FerryCore
import FerryStandardFile
import FerryStore
import FerryTrust
import FerryWire
import Foundation
import Logging
import Metrics
import Synchronization

/// An administrative mistake (a bad unit, an unknown node) with what to do about it.
public enum HubError: Error, CustomStringConvertible, Sendable {
    case invalid(String)
    public var description: String {
        switch self {
        case .invalid(let s): return s
        }
    }
}

/// Tunables of a hub; defaults (`FerryDefaults.Hub`) suit a province hub on modest hardware.
public struct HubSettings: Sendable {
    /// Sync requests (push, pull) served at once; more get 503 with Retry-After.
    public var maxConcurrentSessions = FerryDefaults.Hub.maxConcurrentSessions
    /// Largest accepted request body, bytes (after decompression).
    public var maxBodyBytes = FerryDefaults.Hub.maxBodyBytes
    /// Largest batch a pull may ask for, bytes.
    public var maxPullBytes = FerryDefaults.Hub.maxPullBytes
    /// How long an enrolment token stays valid, seconds.
    public var tokenLifetimeSeconds = UInt64(FerryDefaults.Hub.tokenLifetimeDays) * 86_400
    /// How long a request waits for a database locked by another process before the hub
    /// answers 503 (retryable), seconds.
    public var busyTimeoutSeconds = Double(FerryDefaults.Hub.busyTimeoutSeconds)
    /// Days without a successful sync after which a unit is listed as silent.
    public var silentAfterDays = FerryDefaults.Hub.silentAfterDays
    /// How long a supervisor's dashboard or API login lasts, seconds.
    public var adminSessionSeconds = UInt64(FerryDefaults.Hub.adminSessionHours) * 3600
    /// The hub's own reverse proxies, whose `X-Forwarded-For` names the client; empty
    /// (default): the connection's peer is the client.
    public var trustedProxies: [IPAddressRange] = []
    /// Connection and unauthenticated-request limits and timeouts of the HTTP listener.
    public var transport = TransportSettings()
    public init() {}
}

/// A supervisor's hub: the merged replica of all its units, the org tree, enrolled nodes,
/// and the logic of every request (the HTTP layer only moves bytes).
///
/// Files in its directory: `hub.db` (the replica), `registry.db` (org tree, nodes, tokens,
/// audit), `standard.toml` (the standard it publishes), `hub.key` (its signing key, 0600).
public final class Hub: Sendable {
    public let directory: String
    public let store: ReplicaStore
    public let registry: HubRegistry
    public let standardText: String
    public let nodeID: NodeID
    public let settings: HubSettings
    let key: SigningKey
    let clock: any WallClock
    let logger: Logger
    private let sessions = Mutex(0)
    private let olderStandards = Mutex<[String: Standard]>([:])
    /// The current standard with the hub's signature, served at GET /v1/standard.
    public let signedStandard: SignedStandard
    let metrics = HubMetrics()

    public init(
        directory: String, standard: String? = nil, nodeID: NodeID = NodeID(unchecked: "hub"),
        settings: HubSettings = HubSettings(), clock: any WallClock = SystemClock(), logger: Logger = Logger(label: "ferry.hub")
    ) throws {
        let fm = FileManager.default
        try FilePermissions.ensurePrivateDirectory(directory, logger: logger)
        let standardPath = "\(directory)/standard.toml"
        if !fm.fileExists(atPath: standardPath) {
            try (standard ?? StandardFile.builtInText()).write(toFile: standardPath, atomically: true, encoding: .utf8)
        }
        var text = try String(contentsOfFile: standardPath, encoding: .utf8)
        var parsed = try StandardFile.parse(text, file: standardPath)
        // A publish that stopped between migrating hub.db and replacing standard.toml (a
        // crash, a full disk) is finished here: the database says which version it follows.
        if let migrated = try String.fetchOneState(path: "\(directory)/hub.db", key: "standard").flatMap(StandardVersion.init(parsing:)),
            migrated > parsed.version,
            let newer = try? String(contentsOfFile: "\(directory)/standards/\(migrated).toml", encoding: .utf8),
            let s = try? StandardFile.parse(newer, file: "standards/\(migrated).toml"), s.version == migrated
        {
            try newer.write(toFile: standardPath, atomically: true, encoding: .utf8)
            text = newer
            parsed = s
        }
        let keyPath = "\(directory)/hub.key"
        if !fm.fileExists(atPath: keyPath) {
            try FilePermissions.writePrivateFile(Data(SigningKey().base64.utf8), to: keyPath)
        } else {
            FilePermissions.tighten(keyPath, logger: logger)
        }
        key = try SigningKey(base64: String(contentsOfFile: keyPath, encoding: .utf8))
        self.directory = directory
        self.standardText = text
        self.nodeID = nodeID
        self.settings = settings
        self.clock = clock
        self.logger = logger
        store = try ReplicaStore(
            path: "\(directory)/hub.db", standard: parsed, identity: ReplicaIdentity(node: nodeID, role: .hub), clock: clock,
            busyTimeoutSeconds: settings.busyTimeoutSeconds)
        registry = try HubRegistry(path: "\(directory)/registry.db", logger: logger)
        try Self.archive(text, version: parsed.version, directory: directory)
        signedStandard = SignedStandard(
            version: parsed.version.description, standard: text, signature: try key.sign(SignedStandard.signedBytes(text)))
    }

    /// Every version the hub ever published stays in `standards/`, so it can serve a node
    /// several versions behind only the columns that node can store. Written atomically
    /// (a temporary file renamed over the old one), replacing a stale file of an earlier,
    /// failed attempt at the same version.
    static func archive(_ text: String, version: StandardVersion, directory: String) throws {
        let dir = "\(directory)/standards"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = "\(dir)/\(version).toml"
        if (try? String(contentsOfFile: path, encoding: .utf8)) != text {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        }
    }

    /// The standard of `version` as published by this hub (cached), or nil if never published.
    /// Only a well-formed version of an archived file is ever read: `version` comes from nodes.
    public func publishedStandard(_ version: String) -> Standard? {
        if version == store.standard.version.description { return store.standard }
        guard let v = StandardVersion(parsing: version), v.description == version, v < store.standard.version else { return nil }
        return olderStandards.withLock { cache in
            if let s = cache[version] { return s }
            guard let text = try? String(contentsOfFile: "\(directory)/standards/\(version).toml", encoding: .utf8),
                let s = try? StandardFile.parse(text, file: version), s.version == v
            else { return nil }
            cache[version] = s
            return s
        }
    }

    /// Publishes a new version of the standard: checks that it only adds to the current one,
    /// migrates the hub's database, then archives it and makes it current. The migration is
    /// one transaction and the files are written only after it, atomically: a refused or
    /// failed publish leaves nothing behind. The running hub serves it after a restart;
    /// nodes learn of it on their next exchange and migrate themselves.
    public static func publish(directory: String, text: String, clock: any WallClock = SystemClock()) throws -> (old: StandardVersion, new: StandardVersion) {
        let currentPath = "\(directory)/standard.toml"
        let current = try StandardFile.load(path: currentPath)
        let next = try StandardFile.parse(text, file: "new standard")
        guard next.version > current.version else {
            throw HubError.invalid("the new standard's version \(next.version) must be above the published \(current.version)")
        }
        guard next.version.major == current.version.major else {
            throw HubError.invalid(
                "\(next.version) is a new major version; a major version needs an explicit migration of every unit, which this release does not perform. Publish additive changes as \(current.version.major).x")
        }
        let problems = StandardEvolution.incompatibilities(from: current, to: next)
        guard problems.isEmpty else {
            throw HubError.invalid(
                "refused: these changes would break units still on \(current.version):\n" + problems.map { "  - \($0)" }.joined(separator: "\n")
                    + "\nOnly additions are allowed within a major version (tables, columns with a default, allowed values, labels).")
        }
        // Migrate the hub's own database first (the store rebuilds changed tables in one transaction).
        let hubNode = try String.fetchOneState(path: "\(directory)/hub.db", key: "node") ?? "hub"
        let store = try ReplicaStore(
            path: "\(directory)/hub.db", standard: next, identity: ReplicaIdentity(node: try NodeID(hubNode), role: .hub), clock: clock)
        try store.close()
        try archive(text, version: next.version, directory: directory)
        try text.write(toFile: currentPath, atomically: true, encoding: .utf8)
        return (current.version, next.version)
    }

    public var publicKeyBase64: String { key.publicKeyBase64 }
    public func now() -> UInt64 { clock.nowMillis() }

    // MARK: Administration

    /// Places a unit in the org tree and returns a one-time enrolment token for its node.
    /// When the standard has an `org_unit` table, the unit's row is written there too, so
    /// it reaches the units as reference data.
    public func addUnit(_ unit: OrgUnit) throws -> String {
        // Its nodes are named <unit>-n<k>, and a restored node <unit>-n<k>.<i>: 48 leaves room.
        guard NodeID.isValid(unit.id), unit.id.utf8.count <= 48 else {
            throw HubError.invalid("unit id '\(unit.id)' must be 1–48 characters of A–Z a–z 0–9 . _ -")
        }
        let now = clock.nowMillis()
        try registry.addUnit(unit, now: now)
        if let t = store.standard.table(named: "org_unit") {
            var cols: [String] = []
            var vals: [Value] = []
            let fields: [(String, Value)] = [
                ("id", .text(unit.id)), ("parent_id", unit.parentID.map(Value.text) ?? .null), ("level", .text(unit.level.rawValue)),
                ("name", .text(unit.name)), ("industry", unit.industry.map(Value.text) ?? .null),
                ("region_code", .text(unit.region ?? "")),
            ]
            for (c, v) in fields where t.column(named: c) != nil {
                cols.append(c)
                vals.append(v)
            }
            let sets = cols.filter { $0 != "id" }.map { "\"\($0)\" = excluded.\"\($0)\"" }.joined(separator: ", ")
            try store.execute(
                "INSERT INTO org_unit (\(cols.map { "\"\($0)\"" }.joined(separator: ", "))) VALUES (\(cols.map { _ in "?" }.joined(separator: ", "))) ON CONFLICT(id) DO UPDATE SET \(sets)",
                vals)
        }
        guard unit.level == .unit else { return "" }
        return try issueToken(unitID: unit.id)
    }

    /// A fresh one-time token for another node of an existing unit (a replacement box, or
    /// a second workstation: see protocol/HTTP.md, "A unit's nodes").
    public func issueToken(unitID: String) throws -> String {
        guard let u = try registry.unit(unitID) else { throw HubError.invalid("unit '\(unitID)' is not in the org tree; add it with ferry hub unit add") }
        guard u.level == .unit else { throw HubError.invalid("'\(unitID)' is a \(u.level.rawValue), not a unit; only units have nodes") }
        let token = EnrolmentToken.issue(hubPublicKey: key.publicKeyRaw)
        let now = clock.nowMillis()
        try registry.addToken(
            digest: token.digest, proofKey: token.proofKey, unitID: unitID, now: now, expiresAt: now + settings.tokenLifetimeSeconds * 1000)
        return token.text
    }

    /// Cuts a node off at once: its next request is refused.
    public func revoke(node: String) throws {
        guard try registry.revoke(node, now: clock.nowMillis()) else {
            throw HubError.invalid("node '\(node)' is not enrolled or already revoked; list nodes with ferry hub nodes")
        }
        registry.audit(node: node, unit: nil, action: "revoke", outcome: "ok", now: clock.nowMillis())
    }

    // MARK: Requests

    /// `client` is the address the request came from, audited with the attempt.
    public func enrol(_ request: EnrolRequest, client: String? = nil) throws(WireError) -> EnrolResponse {
        let now = clock.nowMillis()
        guard let raw = Data(base64Encoded: request.publicKey), raw.count == 32 else {
            throw WireError(.badRequest, "public_key must be base64 of a 32-byte Ed25519 key")
        }
        guard Trust.isAcceptablePublicKey([UInt8](raw)) else {
            registry.audit(node: nil, unit: nil, action: "enrol", outcome: "weak_key", client: client, now: now)
            throw WireError(.badRequest, "public_key is a weak Ed25519 key (a small-order or non-canonical point); generate a real key pair")
        }
        guard RequestSigning.isValidNonce(request.nonce), request.tokenDigest.utf8.count == 64,
            request.tokenDigest.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }), request.proof.utf8.count == 64
        else {
            throw WireError(.badRequest, "token_digest and proof must be 64 lowercase hex characters and nonce 16–64")
        }
        // Kept as sent (terminal listings escape what a node wrote); bounded.
        let hostname = String(request.hostname.prefix(128))
        do {
            let node = try registry.enrol(
                tokenDigest: request.tokenDigest,
                proof: { proofKey in
                    Trust.constantTimeEqual(
                        request.proof, EnrolmentToken.proof(proofKey: proofKey, publicKey: request.publicKey, hostname: request.hostname, nonce: request.nonce))
                }, publicKey: [UInt8](raw), hostname: hostname, now: now)
            let unit = try registry.unit(node.unitID)
            if request.restoring == true {
                // A replacement restored from a backup: start its cursor at the hub's present;
                // anti-entropy then sends only what the backup lacks.
                try store.skipCursorToLatest(for: node.id)
            }
            registry.audit(node: node.id.rawValue, unit: node.unitID, action: "enrol", outcome: "ok", detail: hostname, client: client, now: now)
            metrics.enrolments.increment()
            return EnrolResponse(
                nodeID: node.id.rawValue, unitID: node.unitID, unitName: unit?.name ?? node.unitID, hubNodeID: nodeID.rawValue,
                hubPublicKey: key.publicKeyBase64, standardVersion: store.standard.version.description, standard: standardText,
                compression: ["gzip"], publicKey: request.publicKey)
        } catch let e as WireError {
            registry.audit(node: nil, unit: nil, action: "enrol", outcome: e.code.rawValue, client: client, now: now)
            throw e
        } catch {
            logger.error("enrolment failed", metadata: ["error": "\(error)"])
            throw WireError(.unavailable, "the hub could not record the enrolment; try again in a minute")
        }
    }

    /// Signs an answer to the request that carried `requestNonce`: the node checks it with
    /// the hub's key before it uses anything in the answer.
    public func signResponse(requestNonce: String, status: Int, hubTime: String, body: [UInt8]) -> String {
        (try? key.sign(
            ResponseSigning.canonical(requestNonce: requestNonce, status: status, hubTime: hubTime, bodySHA256Hex: Trust.sha256Hex(body)))) ?? ""
    }

    /// Checks a request's signature, freshness and nonce; returns the node it came from.
    ///
    /// `bodySHA256Hex` is the hex SHA-256 of the body as sent: from the signed
    /// `Ferry-Content-SHA256` header before the body is read (the caller then checks the body
    /// against it), or computed from a body already read for a node that does not send it.
    public func authenticate(
        method: String, path: String, header: (String) -> String?, bodySHA256Hex: String, client: String? = nil
    ) throws(WireError) -> NodeRecord {
        let now = clock.nowMillis()
        guard let nodeText = header(WireHeader.node) else {
            throw WireError(.unknownNode, "this request is not signed by an enrolled node; enrol first with: ferry node init --hub URL --token TOKEN")
        }
        let record: NodeRecord?
        do { record = try registry.node(nodeText) } catch { throw WireError.hubStorage(error, doing: "look up the node in its registry") }
        guard let node = record else {
            registry.audit(node: String(nodeText.prefix(64)), unit: nil, action: "auth", outcome: "unknown_node", detail: "\(method) \(path.prefix(64))", client: client, now: now)
            throw WireError(.unknownNode, "this node is not enrolled at this hub; enrol with: ferry node init --hub URL --token TOKEN")
        }
        if node.revokedAt != nil {
            registry.audit(node: nodeText, unit: node.unitID, action: "auth", outcome: "revoked", detail: "\(method) \(path.prefix(64))", client: client, now: now)
            throw WireError(.revoked, "node '\(nodeText)' was revoked by the supervisor; ask them to re-enrol the unit")
        }
        guard let tsText = header(WireHeader.timestamp), let ts = UInt64(tsText), let nonce = header(WireHeader.nonce),
            RequestSigning.isValidNonce(nonce), let sig = header(WireHeader.signature)
        else {
            throw WireError(.badSignature, "the request lacks a valid \(WireHeader.timestamp), \(WireHeader.nonce) or \(WireHeader.signature) header")
        }
        let canonical = RequestSigning.canonical(method: method, path: path, timestampMillis: ts, nonce: nonce, bodySHA256Hex: bodySHA256Hex)
        guard Trust.verify(publicKey: node.publicKey, signatureBase64: sig, data: canonical) else {
            registry.audit(node: nodeText, unit: node.unitID, action: "auth", outcome: "bad_signature", detail: "\(method) \(path.prefix(64))", client: client, now: now)
            throw WireError(.badSignature, "the request's signature does not match node '\(nodeText)''s key, or the request was altered")
        }
        let age = ts > now ? ts - now : now - ts
        guard age <= RequestSigning.maxAgeMillis else {
            registry.audit(node: nodeText, unit: node.unitID, action: "auth", outcome: "stale_request", detail: "\(age / 1000) s", client: client, now: now)
            throw WireError(.staleRequest, "the request is timestamped \(age / 1000) s away from the hub's clock; sign with the hub's time (header \(WireHeader.hubTime))")
        }
        let fresh: Bool
        do { fresh = try registry.useNonce(node: nodeText, nonce: nonce, now: now, window: RequestSigning.maxAgeMillis) } catch {
            throw WireError.hubStorage(error, doing: "record the request's nonce in its registry")
        }
        guard fresh else {
            registry.audit(node: nodeText, unit: node.unitID, action: "auth", outcome: "replayed", detail: "\(method) \(path.prefix(64))", client: client, now: now)
            throw WireError(.replayed, "this request (nonce \(nonce)) was already received; a replay is refused")
        }
        return node
    }

    /// Runs `body` as one sync session, or refuses with `overloaded` when too many run.
    public func session<T>(_ body: () throws(WireError) -> T) throws(WireError) -> T {
        try admitSession()
        defer { endSession() }
        return try body()
    }

    /// Takes one of the `maxConcurrentSessions` slots, or refuses with `overloaded`. The
    /// HTTP layer takes it as a request arrives, before it waits for a worker thread, so a
    /// burst is answered with 503 + Retry-After at once instead of queueing unseen.
    public func admitSession() throws(WireError) {
        let admitted = sessions.withLock { n -> Int? in
            guard n < settings.maxConcurrentSessions else { return nil }
            n += 1
            return n
        }
        guard let inFlight = admitted else {
            metrics.sessionsShed.increment()
            throw WireError(.overloaded, "the hub is serving \(settings.maxConcurrentSessions) syncs; retry after the delay in Retry-After")
        }
        metrics.sessionsInFlight.record(inFlight)
    }

    /// Gives back a slot taken by `admitSession()`.
    public func endSession() {
        let left = sessions.withLock { n -> Int in
            n -= 1
            return n
        }
        metrics.sessionsInFlight.record(left)
    }

    /// How far back a node that never heard of a settled conflict is told of them.
    static let settledLookBackMillis: UInt64 = 90 * 86_400_000

    /// One exchange with `node`: applies the batch it pushed, records what it acknowledged
    /// and asked for, and answers with the push's acknowledgement, its next batch and what
    /// it should know (held rows, the digest to compare, its next epoch). `body` is an
    /// `ExchangeEnvelope`; so is the answer.
    public func exchange(from node: NodeRecord, body: [UInt8], client: String? = nil) throws(WireError) -> [UInt8] {
        let now = clock.nowMillis()
        let envelope = try ExchangeEnvelope.decode(body)
        let request: ExchangeRequest
        do { request = try JSONDecoder().decode(ExchangeRequest.self, from: Data(envelope.header)) } catch {
            throw WireError(.badRequest, "the exchange header is not a valid request: \(WireError.describe(error))")
        }
        guard request.resend.count + request.repair.count <= ExchangeRequest.maxRowRefs else {
            throw WireError(.tooLarge, "an exchange may name at most \(ExchangeRequest.maxRowRefs) rows to resend")
        }
        guard let nodeStandard = publishedStandard(request.standardVersion) else {
            throw WireError(
                .standardMismatch,
                "this hub never published standard '\(request.standardVersion.prefix(32))'; the node's database follows a standard from elsewhere")
        }
        let hubPeer = Peer(id: node.id, direction: .downstream(unit: node.unitID))
        do throws(WireError) {
            // What the node says of the previous round: applied, lacking, different.
            do {
                if let p = request.pulled { try store.acknowledge(p.position, from: node.id) }
                let mine = { (refs: [RowRef]) in refs.map { RowRef(table: $0.table, key: $0.key, scope: node.unitID) } }
                try store.sendWhole(mine(request.resend), to: node.id)
                try store.sendWhole(mine(request.repair), to: node.id, repair: true)
            } catch {
                throw unavailable("record the node's acknowledgement", error)
            }
            var pushed: PushAcknowledgement?
            var authoredClock: UInt64 = 0
            if let bytes = envelope.changeset {
                let (ack, clock) = try push(from: node, changeset: bytes, client: client, now: now)
                pushed = ack
                authoredClock = clock
            }
            let epoch: (next: UInt64, rolledBack: Bool, clockFloor: UInt64)
            do { epoch = try registry.noteEpoch(node: node.id.rawValue, reported: request.epoch, maxClock: authoredClock) } catch {
                throw unavailable("record the node's epoch", error)
            }
            if epoch.rolledBack {
                metrics.rollbacks.increment()
                registry.audit(node: node.id.rawValue, unit: node.unitID, action: "rollback", outcome: "detected", detail: "epoch \(request.epoch)", client: client, now: now)
            }
            // A node that moved to a newer standard gets everything again, with the columns it
            // could not store before (merging is idempotent).
            var batch: Changeset?
            var more = false
            do {
                if let before = node.standardVersion.flatMap(StandardVersion.init(parsing:)), before < nodeStandard.version {
                    try store.resetCursor(for: node.id)
                }
                var extracted: Changeset?
                repeat {
                    extracted = try store.extract(for: hubPeer, maxBytes: min(max(request.maxBytes, 1024), settings.maxPullBytes))
                    batch = extracted?.restricted(to: nodeStandard)
                    // Everything in the batch is beyond the node's standard: nothing to send, move on.
                    if let e = extracted, batch?.isEmpty == true { try store.acknowledge(e.batch, from: node.id) }
                } while extracted != nil && batch?.isEmpty == true
                if batch?.isEmpty == true { batch = nil }
                more = batch.map { !$0.batch.isFinal } ?? false
            } catch {
                throw unavailable("read changes for the node", error)
            }
            let held: (rows: [HeldRow], total: Int)
            var digest: String?
            do {
                held = try store.heldRows(unit: node.unitID)
                // Both sides leave held rows out of the digest; the node knows only the ones
                // listed, so with more held than listed the comparison waits (it would differ).
                if !more, nodeStandard.version == store.standard.version, held.total <= held.rows.count {
                    let exclude = held.rows.map { RowRef(table: $0.table, key: $0.key, scope: node.unitID) }
                    digest = String(try store.digestRoot(unit: node.unitID, excluding: exclude), radix: 16)
                }
            } catch {
                throw unavailable("read the node's digest", error)
            }
            // The node has conflicts open: which of its unit's did a supervisor settle here?
            var settled: [SettledConflictNotice]?
            var settledThrough: UInt64?
            if let since = request.settledSince, !more {
                let limit = SettledConflictNotice.maxPerAnswer
                do {
                    let list = try store.settledConflicts(unit: node.unitID, since: since == 0 ? (now > Self.settledLookBackMillis ? now - Self.settledLookBackMillis : 0) : since, limit: limit)
                    settled = list.map {
                        SettledConflictNotice(
                            row: RowRef(table: $0.table, key: $0.key), column: $0.column, lostOrigin: $0.lostOrigin, lostClock: $0.lostClock,
                            outcome: $0.outcome)
                    }
                    // A minute back: a decision committed while this was read is listed again
                    // next time rather than missed (closing one twice changes nothing).
                    settledThrough = list.count == limit ? list.last!.settledAt : max(since, now &- 60_000)
                } catch {
                    throw unavailable("read the conflicts settled for the node", error)
                }
            }
            try? registry.noteContact(
                node: node.id.rawValue, now: now, standardVersion: request.standardVersion, pendingRows: request.pendingRows,
                skew: Int64(bitPattern: request.clockMillis) - Int64(bitPattern: now),
                synced: !more && request.pendingRows == 0 && (pushed?.final ?? true))
            if let cs = batch {
                metrics.batchesSent.increment()
                metrics.rowsSent.increment(by: cs.rowCount)
                registry.audit(
                    node: node.id.rawValue, unit: node.unitID, action: "pull", batch: cs.batch.sequence, through: cs.batch.through, rows: cs.rowCount,
                    outcome: "sent", client: client, now: now)
            }
            let response = ExchangeResponse(
                pushed: pushed, more: more,
                held: held.rows.map {
                    HeldRowNotice(
                        row: RowRef(table: $0.table, key: $0.key), column: $0.column, kind: $0.kind.rawValue, reason: $0.reason, reasonZh: $0.reasonZh)
                },
                heldTotal: held.total, digest: digest, epoch: epoch.next, clockFloor: epoch.rolledBack ? epoch.clockFloor : nil,
                settled: settled, settledThrough: settledThrough)
            let header = (try? JSONEncoder().encode(response)).map { [UInt8]($0) } ?? []
            return ExchangeEnvelope(header: header, changeset: batch.map(ChangesetCodec.encode)).encode()
        } catch {
            metrics.error(error.code.rawValue)
            throw error
        }
    }

    func unavailable(_ what: String, _ error: any Error) -> WireError {
        logger.error("exchange failed", metadata: ["step": "\(what)", "error": "\(error)"])
        return WireError.hubStorage(error, doing: what)
    }

    /// Applies one pushed batch from `node`; acknowledged only once durably applied. Returns
    /// the acknowledgement and the newest clock among the versions the node authored.
    func push(from node: NodeRecord, changeset body: [UInt8], client: String? = nil, now: UInt64) throws(WireError) -> (PushAcknowledgement, UInt64) {
        do throws(WireError) {
            let cs: Changeset
            do { cs = try ChangesetCodec.decode(body, maxBytes: settings.maxBodyBytes) } catch { throw WireError(error) }
            guard cs.origin == node.id else {
                throw WireError(.wrongOrigin, "the batch says it comes from '\(cs.origin)' but node '\(node.id)' sent it")
            }
            let unitNodes: Set<NodeID>
            do { unitNodes = try registry.nodeIDs(ofUnit: node.unitID).union([node.id]) } catch { throw unavailable("read the unit's nodes", error) }
            let report: ApplyReport
            do {
                report = try store.apply(cs, sender: .unit(node.unitID), quarantine: true, sentBy: node.id, authorship: .unitNodes(unitNodes))
            } catch StoreError.rejected(let e) {
                throw WireError(e)
            } catch let e as StoreError {
                throw WireError(.malformed, e.description)
            } catch {
                throw unavailable("write the batch", error)
            }
            var authored: UInt64 = 0
            var repairRows = 0
            for t in cs.tables {
                for r in t.rows {
                    if r.flags.contains(.repair) { repairRows += 1 }
                    for c in r.cells where c.version.origin == node.id { authored = max(authored, c.version.clock.rawValue) }
                }
            }
            let notes = [
                report.conflictsLogged > 0 ? "\(report.conflictsLogged) conflicts" : nil,
                report.quarantined > 0 ? "\(report.quarantined) quarantined" : nil,
                report.refusedVersions > 0 ? "\(report.refusedVersions) versions refused" : nil,
                report.repairedCells > 0 ? "\(report.repairedCells) cells repaired" : nil,
            ].compactMap { $0 }
            registry.audit(
                node: node.id.rawValue, unit: node.unitID, action: repairRows > 0 ? "repair" : "push", batch: cs.batch.sequence,
                through: cs.batch.through, rows: cs.rowCount, bytes: body.count, outcome: "applied",
                detail: notes.isEmpty ? nil : notes.joined(separator: ", "), client: client, now: now)
            if report.refusedVersions > 0 {
                logger.warning("versions refused", metadata: ["node": "\(node.id)", "count": "\(report.refusedVersions)"])
            }
            metrics.batchesApplied.increment()
            metrics.rowsApplied.increment(by: cs.rowCount)
            metrics.bytesReceived.increment(by: body.count)
            metrics.conflicts.increment(by: report.conflictsLogged)
            metrics.quarantined.increment(by: report.quarantined)
            metrics.refusedVersions.increment(by: report.refusedVersions)
            metrics.repairedCells.increment(by: report.repairedCells)
            return (
                PushAcknowledgement(
                    sequence: cs.batch.sequence, through: cs.batch.through, final: cs.batch.isFinal, rows: cs.rowCount,
                    cellsAdopted: report.cellsAdopted, conflicts: report.conflictsLogged, quarantined: report.quarantined,
                    resend: report.resendWhole.map { RowRef(table: $0.table, key: $0.key) }, refusedVersions: report.refusedVersions),
                authored
            )
        } catch {
            registry.audit(node: node.id.rawValue, unit: node.unitID, action: "push", bytes: body.count, outcome: error.code.rawValue, detail: String(error.message.prefix(200)), client: client, now: now)
            throw error
        }
    }

    /// Answers anti-entropy's questions about what the hub holds for `node`'s unit.
    public func reconcile(from node: NodeRecord, request: ReconcileRequest) throws(WireError) -> ReconcileResponse {
        guard request.standardVersion == store.standard.version.description else {
            throw WireError(.standardMismatch, "anti-entropy compares replicas of the same standard; move to \(store.standard.version) first")
        }
        guard request.ranges.count <= ReconcileRequest.maxRanges else {
            throw WireError(.tooLarge, "a reconciliation may ask about at most \(ReconcileRequest.maxRanges) ranges")
        }
        let ranges = request.ranges.map(\.range)
        guard ranges.allSatisfy({ $0.isValid && store.standard.table(named: $0.table)?.isSynced == true }) else {
            throw WireError(.badRequest, "a range names an unknown table or a prefix that is not up to 16 hex digits")
        }
        var known: [DigestRange: DigestSum] = [:]
        for r in request.ranges {
            guard let wire = r.digest else { continue }
            guard let d = wire.digest, wire.count >= 0 else {
                throw WireError(.badRequest, "a range's digest is not {sum: up to 16 lowercase hex digits, count: not negative}")
            }
            known[r.range] = d
        }
        do {
            let held = try store.heldRows(unit: node.unitID).rows.map { RowRef(table: $0.table, key: $0.key, scope: node.unitID) }
            let answers = try store.rangeAnswers(unit: node.unitID, ranges: ranges, excluding: held, known: known)
            metrics.reconcileRounds.increment()
            return ReconcileResponse(ranges: answers.map(WireRangeAnswer.init))
        } catch {
            throw unavailable("compute the digests", error)
        }
    }
}
