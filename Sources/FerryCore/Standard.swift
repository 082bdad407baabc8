/// A standard's version: `major.minor.patch`.
///
/// Minor and patch versions only add (tables, columns, allowed values, labels); a new
/// major version may break and needs an explicit migration.
public struct StandardVersion: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var major: UInt32
    public var minor: UInt32
    public var patch: UInt32

    public init(_ major: UInt32, _ minor: UInt32, _ patch: UInt32) {
        self.major = major
        self.minor = minor
        self.patch = patch
    }

    /// Parses `"1.2.3"`; `nil` when the text is not three dot-separated whole numbers.
    public init?(parsing text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let a = UInt32(parts[0]), let b = UInt32(parts[1]), let c = UInt32(parts[2]) else {
            return nil
        }
        self.init(a, b, c)
    }

    public static func < (l: StandardVersion, r: StandardVersion) -> Bool {
        (l.major, l.minor, l.patch) < (r.major, r.minor, r.patch)
    }

    public var description: String { "\(major).\(minor).\(patch)" }
}

/// A label in the two languages every clerk-facing text exists in.
public struct Label: Hashable, Sendable {
    public var zh: String
    public var en: String
    public init(zh: String, en: String) {
        self.zh = zh
        self.en = en
    }
}

/// Who owns a table's rows, and so who may write them and where they travel.
public enum Ownership: Hashable, Sendable {
    /// Rows belong to one unit, named by `scopeColumn`; only that unit (and its
    /// supervisors) write them, and only that unit receives them back.
    case unit(scopeColumn: String)
    /// Reference data maintained by the hub. Units read it but never write it. When
    /// `recipientColumn` is set, a row goes only to the unit it names (NULL: to every unit).
    case hub(recipientColumn: String?)
    /// Never synced: the unit's own working table.
    case local
}

/// How a table settles two concurrent writes of the same cell. Every replica applies the
/// same rule to the same versions, so every replica picks the same winner.
public enum ConflictPolicy: String, Hashable, Sendable, CaseIterable {
    /// The causally later edit wins; among concurrent edits the one with the higher
    /// hybrid logical clock, then the higher node id.
    case lww
    /// A supervisor's (hub's) edit beats a concurrent unit edit whatever the clocks; a
    /// unit edit made after seeing the supervisor's wins. Otherwise as `lww`.
    case supervisorWins = "supervisor-wins"
    /// Rows are immutable once written: local updates and deletes are refused, and a
    /// concurrent second version of a cell is logged as a conflict; the earliest stays.
    case appendOnly = "append-only"
    /// Concurrent edits are held for a human: the earliest concurrent value stays on every
    /// replica and the others wait in the conflict log as `held` until someone resolves them.
    case review
}

/// Where a column's value may travel.
public enum Classification: Hashable, Sendable {
    /// Synced as is.
    case full
    /// Leaves the unit only masked: all but the kept characters replaced by `*`.
    case masked(MaskRule)
    /// Never leaves the unit (identity-card numbers).
    case local
}

/// How a `masked` column is reduced before it leaves the unit.
public enum MaskRule: Hashable, Sendable {
    case keepLast(Int)
    case keepFirst(Int)

    /// The masked form of `value`; non-text values are masked through their text form.
    public func apply(to value: Value) -> Value {
        let text: String
        switch value {
        case .null: return .null
        case .text(let s): text = s
        case .integer(let i): text = String(i)
        case .real(let d): text = String(d)
        case .blob: return .null
        }
        let chars = Array(text)
        switch self {
        case .keepLast(let n):
            let keep = min(n, chars.count)
            return .text(String(repeating: "*", count: chars.count - keep) + String(chars.suffix(keep)))
        case .keepFirst(let n):
            let keep = min(n, chars.count)
            return .text(String(chars.prefix(keep)) + String(repeating: "*", count: chars.count - keep))
        }
    }
}

/// A column's storage type. `date` is TEXT in `YYYY-MM-DD` form that must be a real
/// calendar date; `boolean` is INTEGER 0 or 1.
public enum ColumnType: String, Hashable, Sendable, CaseIterable {
    case text, integer, real, blob, date, boolean

    /// The SQLite STRICT-table type the column is stored as.
    public var sqliteType: String {
        switch self {
        case .text, .date: return "TEXT"
        case .integer, .boolean: return "INTEGER"
        case .real: return "REAL"
        case .blob: return "BLOB"
        }
    }

