/// Which changes a new version of a standard may make without breaking units.
///
/// An allow-list: within a major version a new version may add a table, append a column
/// (nullable or with a default), add allowed values, widen numeric bounds or text length,
/// and change labels, modules and indicators. Every other difference in a table or column —
/// a changed default, a new or changed reference, NOT NULL dropped or added, a narrowed or
/// new check, a changed key, ownership, policy or classification — breaks units that still
/// run the old version (they would receive values they cannot store, or store values the
/// new version reads differently), and is listed.
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
            func add(_ column: String?, _ problem: String) { out.append(.init(table: ot.name, column: column, problem: problem)) }
            guard let nt = new.table(named: ot.name) else {
                add(nil, "was removed; units still write it")
                continue
            }
            if nt.ownership != ot.ownership { add(nil, "ownership changed") }
            if nt.policy != ot.policy { add(nil, "conflict policy changed from \(ot.policy.rawValue) to \(nt.policy.rawValue)") }
            if nt.primaryKey != ot.primaryKey { add(nil, "primary key changed") }
            for (i, oc) in ot.columns.enumerated() {
                guard i < nt.columns.count, nt.columns[i].name == oc.name else {
                    add(oc.name, nt.column(named: oc.name) == nil ? "was removed" : "moved; columns may only be appended")
                    continue
                }
                let nc = nt.columns[i]
                if nc.type != oc.type { add(oc.name, "type changed from \(oc.type.rawValue) to \(nc.type.rawValue)") }
                if !nc.nullable && oc.nullable { add(oc.name, "became NOT NULL; units may hold NULLs") }
                if nc.nullable && !oc.nullable { add(oc.name, "became nullable; units on the old version cannot store the NULLs it would let through") }
                if nc.defaultValue != oc.defaultValue {
                    add(oc.name, "default changed from \(oc.defaultValue.map(\.description) ?? "none") to \(nc.defaultValue.map(\.description) ?? "none"); rows written on each version would differ")
                }
                if nc.references != oc.references {
                    add(oc.name, "reference changed from \(oc.references.map(\.description) ?? "none") to \(nc.references.map(\.description) ?? "none"); existing values were never checked against it")
                }
                if nc.classification != oc.classification { add(oc.name, "classification changed") }
                if let oa = oc.allowedValues {
                    if let na = nc.allowedValues {
                        let dropped = oa.filter { !na.contains($0) }
                        if !dropped.isEmpty {
                            add(oc.name, "allowed values \(dropped.map(\.description).joined(separator: ", ")) were removed; units may hold them")
                        }
                    }
                } else if nc.allowedValues != nil {
                    add(oc.name, "gained an allowed-values list; existing values may fall outside it")
                }
                if let n = nc.minimum, oc.minimum.map({ n > $0 }) ?? true { add(oc.name, "minimum raised") }
                if let n = nc.maximum, oc.maximum.map({ n < $0 }) ?? true { add(oc.name, "maximum lowered") }
                if let n = nc.maxLength, oc.maxLength.map({ n < $0 }) ?? true { add(oc.name, "max_length lowered") }
                // The allow-list proper: with what a minor version may change put back, the
                // column must be what it was. A property the format gains later is refused
                // here until someone decides it may change.
                var kept = nc
                kept.label = oc.label
                if let oa = oc.allowedValues, let na = nc.allowedValues, oa.allSatisfy(na.contains) { kept.allowedValues = oa }
                if let o = oc.minimum, let n = nc.minimum, n <= o { kept.minimum = o }
                if oc.minimum != nil, nc.minimum == nil { kept.minimum = oc.minimum }
                if let o = oc.maximum, let n = nc.maximum, n >= o { kept.maximum = o }
                if oc.maximum != nil, nc.maximum == nil { kept.maximum = oc.maximum }
                if let o = oc.maxLength, let n = nc.maxLength, n >= o { kept.maxLength = o }
                if oc.maxLength != nil, nc.maxLength == nil { kept.maxLength = oc.maxLength }
                if kept != oc, !out.contains(where: { $0.table == ot.name && $0.column == oc.name }) {
                    add(oc.name, "changed in a way a new minor version may not make (STANDARD.md §7 lists what may change)")
                }
            }
            var keptTable = nt
            keptTable.label = ot.label
            keptTable.module = ot.module
            keptTable.keepsHistory = ot.keepsHistory
            keptTable.columns = ot.columns
            if keptTable != ot, !out.contains(where: { $0.table == ot.name && $0.column == nil }) {
                add(nil, "changed in a way a new minor version may not make (STANDARD.md §7 lists what may change)")
            }
            for nc in nt.columns.dropFirst(ot.columns.count) {
                if !nc.nullable && nc.defaultValue == nil {
                    add(nc.name, "is new and NOT NULL without a default; existing rows have no value")
                }
                if nc.references != nil && nc.defaultValue != nil && nc.defaultValue != .null {
                    add(nc.name, "is new with a reference and a default; existing rows would get a value that names nothing")
                }
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
                // A row whose every cell the older standard lacks has nothing to say; a delete
                // and a `leave` row (it left the receiver's scope) say it without cells.
                return r.cells.isEmpty && !r.isDeleted && !r.flags.contains(.leave) ? nil : r
            }
            return t.rows.isEmpty ? nil : t
        }
        return copy
    }
}
