import Crypto
import FerryWire
import Foundation

/// A node's or hub's Ed25519 signing key (swift-crypto's Curve25519).
public struct SigningKey: Sendable {
    /// The raw 32 bytes; swift-crypto's key type is not Sendable, so it is rebuilt per use.
    let raw: Data
    var key: Curve25519.Signing.PrivateKey { try! Curve25519.Signing.PrivateKey(rawRepresentation: raw) }

    public init() { raw = Curve25519.Signing.PrivateKey().rawRepresentation }

    /// Reads a key from base64 of its 32 raw bytes.
    public init(base64: String) throws {
        guard let raw = Data(base64Encoded: base64.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw TrustError("the key is not valid base64")
        }
        self.raw = try Curve25519.Signing.PrivateKey(rawRepresentation: raw).rawRepresentation
    }

    public var base64: String { raw.base64EncodedString() }
    public var publicKeyBase64: String { key.publicKey.rawRepresentation.base64EncodedString() }
    public var publicKeyRaw: [UInt8] { [UInt8](key.publicKey.rawRepresentation) }

    public func sign(_ data: [UInt8]) throws -> String {
        try key.signature(for: data).base64EncodedString()
    }

    /// The headers that authenticate one request of this node, `Ferry-Content-SHA256` included
    /// (so the hub can authenticate before it reads the body); `body` is the body as sent.
    public func signedHeaders(node: String, method: String, path: String, body: [UInt8], nowMillis: UInt64) throws -> [(String, String)] {
        try signedHeaders(node: node, method: method, path: path, bodySHA256Hex: Trust.sha256Hex(body), nowMillis: nowMillis)
    }

    /// The same, for a body known by its hash (a resumed upload sends only its rest).
    public func signedHeaders(node: String, method: String, path: String, bodySHA256Hex bodyHash: String, nowMillis: UInt64) throws -> [(String, String)] {
        let nonce = Trust.randomHex(bytes: 16)
        let canonical = RequestSigning.canonical(
            method: method, path: path, timestampMillis: nowMillis, nonce: nonce, bodySHA256Hex: bodyHash)
        return [
            (WireHeader.node, node),
            (WireHeader.timestamp, String(nowMillis)),
            (WireHeader.nonce, nonce),
            (WireHeader.contentSHA256, bodyHash),
            (WireHeader.signature, try sign(canonical)),
        ]
    }
}

public struct TrustError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ d: String) { description = d }
}

public enum Trust {
    public static func sha256Hex(_ data: [UInt8]) -> String {
        SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    public static func randomBytes(_ n: Int) -> [UInt8] {
        var g = SystemRandomNumberGenerator()
        return (0..<n).map { _ in UInt8.random(in: 0...255, using: &g) }
    }

    public static func randomHex(bytes n: Int) -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<n).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &g)) }.joined()
    }

    /// Whether `signatureBase64` is a valid signature of `data` by the Ed25519 `publicKey`.
    /// A weak key (see `isAcceptablePublicKey`) verifies nothing.
    public static func verify(publicKey: [UInt8], signatureBase64: String, data: [UInt8]) -> Bool {
        guard isAcceptablePublicKey(publicKey), let sig = Data(base64Encoded: signatureBase64), sig.count == 64,
            let key = try? Curve25519.Signing.PublicKey(rawRepresentation: publicKey)
        else { return false }
        return key.isValidSignature(sig, for: data)
    }

    /// Whether a 32-byte Ed25519 public key may be enrolled: a canonical encoding of a point
    /// that is not of small order. A small-order key (the identity among them) lets one
    /// constant signature verify for every message, so anyone could sign as that node.
    /// The list is libsodium's (`ge25519_has_small_order`): the y coordinates of the eight
    /// small-order points, the sign bit ignored; `y ≥ p` catches the non-canonical rest.
    public static func isAcceptablePublicKey(_ raw: [UInt8]) -> Bool {
        guard raw.count == 32 else { return false }
        var y = raw
        y[31] &= 0x7f
        let smallOrder: [[UInt8]] = [
            [UInt8](repeating: 0, count: 32),
            [1] + [UInt8](repeating: 0, count: 31),
            [
                0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0,
                0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05,
            ],
            [
                0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f,
                0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a,
            ],
            [0xec] + [UInt8](repeating: 0xff, count: 30) + [0x7f],  // p − 1
        ]
        if smallOrder.contains(y) { return false }
        // y ≥ p = 2^255 − 19: bytes 1…30 all 0xff, the top byte 0x7f, the lowest at least 0xed.
        let nonCanonical = y[31] == 0x7f && y[1..<31].allSatisfy { $0 == 0xff } && y[0] >= 0xed
        return !nonCanonical
    }

    /// HMAC-SHA-256 of `data` under `key`, hex.
    public static func hmacHex(key: [UInt8], _ data: [UInt8]) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: data, using: SymmetricKey(data: key))
        return Data(mac).map { String(format: "%02x", $0) }.joined()
    }

    /// Compares two strings in time independent of where they differ.
    public static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var d: UInt8 = 0
        for i in 0..<x.count { d |= x[i] ^ y[i] }
        return d == 0
    }
}

