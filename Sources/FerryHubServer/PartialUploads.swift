import FerryWire
import Foundation
import Synchronization

/// What the hub holds of uploads that were cut before their last byte, so the node resends
/// only the rest (`GET /v1/upload`, then `POST /v1/exchange` with `Ferry-Upload-Offset`) —
/// and of each node's last whole exchange body, so an exchange whose answer was lost is sent
/// again as headers alone.
///
/// An upload is named by its node and the SHA-256 its request signed (`Ferry-Content-SHA256`,
/// the hash of the whole body), so a part can only ever be completed into the body its node
/// signed: a wrong or forged rest fails the hash and costs a resend, never a wrong apply.
/// One part per node (a node sends one exchange at a time); parts are kept in memory for
/// `keepSeconds`, and when they would pass `maxTotalBytes` the oldest go first. A hub restart
/// forgets them: the node then sends the body whole, as before resumption existed.
final class PartialUploads: Sendable {
    struct Part: Sendable {
        var sha256: String
        var bytes: [UInt8]
        var at: ContinuousClock.Instant
    }

    /// Parts shorter than this are not worth a probe's round trip.
    static let minimumBytes = 2048
    let maxTotalBytes: Int
    let keepSeconds: Int
    private let parts = Mutex<[String: Part]>([:])

    init(maxTotalBytes: Int = 64 << 20, keepSeconds: Int = 1800) {
        self.maxTotalBytes = maxTotalBytes
        self.keepSeconds = keepSeconds
    }

    /// Keeps what arrived of `node`'s upload of the body hashed `sha256`.
    func keep(node: String, sha256: String, bytes: [UInt8]) {
        guard bytes.count >= Self.minimumBytes, bytes.count <= maxTotalBytes else { return }
        let now = ContinuousClock.now
        parts.withLock { parts in
            parts[node] = Part(sha256: sha256, bytes: bytes, at: now)
            expire(&parts, now: now)
            var total = parts.values.reduce(0) { $0 + $1.bytes.count }
            for (key, part) in parts.sorted(by: { $0.value.at < $1.value.at }) where total > maxTotalBytes {
                parts[key] = nil
                total -= part.bytes.count
            }
        }
    }

    /// How many bytes of this upload the hub holds (0: none).
    func offset(node: String, sha256: String) -> Int {
        let now = ContinuousClock.now
        return parts.withLock { parts in
            expire(&parts, now: now)
            guard let p = parts[node], p.sha256 == sha256 else { return 0 }
            return p.bytes.count
        }
    }

    /// The first `count` bytes of the upload, nil when the hub does not hold that many.
    func prefix(node: String, sha256: String, count: Int) -> [UInt8]? {
        parts.withLock { parts in
            guard let p = parts[node], p.sha256 == sha256, p.bytes.count >= count else { return nil }
            return Array(p.bytes[0..<count])
        }
    }

    /// The node's part turned out damaged, or its next exchange is too small to keep.
    func drop(node: String) { _ = parts.withLock { $0.removeValue(forKey: node) } }

    var totalBytes: Int { parts.withLock { $0.values.reduce(0) { $0 + $1.bytes.count } } }

    private func expire(_ parts: inout [String: Part], now: ContinuousClock.Instant) {
        let limit = Duration.seconds(keepSeconds)
        parts = parts.filter { now - $0.value.at < limit }
    }
}
