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

/// Tunables of a hub; defaults suit a province hub on modest hardware.
public struct HubSettings: Sendable {
    /// Sync requests (push, pull) served at once; more get 503 with Retry-After.
    public var maxConcurrentSessions = 32
    /// Largest accepted request body, bytes (after decompression).
    public var maxBodyBytes = 16 << 20
    /// Largest batch a pull may ask for, bytes.
    public var maxPullBytes = 4 << 20
    /// How long an enrolment token stays valid, seconds.
    public var tokenLifetimeSeconds: UInt64 = 7 * 24 * 3600
    /// How long a request waits for a database locked by another process before the hub
    /// answers 503 (retryable), seconds.
    public var busyTimeoutSeconds: Double = 10
    /// Days without a successful sync after which a unit is listed as silent.
    public var silentAfterDays = 7
    /// How long a supervisor's dashboard or API login lasts, seconds.
    public var adminSessionSeconds: UInt64 = 8 * 3600
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
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let standardPath = "\(directory)/standard.toml"
        if !fm.fileExists(atPath: standardPath) {
            try (standard ?? StandardFile.builtInText()).write(toFile: standardPath, atomically: true, encoding: .utf8)
        }
        let text = try String(contentsOfFile: standardPath, encoding: .utf8)
        let parsed = try StandardFile.parse(text, file: standardPath)
        let keyPath = "\(directory)/hub.key"
        if !fm.fileExists(atPath: keyPath) {
            guard fm.createFile(atPath: keyPath, contents: Data(SigningKey().base64.utf8), attributes: [.posixPermissions: 0o600]) else {
                throw HubError.invalid("cannot write the hub's key to \(keyPath); check the directory's permissions")
            }
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
        registry = try HubRegistry(path: "\(directory)/registry.db")
        try Self.archive(text, version: parsed.version, directory: directory, key: key)
        signedStandard = SignedStandard(
            version: parsed.version.description, standard: text, signature: try key.sign(SignedStandard.signedBytes(text)))
    }

    /// Every version the hub ever published stays in `standards/`, so it can serve a node
    /// several versions behind only the columns that node can store.
    static func archive(_ text: String, version: StandardVersion, directory: String, key: SigningKey) throws {
        let dir = "\(directory)/standards"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = "\(dir)/\(version).toml"
        if !FileManager.default.fileExists(atPath: path) {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        }
    }

    /// The standard of `version` as published by this hub (cached), or nil if never published.
    public func publishedStandard(_ version: String) -> Standard? {
        if version == store.standard.version.description { return store.standard }
        return olderStandards.withLock { cache in
            if let s = cache[version] { return s }
            guard let text = try? String(contentsOfFile: "\(directory)/standards/\(version).toml", encoding: .utf8),
                let s = try? StandardFile.parse(text, file: version)
            else { return nil }
            cache[version] = s
            return s
        }
    }

