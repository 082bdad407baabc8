import FerryCore
import FerryStore
import Foundation

/// A clerk's record entry (`ferry record add` and `set`): values typed as `column=value`,
/// checked against the standard before anything is written, the unit's own id filled in,
/// every missing field named at once by the standard's label, and each refusal said in
/// Chinese and English with what to do — never SQL, a SQLite code or a Swift type.
public struct RecordEntry: Sendable {
    public let store: ReplicaStore
    /// This node's unit, written into the scope column of a unit table when not typed.
    public let unitID: String

    public init(store: ReplicaStore, unitID: String) {
        self.store = store
        self.unitID = unitID
    }

    /// Why an entry was refused; nothing was written.
    public struct Refusal: Error, CustomStringConvertible, Sendable, Equatable {
        public var zh: String
        public var en: String
        public var description: String { "\(zh)\n\(en)" }
        init(_ zh: String, _ en: String) {
            self.zh = zh
            self.en = en
        }
    }

    /// "成员表（member）" / "members (member)": the standard's label with the name to type.
    static func named(_ t: TableDefinition) -> (zh: String, en: String) {
        (t.label.map { "\($0.zh)（\(t.name)）" } ?? t.name, t.label.map { "\($0.en) (\(t.name))" } ?? t.name)
    }

    static func named(_ c: ColumnDefinition) -> (zh: String, en: String) {
        (c.label.map { "\($0.zh)（\(c.name)）" } ?? c.name, c.label.map { "\($0.en) (\(c.name))" } ?? c.name)
    }

    /// A value as the clerk typed it: text without quotes.
    public static func plain(_ v: Value) -> String {
        if case .text(let t) = v { return t }
        return v.description
    }

    func table(_ name: String) throws(Refusal) -> TableDefinition {
        guard let t = store.standard.table(named: name) else {
            let names = store.standard.tables.filter(\.isUnitWritable).map(\.name).joined(separator: ", ")
            throw Refusal("数据标准中没有表 \(name)。可录入的表：\(names)", "the standard has no table '\(name)'; tables a unit writes: \(names)")
        }
        guard t.isUnitWritable else {
            let (zh, en) = Self.named(t)
            throw Refusal("\(zh)由上级维护，本单位不能录入或修改", "\(en) is kept by the hub; a unit cannot add or change its rows")
        }
        return t
    }

    /// Parses `column=value` pairs by the columns' types and checks every value.
    public func values(_ pairs: [String], of t: TableDefinition) throws(Refusal) -> [(ColumnDefinition, Value)] {
        var out: [(ColumnDefinition, Value)] = []
        var problems: [(String, String)] = []
        for pair in pairs {
            guard let eq = pair.firstIndex(of: "=") else {
                throw Refusal("“\(pair)” 不是 列名=值 的形式，例如 name=张三", "'\(pair)' is not column=value, e.g. name=张三")
            }
            let name = String(pair[..<eq])
            let text = String(pair[pair.index(after: eq)...])
            guard let col = t.column(named: name) else {
                let (zh, en) = Self.named(t)
                let list = t.columns.map(\.name).joined(separator: ", ")
                throw Refusal("\(zh)没有列 \(name)。可用的列：\(list)", "\(en) has no column '\(name)'; its columns: \(list)")
            }
            if out.contains(where: { $0.0.name == name }) {
                throw Refusal("列 \(name) 写了两次", "column \(name) is given twice")
            }
            let (czh, cen) = Self.named(col)
            let value: Value
            switch col.value(typed: text) {
            case .success(let v): value = v
            case .failure(let p):
                problems.append(("\(czh)\(p.chinese)", "\(cen) \(p.english)"))
                continue
            }
            out.append((col, value))
        }
        if !problems.isEmpty {
            throw Refusal(problems.map(\.0).joined(separator: "；"), problems.map(\.1).joined(separator: "; "))
        }
        return out
    }