    /// Whether `value` has this column's storage class (NULL is checked separately).
    public func accepts(_ value: Value) -> Bool {
        switch (self, value) {
        case (_, .null): return true
        case (.text, .text), (.date, .text), (.blob, .blob), (.integer, .integer): return true
        case (.real, .real), (.real, .integer): return true
        case (.boolean, .integer(let i)): return i == 0 || i == 1
        default: return false
        }
    }
}

/// One column of a standard table.
public struct ColumnDefinition: Hashable, Sendable {
    public var name: String
    public var type: ColumnType
    public var nullable: Bool
    /// The value a new row gets when none is written; required for `local` columns that
    /// are NOT NULL, since receivers never see their values.
    public var defaultValue: Value?
    /// When set, the only values the column may hold (besides NULL if nullable).
    public var allowedValues: [Value]?
    /// Inclusive bounds for numbers.
    public var minimum: Double?
    public var maximum: Double?
    /// Maximum length in characters for text.
    public var maxLength: Int?
    public var classification: Classification
    public var label: Label?
    /// `table.column` this column's value must exist in (checked where the unit writes).
    public var references: ColumnReference?

    public init(
        name: String, type: ColumnType, nullable: Bool = true, defaultValue: Value? = nil,
        allowedValues: [Value]? = nil, minimum: Double? = nil, maximum: Double? = nil,
        maxLength: Int? = nil, classification: Classification = .full, label: Label? = nil,
        references: ColumnReference? = nil
    ) {
        self.references = references
        self.name = name
        self.type = type
        self.nullable = nullable
        self.defaultValue = defaultValue
        self.allowedValues = allowedValues
        self.minimum = minimum
        self.maximum = maximum
        self.maxLength = maxLength
        self.classification = classification
        self.label = label
    }

    /// Whether values of this column ever leave the replica that wrote them.
    public var isSynced: Bool { classification != .local }

    /// Reads what a person typed (a clerk's `ferry record`, a supervisor's correction on the
    /// dashboard) as a value of this column, checked against the column: the one parser
    /// from typed text to a value. `NULL`, or nothing typed for a column that is not text,
    /// is NULL; whole numbers for integers; `1/0`, `true/false`, `yes/no`, `是/否` for
    /// booleans; finite numbers for reals; text and dates as typed (trimmed of spaces
    /// around them, except in text). Blobs cannot be typed.
    public func value(typed raw: String) -> Result<Value, ValueProblem> {
        // FerryCore has no Foundation: spaces and tabs trimmed by hand.
        let blank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        let text = type == .text ? raw : String(raw.drop(while: blank).reversed().drop(while: blank).reversed())
        let value: Value
        switch type {
        case _ where text == "NULL" || (text.isEmpty && type != .text):
            value = .null
        case .integer:
            guard let i = Int64(text) else { return .failure(ValueProblem(.wrongType, "must be a whole number, not '\(text)'", "应为整数，而不是 “\(text)”")) }
            value = .integer(i)
        case .boolean:
            switch text.lowercased() {
            case "1", "true", "yes", "是": value = .integer(1)
            case "0", "false", "no", "否": value = .integer(0)
            default: return .failure(ValueProblem(.wrongType, "must be yes or no (1 or 0), not '\(text)'", "应为 是 或 否（1 或 0），而不是 “\(text)”"))
            }
        case .real:
            guard let d = Double(text), d.isFinite else { return .failure(ValueProblem(.wrongType, "must be a number, not '\(text)'", "应为数字，而不是 “\(text)”")) }
            value = .real(d)
        case .blob:
            return .failure(ValueProblem(.wrongType, "holds a file or binary data, which cannot be typed", "存放文件或二进制数据，不能直接输入"))
        case .text, .date:
            value = .text(text)
        }
        if let p = problem(with: value) { return .failure(p) }
        return .success(value)
    }

