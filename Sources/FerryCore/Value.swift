/// A cell value as SQLite stores it: one of its five storage classes.
///
/// Values compare and hash by storage class and content, so `integer(1)` and `real(1.0)`
/// are different values (as they are in a changeset's bytes).
public enum Value: Hashable, Sendable, CustomStringConvertible {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    public var textValue: String? {
        if case .text(let s) = self { return s }
        return nil
    }

    /// A short, human-readable rendering for messages and logs (blobs as hex, long text cut).
    public var description: String {
        switch self {
        case .null: return "NULL"
        case .integer(let i): return String(i)
        case .real(let d): return String(d)
        case .text(let s):
            let cut = s.count > 60 ? String(s.prefix(57)) + "..." : s
            // Control characters are shown, not sent: a NUL would cut the message where it
            // is stored as text, an escape sequence would reach a supervisor's terminal.
            var shown = ""
            for scalar in cut.unicodeScalars {
                if scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) {
                    // As `ReportFormat.terminal` shows them.
                    switch scalar {
                    case "\n": shown += "\\n"
                    case "\t": shown += "\\t"
                    case "\r": shown += "\\r"
                    default: shown += "\\x" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16)
                    }
                } else {
                    shown.unicodeScalars.append(scalar)
                }
            }
            return "'\(shown)'"
        case .blob(let b):
            let hex = b.prefix(16).map { byte in
                let s = String(byte, radix: 16)
                return s.count == 1 ? "0" + s : s
            }.joined()
            return "x'\(hex)\(b.count > 16 ? "..." : "")'"
        }
    }
}
