import FerryCore

/// Names of the HTTP headers Ferry's protocol uses (protocol/HTTP.md).
public enum WireHeader {
    public static let node = "Ferry-Node"
    /// On every hub answer to a signed request (and to an enrolment): base64 Ed25519
    /// signature by the hub over `ResponseSigning.canonical`.
    public static let hubSignature = "Ferry-Hub-Signature"
    public static let timestamp = "Ferry-Timestamp"
    public static let nonce = "Ferry-Nonce"
    public static let signature = "Ferry-Signature"
    /// The lowercase hex SHA-256 of the body bytes exactly as sent (after gzip). It is the
    /// body hash inside the signed bytes, so a hub can authenticate a request before it
    /// reads the body, and then tell a body damaged on the way (`corrupted`) from a forgery.
    public static let contentSHA256 = "Ferry-Content-SHA256"
    /// Sent by the hub on every response: its wall clock in ms since the epoch, so a node
    /// with a skewed clock can sign with the hub's time and report its skew.
    public static let hubTime = "Ferry-Hub-Time"
    public static let retryAfter = "Retry-After"
}

/// The bytes a hub signs for one answer: which request it answers (the request's nonce)
/// and what it says, so an answer can neither be altered nor replayed to another request.
///
/// ```
/// FERRY-RESPONSE-V1\n<request nonce>\n<HTTP status>\n<hex SHA-256 of the body as sent>
/// ```
///
/// ```
/// FERRY-RESPONSE-V2\n<request nonce>\n<status>\n<Ferry-Hub-Time>\n<hex SHA-256 of body as sent>
/// ```
///
/// The hub's time is signed because a node corrects its write clocks by it: an unsigned
/// one would let anyone on the path move a unit's edits in time.
public enum ResponseSigning {
    public static let version = "FERRY-RESPONSE-V2"

    public static func canonical(requestNonce: String, status: Int, hubTime: String, bodySHA256Hex: String) -> [UInt8] {
        Array("\(version)\n\(requestNonce)\n\(status)\n\(hubTime)\n\(bodySHA256Hex)".utf8)
    }
}

/// Media types of request and response bodies.
public enum WireMediaType {
    public static let changeset = "application/vnd.ferry.changeset"
    public static let exchange = "application/vnd.ferry.exchange"
    public static let json = "application/json; charset=utf-8"
}

/// The bytes a node signs for one request.
///
/// ```
/// FERRY-SIG-V1\n<METHOD>\n<path with query>\n<timestamp ms>\n<nonce>\n<hex SHA-256 of body>
/// ```
public enum RequestSigning {
    public static let version = "FERRY-SIG-V1"
    /// How far a request's timestamp may be from the hub's clock (ms): 10 minutes.
    public static let maxAgeMillis: UInt64 = 10 * 60 * 1000

    public static func canonical(method: String, path: String, timestampMillis: UInt64, nonce: String, bodySHA256Hex: String) -> [UInt8] {
        Array("\(version)\n\(method.uppercased())\n\(path)\n\(timestampMillis)\n\(nonce)\n\(bodySHA256Hex)".utf8)
    }

    /// Whether `s` is a SHA-256 in the form `Ferry-Content-SHA256` takes: 64 lowercase hex.
    public static func isValidContentHash(_ s: String) -> Bool {
        s.utf8.count == 64 && s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    /// A nonce is 16 to 64 characters of hex.
    public static func isValidNonce(_ s: String) -> Bool {
        (16...64).contains(s.utf8.count) && s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }
}

/// POST /v1/enrol: a new node proves it holds a one-time token and presents its public key.
///
/// The token itself never travels: the node sends its digest (to name it) and a proof
/// binding the node's key to it, which only someone who knows the token can make. An on-path
/// observer of a plain-HTTP enrolment therefore cannot enrol with the token it saw, nor
/// swap in its own key (`EnrolmentToken`).
public struct EnrolRequest: Codable, Sendable, Equatable {
    /// `EnrolmentToken.digest` of the token, hex.
    public var tokenDigest: String
    /// `EnrolmentToken.proof` over this request's key, host name and nonce, hex.
    public var proof: String
    /// The node's Ed25519 public key, base64 of the 32 raw bytes.
    public var publicKey: String
    /// The box's host name, recorded for the supervisor (at most 128 characters).
    public var hostname: String
    /// 16–64 hex characters chosen by the node; the hub's signed answer names it, so an
    /// answer cannot be replayed to another enrolment.
    public var nonce: String
    /// Set when the node is a replacement restored from a backup of the unit's database.
    public var restoring: Bool?

