import FerryCore

/// Names of the HTTP headers Ferry's protocol uses (protocol/HTTP.md).
public enum WireHeader {
    public static let node = "Ferry-Node"
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

/// Media types of request and response bodies.
public enum WireMediaType {
    public static let changeset = "application/vnd.ferry.changeset"
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

/// POST /v1/enrol: a new node presents its one-time token and public key.
public struct EnrolRequest: Codable, Sendable, Equatable {
    public var token: String
    /// The node's Ed25519 public key, base64 of the 32 raw bytes.
    public var publicKey: String
    /// The box's host name, recorded for the supervisor.
    public var hostname: String

    public init(token: String, publicKey: String, hostname: String) {
        self.token = token
        self.publicKey = publicKey
        self.hostname = hostname
    }

    enum CodingKeys: String, CodingKey {
        case token, hostname
        case publicKey = "public_key"
    }
}

/// The hub's answer to a successful enrolment.
public struct EnrolResponse: Codable, Sendable, Equatable {
    public var nodeID: String
    public var unitID: String
    public var unitName: String
    public var hubNodeID: String
    /// The hub's Ed25519 public key, base64.
    public var hubPublicKey: String
    public var standardVersion: String
    /// The standard file (TOML) the node must create its database from.
    public var standard: String
    /// Content encodings the hub accepts on pushes and can send on pulls.
    public var compression: [String]

    public init(
        nodeID: String, unitID: String, unitName: String, hubNodeID: String, hubPublicKey: String,
        standardVersion: String, standard: String, compression: [String]
    ) {
        self.nodeID = nodeID
        self.unitID = unitID
        self.unitName = unitName
        self.hubNodeID = hubNodeID
        self.hubPublicKey = hubPublicKey
        self.standardVersion = standardVersion
        self.standard = standard
        self.compression = compression
    }

    enum CodingKeys: String, CodingKey {
        case compression, standard
        case nodeID = "node_id"
        case unitID = "unit_id"
        case unitName = "unit_name"
        case hubNodeID = "hub_node_id"
        case hubPublicKey = "hub_public_key"
        case standardVersion = "standard_version"
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
    /// Rows the hub set aside because a value failed its checks (absent from older hubs).
    public var quarantined: Int?

    public init(sequence: UInt64, through: UInt64, final: Bool, rows: Int, cellsAdopted: Int, conflicts: Int, quarantined: Int = 0) {
        self.sequence = sequence
        self.through = through
        self.final = final
        self.rows = rows
        self.cellsAdopted = cellsAdopted
        self.conflicts = conflicts
        self.quarantined = quarantined
    }

    public var position: BatchPosition { BatchPosition(sequence: sequence, through: through, isFinal: final) }

    enum CodingKeys: String, CodingKey {
        case sequence, through, final, rows, conflicts, quarantined
        case cellsAdopted = "cells_adopted"
    }
}

/// POST /v1/pull: what the node asks for, and what it reports about itself.
public struct PullRequest: Codable, Sendable, Equatable {
    /// Upper bound on the batch's encoded size, bytes.
    public var maxBytes: Int
    public var standardVersion: String
    /// Rows the node has not yet pushed (shown to the supervisor).
    public var pendingRows: Int
    /// The node's wall clock, ms since the epoch (the hub records the skew).
    public var clockMillis: UInt64

    public init(maxBytes: Int, standardVersion: String, pendingRows: Int, clockMillis: UInt64) {
        self.maxBytes = maxBytes
        self.standardVersion = standardVersion
        self.pendingRows = pendingRows
        self.clockMillis = clockMillis
    }

    enum CodingKeys: String, CodingKey {
        case maxBytes = "max_bytes"
        case standardVersion = "standard_version"
        case pendingRows = "pending_rows"
        case clockMillis = "clock_ms"
    }
}

/// POST /v1/pull/ack: the node durably applied the pulled batch.
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

extension WireHeader {
    /// Sent by the hub on every response: the standard version it publishes, so nodes learn
    /// of a new one on their next exchange.
    public static let standardVersion = "Ferry-Standard-Version"
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