    /// Checks one value against the column's type and checks; `nil` when it is acceptable.
    public func problem(with value: Value) -> ValueProblem? {
        if value.isNull {
            return nullable ? nil : ValueProblem(.notAllowed, "must not be empty (NULL)", "不能为空")
        }
        guard type.accepts(value) else {
            return ValueProblem(
                .wrongType, "has type \(value.typeName) but the column is \(type.rawValue)",
                "类型为 \(value.typeName)，但该列应为 \(type.rawValue)")
        }
        if let p = value.storageProblem { return p }
        if let allowed = allowedValues, !allowed.contains(value) {
            let list = allowed.map(\.description).joined(separator: ", ")
            return ValueProblem(.notAllowed, "is not one of the allowed values (\(list))", "不是允许的取值（\(list)）")
        }
        if type == .date, case .text(let s) = value, !DateCheck.isCalendarDate(s) {
            return ValueProblem(.notAllowed, "is not a calendar date in YYYY-MM-DD form", "不是有效日期（格式 YYYY-MM-DD）")
        }
        let number: Double? = {
            switch value {
            case .integer(let i): return Double(i)
            case .real(let d): return d
            default: return nil
            }
        }()
        if let n = number, let lo = minimum, n < lo {
            return ValueProblem(.notAllowed, "is below the minimum \(lo)", "小于最小值 \(lo)")
        }
        if let n = number, let hi = maximum, n > hi {
            return ValueProblem(.notAllowed, "is above the maximum \(hi)", "大于最大值 \(hi)")
        }
        // Code points, as SQLite's length() counts them.
        if let limit = maxLength, case .text(let s) = value, s.unicodeScalars.count > limit {
            return ValueProblem(.notAllowed, "is longer than \(limit) characters", "超过 \(limit) 个字符")
        }
        return nil
    }
}

/// Why a value does not fit its column, in English and Chinese.
public struct ValueProblem: Error, Sendable, Equatable {
    public var code: CoreError.Code
    public var english: String
    public var chinese: String
    public init(_ code: CoreError.Code, _ english: String, _ chinese: String) {
        self.code = code
        self.english = english
        self.chinese = chinese
    }
}

extension Value {
    /// Why SQLite could not store the value as it is, or nil: a NaN real is stored as NULL,
    /// an infinity compares past every bound, and text is cut at a NUL byte when read back,
    /// so none of them can be stored and read back unchanged on every replica.
    public var storageProblem: ValueProblem? {
        switch self {
        case .real(let d) where !d.isFinite:
            return ValueProblem(.notAllowed, "is not a finite number", "不是有效的数值")
        case .text(let t) where t.utf8.contains(0):
            return ValueProblem(.notAllowed, "contains a NUL character (U+0000)", "含有空字符（U+0000）")
        default:
            return nil
        }
    }

    /// The SQLite storage class name, as `typeof()` prints it.
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .integer: return "integer"
        case .real: return "real"
        case .text: return "text"
        case .blob: return "blob"
        }
    }
}

/// Calendar-date checking without Foundation's calendar (the core reads no locale or clock).
enum DateCheck {
    static func isCalendarDate(_ s: String) -> Bool {
        let b = Array(s.utf8)
        guard b.count == 10, b[4] == 0x2D, b[7] == 0x2D else { return false }
        func num(_ r: Range<Int>) -> Int? {
            var v = 0
            for i in r {
                guard b[i] >= 0x30 && b[i] <= 0x39 else { return nil }
                v = v * 10 + Int(b[i] - 0x30)
            }
            return v
        }
        guard let y = num(0..<4), let m = num(5..<7), let d = num(8..<10), y >= 1, (1...12).contains(m) else {
            return false
        }
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]
        return (1...days).contains(d)
    }
}

/// A column another column's values must be found in (`member.id`).
public struct ColumnReference: Hashable, Sendable, CustomStringConvertible {
    public var table: String
    public var column: String
    public init(table: String, column: String) {
        self.table = table
        self.column = column
    }
    public var description: String { "\(table).\(column)" }
}

/// One table of a standard.
public struct TableDefinition: Hashable, Sendable {
    public var name: String
    public var label: Label?
    /// The optional module the table belongs to (nil: every unit has it).
    public var module: String?
    /// The hub keeps every value a unit's later write replaced (`superseded` in its conflict
    /// log, status `history`), so supervisors can see how a record was corrected.
    public var keepsHistory = false
    public var ownership: Ownership
    public var policy: ConflictPolicy
    /// Primary key column names, 1 to 4 of them, in key order.
    public var primaryKey: [String]
    /// Columns in their stable order; later versions only append.
    public var columns: [ColumnDefinition] {
        didSet { columnIndex = Self.index(columns) }
    }
    private var columnIndex: [String: Int]

    static func index(_ columns: [ColumnDefinition]) -> [String: Int] {
        var d: [String: Int] = [:]
        for (i, c) in columns.enumerated() where d[c.name] == nil { d[c.name] = i }
        return d
    }

