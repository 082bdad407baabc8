/// Refuses, before TOMLKit sees it, the TOML that makes its parser (TOML++ in TOMLKit 0.6.0)
/// abort the process instead of reporting an error: a table header whose key starts with
/// neither a bare-key character nor a quote (`[.a]`, `[中]`), and an array element that
/// starts with `}` (`a = [}]`). Both are invalid TOML, so refusing them changes no valid
/// file; the fuzzer found them (Tests/Fixtures/fuzz/standard/).
///
/// A scanner rather than a pattern, so that the same characters inside strings and comments
/// are left alone. Written by hand because the parser itself is the library that crashes.
enum TOMLPrecheck {
    struct Problem: Error {
        var line: Int
        var message: String
    }

    static func check(_ text: String) throws(Problem) {
        let s = Array(text.unicodeScalars)
        var i = s.first == "\u{FEFF}" ? 1 : 0
        var line = 1
        var lineStart = true
        // Open brackets of values: '[' of an array, '{' of an inline table.
        var nesting: [Unicode.Scalar] = []
        var afterOpen = false  // just after '[' or ',' inside an array: an element starts here

        func isBareKey(_ c: Unicode.Scalar) -> Bool {
            c.isASCII && (c.properties.isAlphabetic || ("0"..."9").contains(c) || c == "_" || c == "-")
        }
        func skipString(_ quote: Unicode.Scalar) {
            let multi = i + 2 < s.count && s[i + 1] == quote && s[i + 2] == quote
            i += multi ? 3 : 1
            while i < s.count {
                if s[i] == "\n" {
                    if !multi { return }
                    line += 1
                }
                if quote == "\"" && s[i] == "\\" {
                    i += 2
                    continue
                }
                if s[i] == quote {
                    if !multi {
                        i += 1
                        return
                    }
                    if i + 2 < s.count && s[i + 1] == quote && s[i + 2] == quote {
                        i += 3
                        return
                    }
                }
                i += 1
            }
        }

        while i < s.count {
            let c = s[i]
            if c == "\n" {
                line += 1
                lineStart = nesting.isEmpty
                i += 1
                continue
            }
            if c == " " || c == "\t" || c == "\r" {
                i += 1
                continue
            }
            if c == "#" {
                while i < s.count && s[i] != "\n" { i += 1 }
                continue
            }
            if lineStart && c == "[" {
                // A table header: [key] or [[key]].
                var j = i + 1
                if j < s.count && s[j] == "[" { j += 1 }
                while j < s.count && (s[j] == " " || s[j] == "\t") { j += 1 }
                guard j < s.count, isBareKey(s[j]) || s[j] == "\"" || s[j] == "'" else {
                    throw Problem(line: line, message: "a table header must start with a name (letters, digits, _ or -) or a quoted name")
                }
                lineStart = false
                i = j
                continue
            }
            lineStart = false
            if afterOpen, nesting.last == "[" {
                afterOpen = false
                if c == "}" {
                    throw Problem(line: line, message: "an array element cannot start with '}'")
                }
            }
            switch c {
            case "\"", "'":
                skipString(c)
                continue
            case "[":
                nesting.append("[")
                afterOpen = true
            case "{":
                nesting.append("{")
            case "]", "}":
                if !nesting.isEmpty { nesting.removeLast() }
            case ",":
                if nesting.last == "[" { afterOpen = true }
            default:
                break
            }
            i += 1
        }
    }
}
