/// An error of the pure core: what went wrong, to what, and whether retrying can help.
///
/// Every error a user may see carries a stable machine `code` (for the wire and for
/// scripts) and a message that names the table, column, value or field involved.
public struct CoreError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        // Changeset decoding
        case truncated
        case oversized
        case corrupted
        case unsupportedFormat
        case malformed
        // Validation against the standard
        case unknownTable
        case unknownColumn
        case wrongType
        case notAllowed
        case outOfScope
        case notWritable
        case standardMismatch
        // Standard definition
        case invalidStandard
        // Identity
        case invalidNodeID
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// Decoding and validation failures are permanent for the same bytes: resending the
    /// same changeset cannot succeed, except a corrupted one (a bad link may have flipped
    /// bytes, so a resend can succeed).
    public var isRetryable: Bool { code == .corrupted || code == .truncated }

    public var description: String { "\(code.rawValue): \(message)" }
}