    /// Publishes a new version of the standard: checks that it only adds to the current one,
    /// archives it, and migrates the hub's database. The running hub serves it after a
    /// restart; nodes learn of it on their next exchange and migrate themselves.
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
        let key = try SigningKey(base64: String(contentsOfFile: "\(directory)/hub.key", encoding: .utf8))
        try archive(text, version: next.version, directory: directory, key: key)
        // Migrate the hub's own database now (the store rebuilds changed tables in one transaction).
        let hubNode = try String.fetchOneState(path: "\(directory)/hub.db", key: "node") ?? "hub"
        let store = try ReplicaStore(
            path: "\(directory)/hub.db", standard: next, identity: ReplicaIdentity(node: try NodeID(hubNode), role: .hub), clock: clock)
        try store.close()
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
        guard NodeID.isValid(unit.id) else {
            throw HubError.invalid("unit id '\(unit.id)' must be 1–64 characters of A–Z a–z 0–9 . _ -")
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

    /// A fresh one-time token for another node of an existing unit.
    public func issueToken(unitID: String) throws -> String {
        guard try registry.unit(unitID) != nil else { throw HubError.invalid("unit '\(unitID)' is not in the org tree; add it with ferry hub unit add") }
        let token = Trust.newToken()
        let now = clock.nowMillis()
        try registry.addToken(digest: Trust.tokenDigest(token), unitID: unitID, now: now, expiresAt: now + settings.tokenLifetimeSeconds * 1000)
        return token
    }

    /// Cuts a node off at once: its next request is refused.
    public func revoke(node: String) throws {
        guard try registry.revoke(node, now: clock.nowMillis()) else {
            throw HubError.invalid("node '\(node)' is not enrolled or already revoked; list nodes with ferry hub nodes")
        }
        registry.audit(node: node, unit: nil, action: "revoke", outcome: "ok", now: clock.nowMillis())
    }

    // MARK: Requests

    public func enrol(_ request: EnrolRequest) throws(WireError) -> EnrolResponse {
        let now = clock.nowMillis()
        guard let raw = Data(base64Encoded: request.publicKey), raw.count == 32 else {
            throw WireError(.badRequest, "public_key must be base64 of a 32-byte Ed25519 key")
        }
        do {
            let node = try registry.enrol(
                tokenDigest: Trust.tokenDigest(request.token), publicKey: [UInt8](raw), hostname: String(request.hostname.prefix(128)), now: now)
            let unit = try registry.unit(node.unitID)
            registry.audit(node: node.id.rawValue, unit: node.unitID, action: "enrol", outcome: "ok", detail: request.hostname, now: now)
            metrics.enrolments.increment()
            logger.info("node enrolled", metadata: ["node": "\(node.id)", "unit": "\(node.unitID)"])
            return EnrolResponse(
                nodeID: node.id.rawValue, unitID: node.unitID, unitName: unit?.name ?? node.unitID, hubNodeID: nodeID.rawValue,
                hubPublicKey: key.publicKeyBase64, standardVersion: store.standard.version.description, standard: standardText,
                compression: ["gzip"])
        } catch let e as WireError {
            registry.audit(node: nil, unit: nil, action: "enrol", outcome: e.code.rawValue, now: now)
            throw e
        } catch {
            throw WireError(.internal, "enrolment failed on the hub: \(error)")
        }
    }

    /// Checks a request's signature, freshness and nonce; returns the node it came from.
    ///
    /// `bodySHA256Hex` is the hex SHA-256 of the body as sent: from the signed
    /// `Ferry-Content-SHA256` header before the body is read (the caller then checks the body
    /// against it), or computed from a body already read for a node that does not send it.
    public func authenticate(method: String, path: String, header: (String) -> String?, bodySHA256Hex: String) throws(WireError) -> NodeRecord {
        let now = clock.nowMillis()
        guard let nodeText = header(WireHeader.node) else {
            throw WireError(.unknownNode, "this request is not signed by an enrolled node; enrol first with: ferry node init --hub URL --token TOKEN")
        }
        let record: NodeRecord?
        do { record = try registry.node(nodeText) } catch { throw WireError(.unavailable, "the hub's registry is busy: \(error)") }
        guard let node = record else {
            throw WireError(.unknownNode, "node '\(nodeText)' is not enrolled at this hub; enrol with: ferry node init --hub URL --token TOKEN")
        }
        if node.revokedAt != nil {
            throw WireError(.revoked, "node '\(nodeText)' was revoked by the supervisor; ask them to re-enrol the unit")
        }
        guard let tsText = header(WireHeader.timestamp), let ts = UInt64(tsText), let nonce = header(WireHeader.nonce),
            RequestSigning.isValidNonce(nonce), let sig = header(WireHeader.signature)
        else {
            throw WireError(.badSignature, "the request lacks a valid \(WireHeader.timestamp), \(WireHeader.nonce) or \(WireHeader.signature) header")
        }
        let canonical = RequestSigning.canonical(method: method, path: path, timestampMillis: ts, nonce: nonce, bodySHA256Hex: bodySHA256Hex)
        guard Trust.verify(publicKey: node.publicKey, signatureBase64: sig, data: canonical) else {
            registry.audit(node: nodeText, unit: node.unitID, action: "auth", outcome: "bad_signature", detail: "\(method) \(path)", now: now)
            throw WireError(.badSignature, "the request's signature does not match node '\(nodeText)''s key, or the request was altered")
        }
        let age = ts > now ? ts - now : now - ts
        guard age <= RequestSigning.maxAgeMillis else {
            throw WireError(.staleRequest, "the request is timestamped \(age / 1000) s away from the hub's clock; sign with the hub's time (header \(WireHeader.hubTime))")
        }
        let fresh: Bool
        do { fresh = try registry.useNonce(node: nodeText, nonce: nonce, now: now, window: RequestSigning.maxAgeMillis) } catch {
            throw WireError(.unavailable, "the hub's registry is busy: \(error)")
        }
        guard fresh else {
            registry.audit(node: nodeText, unit: node.unitID, action: "auth", outcome: "replayed", detail: "\(method) \(path)", now: now)
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

    /// Applies one pushed batch from `node`; acknowledged only once durably applied.
    public func push(from node: NodeRecord, body: [UInt8]) throws(WireError) -> PushAcknowledgement {
        let now = clock.nowMillis()
        do throws(WireError) {
            let cs: Changeset
            do { cs = try ChangesetCodec.decode(body, maxBytes: settings.maxBodyBytes) } catch { throw WireError(error) }
            guard cs.origin == node.id else {
                throw WireError(.wrongOrigin, "the batch says it comes from '\(cs.origin)' but node '\(node.id)' sent it")
            }
            let report: ApplyReport
            do {
                report = try store.apply(cs, sender: .unit(node.unitID), quarantine: true)
            } catch StoreError.rejected(let e) {
                throw WireError(e)
            } catch let e as StoreError {
                throw WireError(.malformed, e.description)
            } catch {
                throw WireError(.unavailable, "the hub could not write the batch (\(error)); it will be retried")
            }
            registry.audit(
                node: node.id.rawValue, unit: node.unitID, action: "push", batch: cs.batch.sequence, through: cs.batch.through,
                rows: cs.rowCount, bytes: body.count, outcome: "applied",
                detail: report.conflictsLogged + report.quarantined > 0 ? "\(report.conflictsLogged) conflicts, \(report.quarantined) quarantined" : nil,
                now: now)
            try? registry.noteContact(node: node.id.rawValue, now: now)
            metrics.batchesApplied.increment()
            metrics.rowsApplied.increment(by: cs.rowCount)
            metrics.bytesReceived.increment(by: body.count)
            metrics.conflicts.increment(by: report.conflictsLogged)
            metrics.quarantined.increment(by: report.quarantined)
            return PushAcknowledgement(
                sequence: cs.batch.sequence, through: cs.batch.through, final: cs.batch.isFinal, rows: cs.rowCount,
                cellsAdopted: report.cellsAdopted, conflicts: report.conflictsLogged, quarantined: report.quarantined)
        } catch {
            registry.audit(node: node.id.rawValue, unit: node.unitID, action: "push", bytes: body.count, outcome: error.code.rawValue, detail: error.message, now: now)
            logger.warning("push refused", metadata: ["node": "\(node.id)", "code": "\(error.code.rawValue)"])
            metrics.error(error.code.rawValue)
            throw error
        }
    }

    /// The next batch `node` has not seen (its own unit's rows and the reference data meant
    /// for it), encoded; nil when it is up to date.
    public func pull(for node: NodeRecord, request: PullRequest) throws(WireError) -> [UInt8]? {
        let now = clock.nowMillis()
        let skew = Int64(bitPattern: request.clockMillis) - Int64(bitPattern: now)
        guard let nodeStandard = publishedStandard(request.standardVersion) else {
            throw WireError(.standardMismatch, "this hub never published standard \(request.standardVersion); the node's database follows a standard from elsewhere")
        }
        do {
            // A node that moved to a newer standard gets everything again, with the columns it
            // could not store before (merging is idempotent).
            if let before = node.standardVersion.flatMap(StandardVersion.init(parsing:)), before < nodeStandard.version {
                try store.resetCursor(for: node.id)
            }
            var extracted: Changeset?
            var restricted: Changeset?
            repeat {
                extracted = try store.extract(
                    for: Peer(id: node.id, direction: .downstream(unit: node.unitID)),
                    maxBytes: min(max(request.maxBytes, 1024), settings.maxPullBytes))
                restricted = extracted?.restricted(to: nodeStandard)
                // Everything in the batch is beyond the node's standard: nothing to send, move on.
                if let e = extracted, restricted?.isEmpty == true { try store.acknowledge(e.batch, from: node.id) }
            } while extracted != nil && restricted?.isEmpty == true
            try? registry.noteContact(
                node: node.id.rawValue, now: now, standardVersion: request.standardVersion, pendingRows: request.pendingRows, skew: skew,
                synced: extracted == nil && request.pendingRows == 0)
            guard let cs = restricted else { return nil }
            metrics.batchesSent.increment()
            metrics.rowsSent.increment(by: cs.rowCount)
            registry.audit(node: node.id.rawValue, unit: node.unitID, action: "pull", batch: cs.batch.sequence, through: cs.batch.through, rows: cs.rowCount, outcome: "sent", now: now)
            return ChangesetCodec.encode(cs)
        } catch {
            throw WireError(.unavailable, "the hub could not read changes for node '\(node.id)' (\(error)); it will be retried")
        }
    }

    public func acknowledgePull(from node: NodeRecord, _ ack: PullAcknowledgement) throws(WireError) {
        do {
            try store.acknowledge(ack.position, from: node.id)
        } catch {
            throw WireError(.unavailable, "the hub could not record the acknowledgement (\(error)); it will be retried")
        }
    }
}