    public init(tokenDigest: String, proof: String, publicKey: String, hostname: String, nonce: String, restoring: Bool? = nil) {
        self.tokenDigest = tokenDigest
        self.proof = proof
        self.publicKey = publicKey
        self.hostname = hostname
        self.nonce = nonce
        self.restoring = restoring
    }

    enum CodingKeys: String, CodingKey {
        case proof, hostname, nonce, restoring
        case tokenDigest = "token_digest"
        case publicKey = "public_key"
    }
}

/// The hub's answer to a successful enrolment.
public struct EnrolResponse: Codable, Sendable, Equatable {
    public var nodeID: String
    public var unitID: String
    public var unitName: String
    public var hubNodeID: String
    /// The hub's Ed25519 public key, base64; its fingerprint must match the token's.
    public var hubPublicKey: String
    public var standardVersion: String
    /// The standard file (TOML) the node must create its database from.
    public var standard: String
    /// Content encodings the hub accepts on pushes and can send on pulls.
    public var compression: [String]
    /// The node's public key as the hub enrolled it (must be the node's own).
    public var publicKey: String

    public init(
        nodeID: String, unitID: String, unitName: String, hubNodeID: String, hubPublicKey: String,
        standardVersion: String, standard: String, compression: [String], publicKey: String
    ) {
        self.nodeID = nodeID
        self.unitID = unitID
        self.unitName = unitName
        self.hubNodeID = hubNodeID
        self.hubPublicKey = hubPublicKey
        self.standardVersion = standardVersion
        self.standard = standard
        self.compression = compression
        self.publicKey = publicKey
    }

    enum CodingKeys: String, CodingKey {
        case compression, standard
        case nodeID = "node_id"
        case unitID = "unit_id"
        case unitName = "unit_name"
        case hubNodeID = "hub_node_id"
        case hubPublicKey = "hub_public_key"
        case standardVersion = "standard_version"
        case publicKey = "public_key"
    }
}

/// The hub's acknowledgement of a pushed batch: sent only after the batch is durably applied.
public struct PushAcknowledgement: Codable, Sendable, Equatable {
    public var sequence: UInt64
    public var through: UInt64
    public var final: Bool
    public var rows: Int
    public var cellsAdopted: Int
    public var conflicts: Int
    /// Rows the hub set aside (quarantined): see `ExchangeResponse.held` for which and why.
    public var quarantined: Int
    /// Rows the hub lacks and needs whole: the node sends them again with every cell.
    public var resend: [RowRef]
    /// Versions the node may not author, set aside unused (a forged origin or authority).
    public var refusedVersions: Int

    public init(
        sequence: UInt64, through: UInt64, final: Bool, rows: Int, cellsAdopted: Int, conflicts: Int, quarantined: Int = 0,
        resend: [RowRef] = [], refusedVersions: Int = 0
    ) {
        self.sequence = sequence
        self.through = through
        self.final = final
        self.rows = rows
        self.cellsAdopted = cellsAdopted
        self.conflicts = conflicts
        self.quarantined = quarantined
        self.resend = resend
        self.refusedVersions = refusedVersions
    }

    public var position: BatchPosition { BatchPosition(sequence: sequence, through: through, isFinal: final) }

    enum CodingKeys: String, CodingKey {
        case sequence, through, final, rows, conflicts, quarantined, resend
        case cellsAdopted = "cells_adopted"
        case refusedVersions = "refused_versions"
    }
}

/// The node durably applied a pulled batch.
public struct PullAcknowledgement: Codable, Sendable, Equatable {
    public var sequence: UInt64
    public var through: UInt64
    public var final: Bool

    public init(_ p: BatchPosition) {
        sequence = p.sequence
        through = p.through
        final = p.isFinal
    }

