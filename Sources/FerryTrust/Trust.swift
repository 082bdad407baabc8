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

    public func sign(_ data: [UInt8]) throws -> String {
        try key.signature(for: data).base64EncodedString()
    }

    /// The headers that authenticate one request of this node, `Ferry-Content-SHA256` included
    /// (so the hub can authenticate before it reads the body); `body` is the body as sent.
    public func signedHeaders(node: String, method: String, path: String, body: [UInt8], nowMillis: UInt64) throws -> [(String, String)] {
        let nonce = Trust.randomHex(bytes: 16)
        let bodyHash = Trust.sha256Hex(body)
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

    /// A one-time enrolment token: 20 random bytes in Crockford base32, grouped for reading
    /// aloud over the phone (e.g. `K7M2-9XQD-…`).
    public static func newToken() -> String {
        let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
        var g = SystemRandomNumberGenerator()
        let chars = (0..<32).map { _ in alphabet[Int.random(in: 0..<32, using: &g)] }
        return stride(from: 0, to: 32, by: 4).map { String(chars[$0..<$0 + 4]) }.joined(separator: "-")
    }

    /// Tokens are stored only as this digest; the form is normalised (case, dashes, spaces).
    public static func tokenDigest(_ token: String) -> String {
        let normal = token.uppercased().filter { $0.isLetter || $0.isNumber }
        return sha256Hex(Array(normal.utf8))
    }

    /// Whether `signatureBase64` is a valid signature of `data` by the Ed25519 `publicKey`.
    public static func verify(publicKey: [UInt8], signatureBase64: String, data: [UInt8]) -> Bool {
        guard let sig = Data(base64Encoded: signatureBase64),
            let key = try? Curve25519.Signing.PublicKey(rawRepresentation: publicKey)
        else { return false }
        return key.isValidSignature(sig, for: data)
    }
}
