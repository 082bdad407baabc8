/// A batch of changes one replica sends another: everything the receiver has not yet
/// acknowledged, coalesced to the latest version of each cell, cut at a byte bound.
///
/// A changeset is applied whole or not at all, and applying it twice changes nothing.
public struct Changeset: Hashable, Sendable {
    /// The replica that produced the batch.
    public var origin: NodeID
    /// The standard version the sender follows.
    public var standardVersion: StandardVersion
    public var batch: BatchPosition
    public var tables: [TableChanges]

    public init(origin: NodeID, standardVersion: StandardVersion, batch: BatchPosition, tables: [TableChanges]) {
        self.origin = origin
        self.standardVersion = standardVersion
        self.batch = batch
        self.tables = tables
    }

    public var rowCount: Int { tables.reduce(0) { $0 + $1.rows.count } }
    public var cellCount: Int { tables.reduce(0) { $0 + $1.rows.reduce(0) { $0 + $1.cells.count } } }
    public var isEmpty: Bool { tables.allSatisfy { $0.rows.isEmpty } }

    /// The lowest and highest clock of any cell version in the batch (`zero...zero` when
    /// it carries no cells).
    public var clockRange: ClosedRange<HLCTimestamp> {
        var lo = HLCTimestamp(rawValue: .max)
        var hi = HLCTimestamp.zero
        for t in tables {
            for r in t.rows {
                for c in r.cells {
                    lo = min(lo, c.version.clock)
                    hi = max(hi, c.version.clock)
                }
            }
        }
        return lo > hi ? HLCTimestamp.zero...HLCTimestamp.zero : lo...hi
    }
}

/// Where a batch sits in the sender's stream to one receiver.
public struct BatchPosition: Hashable, Sendable {
    /// The sender's batch counter towards this receiver, from 1.
    public var sequence: UInt64
    /// The sender's local change sequence the batch reaches: once the receiver
    /// acknowledges it, the sender never sends rows changed at or before it again.
    public var through: UInt64
    /// True when the batch reached the end of what the sender had to send.
    public var isFinal: Bool

    public init(sequence: UInt64, through: UInt64, isFinal: Bool) {
        self.sequence = sequence
        self.through = through
        self.isFinal = isFinal
    }
}

/// The changed rows of one table.
public struct TableChanges: Hashable, Sendable {
    public var name: String
    public var rows: [RowChange]
    public init(name: String, rows: [RowChange]) {
        self.name = name
        self.rows = rows
    }
}

/// The state of one row as the sender knows it.
///
/// `causalLength` counts the row's lifetimes: odd means it exists, even that it was
/// deleted; a delete adds one, a re-insert adds one more. A higher causal length always
/// wins, so a stale update of a deleted row cannot bring it back, and a deliberate
/// re-insert does.
///
/// A live row carries the cells that changed; a deleted row carries the versions the
/// deleter knew, with no values, so receivers can tell which of their edits the delete
/// did not see.
public struct RowChange: Hashable, Sendable {
    public var key: [Value]
    /// The unit the row belongs to (unit tables) or is meant for (hub tables); `nil` otherwise.
    public var scope: String?
    public var causalLength: UInt32
    public var cells: [CellChange]
    public var flags: RowFlags

    public init(key: [Value], scope: String?, causalLength: UInt32, cells: [CellChange], flags: RowFlags = []) {
        self.key = key
        self.scope = scope
        self.causalLength = causalLength
        self.cells = cells
        self.flags = flags
    }

    public var isDeleted: Bool { causalLength % 2 == 0 }
}

/// What else a row in a changeset says besides its cells.
public struct RowFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The row carries every synced cell the sender holds (with its version), not only the
    /// changed ones: a receiver that never held the row can store it whole. Sent for rows
    /// the receiver said it lacks, rows entering its scope, and anti-entropy repairs.
    public static let whole = RowFlags(rawValue: 1)
    /// The row left the receiver's scope (a directive retargeted to another unit): the
    /// receiver forgets it, data and metadata, without recording a delete. Carries no cells.
    public static let leave = RowFlags(rawValue: 2)
    /// Sent by anti-entropy: where both sides hold the same version of a cell but different
    /// values (a damaged page, a write that bypassed capture), the value of the side that
    /// authored the version, or else the hub's, is taken.
    public static let repair = RowFlags(rawValue: 4)

    public static let known: RowFlags = [.whole, .leave, .repair]
}

/// One cell's value and version. `value` is `nil` in a deleted row's version list.
public struct CellChange: Hashable, Sendable {
    public var column: String
    public var value: Value?
    public var version: CellVersion

    public init(column: String, value: Value?, version: CellVersion) {
        self.column = column
        self.value = value
        self.version = version
    }
}

/// Names one row of a table by its key (the standard's key, not the hub's storage key).
public struct RowRef: Sendable, Hashable, Codable {
    public var table: String
    public var key: [Value]
    /// The unit the row belongs to, where the key alone does not say (at a hub).
    public var scope: String?
    public init(table: String, key: [Value], scope: String? = nil) {
        self.table = table
        self.key = key
        self.scope = scope
    }

    enum CodingKeys: String, CodingKey { case table, key, scope }

    /// The key travels as hex of its canonical encoding (`KeyEncoding`), which keeps every
    /// value's type (integer 1 and text '1' are different keys).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(table, forKey: .table)
        try c.encode(Hex.encode(KeyEncoding.encode(key)), forKey: .key)
        try c.encodeIfPresent(scope, forKey: .scope)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        table = try c.decode(String.self, forKey: .table)
        let hex = try c.decode(String.self, forKey: .key)
        guard let bytes = Hex.decodeStrict(hex), bytes.count <= 4096, let k = try? KeyEncoding.decode(bytes), (1...4).contains(k.count) else {
            throw DecodingError.dataCorruptedError(forKey: .key, in: c, debugDescription: "key must be hex of 1–4 encoded values")
        }
        key = k
        scope = try c.decodeIfPresent(String.self, forKey: .scope)
    }
}