    public var position: BatchPosition { BatchPosition(sequence: sequence, through: through, isFinal: final) }
}

/// POST /v1/exchange: one round trip of a sync. The node sends its next batch (if any),
/// acknowledges the batch it pulled last, and says what it needs; the hub answers with the
/// push's acknowledgement, the next batch for the node (if any), and what the node should
/// know about itself. An exchange with nothing to say is one small request.
public struct ExchangeRequest: Codable, Sendable, Equatable {
    /// Upper bound on the pulled batch's encoded size, bytes.
    public var maxBytes: Int
    public var standardVersion: String
    /// Rows the node has not yet pushed (shown to the supervisor).
    public var pendingRows: Int
    /// The node's wall clock, ms since the epoch (the hub records the skew).
    public var clockMillis: UInt64
    /// The node's replica epoch, as the hub last gave it (0 before the first exchange). A
    /// smaller one than the hub last saw means the database went back in time (a restore).
    public var epoch: UInt64
    /// The batch pulled in the previous exchange, now durably applied.
    public var pulled: PullAcknowledgement?
    /// Rows the node lacks and asks to receive whole.
    public var resend: [RowRef]
    /// Rows anti-entropy found held differently: the hub sends them whole, for repair.
    public var repair: [RowRef]
    /// Sent only while the node has conflicts open: the hub's `settledThrough` of the last
    /// answer that listed settled conflicts (0 before any). The hub answers with the
    /// conflicts of the node's unit its supervisors settled since, so the node's list
    /// closes them too.
    public var settledSince: UInt64?

    public init(
        maxBytes: Int, standardVersion: String, pendingRows: Int, clockMillis: UInt64, epoch: UInt64, pulled: PullAcknowledgement? = nil,
        resend: [RowRef] = [], repair: [RowRef] = [], settledSince: UInt64? = nil
    ) {
        self.settledSince = settledSince
        self.maxBytes = maxBytes
        self.standardVersion = standardVersion
        self.pendingRows = pendingRows
        self.clockMillis = clockMillis
        self.epoch = epoch
        self.pulled = pulled
        self.resend = resend
        self.repair = repair
    }

    enum CodingKeys: String, CodingKey {
        case epoch, pulled, resend, repair
        case settledSince = "settled_since"
        case maxBytes = "max_bytes"
        case standardVersion = "standard_version"
        case pendingRows = "pending_rows"
        case clockMillis = "clock_ms"
    }

    /// The most rows one request may name in `resend` and `repair` together.
    public static let maxRowRefs = 2000
}

/// A row the hub holds back for the unit, as the node's clerk is told of it.
public struct HeldRowNotice: Codable, Sendable, Equatable {
    public var row: RowRef
    public var column: String?
    /// value | incomplete | reference | unstorable
    public var kind: String
    public var reason: String
    public var reasonZh: String

    public init(row: RowRef, column: String?, kind: String, reason: String, reasonZh: String) {
        self.row = row
        self.column = column
        self.kind = kind
        self.reason = reason
        self.reasonZh = reasonZh
    }

    enum CodingKeys: String, CodingKey {
        case row, column, kind, reason
        case reasonZh = "reason_zh"
    }
}

/// A conflict of the node's unit that a supervisor settled at the hub, named by the
/// version that lost (which both replicas logged under the same origin and clock).
public struct SettledConflictNotice: Codable, Sendable, Equatable {
    public var row: RowRef
    public var column: String
    public var lostOrigin: String
    public var lostClock: UInt64
    /// resolved (kept the current value, or set a new one) | restored (took the other side's)
    public var outcome: String

    public init(row: RowRef, column: String, lostOrigin: String, lostClock: UInt64, outcome: String) {
        self.row = row
        self.column = column
        self.lostOrigin = lostOrigin
        self.lostClock = lostClock
        self.outcome = outcome
    }

    enum CodingKeys: String, CodingKey {
        case row, column, outcome
        case lostOrigin = "lost_origin"
        case lostClock = "lost_clock"
    }

    /// The most one answer lists; the rest come with the next exchange.
    public static let maxPerAnswer = 200
}

/// The hub's answer to an exchange.
public struct ExchangeResponse: Codable, Sendable, Equatable {
    /// The acknowledgement of the pushed batch, when one was pushed.
    public var pushed: PushAcknowledgement?
    /// True when the hub has more for the node after the batch in this answer.
    public var more: Bool
    /// Rows the hub holds back for the node's unit (at most 100), and how many in all.
    public var held: [HeldRowNotice]
    public var heldTotal: Int
    /// When the node is up to date: hex of the hub's digest of everything the node should
    /// hold (the held rows left out). The node compares its own; a difference starts
    /// anti-entropy (`POST /v1/reconcile`).
    public var digest: String?
    /// The epoch the node stores and sends with its next exchange.
    public var epoch: UInt64
    /// Set when the node's database went back in time: the newest clock the hub has seen
    /// from this node, which the node's clock must pass before it writes again.
    public var clockFloor: UInt64?
    /// Answering `settledSince`: conflicts settled at the hub since then (oldest first, at
    /// most `SettledConflictNotice.maxPerAnswer`), and the hub time they run through, which
    /// the node sends as its next `settledSince` once it has closed them.
    public var settled: [SettledConflictNotice]?
    public var settledThrough: UInt64?

