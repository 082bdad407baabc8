/// A crash the fuzzer found that is recorded as a fixture and not yet fixed.
///
/// While it is open, campaigns step over the inputs that `reproduces` picks out, so that a
/// run looks for new crashes instead of stopping at this one in its first seconds (and the
/// test command's short campaign does not fail on a crash someone already owns). The
/// fixture's replay test still runs it unscreened and is marked as a known issue; once the
/// crash is fixed that test fails for want of the issue, which is the cue to delete the
/// entry here.
public struct KnownFinding: Sendable {
    public let target: FuzzTarget
    /// The file under Tests/Fixtures/fuzz/<target>/ that reproduces it.
    public let fixture: String
    public let summary: String
    /// A superset of the inputs that reach the crash: stepping over a few more costs the
    /// campaign a little coverage, missing one stops it.
    let reproduces: @Sendable ([UInt8]) -> Bool
}

extension KnownFinding {
    public static let open: [KnownFinding] = [
        KnownFinding(
            target: .standard, fixture: "table-header-starting-with-dot.toml",
            summary: """
                A table header whose key starts with anything but a bare-key character or a quote \
                ('[.a]', '[!]', '[中]', '[' then a line break) trips TOML++'s assertion \
                `is_bare_key_character(*cp) || is_string_delimiter(*cp)` in parser::parse_key \
                (toml.hpp:15481, TOMLKit 0.6.0) and aborts the process instead of failing the parse
                """,
            reproduces: { KnownFinding.tableHeaderWithoutKeyStart(String(decoding: $0, as: UTF8.self)) }),
        KnownFinding(
            target: .standard, fixture: "array-element-starting-with-brace.toml",
            summary: """
                An array element that starts with '}' ('a = [}]', 'a = [1, }]') trips TOML++'s assertion \
                `!is_value_terminator(*cp)` in parser::parse_value (toml.hpp:14994, TOMLKit 0.6.0) and \
                aborts the process instead of failing the parse
                """,
            reproduces: { KnownFinding.braceWhereArrayElementStarts(String(decoding: $0, as: UTF8.self)) }),
    ]

    /// Whether any line opens a table header (`[` or `[[`, spaces and tabs around) with a
    /// character TOML++'s header parser does not expect a key to start with.
    static func tableHeaderWithoutKeyStart(_ text: String) -> Bool {
        let s = Array(text.unicodeScalars)
        func startsKey(_ c: Unicode.Scalar) -> Bool {
            c.isASCII && (c.properties.isAlphabetic || ("0"..."9").contains(c) || c == "_" || c == "-" || c == "\"" || c == "'" || c == "]")
        }
        func skipBlanks(_ i: inout Int) { while i < s.count, s[i] == " " || s[i] == "\t" { i += 1 } }
        var lineStart = s.first == "\u{FEFF}" ? 1 : 0
        while lineStart <= s.count {
            var i = lineStart
            skipBlanks(&i)
            if i < s.count, s[i] == "[" {
                i += 1
                skipBlanks(&i)
                if i < s.count, s[i] == "[" {
                    i += 1
                    skipBlanks(&i)
                }
                if i < s.count, !startsKey(s[i]) { return true }
            }
            guard let newline = s[lineStart...].firstIndex(of: "\n") else { break }
            lineStart = newline + 1
        }
        return false
    }

    /// Whether a '}' follows '[' or ',' with only blanks and line breaks between, or opens a
    /// line (which is where it lands after a comment inside a multi-line array).
    static func braceWhereArrayElementStarts(_ text: String) -> Bool {
        var previous: Unicode.Scalar = "\n"
        var lineHasContent = false
        for c in text.unicodeScalars {
            if c == "}", previous == "[" || previous == "," || !lineHasContent { return true }
            if c == "\n" {
                lineHasContent = false
            } else if c != " " && c != "\t" && c != "\r" {
                lineHasContent = true
            }
            if c != " " && c != "\t" && c != "\r" && c != "\n" { previous = c }
        }
        return false
    }
}
