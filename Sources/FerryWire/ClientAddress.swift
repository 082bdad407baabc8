import FerryCore

/// An IPv4 or IPv6 address as its 4 or 16 bytes. An IPv4-mapped IPv6 address
/// (`::ffff:192.0.2.7`, as a dual-stack socket reports an IPv4 peer) is read as the IPv4
/// address, so one client has one form.
///
///     IPAddress("2001:DB8:0:0::1")?.description   // "2001:db8::1" (RFC 5952)
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    public let bytes: [UInt8]

    public var isIPv4: Bool { bytes.count == 4 }

    /// Parses `192.0.2.7` or `2001:db8::1` (a `%zone` suffix is dropped); nil for anything else.
    public init?(_ text: some StringProtocol) {
        var text = Substring(text)
        if let zone = text.firstIndex(of: "%") { text = text[..<zone] }
        if let v4 = Self.ipv4(text) {
            bytes = v4
        } else if let v6 = Self.ipv6(text) {
            let mapped = v6[0..<10].allSatisfy { $0 == 0 } && v6[10] == 0xFF && v6[11] == 0xFF
            bytes = mapped ? Array(v6[12...]) : v6
        } else {
            return nil
        }
    }

    init(bytes: [UInt8]) { self.bytes = bytes }

    /// An entry of `X-Forwarded-For` or a peer: a bare address, `192.0.2.7:5678` or
    /// `[2001:db8::1]:443`.
    public init?(hostPort text: some StringProtocol) {
        let t = text.trimmingSpaces
        if t.hasPrefix("["), let close = t.firstIndex(of: "]") {
            self.init(t[t.index(after: t.startIndex)..<close])
        } else if t.filter({ $0 == ":" }).count == 1, let colon = t.firstIndex(of: ":") {
            self.init(t[..<colon])
        } else {
            self.init(t)
        }
    }

    public var description: String {
        if isIPv4 { return bytes.map(String.init).joined(separator: ".") }
        let groups = stride(from: 0, to: 16, by: 2).map { Int(bytes[$0]) << 8 | Int(bytes[$0 + 1]) }
        // The longest run of two or more zero groups becomes "::" (the first of equal runs).
        var best = (start: -1, length: 0)
        var i = 0
        while i < 8 {
            guard groups[i] == 0 else {
                i += 1
                continue
            }
            var j = i
            while j < 8 && groups[j] == 0 { j += 1 }
            if j - i > best.length && j - i >= 2 { best = (i, j - i) }
            i = j
        }
        let hex = groups.map { String($0, radix: 16) }
        guard best.start >= 0 else { return hex.joined(separator: ":") }
        return hex[..<best.start].joined(separator: ":") + "::" + hex[(best.start + best.length)...].joined(separator: ":")
    }

    static func ipv4(_ s: Substring) -> [UInt8]? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for p in parts {
            guard (1...3).contains(p.count), p.allSatisfy({ $0.isASCII && $0.isNumber }), let v = UInt8(p) else { return nil }
            out.append(v)
        }
        return out
    }

    static func ipv6(_ s: Substring) -> [UInt8]? {
        guard s.contains(":") else { return nil }
        // Split at "::" (at most one).
        var halves: [Substring] = []
        var start = s.startIndex
        var i = s.startIndex
        while i < s.endIndex {
            let next = s.index(after: i)
            if s[i] == ":" && next < s.endIndex && s[next] == ":" {
                halves.append(s[start..<i])
                start = s.index(after: next)
                i = start
            } else {
                i = next
            }
        }
        halves.append(s[start...])
        guard halves.count <= 2 else { return nil }
        func groups(_ text: Substring, allowV4Tail: Bool) -> [UInt8]? {
            guard !text.isEmpty else { return [] }
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            var out: [UInt8] = []
            for (n, p) in parts.enumerated() {
                if allowV4Tail && n == parts.count - 1 && p.contains(".") {
                    guard let v4 = ipv4(p) else { return nil }
                    out += v4
                    continue
                }
                guard (1...4).contains(p.count), let v = UInt16(p, radix: 16) else { return nil }
                out += [UInt8(v >> 8), UInt8(v & 0xFF)]
            }
            return out
        }
        if halves.count == 1 {
            guard let all = groups(halves[0], allowV4Tail: true), all.count == 16 else { return nil }
            return all
        }
        guard let head = groups(halves[0], allowV4Tail: false), let tail = groups(halves[1], allowV4Tail: true), head.count + tail.count <= 14 else {
            return nil
        }
        return head + Array(repeating: 0, count: 16 - head.count - tail.count) + tail
    }
}