    public init(
        pushed: PushAcknowledgement?, more: Bool, held: [HeldRowNotice], heldTotal: Int, digest: String?, epoch: UInt64,
        clockFloor: UInt64? = nil, settled: [SettledConflictNotice]? = nil, settledThrough: UInt64? = nil
    ) {
        self.settled = settled
        self.settledThrough = settledThrough
        self.pushed = pushed
        self.more = more
        self.held = held
        self.heldTotal = heldTotal
        self.digest = digest
        self.epoch = epoch
        self.clockFloor = clockFloor
    }

    enum CodingKeys: String, CodingKey {
        case pushed, more, held, digest, epoch, settled
        case heldTotal = "held_total"
        case clockFloor = "clock_floor"
        case settledThrough = "settled_through"
    }
}

/// The body of an exchange request or answer: a JSON header and an optional changeset.
///
///     "FRYX" version:u8(1) header-length:varint header:JSON [changeset]
///
/// One body carries both, so a small exchange is one request and one answer.
public struct ExchangeEnvelope: Sendable, Equatable {
    public var header: [UInt8]
    public var changeset: [UInt8]?

    public static let magic: [UInt8] = Array("FRYX".utf8)
    /// The largest JSON header accepted, bytes.
    public static let maxHeaderBytes = 1 << 20

    public init(header: [UInt8], changeset: [UInt8]?) {
        self.header = header
        self.changeset = changeset
    }

    public func encode() -> [UInt8] {
        var w = ByteWriter(capacity: header.count + (changeset?.count ?? 0) + 16)
        w.append(Self.magic)
        w.byte(1)
        w.lengthPrefixed(header)
        if let c = changeset { w.append(c) }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(WireError) -> ExchangeEnvelope {
        guard bytes.count >= 6, Array(bytes[0..<4]) == magic else {
            throw WireError(.malformed, "the body is not an exchange (it must start with 'FRYX')")
        }
        guard bytes[4] == 1 else { throw WireError(.unsupportedFormat, "exchange body version \(bytes[4]) is not supported; upgrade Ferry") }
        var r = ByteReader(bytes, offset: 5)
        do {
            let n = try r.count("exchange header length", max: maxHeaderBytes)
            let header = Array(try r.bytes(n, "exchange header"))
            let rest = Array(bytes[r.offset...])
            return ExchangeEnvelope(header: header, changeset: rest.isEmpty ? nil : rest)
        } catch {
            throw WireError(.malformed, "the exchange body is damaged: \(error.message)")
        }
    }
}

/// POST /v1/reconcile: anti-entropy's questions. The node names ranges of the
/// reconciliation tree (`DigestRange`); the hub answers each with its digest and either its
/// 16 sub-ranges' digests or its rows' fingerprints (`RangeAnswer`).
public struct ReconcileRequest: Codable, Sendable, Equatable {
    public var standardVersion: String
    public var ranges: [WireRange]

    public init(standardVersion: String, ranges: [WireRange]) {
        self.standardVersion = standardVersion
        self.ranges = ranges
    }

    enum CodingKeys: String, CodingKey {
        case ranges
        case standardVersion = "standard_version"
    }

