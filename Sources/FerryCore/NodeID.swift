/// The identity of one replica (a unit's node or a hub), as enrolled.
///
/// Node ids order by their UTF-8 bytes; the order breaks ties between equal clocks, so it
/// must be the same on every platform. Valid ids are 1–64 characters of `A–Z a–z 0–9 . _ -`.
public struct NodeID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: String

    public init(_ rawValue: String) throws(CoreError) {
        guard NodeID.isValid(rawValue) else {
            throw CoreError(.invalidNodeID, "node id '\(rawValue)' is not 1–64 characters of A–Z a–z 0–9 . _ -")
        }
        self.rawValue = rawValue
    }

    /// For literals in tests and the demo; traps on an invalid id.
    public init(unchecked rawValue: String) {
        precondition(NodeID.isValid(rawValue), "invalid node id \(rawValue)")
        self.rawValue = rawValue
    }

    public static func isValid(_ s: String) -> Bool {
        let bytes = Array(s.utf8)
        guard (1...64).contains(bytes.count) else { return false }
        return bytes.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                || b == 0x2E || b == 0x5F || b == 0x2D
        }
    }

    public static func < (lhs: NodeID, rhs: NodeID) -> Bool {
        lhs.rawValue.utf8.lexicographicallyPrecedes(rhs.rawValue.utf8)
    }

    public var description: String { rawValue }

    /// The same node in its `n`-th incarnation: what a replica restored from an older copy
    /// of its database writes as, so its new writes are never ordered as if they followed
    /// the ones the copy lost (`u1-n1` → `u1-n1.2`). Incarnation 0 is the node itself.
    public func incarnation(_ n: Int) -> NodeID {
        guard n > 0, let id = try? NodeID("\(node.rawValue).\(n)") else { return self }
        return id
    }

    /// The node an incarnation belongs to: `u1-n1.2` → `u1-n1`; any other id is its own node.
    public var node: NodeID {
        guard let dot = rawValue.lastIndex(of: "."), rawValue[rawValue.index(after: dot)...].allSatisfy(\.isNumber),
            rawValue.index(after: dot) < rawValue.endIndex
        else { return self }
        return NodeID(unchecked: String(rawValue[..<dot]))
    }
}

/// Whether a replica edits with a supervisor's authority (a hub) or a unit's.
///
/// Only the `supervisor-wins` policy looks at it.
public enum Authority: UInt8, Sendable, Hashable {
    case unit = 0
    case supervisor = 1
}
