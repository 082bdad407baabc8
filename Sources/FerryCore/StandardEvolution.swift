/// Which changes a new version of a standard may make without breaking units.
///
/// Allowed within a major version: add a table, add a column at the end of a table (nullable
/// or with a default), add allowed values, widen numeric bounds or text length, relabel.
/// Everything else (drop or retype a column, narrow allowed values, change keys, ownership,
/// policy or classification) breaks units that still run the old version.
public enum StandardEvolution {
    public struct Incompatibility: Sendable, Equatable, CustomStringConvertible {
        public var table: String
        public var column: String?
        public var problem: String
        public var description: String {
            "table '\(table)'" + (column.map { ", column '\($0)'" } ?? "") + ": \(problem)"
        }
    }

    /// The changes from `old` to `new` that would break units on `old`; empty when `new`
    /// may be published as a minor version.
    public static func incompatibilities(from old: Standard, to new: Standard) -> [Incompatibility] {
        var out: [Incompatibility] = []
        for ot in old.tables {
            guard let nt = new.table(named: ot.name) else {
                out.append(.init(table: ot.name, column: nil, problem: "was removed; units still write it"))
                continue
            }
            if nt.ownership != ot.ownership { out.append(.init(table: ot.name, column: nil, problem: "ownership changed")) }
            if nt.policy != ot.policy { out.append(.init(table: ot.name, column: nil, problem: "conflict policy changed from \(ot.policy.rawValue) to \(nt.policy.rawValue)")) }
            if nt.primaryKey != ot.primaryKey { out.append(.init(table: ot.name, column: nil, problem: "primary key changed")) }
            for (i, oc) in ot.columns.enumerated() {
                guard i < nt.columns.count, nt.columns[i].name == oc.name else {
                    out.append(.init(table: ot.name, column: oc.name, problem: nt.column(named: oc.name) == nil ? "was removed" : "moved; columns may only be appended"))
                    continue
                }
                let nc = nt.columns[i]
                if nc.type != oc.type { out.append(.init(table: ot.name, column: oc.name, problem: "type changed from \(oc.type.rawValue) to \(nc.type.rawValue)")) }
                if !nc.nullable && oc.nullable { out.append(.init(table: ot.name, column: oc.name, problem: "became NOT NULL; units may hold NULLs")) }
                if nc.classification != oc.classification { out.append(.init(table: ot.name, column: oc.name, problem: "classification changed")) }
                if let oa = oc.allowedValues {
                    if let na = nc.allowedValues {
                        let dropped = oa.filter { !na.contains($0) }
                        if !dropped.isEmpty {
                            out.append(.init(table: ot.name, column: oc.name, problem: "allowed values \(dropped.map(\.description).joined(separator: ", ")) were removed; units may hold them"))
                        }
                    }
                } else if nc.allowedValues != nil {
                    out.append(.init(table: ot.name, column: oc.name, problem: "gained an allowed-values list; existing values may fall outside it"))
                }
                if let n = nc.minimum, oc.minimum.map({ n > $0 }) ?? true { out.append(.init(table: ot.name, column: oc.name, problem: "minimum raised")) }
                if let n = nc.maximum, oc.maximum.map({ n < $0 }) ?? true { out.append(.init(table: ot.name, column: oc.name, problem: "maximum lowered")) }
                if let n = nc.maxLength, oc.maxLength.map({ n < $0 }) ?? true { out.append(.init(table: ot.name, column: oc.name, problem: "max_length lowered")) }
            }
            for nc in nt.columns.dropFirst(ot.columns.count) where !nc.nullable && nc.defaultValue == nil {
                out.append(.init(table: ot.name, column: nc.name, problem: "is new and NOT NULL without a default; existing rows have no value"))
            }
        }
        return out
    }
}

extension Changeset {
    /// The part of this changeset a replica following `standard` can store: tables and
    /// columns it does not know are left out (a node several versions behind never
    /// receives a column it cannot store).
    public func restricted(to standard: Standard) -> Changeset {
        var copy = self
        copy.tables = tables.compactMap { t in
            guard let def = standard.table(named: t.name) else { return nil }
            var t = t
            t.rows = t.rows.compactMap { r in
                var r = r
                r.cells = r.cells.filter { def.column(named: $0.column) != nil }
                return r.cells.isEmpty && !r.isDeleted ? nil : r
            }
            return t.rows.isEmpty ? nil : t
        }
        return copy
    }
}
