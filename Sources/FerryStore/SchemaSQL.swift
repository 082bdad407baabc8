import FerryCore

/// SQL text for a standard's tables, capture triggers and guards.
///
/// Capture is done with triggers so that writes by *any* process are recorded: the node,
/// another program, or a clerk in the `sqlite3` shell. Triggers use only SQLite built-ins
/// (no application functions), because the shell has none of ours.
public enum SchemaSQL {
    /// `identifier` as a double-quoted SQL identifier.
    public static func quote(_ identifier: String) -> String {
        // Standard identifiers are validated to a–z, 0–9 and _, so the common path only wraps.
        if !identifier.utf8.contains(0x22) { return "\"" + identifier + "\"" }
        return "\"" + identifier.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// `v` as an SQL literal.
    public static func literal(_ v: Value) -> String {
        switch v {
        case .null: return "NULL"
        case .integer(let i): return String(i)
        case .real(let d): return String(d)
        case .text(let s): return "'" + s.replacingOccurrences(of: "'", with: "''") + "'"
        case .blob(let b):
            return "x'" + b.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined() + "'"
        }
    }

    static func message(_ s: String) -> String { s.replacingOccurrences(of: "'", with: "''") }

    /// `CREATE TABLE` for a standard table: STRICT types, NOT NULL, defaults, and one named
    /// CHECK per rule so SQLite's error names the column and the rule in both languages.
    ///
    /// At a hub a unit table's primary key is (unit, key…), so every unit has its own keys
    /// (`scopedKey`).
    static func createTable(_ t: TableDefinition, scopedKey: Bool = false) -> String {
        var lines: [String] = []
        for c in t.columns {
            var line = "  \(quote(c.name)) \(c.type.sqliteType)"
            if !c.nullable { line += " NOT NULL" }
            if let d = c.defaultValue { line += " DEFAULT \(literal(d))" }
            let q = quote(c.name)
            func check(_ rule: String, _ en: String, _ zh: String) {
                let name = "\(t.name).\(c.name): \(en) / \(zh)"
                line += " CONSTRAINT \(quote(name)) CHECK (\(rule))"
            }
            // A key names the row on every replica; text cut at a NUL byte when read back would
            // name another one.
            if t.primaryKey.contains(c.name), c.type == .text || c.type == .date {
                check("instr(\(q), char(0)) = 0", "must not contain a NUL character", "不能含有空字符")
            }
            // A masked column holds only the masked form away from its unit, which no
            // longer matches allowed values or formats: check its type alone.
            if case .masked = c.classification {
                lines.append(line)
                continue
            }
            if let allowed = c.allowedValues {
                let list = allowed.map(literal).joined(separator: ", ")
                check("\(q) IN (\(list))", "not an allowed value (\(list))", "取值不在允许范围（\(list)）")
            }
            if c.type == .date {
                check("date(\(q), '+0 days') IS \(q)", "not a calendar date YYYY-MM-DD", "不是有效日期 YYYY-MM-DD")
            }
            if c.type == .boolean { check("\(q) IN (0, 1)", "must be 0 or 1", "只能是 0 或 1") }
            if let lo = c.minimum { check("\(q) >= \(lo)", "below the minimum \(lo)", "小于最小值 \(lo)") }
            if let hi = c.maximum { check("\(q) <= \(hi)", "above the maximum \(hi)", "大于最大值 \(hi)") }
            if let n = c.maxLength { check("length(\(q)) <= \(n)", "longer than \(n) characters", "超过 \(n) 个字符") }
            lines.append(line)
        }
        let key = (scopedKey ? [t.scopeColumn!] : []) + t.primaryKey
        lines.append("  PRIMARY KEY (\(key.map(quote).joined(separator: ", ")))")
        return "CREATE TABLE IF NOT EXISTS \(quote(t.name)) (\n\(lines.joined(separator: ",\n"))\n) STRICT"
    }

    /// Guards stand down while Ferry applies a peer's changes: Ferry's own connection attaches
    /// an empty in-memory database under this name around the apply transaction, which no
    /// other connection has (a table any program could insert into would let it write
    /// unguarded). The cheap condition of each guard comes first, so the lookup runs only
    /// when a guard would fire.
    static let applyMarker = "ferry_applying"
    static let notApplying = "NOT EXISTS (SELECT 1 FROM pragma_database_list WHERE name = '\(applyMarker)')"

    /// Capture triggers carry no condition (a clerk's write pays for one small insert and
    /// nothing else); Ferry's own apply connection drops its capture rows with this TEMP
    /// trigger, which no other connection has.
    static let suppressCaptureWhileApplying = [
        "CREATE TEMP TRIGGER IF NOT EXISTS ferry_capture_suppressed BEFORE INSERT ON main.ferry_capture WHEN EXISTS (SELECT 1 FROM pragma_database_list WHERE name = '\(applyMarker)') BEGIN SELECT RAISE(IGNORE); END"
    ]

    /// The write time a capture records: wall-clock ms, the same value for every row of one
    /// statement. Ferry adds its known offset to the hub when it stamps the capture.
    static let captureTime = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"

    enum Op: Int {
        case insert = 1, update = 2, delete = 3
    }

    /// Capture and guard triggers for `t` on a replica with `role`, numbered `tableID`.
    static func triggers(_ t: TableDefinition, tableID: Int, role: ReplicaRole, standard: Standard) -> [String] {
        guard t.isSynced else { return [] }
        let name = quote(t.name)
        let keys = t.primaryKey
        let synced = t.syncedColumnIndices.map { t.columns[$0].name }
        let scopeExpr: (String) -> String = { row in t.scopeColumn.map { "\(row).\(quote($0))" } ?? "NULL" }
        let isHub: Bool = { if case .hub = role { return true } else { return false } }()
        func capture(_ op: Op, mask: String, row: String) -> String {
            let kcols = (1...keys.count).map { "k\($0)" }.joined(separator: ", ")
            let kvals = keys.map { "\(row).\(quote($0))" }.joined(separator: ", ")
            return "INSERT INTO ferry_capture (tbl, op, mask, scope, at, \(kcols)) VALUES (\(tableID), \(op.rawValue), \(mask), \(scopeExpr(row)), \(captureTime), \(kvals));"
        }
        // One update trigger per synced column, `AFTER UPDATE OF` it: SQLite codes into an
        // UPDATE only the triggers of the columns it sets, so a one-column edit pays for one
        // small trigger instead of comparing every column.
        var out: [String] = [
            "CREATE TRIGGER ferry_ai_\(t.name) AFTER INSERT ON \(name) BEGIN \(capture(.insert, mask: "-1", row: "NEW")) END",
            "CREATE TRIGGER ferry_ad_\(t.name) AFTER DELETE ON \(name) BEGIN \(capture(.delete, mask: "0", row: "OLD")) END",
        ]
        for (i, c) in synced.enumerated() where !keys.contains(c) {
            let q = quote(c)
            out.append(
                "CREATE TRIGGER ferry_au\(i)_\(t.name) AFTER UPDATE OF \(q) ON \(name) WHEN NEW.\(q) IS NOT OLD.\(q) BEGIN \(capture(.update, mask: String(Int64(1) << Int64(i)), row: "NEW")) END")
        }
        func refuse(_ trigger: String, _ timing: String, _ when: String, _ en: String, _ zh: String) {
            let msg = message("ferry: \(en) / \(zh)")
            out.append(
                "CREATE TRIGGER ferry_\(trigger)_\(t.name) BEFORE \(timing) ON \(name) WHEN \(when.isEmpty ? "" : "(\(when)) AND ")\(notApplying) BEGIN SELECT RAISE(ABORT, '\(msg)'); END")
        }
        // Keys (and a unit row's unit) never change: a changed key is a different row.
        var fixed = keys
        if case .unit(let s) = t.ownership { fixed.append(s) }
        let changed = fixed.map { "NEW.\(quote($0)) IS NOT OLD.\(quote($0))" }.joined(separator: " OR ")
        refuse(
            "gk", "UPDATE OF \(fixed.map(quote).joined(separator: ", "))", changed,
            "table \(t.name): the key columns (\(fixed.joined(separator: ", "))) cannot change; delete the row and insert a new one",
            "表 \(t.name)：主键列（\(fixed.joined(separator: ", "))）不能修改，请删除后重新插入")
        if case .unit(let unit) = role {
            switch t.ownership {
            case .hub:
                for (g, op) in [("gi", "INSERT"), ("gu", "UPDATE"), ("gd", "DELETE")] {
                    refuse(
                        g, op, "",
                        "table \(t.name) is maintained by the supervisor (hub-owned); units cannot change it",
                        "表 \(t.name) 由上级统一维护，本单位不能修改")
                }
            case .unit(let scope):
                refuse(
                    "gi", "INSERT", "NEW.\(quote(scope)) IS NOT \(literal(.text(unit)))",
                    "table \(t.name): \(scope) must be this unit's id '\(unit)'",
                    "表 \(t.name)：\(scope) 必须是本单位编号 '\(unit)'")
            case .local: break
            }
        }
        // At a hub, references between a unit's tables stay inside the unit.
        func sameUnit(_ target: TableDefinition, _ row: String, targetAlias: String) -> String {
            guard isHub, case .unit(let s) = t.ownership, case .unit(let ts) = target.ownership else { return "" }
            return " AND \(targetAlias).\(quote(ts)) = \(row).\(quote(s))"
        }
        // References: a value must name an existing row where it is written (an attendance
        // row for an unknown member is refused; a response to a directive this unit never
        // received is refused). Rows arriving from peers are not checked here: across units
        // and batches they may come in any order (the hub checks references into its own
        // tables when it applies a unit's batch).
        for c in t.columns {
            guard let r = c.references, let target = standard.table(named: r.table) else { continue }
            let q = quote(c.name)
            let exists = "EXISTS (SELECT 1 FROM \(quote(r.table)) AS ref WHERE ref.\(quote(r.column)) = NEW.\(q)\(sameUnit(target, "NEW", targetAlias: "ref")))"
            for (g, timing) in [("gri_\(c.name)", "INSERT"), ("gru_\(c.name)", "UPDATE OF \(q)")] {
                refuse(
                    g, timing, "NEW.\(q) IS NOT NULL AND NOT \(exists)",
                    "table \(t.name): \(c.name) names no existing \(r.table) (\(r)); add that \(r.table) first",
                    "表 \(t.name)：\(c.name) 对应的\(r.table)不存在，请先录入")
            }
        }
        // A row others refer to cannot be deleted while they do: the referring rows would
        // name nothing (and append-only ones could never be removed).
        for other in standard.tables where other.isSynced {
            for c in other.columns where c.references?.table == t.name {
                let r = c.references!
                var unitMatch = ""
                if isHub, case .unit(let s) = other.ownership, case .unit(let ts) = t.ownership {
                    unitMatch = " AND o.\(quote(s)) = OLD.\(quote(ts))"
                }
                refuse(
                    "grd_\(other.name)_\(c.name)", "DELETE",
                    "EXISTS (SELECT 1 FROM \(quote(other.name)) AS o WHERE o.\(quote(c.name)) = OLD.\(quote(r.column))\(unitMatch))",
                    "table \(t.name): rows of \(other.name) still refer to this row (\(other.name).\(c.name)); delete or change them first",
                    "表 \(t.name)：该记录仍被\(other.name)引用（\(other.name).\(c.name)），请先删除或修改这些记录")
            }
        }
        if case .hub = role, case .unit = t.ownership {
            // The hub holds masked columns only masked; the unit owns the real value.
            for c in t.columns where c.classification != .full && c.isSynced {
                let q = quote(c.name)
                refuse(
                    "gm_\(c.name)", "UPDATE OF \(q)", "NEW.\(q) IS NOT OLD.\(q)",
                    "table \(t.name): column \(c.name) is masked; only the unit can change it",
                    "表 \(t.name)：\(c.name) 为脱敏字段，只能由本单位修改")
            }
        }
        if t.policy == .appendOnly {
            if !out.contains(where: { $0.hasPrefix("CREATE TRIGGER ferry_gu_") }) {
                refuse(
                    "gu", "UPDATE", "",
                    "table \(t.name) is append-only: records cannot be changed once written; add a correcting record",
                    "表 \(t.name) 只允许追加：记录写入后不能修改，请新增一条更正记录")
            }
            if !out.contains(where: { $0.hasPrefix("CREATE TRIGGER ferry_gd_") }) {
                refuse(
                    "gd", "DELETE", "",
                    "table \(t.name) is append-only: records cannot be deleted",
                    "表 \(t.name) 只允许追加：记录不能删除")
            }
            // INSERT OR REPLACE (and REPLACE) deletes the existing row without firing a delete
            // trigger: refuse an insert over an existing row here, before the conflict is resolved.
            let keyCols = (ReplicaStore.scopedKey(t, role) ? [t.scopeColumn!] : []) + keys
            let same = keyCols.map { "e.\(quote($0)) = NEW.\(quote($0))" }.joined(separator: " AND ")
            refuse(
                "gr", "INSERT", "EXISTS (SELECT 1 FROM \(name) AS e WHERE \(same))",
                "table \(t.name) is append-only: a record with this key exists and cannot be replaced",
                "表 \(t.name) 只允许追加：该记录已存在，不能覆盖")
        }
        return out
    }
}

/// The SQL Ferry creates for a standard table, for tools (the bench's plain-SQLite baseline).
public enum StandardSQL {
    /// `CREATE TABLE` exactly as a replica creates it, without Ferry's capture triggers.
    public static func createTable(_ t: FerryCore.TableDefinition) -> String { SchemaSQL.createTable(t) }
}
