import FerryWire
import Foundation
import TOMLKit

/// What values a key accepts: checked by `validate()` and described in the example file.
enum ConfigRule {
    case integerAtLeast(Int)
    case integerRange(ClosedRange<Int>)
    case oneOf([String])
    /// An absolute path; `optional` also accepts "".
    case absolutePath(optional: Bool)
    /// host:port; `optional` also accepts "" (meaning off).
    case listen(optional: Bool)
    /// An http(s) URL with a host, or "".
    case hubURL
    /// `sha256//<base64>` pins joined by `;`, a key file's absolute path, or "".
    case pinnedPublicKey
    /// `[scheme://][user:password@]host[:port]`, or "".
    case proxy
    /// IP addresses or CIDR ranges joined by commas, or "" for none.
    case addressList

    var typeDescription: String {
        switch self {
        case .integerAtLeast(let n): "integer ≥ \(n)"
        case .integerRange(let r): "integer from \(r.lowerBound) to \(r.upperBound)"
        case .oneOf(let values): "string, one of \(Self.list(values))"
        case .absolutePath(let optional): "string, an absolute path" + (optional ? " or \"\"" : "")
        case .listen(let optional): "string, \"host:port\" (IPv6 as \"[::1]:port\")" + (optional ? " or \"\" for off" : "")
        case .hubURL: "string, an http:// or https:// URL, or \"\""
        case .pinnedPublicKey: "string, \"sha256//<base64>\" (several joined by \";\"), a key file's absolute path, or \"\""
        case .proxy: "string, \"[scheme://][user:password@]host[:port]\" or \"\""
        case .addressList: "string, IP addresses or CIDR ranges joined by \",\" (e.g. \"127.0.0.1, 10.0.0.0/8\"), or \"\" for none"
        }
    }

    /// What is wrong with `value`, phrased to follow the key name; nil when it is fine.
    func problem(_ value: Int) -> String? {
        switch self {
        case .integerAtLeast(let n) where value < n: "must be a whole number ≥ \(n) (found \(value))"
        case .integerRange(let r) where !r.contains(value):
            "must be a whole number from \(r.lowerBound) to \(r.upperBound) (found \(value))"
        default: nil
        }
    }

    func problem(_ value: String) -> String? {
        let found = "(found \(Self.quoted(value)))"
        switch self {
        case .oneOf(let values) where !values.contains(value):
            return "must be one of \(Self.list(values)) \(found)"
        case .absolutePath(let optional) where !(optional && value.isEmpty) && !value.hasPrefix("/"):
            return value.isEmpty
                ? "must be an absolute path, e.g. \"/var/lib/ferry\" (found \"\")"
                : "must be an absolute path starting with \"/\"; a relative path would depend on the working directory \(found)"
        case .listen(let optional) where !(optional && value.isEmpty) && ListenAddress(value) == nil:
            return "must be host:port, e.g. \"127.0.0.1:7700\" or \"[::1]:7700\", with a port from 0 to 65535"
                + (optional ? ", or \"\" for off " : " ") + found
        case .hubURL where !value.isEmpty && !Self.isHubURL(value):
            return "must be an http:// or https:// URL with a host, e.g. \"https://hub.example.org:7700\", "
                + "or \"\" before enrolment \(found)"
        case .pinnedPublicKey where !value.isEmpty && !Self.isPinnedPublicKey(value):
            return "must be \"sha256//\" followed by the base64 SHA-256 of the hub's public key (several joined by \";\"), "
                + "or the absolute path of a PEM/DER public key file \(found)"
        case .addressList where IPAddressRange.list(value) == nil:
            let bad = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.first { !$0.isEmpty && IPAddressRange($0) == nil } ?? value
            return "must list IP addresses or CIDR ranges joined by \",\", e.g. \"127.0.0.1, 10.0.0.0/8\"; \(Self.quoted(bad)) is neither \(found)"
        case .proxy where !value.isEmpty && !Self.isProxy(value):
            return "must be a proxy such as \"http://10.0.0.1:3128\" or \"socks5h://10.0.0.1:1080\" "
                + "(schemes: \(Self.proxySchemes.joined(separator: ", "))) \(found)"
        default:
            return nil
        }
    }

    static let proxySchemes = ["http", "https", "socks4", "socks4a", "socks5", "socks5h"]

    static func isHubURL(_ s: String) -> Bool {
        guard !s.contains(where: \.isWhitespace), let url = URL(string: s),
            let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
            let host = url.host, !host.isEmpty
        else { return false }
        return true
    }

