import Crypto
import Foundation
import _CryptoExtras

/// Password hashes for supervisors' dashboard accounts: scrypt (swift-crypto's
/// `_CryptoExtras`, BoringSSL underneath), stored as `scrypt$N$r$p$salt$hash` in base64.
///
/// N = 2^15, r = 8, p = 1 costs about 32 MiB and a few tens of ms per login here: cheap
/// for a person logging in, expensive for anyone guessing a stolen registry's passwords.
public enum PasswordHash {
    public static func make(_ password: String, rounds: Int = 1 << 15) throws -> String {
        let salt = Trust.randomBytes(16)
        let hash = try derive(password, salt: salt, rounds: rounds, blockSize: 8, parallelism: 1)
        return "scrypt$\(rounds)$8$1$\(Data(salt).base64EncodedString())$\(Data(hash).base64EncodedString())"
    }

    /// True when `password` matches `stored`; compares in constant time.
    public static func verify(_ password: String, against stored: String) -> Bool {
        let f = stored.split(separator: "$").map(String.init)
        guard f.count == 6, f[0] == "scrypt", let n = Int(f[1]), let r = Int(f[2]), let p = Int(f[3]),
            n >= 2, n <= 1 << 20, r >= 1, r <= 32, p >= 1, p <= 16,
            let salt = Data(base64Encoded: f[4]), let want = Data(base64Encoded: f[5]),
            let got = try? derive(password, salt: [UInt8](salt), rounds: n, blockSize: r, parallelism: p)
        else { return false }
        guard got.count == want.count else { return false }
        var diff: UInt8 = 0
        for (a, b) in zip(got, want) { diff |= a ^ b }
        return diff == 0
    }

    static func derive(_ password: String, salt: [UInt8], rounds: Int, blockSize: Int, parallelism: Int) throws -> [UInt8] {
        let key = try KDF.Scrypt.deriveKey(
            from: Array(password.utf8), salt: salt, outputByteCount: 32, rounds: rounds, blockSize: blockSize, parallelism: parallelism)
        return key.withUnsafeBytes { Array($0) }
    }
}
