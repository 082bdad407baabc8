import FerryCore
import Foundation
import TOMLKit

/// A standard file that could not be loaded: the file, the place in it, and the problem.
public struct StandardFileError: Error, CustomStringConvertible, Sendable {
    public let file: String
    public let message: String
    public var description: String { "\(file): \(message)" }
}

/// Reads a standard from its TOML file (format in protocol/STANDARD.md).
///
/// Unknown keys are errors, not ignored, so a misspelt `nulable = false` cannot silently
/// change what a column accepts.
public enum StandardFile {
    public static func load(path: String) throws -> Standard {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw StandardFileError(file: path, message: "cannot read the file (\(error.localizedDescription)); check the path")
        }
        return try parse(text, file: path)
    }

    public static func parse(_ text: String, file: String = "<standard>") throws -> Standard {
        do { try TOMLPrecheck.check(text) } catch {
            throw StandardFileError(file: file, message: "line \(error.line): \(error.message)")
        }
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let e as TOMLParseError {
            throw StandardFileError(file: file, message: "line \(e.source.begin.line), column \(e.source.begin.column): \(e.description)")
        }
        do {
            return try readStandard(Section(root, "top level"))
        } catch let e as SectionError {
            throw StandardFileError(file: file, message: e.message)
        } catch let e as CoreError {
            throw StandardFileError(file: file, message: e.message)
        }
    }

    static func readStandard(_ s: Section) throws -> Standard {
        let name = try s.string("name")
        let versionText = try s.string("version")
        guard let version = StandardVersion(parsing: versionText) else {
            throw s.error("version '\(versionText)' is not MAJOR.MINOR.PATCH, e.g. \"1.0.0\"")
        }
        var tables: [TableDefinition] = []
        for t in try s.tables("table") {
            tables.append(try readTable(t))
        }
        var modules: [ModuleDefinition] = []
        for m in try s.optionalTables("module") {
            let name = try m.string("name")
            let mm = m.renamed("module '\(name)'")
            modules.append(ModuleDefinition(name: name, label: try mm.label("label"), industries: try mm.optionalStrings("industries") ?? []))
            try mm.finish()
        }
        var indicators: [IndicatorDefinition] = []
        for i in try s.optionalTables("indicator") { indicators.append(try readIndicator(i)) }
        try s.finish()
        return try Standard(name: name, version: version, tables: tables, indicators: indicators, modules: modules)
    }

    static func readTable(_ s: Section) throws -> TableDefinition {
        let name = try s.string("name")
        let t = s.renamed("table '\(name)'")
        let label = try t.label("label")
        let ownershipText = try t.string("ownership")
        let scope = try t.optionalString("scope")
        let ownership: Ownership
        switch ownershipText {
        case "unit":
            guard let scope else { throw t.error("a unit table needs 'scope', the column naming the row's unit") }
            ownership = .unit(scopeColumn: scope)
        case "hub":
            ownership = .hub(recipientColumn: scope)
        case "local":
            guard scope == nil else { throw t.error("a local table has no 'scope'") }
            ownership = .local
        default:
            throw t.error("ownership '\(ownershipText)' is not one of unit, hub, local")
        }
        let policyText = try t.optionalString("policy") ?? "lww"
        guard let policy = ConflictPolicy(rawValue: policyText) else {
            throw t.error("policy '\(policyText)' is not one of \(ConflictPolicy.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let module = try t.optionalString("module")
        let history = try t.optionalBool("history") ?? false
        let pk = try t.strings("primary_key")
        var columns: [ColumnDefinition] = []
        for c in try t.tables("column") { columns.append(try readColumn(c, table: name)) }
        try t.finish()
        var table = TableDefinition(
            name: name, label: label, ownership: ownership, policy: policy, primaryKey: pk, columns: columns)
        table.module = module
        table.keepsHistory = history
        return table
    }

    static func readColumn(_ s: Section, table: String) throws -> ColumnDefinition {
        let name = try s.string("name")
        let c = s.renamed("table '\(table)', column '\(name)'")
        let typeText = try c.string("type")
        guard let type = ColumnType(rawValue: typeText) else {
            throw c.error("type '\(typeText)' is not one of \(ColumnType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let nullable = try c.optionalBool("nullable") ?? true
        let defaultValue = try c.optionalValue("default", type: type)
        let allowed = try c.optionalValues("allowed", type: type)
        let minimum = try c.optionalNumber("min")
        let maximum = try c.optionalNumber("max")
        let maxLength = try c.optionalInt("max_length")
        let classText = try c.optionalString("classification") ?? "full"
        let maskText = try c.optionalString("mask")
        let classification: Classification
        switch classText {
        case "full": classification = .full
        case "local": classification = .local
        case "masked":
            let rule = maskText ?? "keep-last-4"
            guard let parsed = parseMask(rule) else {
                throw c.error("mask '\(rule)' is not keep-last-N or keep-first-N")
            }
            classification = .masked(parsed)
        default:
            throw c.error("classification '\(classText)' is not one of full, masked, local")
        }
        if maskText != nil, classText != "masked" { throw c.error("'mask' is only for classification = \"masked\"") }
        let label = try c.label("label")
        var reference: ColumnReference? = nil
        if let r = try c.optionalString("references") {
            let parts = r.split(separator: ".").map(String.init)
            guard parts.count == 2 else { throw c.error("references '\(r)' must be written table.column, e.g. \"member.id\"") }
            reference = ColumnReference(table: parts[0], column: parts[1])
        }
        try c.finish()
        return ColumnDefinition(
            name: name, type: type, nullable: nullable, defaultValue: defaultValue, allowedValues: allowed,
            minimum: minimum, maximum: maximum, maxLength: maxLength, classification: classification, label: label,
            references: reference)
    }

    static func readIndicator(_ s: Section) throws -> IndicatorDefinition {
        let id = try s.string("id")
        let i = s.renamed("indicator '\(id)'")
        let periodText = try i.optionalString("period") ?? "quarter"
        guard let period = IndicatorPeriod(rawValue: periodText) else {
            throw i.error("period '\(periodText)' is not one of month, quarter, year")
        }
        func measure(_ key: String) throws -> IndicatorMeasure? {
            guard let m = try i.optionalTable(key) else { return nil }
            var filter: [String: [Value]] = [:]
            if let f = try m.optionalTable("filter") {
                for k in f.table.keys {
                    guard let values = try f.anyValues(k) else { continue }
                    filter[k] = values
                }
                try f.finish()
            }
            let result = IndicatorMeasure(
                table: try m.string("table"), sumColumn: try m.optionalString("sum"), dateColumn: try m.optionalString("date"),
                periodColumn: try m.optionalString("period_column"), filter: filter)
            try m.finish()
            return result
        }
        guard let numerator = try measure("numerator") else { throw i.error("'numerator' is missing") }
        let def = IndicatorDefinition(
            id: id, label: try i.label("label"), unitText: try i.optionalString("unit") ?? "", period: period, numerator: numerator,
            denominator: try measure("denominator"), scale: try i.optionalNumber("scale") ?? 1, target: try i.optionalNumber("target"),
            lowerIsBetter: try i.optionalBool("lower_is_better") ?? false)
        try i.finish()
        return def
    }

    static func parseMask(_ s: String) -> MaskRule? {
        for (prefix, make) in [("keep-last-", MaskRule.keepLast), ("keep-first-", MaskRule.keepFirst)] {
            if s.hasPrefix(prefix), let n = Int(s.dropFirst(prefix.count)), n >= 0 { return make(n) }
        }
        return nil
    }
}

struct SectionError: Error {
    let message: String
}

/// One TOML table being read, remembering which keys were used so leftovers are reported.
final class Section {
    let table: TOMLTable
    let path: String
    private var used = Set<String>()

    init(_ table: TOMLTable, _ path: String) {
        self.table = table
        self.path = path
    }

    func renamed(_ path: String) -> Section {
        let s = Section(table, path)
        s.used = used
        return s
    }

    func error(_ message: String) -> SectionError { SectionError(message: "\(path): \(message)") }

    func raw(_ key: String) -> TOMLValueConvertible? {
        used.insert(key)
        return table[key]
    }

    func optionalString(_ key: String) throws -> String? {
        guard let v = raw(key) else { return nil }
        guard let s = v.string else { throw error("'\(key)' must be a string") }
        return s
    }

    func string(_ key: String) throws -> String {
        guard let s = try optionalString(key) else { throw error("'\(key)' is missing") }
        return s
    }

    func optionalBool(_ key: String) throws -> Bool? {
        guard let v = raw(key) else { return nil }
        guard let b = v.bool else { throw error("'\(key)' must be true or false") }
        return b
    }

    func optionalInt(_ key: String) throws -> Int? {
        guard let v = raw(key) else { return nil }
        guard let i = v.int else { throw error("'\(key)' must be a whole number") }
        return i
    }

    func optionalNumber(_ key: String) throws -> Double? {
        guard let v = raw(key) else { return nil }
        if let i = v.int { return Double(i) }
        guard let d = v.double else { throw error("'\(key)' must be a number") }
        return d
    }

    func strings(_ key: String) throws -> [String] {
        guard let v = raw(key) else { throw error("'\(key)' is missing") }
        guard let a = v.array else { throw error("'\(key)' must be a list of strings") }
        return try a.map { e in
            guard let s = e.string else { throw error("'\(key)' must be a list of strings") }
            return s
        }
    }

    func tables(_ key: String) throws -> [Section] {
        guard let v = raw(key) else { throw error("no [[\(key)]] entries") }
        guard let a = v.array else { throw error("'\(key)' must be written as [[\(key)]] entries") }
        return try a.enumerated().map { (i, e) in
            guard let t = e.table else { throw error("[[\(key)]] entry \(i + 1) is not a table") }
            return Section(t, "\(path) [[\(key)]] \(i + 1)")
        }
    }

    func optionalTables(_ key: String) throws -> [Section] {
        guard table[key] != nil else {
            _ = raw(key)
            return []
        }
        return try tables(key)
    }

    func optionalTable(_ key: String) throws -> Section? {
        guard let v = raw(key) else { return nil }
        guard let t = v.table else { throw error("'\(key)' must be a table { … }") }
        return Section(t, "\(path) \(key)")
    }

    func optionalStrings(_ key: String) throws -> [String]? {
        guard table[key] != nil else { return nil }
        return try strings(key)
    }

    /// A list of strings, whole numbers or booleans (as 0/1), for indicator filters.
    func anyValues(_ key: String) throws -> [Value]? {
        guard let v = raw(key) else { return nil }
        guard let a = v.array else { throw error("'\(key)' must be a list of values") }
        return try a.map { e in
            if let s = e.string { return .text(s) }
            if let b = e.bool { return .integer(b ? 1 : 0) }
            if let n = e.int { return .integer(Int64(n)) }
            throw error("'\(key)' holds a value that is not a string, whole number or boolean")
        }
    }

    func label(_ key: String) throws -> Label? {
        guard let v = raw(key) else { return nil }
        guard let t = v.table else { throw error("'\(key)' must be { zh = \"…\", en = \"…\" }") }
        let s = Section(t, "\(path) \(key)")
        let label = Label(zh: try s.string("zh"), en: try s.string("en"))
        try s.finish()
        return label
    }

    private func value(_ v: TOMLValueConvertible, type: ColumnType, what: String) throws -> Value {
        switch type {
        case .text, .date:
            guard let s = v.string else { throw error("\(what) must be a string for a \(type.rawValue) column") }
            return .text(s)
        case .integer:
            guard let i = v.int else { throw error("\(what) must be a whole number for an integer column") }
            return .integer(Int64(i))
        case .boolean:
            if let b = v.bool { return .integer(b ? 1 : 0) }
            guard let i = v.int, i == 0 || i == 1 else { throw error("\(what) must be true or false") }
            return .integer(Int64(i))
        case .real:
            if let i = v.int { return .real(Double(i)) }
            guard let d = v.double else { throw error("\(what) must be a number for a real column") }
            return .real(d)
        case .blob:
            throw error("\(what) cannot be given for a blob column")
        }
    }

    func optionalValue(_ key: String, type: ColumnType) throws -> Value? {
        guard let v = raw(key) else { return nil }
        return try value(v, type: type, what: "'\(key)'")
    }

    func optionalValues(_ key: String, type: ColumnType) throws -> [Value]? {
        guard let v = raw(key) else { return nil }
        guard let a = v.array else { throw error("'\(key)' must be a list") }
        return try a.map { try value($0, type: type, what: "an entry of '\(key)'") }
    }

    func finish() throws {
        let unknown = table.keys.filter { !used.contains($0) }.sorted()
        if let first = unknown.first {
            throw error("unknown key '\(first)'; see protocol/STANDARD.md for the keys a standard file may use")
        }
    }
}

extension StandardFile {
    /// The party-building standard shipped inside the binary (standards/party-building.toml).
    public static func builtInText() throws -> String {
        guard let url = Bundle.module.url(forResource: "party-building", withExtension: "toml") else {
            throw StandardFileError(file: "party-building.toml", message: "the built-in standard is missing from this build; reinstall Ferry")
        }
        return try String(contentsOf: url, encoding: .utf8)
    }

    public static func builtIn() throws -> Standard {
        try parse(try builtInText(), file: "built-in party-building.toml")
    }
}
