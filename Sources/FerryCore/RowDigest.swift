/// SipHash-2-4 (Aumasson & Bernstein), 64-bit output, with a fixed key.
///
/// Written here because the core depends on nothing; it is a few dozen lines and the
/// reference is short. The key is fixed (not secret): fingerprints must be the same on
/// every replica. A hostile unit could craft collisions only to hide divergence of its own
/// replica, which harms no one else.
public struct SipHasher: Sendable {
    var v0: UInt64 = 0x736f_6d65_7073_6575
    var v1: UInt64 = 0x646f_7261_6e64_6f6d
    var v2: UInt64 = 0x6c79_6765_6e65_7261
    var v3: UInt64 = 0x7465_6462_7974_6573
    var tail: UInt64 = 0
    var tailBytes = 0
    var length = 0

    /// The key as two little-endian 64-bit words, as the reference implementation reads its
    /// 16 key bytes. The default is the row-fingerprint key of CHANGESET.md §14.8 (given there
    /// as these integers; they are fixed constants, not secrets, and spell nothing).
    public init(k0: UInt64 = 0x5952_5245_4652_2d59, k1: UInt64 = 0x5453_4547_4944_2d57) {
        v0 ^= k0
        v1 ^= k1
        v2 ^= k0
        v3 ^= k1
    }

    @inline(__always) mutating func round() {
        v0 = v0 &+ v1
        v1 = (v1 << 13) | (v1 >> 51)
        v1 ^= v0
        v0 = (v0 << 32) | (v0 >> 32)
        v2 = v2 &+ v3
        v3 = (v3 << 16) | (v3 >> 48)
        v3 ^= v2
        v0 = v0 &+ v3
        v3 = (v3 << 21) | (v3 >> 43)
        v3 ^= v0
        v2 = v2 &+ v1
        v1 = (v1 << 17) | (v1 >> 47)
        v1 ^= v2
        v2 = (v2 << 32) | (v2 >> 32)
    }

    @inline(__always) mutating func compress(_ m: UInt64) {
        v3 ^= m
        round()
        round()
        v0 ^= m
    }

    public mutating func add(_ byte: UInt8) {
        tail |= UInt64(byte) << (8 * UInt64(tailBytes))
        tailBytes += 1
        length += 1
        if tailBytes == 8 {
            compress(tail)
            tail = 0
            tailBytes = 0
        }
    }