    /// The most ranges one request may name.
    public static let maxRanges = 4096
}

public struct WireRange: Codable, Sendable, Hashable {
    public var table: String
    /// Hex nibbles of the key hash, high first; "" for the whole table.
    public var prefix: String
    /// The asker's own digest of the range, when it sends one: a range the hub holds the
    /// same is then answered with its digest alone (no children, no rows), so the equal
    /// parts of a mostly equal replica cost a few bytes each.
    public var digest: WireDigest?
    public init(_ r: DigestRange, digest: DigestSum? = nil) {
        table = r.table
        prefix = r.prefix
        self.digest = digest.map(WireDigest.init)
    }
    public var range: DigestRange { DigestRange(table: table, prefix: prefix) }
}

extension WireDigest: Hashable {}

public struct WireDigest: Codable, Sendable, Equatable {
    /// Hex of the sum of the rows' fingerprints, mod 2^64.
    public var sum: String
    public var count: Int64
    public init(_ d: DigestSum) {
        sum = String(d.sum, radix: 16)
        count = d.count
    }
    public var digest: DigestSum? { UInt64(sum, radix: 16).map { DigestSum(sum: $0, count: count) } }
}

public struct WireLeaf: Codable, Sendable, Equatable {
    /// Hex of the row's key (`KeyEncoding`).
    public var key: String
    /// Hex of the row's fingerprint.
    public var fp: String
}

public struct WireRangeAnswer: Codable, Sendable, Equatable {
    public var table: String
    public var prefix: String
    public var digest: WireDigest
    /// Sub-range digests by their last nibble ("0"…"f").
    public var children: [String: WireDigest]?
    public var leaves: [WireLeaf]?

    public init(_ a: RangeAnswer) {
        table = a.range.table
        prefix = a.range.prefix
        digest = WireDigest(a.digest)
        children = a.children?.mapValues(WireDigest.init)
        leaves = a.leaves.map { l in
            l.map { WireLeaf(key: Hex.encode(KeyEncoding.encode($0.key)), fp: String($0.value, radix: 16)) }.sorted { $0.key < $1.key }
        }
    }

    /// The answer as the core reads it; nil when a field is not what the protocol allows.
    public var answer: RangeAnswer? {
        guard let d = digest.digest else { return nil }
        var out = RangeAnswer(range: DigestRange(table: table, prefix: prefix), digest: d)
        if let c = children {
            var m: [String: DigestSum] = [:]
            for (k, v) in c {
                guard let dv = v.digest else { return nil }
                m[k] = dv
            }
            out.children = m
        }
        if let l = leaves {
            var m: [[Value]: UInt64] = [:]
            for leaf in l {
                guard let b = Hex.decodeStrict(leaf.key), let k = try? KeyEncoding.decode(b), let fp = UInt64(leaf.fp, radix: 16) else { return nil }
                m[k] = fp
            }
            out.leaves = m
        }
        return out
    }
}

public struct ReconcileResponse: Codable, Sendable, Equatable {
    public var ranges: [WireRangeAnswer]
    public init(ranges: [WireRangeAnswer]) { self.ranges = ranges }
}

extension WireHeader {
    /// Sent by the hub on every response: the standard version it publishes, so nodes learn
    /// of a new one on their next exchange.
    public static let standardVersion = "Ferry-Standard-Version"
    /// On `POST /v1/exchange`: the body carries the whole upload's bytes from this offset on;
    /// the hub holds the bytes before it from a cut attempt (`GET /v1/upload`). The signed
    /// `Ferry-Content-SHA256` is then the hash of the whole body, held part and rest together.
    public static let uploadOffset = "Ferry-Upload-Offset"
}

/// GET /v1/upload?sha256=HEX: how many bytes of the node's cut upload with that hash the hub
/// holds, so the next attempt sends only the rest.
public struct UploadOffset: Codable, Sendable, Equatable {
    public var sha256: String
    public var offset: Int
    public init(sha256: String, offset: Int) {
        self.sha256 = sha256
        self.offset = offset
    }
}

/// GET /v1/standard: the standard the hub publishes, signed with the hub's key.
public struct SignedStandard: Codable, Sendable, Equatable {
    public var version: String
    /// The standard file (TOML).
    public var standard: String
    /// base64 Ed25519 signature by the hub over `SignedStandard.signedBytes(standard)`.
    public var signature: String

    public init(version: String, standard: String, signature: String) {
        self.version = version
        self.standard = standard
        self.signature = signature
    }

    public static func signedBytes(_ standard: String) -> [UInt8] { Array("FERRY-STANDARD-V1\n\(standard)".utf8) }
}

/// This build of Ferry: what `ferry --version` prints and the node's User-Agent names.
public enum FerryRelease {
    /// The release, semantic versioning.
    public static let version = "2.1.0"
    /// The sync protocol it speaks (protocol/HTTP.md): 2 since `POST /v1/exchange`.
    public static let protocolVersion = 2
}