    public init(
        name: String, label: Label? = nil, ownership: Ownership, policy: ConflictPolicy,
        primaryKey: [String], columns: [ColumnDefinition]
    ) {
        self.name = name
        self.label = label
        self.ownership = ownership
        self.policy = policy
        self.primaryKey = primaryKey
        self.columns = columns
        self.columnIndex = Self.index(columns)
    }

    public func column(named name: String) -> ColumnDefinition? { columnIndex[name].map { columns[$0] } }
    public func columnIndex(named name: String) -> Int? { columnIndex[name] }

    /// The column naming the unit a row belongs to (unit tables) or is meant for (hub tables).
    public var scopeColumn: String? {
        switch ownership {
        case .unit(let c): return c
        case .hub(let c): return c
        case .local: return nil
        }
    }

    public var isSynced: Bool { ownership != .local }
    public var isUnitWritable: Bool {
        if case .unit = ownership { return true }
        return false
    }

    /// The table and a column as a Chinese text names them for a clerk: the standard's
    /// labels, the ids beside them for whoever must find them in the database
    /// (「党员」的「党员状态」(member.status)).
    public func chineseName(of column: String) -> String {
        let c = self.column(named: column)?.label?.zh ?? column
        return "「\(label?.zh ?? name)」的「\(c)」(\(name).\(column))"
    }

    /// The table as a Chinese text names it: 「党员」(member).
    public var chineseName: String { "「\(label?.zh ?? name)」(\(name))" }

    /// The column a person would name a record by on a screen (a member's name, a
    /// meeting's topic, a course's title): the first synced, unmasked text column called
    /// `name`, `title`, `topic` or `subject`; nil when the table has none (its key is shown).
    public var titleColumn: String? {
        for wanted in ["name", "title", "topic", "subject"] {
            if let c = column(named: wanted), c.type == .text, c.classification == .full, !primaryKey.contains(wanted) { return c.name }
        }
        return nil
    }

    /// Indices of the columns that carry synced values, in column order.
    public var syncedColumnIndices: [Int] { columns.indices.filter { columns[$0].isSynced } }
    public var primaryKeyIndices: [Int] { primaryKey.map { columnIndex(named: $0)! } }
}

/// A standard: the shared schema all replicas of a deployment follow.
///
/// Build one with `init(name:version:tables:)`, which validates it; a standard that exists
/// is valid.
public struct Standard: Hashable, Sendable {
    public let name: String
    public let version: StandardVersion
    public let tables: [TableDefinition]
    public let indicators: [IndicatorDefinition]
    public let modules: [ModuleDefinition]
    private let index: [String: Int]

    /// The largest number of synced columns a table may have (capture records changed
    /// columns in one 63-bit mask).
    public static let maxSyncedColumns = 63
    public static let maxPrimaryKeyColumns = 4

    public init(
        name: String, version: StandardVersion, tables: [TableDefinition], indicators: [IndicatorDefinition] = [],
        modules: [ModuleDefinition] = []
    ) throws(CoreError) {
        var index: [String: Int] = [:]
        for (i, t) in tables.enumerated() {
            try Standard.validate(t)
            guard index[t.name] == nil else {
                throw CoreError(.invalidStandard, "table '\(t.name)' is defined twice")
            }
            index[t.name] = i
        }
        guard !tables.isEmpty else { throw CoreError(.invalidStandard, "the standard defines no tables") }
        self.name = name
        self.version = version
        self.tables = tables
        self.index = index
        self.indicators = indicators
        self.modules = modules
        let moduleNames = Set(modules.map(\.name))
        for t in tables {
            if let m = t.module, !moduleNames.contains(m) {
                throw CoreError(.invalidStandard, "table '\(t.name)': module '\(m)' is not defined in a [[module]] entry")
            }
            for c in t.columns {
                guard let r = c.references else { continue }
                guard let target = self.table(named: r.table), let tc = target.column(named: r.column) else {
                    throw CoreError(.invalidStandard, "table '\(t.name)', column '\(c.name)': references \(r), which is not defined")
                }
                guard target.primaryKey == [r.column] else {
                    throw CoreError(.invalidStandard, "table '\(t.name)', column '\(c.name)': references \(r), which is not the single-column key of '\(r.table)'")
                }
                guard tc.type == c.type else {
                    throw CoreError(
                        .invalidStandard,
                        "table '\(t.name)', column '\(c.name)' is \(c.type.rawValue) but references \(r), which is \(tc.type.rawValue); a reference and its key have one type")
                }
            }
        }
        var seen = Set<String>()
        for i in indicators {
            guard seen.insert(i.id).inserted else { throw CoreError(.invalidStandard, "indicator '\(i.id)' is defined twice") }
            try validateIndicator(i)
        }
    }