/// A one-time enrolment token: 20 random bytes for the secret and 10 bytes of the hub key's
/// fingerprint, in Crockford base32 grouped by four for reading aloud over the phone
/// (`K7M2-9XQD-…`, 12 groups). The node checks the hub's key against the fingerprint at
/// first contact, so an on-path attacker cannot pose as the hub, and it never sends the
/// secret: it proves it knows it with an HMAC over its own key (`proof`), so an observer
/// cannot enrol with a token it saw.
///
/// The hub stores the secret's `digest` (to find the token) and the `proofKey` (to check
/// proofs), never the token.
public struct EnrolmentToken: Sendable, Equatable {
    /// The 32 base32 characters of the secret, normalised.
    public let secret: String
    /// The 16 base32 characters of the hub key's fingerprint; nil for an 8-group token of
    /// release 1, which carries none.
    public let fingerprint: String?

    static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ")

    /// Reads a token as a clerk typed it: case, dashes and spaces do not matter, and the
    /// letters Crockford base32 leaves out are read as the digits they look like (O → 0,
    /// I and L → 1). Nil when it is not 32 or 48 such characters.
    public init?(parsing text: String) {
        var chars: [Character] = []
        for ch in text.uppercased() {
            if ch == "-" || ch == " " || ch == "\t" { continue }
            let c: Character = ch == "O" ? "0" : (ch == "I" || ch == "L") ? "1" : ch
            guard Self.alphabet.contains(c) else { return nil }
            chars.append(c)
        }
        switch chars.count {
        case 32:
            secret = String(chars)
            fingerprint = nil
        case 48:
            secret = String(chars[0..<32])
            fingerprint = String(chars[32...])
        default: return nil
        }
    }

    init(secret: String, fingerprint: String) {
        self.secret = secret
        self.fingerprint = fingerprint
    }

    /// A fresh token for a hub whose public key is `hubPublicKey` (raw 32 bytes).
    public static func issue(hubPublicKey: [UInt8]) -> EnrolmentToken {
        var g = SystemRandomNumberGenerator()
        let secret = String((0..<32).map { _ in alphabet[Int.random(in: 0..<32, using: &g)] })
        return EnrolmentToken(secret: secret, fingerprint: fingerprint(of: hubPublicKey))
    }

    /// The first 80 bits of SHA-256 of the hub's raw public key, in base32.
    public static func fingerprint(of hubPublicKey: [UInt8]) -> String {
        let bytes = Array(SHA256.hash(data: hubPublicKey).prefix(10))
        var out: [Character] = []
        var buffer: UInt32 = 0
        var bits = 0
        for b in bytes {
            buffer = buffer << 8 | UInt32(b)
            bits += 8
            while bits >= 5 {
                out.append(alphabet[Int((buffer >> UInt32(bits - 5)) & 31)])
                bits -= 5
            }
        }
        return String(out)
    }

    /// The token as printed for the supervisor to pass on: 12 groups of four.
    public var text: String {
        let all = Array(secret + (fingerprint ?? ""))
        return stride(from: 0, to: all.count, by: 4).map { String(all[$0..<min($0 + 4, all.count)]) }.joined(separator: "-")
    }

    /// Names the token at the hub: hex SHA-256 of the secret.
    public var digest: String { Trust.sha256Hex(Array(secret.utf8)) }

    /// The key proofs are made with (the hub stores it; it is not the token).
    public var proofKey: [UInt8] { Array(SHA256.hash(data: Array("FERRY-ENROL-PROOF-V1\n\(secret)".utf8))) }

    /// What a node sends to prove it holds the token, bound to its key and this enrolment.
    public static func proof(proofKey: [UInt8], publicKey: String, hostname: String, nonce: String) -> String {
        Trust.hmacHex(key: proofKey, Array("FERRY-ENROL-V1\n\(publicKey)\n\(hostname)\n\(nonce)".utf8))
    }

    /// Whether the hub key `hubPublicKey` is the one this token was issued by (true for a
    /// token without a fingerprint, which cannot tell).
    public func matches(hubPublicKey: [UInt8]) -> Bool {
        guard let f = fingerprint else { return true }
        return Trust.constantTimeEqual(f, Self.fingerprint(of: hubPublicKey))
    }
}

extension EnrolRequest {
    /// The enrolment request of a node holding `key`, proving it holds `token`.
    public init(token: EnrolmentToken, key: SigningKey, hostname: String, nonce: String = Trust.randomHex(bytes: 16), restoring: Bool = false) {
        self.init(
            tokenDigest: token.digest,
            proof: EnrolmentToken.proof(proofKey: token.proofKey, publicKey: key.publicKeyBase64, hostname: hostname, nonce: nonce),
            publicKey: key.publicKeyBase64, hostname: hostname, nonce: nonce, restoring: restoring ? true : nil)
    }
}