    static func isPinnedPublicKey(_ s: String) -> Bool {
        guard s.hasPrefix("sha256//") else { return s.hasPrefix("/") }
        return s.split(separator: ";", omittingEmptySubsequences: false).allSatisfy { pin in
            pin.hasPrefix("sha256//") && Data(base64Encoded: String(pin.dropFirst("sha256//".count)))?.count == 32
        }
    }

    static func isProxy(_ s: String) -> Bool {
        guard !s.contains(where: \.isWhitespace) else { return false }
        var rest = Substring(s)
        if let r = s.range(of: "://") {
            guard proxySchemes.contains(s[..<r.lowerBound].lowercased()) else { return false }
            rest = s[r.upperBound...]
        }
        if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        // A port is optional for a proxy (libcurl defaults to 1080); the host is not.
        return ListenAddress(String(rest)) != nil || (!rest.isEmpty && !rest.contains(":") && !rest.contains("/"))
    }

    static func list(_ values: [String]) -> String { values.map(quoted).joined(separator: ", ") }

    static func quoted(_ s: String) -> String {
        "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}

/// One key of a config file: its dotted name, where it lives in the struct, what it
/// accepts and what it means.
struct ConfigKey<Config> {
    enum Slot {
        case string(WritableKeyPath<Config, String>)
        case integer(WritableKeyPath<Config, Int>)
    }

    let name: String
    let slot: Slot
    let rule: ConfigRule
    let meaning: String

    init(_ name: String, _ slot: Slot, _ rule: ConfigRule, _ meaning: String) {
        self.name = name
        self.slot = slot
        self.rule = rule
        self.meaning = meaning
    }

    var section: String? { name.firstIndex(of: ".").map { String(name[..<$0]) } }
    var leaf: String { name.lastIndex(of: ".").map { String(name[name.index(after: $0)...]) } ?? name }

    func problem(in config: Config) -> String? {
        switch slot {
        case .string(let path): rule.problem(config[keyPath: path])
        case .integer(let path): rule.problem(config[keyPath: path])
        }
    }

    func renderedValue(in config: Config) -> String {
        switch slot {
        case .string(let path): ConfigRule.quoted(config[keyPath: path])
        case .integer(let path): String(config[keyPath: path])
        }
    }
}

/// A `[section]` of a config file and what it is for.
struct ConfigSection {
    let name: String
    let meaning: String
}

/// The complete description of one kind of config file, from which it is read, checked
/// and documented — so the example file cannot drift from what the loader accepts.
struct ConfigSchema<Config> {
    let header: String
    let sections: [ConfigSection]
    let keys: [ConfigKey<Config>]

    /// Parses TOML text over `defaults`: unknown keys first, then types. Does not validate.
    func parse(_ text: String, file: String, over defaults: Config) throws(ConfigError) -> Config {
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let e as TOMLParseError {
            throw ConfigError(
                file: file, key: nil,
                problem: "line \(e.source.begin.line), column \(e.source.begin.column): \(e.description); the file is not valid TOML")
        } catch {
            throw ConfigError(file: file, key: nil, problem: "the file is not valid TOML (\(error))")
        }

        var entries: [(key: ConfigKey<Config>, value: any TOMLValueConvertible)] = []
        for name in root.keys.sorted() {
            guard let value = root[name] else { continue }
            if let section = sections.first(where: { $0.name == name }) {
                guard let table = value.table else {
                    throw ConfigError(
                        file: file, key: name, problem: "must be a section, written [\(name)] \(Self.found(value))")
                }
                for leaf in table.keys.sorted() {
                    guard let value = table[leaf] else { continue }
                    let dotted = "\(section.name).\(leaf)"
                    guard let key = keys.first(where: { $0.name == dotted }) else {
                        throw ConfigError(file: file, key: dotted, problem: unknownProblem(leaf, in: section.name))
                    }
                    entries.append((key, value))
                }
            } else if let key = keys.first(where: { $0.name == name && $0.section == nil }) {
                entries.append((key, value))
            } else {
                throw ConfigError(file: file, key: name, problem: unknownProblem(name, in: nil))
            }
        }

        var config = defaults
        for (key, value) in entries {
            switch key.slot {
            case .string(let path):
                guard let s = value.string else {
                    throw ConfigError(file: file, key: key.name, problem: "must be a string in double quotes \(Self.found(value))")
                }
                config[keyPath: path] = s
            case .integer(let path):
                guard let i = value.int else {
                    throw ConfigError(
                        file: file, key: key.name,
                        problem: "must be a whole number (integer), e.g. \(key.renderedValue(in: defaults)) \(Self.found(value))")
                }
                config[keyPath: path] = i
            }
        }
        return config
    }

    /// The first key whose value breaks its rule.
    func validate(_ config: Config) throws(ConfigError) {
        for key in keys {
            if let problem = key.problem(in: config) { throw ConfigError(key: key.name, problem: problem) }
        }
    }

    func unknownProblem(_ leaf: String, in section: String?) -> String {
        let known = keys.filter { $0.section == section }.map(\.leaf)
        var candidates = known
        var listing: String
        if let section {
            listing = "keys in [\(section)]: \(known.joined(separator: ", "))"
        } else {
            candidates += sections.map(\.name)
            listing = "top-level keys: \(known.joined(separator: ", ")); sections: "
                + sections.map { "[\($0.name)]" }.joined(separator: ", ")
        }
        if let guess = Self.closest(to: leaf, among: candidates) { listing = "did you mean \(guess)? " + listing }
        return "is not a known key (\(listing)); check the spelling, or remove it"
    }

    /// The example file: every key with its meaning, type and default, set to the default.
    func renderExample(_ defaults: Config) -> String {
        var out = Self.comment(header)
        func render(_ key: ConfigKey<Config>) {
            out += "\n" + Self.comment(key.meaning)
            out += Self.comment("Type: \(key.rule.typeDescription). Default: \(key.renderedValue(in: defaults)).")
            out += "\(key.leaf) = \(key.renderedValue(in: defaults))\n"
        }
        for key in keys where key.section == nil { render(key) }
        for section in sections {
            out += "\n\n" + Self.comment(section.meaning) + "[\(section.name)]\n"
            for key in keys where key.section == section.name { render(key) }
        }
        return out
    }

    /// `text` as `# ` lines wrapped at 90 columns; blank lines kept as `#`.
    static func comment(_ text: String) -> String {
        var out = ""
        for paragraph in text.split(separator: "\n", omittingEmptySubsequences: false) {
            var line = "#"
            for word in paragraph.split(separator: " ") {
                if line.count + 1 + word.count > 90 && line != "#" {
                    out += line + "\n"
                    line = "#"
                }
                line += " " + word
            }
            out += line + "\n"
        }
        return out
    }

    static func found(_ value: any TOMLValueConvertible) -> String {
        switch value.type {
        case .string: "(found the string \(ConfigRule.quoted(value.string ?? "")))"
        case .int: "(found the integer \(value.int ?? 0))"
        case .double: "(found the number \(value.double ?? 0))"
        case .bool: "(found \(value.bool ?? false))"
        case .table: "(found a section)"
        case .array: "(found a list)"
        case .date, .time, .dateTime: "(found a date or time)"
        }
    }

    /// The candidate within edit distance 2 of `word`, if any (for "did you mean").
    static func closest(to word: String, among candidates: [String]) -> String? {
        let scored = candidates.map { ($0, editDistance(Array(word), Array($0))) }.filter { $0.1 <= 2 }
        return scored.min { $0.1 < $1.1 }?.0
    }

    /// Levenshtein distance: single-character insertions, deletions and substitutions.
    static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var row = Array(0...b.count)
        for i in 1...a.count {
            var diagonal = row[0]
            row[0] = i
            for j in 1...b.count {
                let above = row[j]
                row[j] = min(above + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1))
                diagonal = above
            }
        }
        return row[b.count]
    }
}