    public func table(named name: String) -> TableDefinition? { index[name].map { tables[$0] } }
    public func tableIndex(named name: String) -> Int? { index[name] }
    public var syncedTables: [TableDefinition] { tables.filter(\.isSynced) }

    static func isIdentifier(_ s: String) -> Bool {
        let b = Array(s.utf8)
        guard (1...48).contains(b.count), let first = b.first, first >= 0x61 && first <= 0x7A else { return false }
        return b.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F }
    }

    static func validate(_ t: TableDefinition) throws(CoreError) {
        func fail(_ what: String) -> CoreError { CoreError(.invalidStandard, "table '\(t.name)': \(what)") }
        guard isIdentifier(t.name), !t.name.hasPrefix("ferry_") else {
            throw fail("the name must be 1–48 characters of a–z, 0–9 and _, start with a letter, and not start with 'ferry_'")
        }
        guard !t.columns.isEmpty else { throw fail("has no columns") }
        var seen = Set<String>()
        for c in t.columns {
            guard isIdentifier(c.name) else {
                throw fail("column '\(c.name)': the name must be 1–48 characters of a–z, 0–9 and _, starting with a letter")
            }
            guard seen.insert(c.name).inserted else { throw fail("column '\(c.name)' is defined twice") }
            if let d = c.defaultValue, let p = c.problem(with: d) {
                throw fail("column '\(c.name)': the default value \(d) \(p.english)")
            }
            if let allowed = c.allowedValues {
                guard !allowed.isEmpty else { throw fail("column '\(c.name)': the allowed values list is empty") }
                for v in allowed where !c.type.accepts(v) || v.isNull {
                    throw fail("column '\(c.name)': the allowed value \(v) is not a \(c.type.rawValue)")
                }
            }
            if c.classification == .local, !c.nullable, c.defaultValue == nil {
                throw fail("column '\(c.name)' is local (never leaves the unit) and NOT NULL, so it needs a default for the replicas that never see it")
            }
            if case .masked(let rule) = c.classification {
                guard c.type == .text else { throw fail("column '\(c.name)': only text columns can be masked") }
                switch rule {
                case .keepFirst(let n), .keepLast(let n):
                    guard n >= 0 else { throw fail("column '\(c.name)': the mask must keep 0 or more characters") }
                }
            }
            if c.minimum != nil || c.maximum != nil, c.type != .integer && c.type != .real {
                throw fail("column '\(c.name)': min and max apply to integer and real columns only")
            }
            if c.maxLength != nil, c.type != .text {
                throw fail("column '\(c.name)': max_length applies to text columns only")
            }
            if let lo = c.minimum, let hi = c.maximum, lo > hi {
                throw fail("column '\(c.name)': minimum \(lo) is above maximum \(hi)")
            }
        }
        guard (1...maxPrimaryKeyColumns).contains(t.primaryKey.count) else {
            throw fail("the primary key must name 1 to \(maxPrimaryKeyColumns) columns")
        }
        guard Set(t.primaryKey).count == t.primaryKey.count else { throw fail("the primary key names a column twice") }
        for k in t.primaryKey {
            guard let c = t.column(named: k) else { throw fail("the primary key names column '\(k)', which is not defined") }
            guard !c.nullable else { throw fail("primary key column '\(k)' must be NOT NULL (nullable = false)") }
            guard c.classification == .full else { throw fail("primary key column '\(k)' must be classified full") }
            guard [.text, .integer, .date].contains(c.type) else {
                throw fail("primary key column '\(k)' must be text, integer or date")
            }
        }
        if let s = t.scopeColumn {
            guard let c = t.column(named: s) else { throw fail("the scope column '\(s)' is not defined") }
            guard c.type == .text, c.classification == .full else {
                throw fail("the scope column '\(s)' must be a text column classified full")
            }
            if case .unit = t.ownership, c.nullable {
                throw fail("the scope column '\(s)' of a unit table must be NOT NULL (nullable = false)")
            }
        }
        if case .unit = t.ownership {} else if t.policy == .supervisorWins {
            throw fail("policy 'supervisor-wins' only makes sense for unit tables (the hub alone writes the others)")
        }
        guard t.syncedColumnIndices.count <= maxSyncedColumns else {
            throw fail("has \(t.syncedColumnIndices.count) synced columns; at most \(maxSyncedColumns) are supported")
        }
    }
}
