/// Appends the changeset format's primitives to a byte array.
///
/// Written by hand rather than with a serialization library because the format is pinned
/// byte for byte by language-neutral vectors (protocol/vectors), which a generic library's
/// encoding would not guarantee across versions.
public struct ByteWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    public mutating func byte(_ b: UInt8) { bytes.append(b) }

    /// Unsigned LEB128: 7 bits a byte, low first, high bit set on all but the last.
    public mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// Signed integers as zigzag varints (0, -1, 1, -2 … → 0, 1, 2, 3 …).
    public mutating func signedVarint(_ v: Int64) {
        varint(UInt64(bitPattern: (v << 1) ^ (v >> 63)))
    }

    public mutating func fixed64(_ v: UInt64) {
        for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
    }

    public mutating func fixed32(_ v: UInt32) {
        for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) }
    }

    public mutating func lengthPrefixed(_ data: some Collection<UInt8>) {
        varint(UInt64(data.count))
        bytes.append(contentsOf: data)
    }

    public mutating func string(_ s: String) { lengthPrefixed(Array(s.utf8)) }

    public mutating func append(_ other: [UInt8]) { bytes.append(contentsOf: other) }
}

/// Reads the changeset format's primitives, failing with `.truncated` or `.malformed`
/// instead of trapping on bad input.
public struct ByteReader: Sendable {
    let bytes: [UInt8]
    public private(set) var offset: Int
    let end: Int

    public init(_ bytes: [UInt8], offset: Int = 0, end: Int? = nil) {
        self.bytes = bytes
        self.offset = offset
        self.end = end ?? bytes.count
    }

    public var remaining: Int { end - offset }
    public var isAtEnd: Bool { offset >= end }

    public mutating func byte(_ what: @autoclosure () -> String) throws(CoreError) -> UInt8 {
        guard offset < end else { throw CoreError(.truncated, "ended inside \(what()) at byte \(offset)") }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func varint(_ what: @autoclosure () -> String) throws(CoreError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        let start = offset
        while true {
            guard offset < end else { throw CoreError(.truncated, "ended inside \(what()) at byte \(start)") }
            let b = bytes[offset]
            offset += 1
            if shift == 63 && b > 1 {
                throw CoreError(.malformed, "\(what()) at byte \(start) overflows 64 bits")
            }
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 {
                if b == 0 && shift > 0 {
                    throw CoreError(.malformed, "\(what()) at byte \(start) is not minimally encoded")
                }
                return result
            }
            shift += 7
            if shift > 63 { throw CoreError(.malformed, "\(what()) at byte \(start) is longer than 10 bytes") }
        }
    }

    public mutating func signedVarint(_ what: @autoclosure () -> String) throws(CoreError) -> Int64 {
        let u = try varint(what())
        return Int64(bitPattern: (u >> 1) ^ (0 &- (u & 1)))
    }

    /// A varint that counts things, bounded so a corrupt count cannot make the decoder
    /// allocate more than the input could hold.
    public mutating func count(_ what: @autoclosure () -> String, max: Int) throws(CoreError) -> Int {
        let start = offset
        let v = try varint(what())
        guard v <= UInt64(Swift.min(max, remaining)) else {
            throw CoreError(.malformed, "\(what()) at byte \(start) is \(v), more than the \(Swift.min(max, remaining)) possible here")
        }
        return Int(v)
    }

    public mutating func fixed64(_ what: @autoclosure () -> String) throws(CoreError) -> UInt64 {
        guard remaining >= 8 else { throw CoreError(.truncated, "ended inside \(what()) at byte \(offset)") }
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(bytes[offset + i]) << (8 * UInt64(i)) }
        offset += 8
        return v
    }

    public mutating func fixed32(_ what: @autoclosure () -> String) throws(CoreError) -> UInt32 {
        guard remaining >= 4 else { throw CoreError(.truncated, "ended inside \(what()) at byte \(offset)") }
        var v: UInt32 = 0
        for i in 0..<4 { v |= UInt32(bytes[offset + i]) << (8 * UInt32(i)) }
        offset += 4
        return v
    }

    public mutating func bytes(_ n: Int, _ what: @autoclosure () -> String) throws(CoreError) -> ArraySlice<UInt8> {
        guard remaining >= n else { throw CoreError(.truncated, "ended inside \(what()) at byte \(offset)") }
        defer { offset += n }
        return bytes[offset..<offset + n]
    }

    public mutating func string(_ what: @autoclosure () -> String, maxBytes: Int = 1 << 20) throws(CoreError) -> String {
        let n = try count("length of \(what())", max: maxBytes)
        let raw = try bytes(n, what())
        guard let s = String(validating: raw, as: UTF8.self) else {
            throw CoreError(.malformed, "\(what()) at byte \(offset - n) is not valid UTF-8")
        }
        return s
    }
}

/// CRC-32C (Castagnoli), the changeset's integrity check.
///
/// Hand-written (a 256-entry table) because the core depends on nothing, and a CRC is a
/// dozen lines; swift-crypto's hashes are far slower for this job and not a checksum.
public enum CRC32C {
    static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    public static func checksum(_ data: some Sequence<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in data { crc = table[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}

/// FNV-1a, 64 bits: a cheap, stable content digest (not a cryptographic hash) for comparing
/// replicas, org trees and bench results.
public struct FNV1a: Sendable {
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325
    public init() {}
    public mutating func add<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
        for b in bytes { value = (value ^ UInt64(b)) &* 0x100_0000_01b3 }
    }
    public mutating func add(_ text: String) { add(text.utf8) }
    public var hex: String { String(value, radix: 16) }
}

/// Lowercase hexadecimal text of bytes, as the protocol's JSON bodies and vectors carry keys,
/// digests and hashes.
public enum Hex {
    static let digits = Array("0123456789abcdef".utf8)

    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var out: [UInt8] = []
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The bytes of `text`, or nil unless it is an even number of hex digits.
    public static func decodeStrict(_ text: String) -> [UInt8]? {
        let u = Array(text.utf8)
        guard u.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x61...0x66: return c - 0x61 + 10
            case 0x41...0x46: return c - 0x41 + 10
            default: return nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(u.count / 2)
        var i = 0
        while i < u.count {
            guard let a = nibble(u[i]), let b = nibble(u[i + 1]) else { return nil }
            out.append(a << 4 | b)
            i += 2
        }
        return out
    }

    /// For trusted text (vectors, fixtures): traps on anything that is not hex.
    public static func decode(_ text: String) -> [UInt8] {
        guard let b = decodeStrict(text) else { preconditionFailure("not hex: \(text.prefix(40))") }
        return b
    }
}
