/// Who sent a changeset, as far as validation is concerned.
public enum SenderScope: Sendable, Equatable {
    /// A trusted peer (a supervisor sending down, or a test): tables and scopes are not
    /// restricted, values are still checked.
    case trusted
    /// A unit's node: it may write only unit tables, only rows of `unit`.
    case unit(String)
}

/// A row set aside because one of its values fails the standard's checks.
public struct QuarantinedRow: Sendable, Equatable {
    public var table: String
    public var rowIndex: Int
    public var key: [Value]
    public var scope: String?
    public var column: String
    public var value: Value
    public var reason: String
    public var reasonZh: String
}

extension Changeset {
    /// Checks every table, row, column and value against `standard` and the sender's
    /// scope. Throws the first problem found, naming table, key, column and value; a
    /// changeset that passes can be applied without a schema or scope error.
    public func validate(against standard: Standard, sender: SenderScope) throws(CoreError) {
        _ = try check(against: standard, sender: sender, quarantineValues: false)
    }

    /// Like `validate`, but with `quarantineValues` a row whose values fail the standard's
    /// checks (type, allowed values, dates, bounds) is returned instead of failing the whole
    /// changeset; structure, schema and scope problems still throw.
    public func check(against standard: Standard, sender: SenderScope, quarantineValues: Bool) throws(CoreError) -> [QuarantinedRow] {
        var quarantined: [QuarantinedRow] = []
        guard standardVersion.major == standard.version.major else {
            throw CoreError(
                .standardMismatch,
                "changeset follows standard \(standardVersion) but this replica follows \(standard.version) (a different major version); migrate the older side first")
        }
        var seenTables = Set<String>()
        for t in tables {
            guard seenTables.insert(t.name).inserted else {
                throw CoreError(.malformed, "table '\(t.name)' appears twice in one changeset")
            }
            guard let def = standard.table(named: t.name) else {
                throw CoreError(.unknownTable, "table '\(t.name)' is not in standard \(standard.name) \(standard.version)")
            }
            guard def.isSynced else {
                throw CoreError(.notWritable, "table '\(t.name)' is local to each unit and never syncs")
            }
            if case .unit = sender, !def.isUnitWritable {
                throw CoreError(.notWritable, "table '\(t.name)' is maintained by the supervisor; a unit cannot send changes to it")
            }
            let pk = def.primaryKey
            rows: for (rowIndex, row) in t.rows.enumerated() {
                var where_: String { "table '\(t.name)', row (\(row.key.map(\.description).joined(separator: ", ")))" }
                guard row.key.count == pk.count else {
                    throw CoreError(.malformed, "\(where_): the key has \(row.key.count) values but the primary key has \(pk.count) columns")
                }
                for (i, k) in pk.enumerated() {
                    let col = def.column(named: k)!
                    if row.key[i].isNull { throw CoreError(.wrongType, "\(where_): key column '\(k)' is NULL") }
                    if let p = col.problem(with: row.key[i]) {
                        throw CoreError(p.code, "\(where_): key column '\(k)' value \(row.key[i]) \(p.english)")
                    }
                }
                if let scopeColumn = def.scopeColumn {
                    if case .unit = def.ownership, row.scope == nil {
                        throw CoreError(.malformed, "\(where_): a unit table row must name its unit (scope '\(scopeColumn)')")
                    }
                } else if row.scope != nil {
                    throw CoreError(.malformed, "\(where_): carries a scope but the table has no scope column")
                }
                if case .unit(let unit) = sender, row.scope != unit {
                    throw CoreError(
                        .outOfScope,
                        "\(where_) belongs to unit '\(row.scope ?? "none")'; this node may only send rows of unit '\(unit)'")
                }
                if case .unit = sender, row.causalLength > CellVersion.maxAuthoredCounter {
                    throw CoreError(.malformed, "\(where_): causal length \(row.causalLength) is above \(CellVersion.maxAuthoredCounter), more lifetimes than a row can have")
                }
                if case .unit = sender, row.flags.contains(.leave) {
                    throw CoreError(.malformed, "\(where_): only a hub can remove a row from a unit's scope")
                }
                for cell in row.cells {
                    guard let col = def.column(named: cell.column) else {
                        throw CoreError(.unknownColumn, "\(where_): column '\(cell.column)' is not in standard \(standard.version)")
                    }
                    guard col.isSynced else {
                        throw CoreError(.notWritable, "\(where_): column '\(cell.column)' is classified local and must never leave the unit")
                    }
                    guard let value = cell.value else { continue }
                    var problem: ValueProblem? = nil
                    if case .masked = col.classification {
                        // Masked text no longer matches allowed values or formats; check the type only.
                        if !col.type.accepts(value) || (value.isNull && !col.nullable) {
                            problem = ValueProblem(.wrongType, "is not a \(col.type.rawValue)", "类型不符")
                        } else {
                            problem = value.storageProblem
                        }
                    } else {
                        problem = col.problem(with: value)
                    }
                    if let p = problem {
                        let message = "\(where_): column '\(cell.column)' value \(value) \(p.english)"
                        guard quarantineValues else { throw CoreError(p.code, message) }
                        quarantined.append(
                            QuarantinedRow(
                                table: t.name, rowIndex: rowIndex, key: row.key, scope: row.scope, column: cell.column, value: value,
                                reason: "\(t.name).\(cell.column) value \(value) \(p.english)",
                                reasonZh: "\(def.chineseName(of: cell.column))的值 \(value) \(p.chinese)"))
                        continue rows
                    }
                    if let i = pk.firstIndex(of: cell.column), row.key[i] != value {
                        throw CoreError(.malformed, "\(where_): key column '\(cell.column)' carries \(value), which differs from the key")
                    }
                    if cell.column == def.scopeColumn, value != (row.scope.map(Value.text) ?? .null) {
                        throw CoreError(.outOfScope, "\(where_): scope column '\(cell.column)' holds \(value) but the row is scoped to '\(row.scope ?? "none")'")
                    }
                }
            }
        }
        return quarantined
    }
}