    public mutating func add<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
        for b in bytes { add(b) }
    }

    public mutating func add(_ v: UInt64) {
        for i in 0..<8 { add(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
    }

    public mutating func add(_ s: String) {
        add(UInt64(s.utf8.count))
        add(s.utf8)
    }

    public func finish() -> UInt64 {
        var h = self
        let b = (UInt64(length & 0xff) << 56) | h.tail
        h.compress(b)
        h.v2 ^= 0xff
        h.round()
        h.round()
        h.round()
        h.round()
        return h.v0 ^ h.v1 ^ h.v2 ^ h.v3
    }

    public static func hash(_ bytes: [UInt8]) -> UInt64 {
        var h = SipHasher()
        h.add(bytes)
        return h.finish()
    }
}

/// What two replicas compare to find out whether they hold the same rows: a fingerprint
/// per row, summed into order-independent digests per table and per range of keys.
///
/// A row's fingerprint covers its table, key, causal length and every synced cell that has
/// a version, each with the version and the value as both sides hold it: a `masked` value
/// masked (so the unit's real phone number and the hub's masked one agree), `local` columns
/// and the columns that travel in the row's header (key, a unit row's unit) left out.
/// Anything that differs — a value, a version, a delete — changes the fingerprint.
public enum RowDigest {
    /// One cell as it enters a fingerprint.
    public struct Cell: Sendable {
        public var position: Int
        public var version: CellVersion
        public var value: Value?
        public init(position: Int, version: CellVersion, value: Value?) {
            self.position = position
            self.version = version
            self.value = value
        }
    }

    /// The fingerprint of one row. `cells` in ascending `position` (the column's place among
    /// the table's synced columns); values already in their compared form.
    public static func fingerprint(table: String, key: [Value], causalLength: UInt32, cells: [Cell]) -> UInt64 {
        var h = SipHasher()
        h.add(table)
        h.add(KeyEncoding.encode(key))
        h.add(UInt64(causalLength))
        for c in cells {
            h.add(UInt64(c.position))
            h.add(UInt64(c.version.generation) << 32 | UInt64(c.version.supervisorGeneration))
            h.add(c.version.clock.rawValue)
            h.add(c.version.origin.rawValue)
            h.add(UInt64(c.version.authority.rawValue))
            h.add(UInt64(c.version.seen.count))
            for s in c.version.seen {
                h.add(s.origin.rawValue)
                h.add(s.clock.rawValue)
            }
            if let v = c.value {
                h.add(UInt8(1))
                h.add(KeyEncoding.encode([v]))
            } else {
                h.add(UInt8(0))
            }
        }
        let fp = h.finish()
        // 0 stands for "no fingerprint" in storage; a real row never has it.
        return fp == 0 ? 1 : fp
    }

    /// The bucket hash of a row's key: where it sits in the reconciliation tree. Stable for
    /// a row whatever its content, so a changed row stays in its range.
    public static func keyHash(table: String, key: [Value]) -> UInt64 {
        var h = SipHasher(k0: 0x4b45_5948_4153_482d, k1: 0x5452_4545_2d4b_4559)
        h.add(table)
        h.add(KeyEncoding.encode(key))
        return h.finish()
    }

    /// The value as a fingerprint compares it: masked columns masked again (masking is
    /// idempotent, so the hub's stored masked value and the unit's real one agree).
    public static func compared(_ value: Value, column: ColumnDefinition) -> Value {
        if case .masked(let rule) = column.classification { return rule.apply(to: value) }
        return value
    }
}

/// An order-independent summary of a set of row fingerprints: their sum (mod 2^64) and
/// count. Adding or removing one row updates it without reading the others.
public struct DigestSum: Hashable, Sendable, CustomStringConvertible {
    public var sum: UInt64
    public var count: Int64

    public init(sum: UInt64 = 0, count: Int64 = 0) {
        self.sum = sum
        self.count = count
    }

    public mutating func add(_ fp: UInt64) {
        sum = sum &+ fp
        count += 1
    }

    public mutating func remove(_ fp: UInt64) {
        sum = sum &- fp
        count -= 1
    }

    public mutating func add(_ other: DigestSum) {
        sum = sum &+ other.sum
        count += other.count
    }

    public var isEmpty: Bool { count == 0 && sum == 0 }
    public var description: String { "\(count)/\(String(sum, radix: 16))" }

    /// One 64-bit digest of several named sums (per table), for the cheap first comparison.
    public static func root(_ parts: [(String, DigestSum)]) -> UInt64 {
        var h = SipHasher()
        for (name, d) in parts.sorted(by: { $0.0 < $1.0 }) where !d.isEmpty {
            h.add(name)
            h.add(d.sum)
            h.add(UInt64(bitPattern: d.count))
        }
        return h.finish()
    }
}

/// A range of the reconciliation tree: rows of one table whose key hash starts with
/// `prefix` (hex nibbles, high first). The empty prefix is the whole table.
public struct DigestRange: Hashable, Sendable, CustomStringConvertible {
    public var table: String
    public var prefix: String

    public init(table: String, prefix: String) {
        self.table = table
        self.prefix = prefix
    }

    /// Whether a key hash falls in this range.
    public func contains(_ keyHash: UInt64) -> Bool {
        prefix.isEmpty || Self.prefix(of: keyHash, nibbles: prefix.count) == prefix
    }

    public var children: [DigestRange] {
        (0..<16).map { DigestRange(table: table, prefix: prefix + String($0, radix: 16)) }
    }

    public static func prefix(of keyHash: UInt64, nibbles: Int) -> String {
        let hex = String(keyHash, radix: 16)
        let full = String(repeating: "0", count: 16 - hex.count) + hex
        return String(full.prefix(nibbles))
    }

    public var isValid: Bool {
        prefix.count <= 16 && prefix.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    public var description: String { "\(table)/\(prefix.isEmpty ? "*" : prefix)" }
}

/// One range of the reconciliation tree as one side holds it: its digest, and below it
/// either the digests of its 16 sub-ranges or, when few rows are left, the rows themselves.
public struct RangeAnswer: Sendable, Equatable {
    public var range: DigestRange
    public var digest: DigestSum
    public var children: [String: DigestSum]?
    /// Each row's key (the standard's key) with its fingerprint.
    public var leaves: [[Value]: UInt64]?

    public init(range: DigestRange, digest: DigestSum, children: [String: DigestSum]? = nil, leaves: [[Value]: UInt64]? = nil) {
        self.range = range
        self.digest = digest
        self.children = children
        self.leaves = leaves
    }

    /// Ranges of at most this many rows are answered with their rows.
    public static let leafLimit = 16
}

/// Finds the rows two replicas hold differently by walking the reconciliation tree from the
/// top, descending only into ranges whose digests differ: a difference of a few rows in a
/// unit of 100,000 is located in a handful of small messages, not by resending everything
/// (range-based reconciliation, as Merkle trees do it but without a stored tree).
///
/// A pure state machine: the node asks the hub for ranges (`pending`), hands each answer to
/// `receive`, computing its own side of the same ranges; when `pending` is empty, `result`
/// says which rows differ.
public struct Reconciliation: Sendable {
    public struct Result: Sendable, Equatable {
        /// Rows this side holds and the other lacks.
        public var onlyHere: [RowKey] = []
        /// Rows the other side holds and this one lacks.
        public var onlyThere: [RowKey] = []
        /// Rows both hold with different fingerprints.
        public var different: [RowKey] = []
        public var isEmpty: Bool { onlyHere.isEmpty && onlyThere.isEmpty && different.isEmpty }
    }

    public struct RowKey: Hashable, Sendable {
        public var table: String
        public var key: [Value]
        public init(table: String, key: [Value]) {
            self.table = table
            self.key = key
        }
    }

    /// The ranges to ask about next.
    public private(set) var pending: [DigestRange]
    public private(set) var result = Result()
    /// Rounds of questions asked so far.
    public private(set) var rounds = 0

    /// Starts with every table either side may hold.
    public init(tables: [String]) {
        pending = tables.map { DigestRange(table: $0, prefix: "") }
    }

    /// Takes the other side's answers for the pending ranges and this side's own view of
    /// the same ranges (`mine`: the same shape, leaves where the other side gave leaves,
    /// children where it gave children), and works out what to ask next.
    public mutating func receive(theirs: [RangeAnswer], mine: [DigestRange: RangeAnswer]) {
        rounds += 1
        var next: [DigestRange] = []
        for answer in theirs {
            let own = mine[answer.range] ?? RangeAnswer(range: answer.range, digest: DigestSum())
            if own.digest == answer.digest { continue }
            if let theirLeaves = answer.leaves {
                let myLeaves = own.leaves ?? [:]
                for (key, fp) in myLeaves {
                    let k = RowKey(table: answer.range.table, key: key)
                    if let t = theirLeaves[key] {
                        if t != fp { result.different.append(k) }
                    } else {
                        result.onlyHere.append(k)
                    }
                }
                for key in theirLeaves.keys where myLeaves[key] == nil {
                    result.onlyThere.append(RowKey(table: answer.range.table, key: key))
                }
            } else if let children = answer.children {
                let myChildren = own.children ?? [:]
                for child in answer.range.children {
                    let c = String(child.prefix.last!)
                    if (children[c] ?? DigestSum()) != (myChildren[c] ?? DigestSum()) { next.append(child) }
                }
            }
        }
        pending = next.filter { $0.prefix.count <= 16 }
    }
}