    /// Inserts a row; returns its key as typed.
    @discardableResult
    public func add(table name: String, _ pairs: [String]) throws(Refusal) -> [Value] {
        let t = try table(name)
        var vals = try values(pairs, of: t)
        if let scope = t.scopeColumn {
            if let given = vals.first(where: { $0.0.name == scope }), given.1 != .text(unitID) {
                throw Refusal(
                    "\(scope) 应为本单位的编号 \(unitID)（可以不填，会自动填写）", "\(scope) must be this unit's id \(unitID) (leave it out and it is filled in)")
            }
            if !vals.contains(where: { $0.0.name == scope }), let col = t.column(named: scope) { vals.append((col, .text(unitID))) }
        }
        let missing = t.columns.filter { c in !c.nullable && c.defaultValue == nil && !vals.contains { $0.0.name == c.name } }
        if !missing.isEmpty {
            let (tzh, ten) = Self.named(t)
            throw Refusal(
                "\(tzh)还缺必填项：\(missing.map { Self.named($0).zh }.joined(separator: "、"))。请补上 列名=值 后再录入",
                "\(ten) still needs: \(missing.map { Self.named($0).en }.joined(separator: ", ")); add them as column=value")
        }
        let key = t.primaryKey.compactMap { k in vals.first { $0.0.name == k }?.1 }
        do {
            try store.execute(
                "INSERT INTO \"\(t.name)\" (\(vals.map { "\"\($0.0.name)\"" }.joined(separator: ", "))) VALUES (\(vals.map { _ in "?" }.joined(separator: ", ")))",
                vals.map(\.1))
        } catch { throw Self.translate(error, t, key: key) }
        return key
    }

    /// Changes columns of the row with this key (single-column keys); a row that does not
    /// exist is refused, not reported as updated.
    public func set(table name: String, id: String, _ pairs: [String]) throws(Refusal) {
        let t = try table(name)
        let (tzh, ten) = Self.named(t)
        guard t.primaryKey.count == 1, let keyColumn = t.column(named: t.primaryKey[0]) else {
            throw Refusal("\(tzh)的主键由多列组成，请用 sqlite3 或业务系统修改", "\(ten) has a key of several columns; change it in sqlite3 or the business system")
        }
        let vals = try values(pairs, of: t)
        guard !vals.isEmpty else { throw Refusal("没有要修改的列；请写 列名=值", "nothing to change; give column=value") }
        if let v = vals.first(where: { t.primaryKey.contains($0.0.name) || $0.0.name == t.scopeColumn }) {
            throw Refusal("\(Self.named(v.0).zh)不能修改（它标识这条记录）", "\(Self.named(v.0).en) cannot be changed (it identifies the row)")
        }
        let key: Value = keyColumn.type == .integer ? (Int64(id).map(Value.integer) ?? .text(id)) : .text(id)
        let changed: Int
        do {
            changed = try store.executeCountingChanges(
                "UPDATE \"\(t.name)\" SET \(vals.map { "\"\($0.0.name)\" = ?" }.joined(separator: ", ")) WHERE \"\(keyColumn.name)\" = ?",
                vals.map(\.1) + [key])
        } catch { throw Self.translate(error, t, key: [key]) }
        guard changed > 0 else {
            throw Refusal(
                "\(tzh)中没有 \(keyColumn.name) 为 \(id) 的记录，未做任何修改。请核对编号，或用 ferry record add 新增",
                "\(ten) has no row with \(keyColumn.name) \(id); nothing was changed. Check the id, or add it with ferry record add")
        }
    }

    /// What SQLite refused, in the clerk's words.
    static func translate(_ error: any Error, _ t: TableDefinition, key: [Value]) -> Refusal {
        let (tzh, ten) = named(t)
        let text = "\(error)"
        let keyText = key.map(plain).joined(separator: ", ")
        if text.contains("UNIQUE constraint failed") || text.contains("PRIMARY KEY") {
            return Refusal("\(tzh)中已有编号为 \(keyText) 的记录；要修改请用 ferry record set", "\(ten) already has a row \(keyText); change it with ferry record set")
        }
        if text.contains("FOREIGN KEY constraint failed") {
            return Refusal("\(tzh)中引用的记录不存在（例如所属支部编号有误），请核对", "a row \(ten) refers to does not exist (a branch id typed wrong?); check the ids")
        }
        if text.contains("database is locked") || text.contains("SQLite error 5") {
            return Refusal("数据库正被其他程序占用（例如打开着的 sqlite3），请稍后再试", "the database is busy in another program (an open sqlite3 shell?); try again shortly")
        }
        if text.contains("SQLite error 13") || text.contains("disk is full") {
            return Refusal("磁盘已满，未能保存。请清理磁盘空间后再试", "the disk is full; nothing was saved. Free some space and try again")
        }
        // SQLite's text ends with the statement it ran: never shown to a clerk.
        let said = text.range(of: " - while executing").map { String(text[..<$0.lowerBound]) } ?? text
        if let ferry = said.range(of: "ferry: ") {
            // Ferry's own guards say what they refuse, "ferry: English / 中文".
            let parts = said[ferry.upperBound...].components(separatedBy: " / ")
            let en = parts.first ?? ""
            return Refusal("未能保存：\(parts.count > 1 ? parts[1] : en)", "not saved: \(en)")
        }
        let reason = said.replacingOccurrences(of: #"SQLite error \d+: "#, with: "", options: .regularExpression)
        return Refusal("未能保存到\(tzh)，未做任何改动（\(reason)）", "could not save into \(ten); nothing was changed (\(reason))")
    }
}