/// An address or a CIDR range of them: `10.0.0.7`, `10.0.0.0/8`, `fd00::/8`.
public struct IPAddressRange: Sendable, Hashable, CustomStringConvertible {
    public let base: IPAddress
    /// Leading bits that must match (32 or 128 for a single address).
    public let prefixLength: Int

    public init?(_ text: some StringProtocol) {
        let t = text.trimmingSpaces
        let parts = t.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let base = IPAddress(parts[0]) else { return nil }
        let bits = base.bytes.count * 8
        if parts.count == 2 {
            guard (1...3).contains(parts[1].count), parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(parts[1]), n <= bits else { return nil }
            prefixLength = n
        } else {
            prefixLength = bits
        }
        self.base = base
    }

    /// A comma-separated list (a config value); nil if any entry is not an address or range.
    /// "" is the empty list.
    public static func list(_ text: String) -> [IPAddressRange]? {
        let entries = text.split(separator: ",").map(\.trimmingSpaces).filter { !$0.isEmpty }
        let ranges = entries.compactMap(IPAddressRange.init)
        return ranges.count == entries.count ? ranges : nil
    }

    public func contains(_ address: IPAddress) -> Bool {
        guard address.bytes.count == base.bytes.count else { return false }
        var bits = prefixLength
        for (a, b) in zip(address.bytes, base.bytes) where bits > 0 {
            let mask: UInt8 = bits >= 8 ? 0xFF : ~(0xFF >> UInt8(bits))
            guard a & mask == b & mask else { return false }
            bits -= 8
        }
        return true
    }

    public var description: String { prefixLength == base.bytes.count * 8 ? base.description : "\(base)/\(prefixLength)" }
}

/// Who sent a request: the connection's peer, or — when the peer is one of the hub's own
/// reverse proxies (`trusted_proxies`) — the client that proxy saw.
public enum ClientAddress {
    /// The client's address as text (IPv4 dotted, IPv6 in RFC 5952 form).
    ///
    /// `X-Forwarded-For` is believed only when the peer is a trusted proxy, and only as far
    /// as trusted proxies wrote it: entries are read from the right (the nearest hop first),
    /// trusted proxies are skipped, and the first other entry is the client. A client can
    /// put anything on the left of the header; it cannot forge the entry its first trusted
    /// proxy appended. An entry that is not an address ends the walk at the hop before it.
    ///
    /// - Parameters:
    ///   - peer: the connection's remote address, nil for a Unix socket.
    ///   - forwardedFor: every `X-Forwarded-For` field of the request, in order.
    public static func resolve(peer: String?, forwardedFor: [String], trustedProxies: [IPAddressRange]) -> String? {
        guard let peerText = peer else { return nil }
        guard var hop = IPAddress(hostPort: peerText) else { return peerText }
        guard !trustedProxies.isEmpty else { return hop.description }
        let entries = forwardedFor.flatMap { $0.split(separator: ",") }
        for entry in entries.reversed() {
            guard trustedProxies.contains(where: { $0.contains(hop) }) else { break }
            guard let next = IPAddress(hostPort: entry) else { break }
            hop = next
        }
        return hop.description
    }

    /// What failed logins from `client` are counted under: the address itself for IPv4,
    /// its /64 for IPv6 (one subscriber commonly holds a whole /64, so counting single
    /// addresses would let one client rotate through 2^64 of them).
    public static func throttleKey(_ client: String) -> String {
        guard let a = IPAddress(client), !a.isIPv4 else { return client }
        return IPAddress(bytes: Array(a.bytes[0..<8]) + Array(repeating: 0, count: 8)).description + "/64"
    }
}

extension StringProtocol {
    var trimmingSpaces: Substring {
        let s = Substring(self)
        guard let first = s.firstIndex(where: { $0 != " " && $0 != "\t" }) else { return s[s.endIndex...] }
        let last = s.lastIndex(where: { $0 != " " && $0 != "\t" })!
        return s[first...last]
    }
}
