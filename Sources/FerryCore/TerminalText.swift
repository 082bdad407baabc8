/// Text that came from elsewhere (a unit's records, a hub's reasons), made safe to print
/// on a terminal: C0 and C1 control characters, DEL and the bidirectional overrides and
/// isolates print as visible escapes — `\n`, `\t`, `\r`, `\x1b`, `\u{202E}` — so an escape
/// sequence such as `ESC ]52;…` (write the clipboard) or `ESC [2J` (clear the screen) prints
/// as text instead of acting. Everything else, Chinese included, is unchanged. Every
/// terminal screen (the hub's reports, the node's status) prints through it.
///
///     TerminalText.escape("王\u{1B}[2J芳")   // "王\x1b[2J芳"
public enum TerminalText {
    public static func escape(_ s: String) -> String {
        guard s.unicodeScalars.contains(where: isUnsafe) else { return s }
        var out = ""
        out.reserveCapacity(s.utf8.count + 8)
        for u in s.unicodeScalars {
            guard isUnsafe(u) else {
                out.unicodeScalars.append(u)
                continue
            }
            switch u {
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                let hex = String(u.value, radix: 16)
                out += u.value < 0x100 ? "\\x" + (hex.count < 2 ? "0" + hex : hex) : "\\u{\(hex.uppercased())}"
            }
        }
        return out
    }

    public static func isUnsafe(_ u: Unicode.Scalar) -> Bool {
        switch u.value {
        case 0x00...0x1F, 0x7F...0x9F: return true  // C0, DEL, C1
        case 0x202A...0x202E, 0x2066...0x2069: return true  // bidirectional embeddings, overrides, isolates
        default: return false
        }
    }
}