/// A `host:port` listening address, as config keys `listen` and `metrics.listen` take it.
///
/// IPv6 hosts are written in brackets (`"[::1]:7700"`); `host` holds them without.
/// Port 0 asks the system for a free port.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public let host: String
    public let port: Int

    public init?(_ text: String) {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            let afterClose = text[text.index(after: close)...]
            guard afterClose.hasPrefix(":") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            portText = afterClose.dropFirst()
            guard host.contains(":") else { return nil }
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            guard !host.contains(":") else { return nil }
        }
        guard !host.isEmpty, !host.contains(where: { $0.isWhitespace || $0 == "/" || $0 == "@" }),
            (1...5).contains(portText.count), portText.allSatisfy(\.isASCII), portText.allSatisfy(\.isNumber),
            let port = Int(portText), (0...65535).contains(port)
        else { return nil }
        self.host = String(host)
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// A config file of one role (node or hub): loading and validating are the same for both.
protocol ConfigFileRole: Sendable {
    static var schema: ConfigSchema<Self> { get }
    static var defaults: Self { get }
    func validate() throws(ConfigError)
}

extension ConfigFileRole {
    static func loadFile(_ path: String) throws(ConfigError) -> Self {
        try parseText(try ConfigFile.read(path), file: path)
    }

    static func parseText(_ text: String, file: String) throws(ConfigError) -> Self {
        let config = try schema.parse(text, file: file, over: defaults)
        do {
            try config.validate()
        } catch {
            throw error.in(file)
        }
        return config
    }
}

extension NodeConfig: ConfigFileRole {}
extension HubConfig: ConfigFileRole {}
