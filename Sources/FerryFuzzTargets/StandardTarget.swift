import FerryCore
import FerryStandardFile

/// A standard file, as a hub publishes it and a node receives it on enrolment or upgrade:
/// parsed, and when it parses, used the way a replica uses its standard.
enum StandardTarget {
    static let target = FuzzTarget.standard

    static func run(_ input: [UInt8]) throws(FuzzFinding) {
        // Lossy, so that every input reaches the TOML parser rather than stopping at UTF-8.
        let text = String(decoding: input, as: UTF8.self)
        guard let standard = try? StandardFile.parse(text, file: "fuzz input") else { return }

        let itself = StandardEvolution.incompatibilities(from: standard, to: standard)
        if !itself.isEmpty {
            throw target.finding("a standard is incompatible with itself: \(itself.map(\.description).joined(separator: "; "))")
        }
        _ = StandardEvolution.incompatibilities(from: FuzzStandards.builtIn, to: standard)
        _ = StandardEvolution.incompatibilities(from: standard, to: FuzzStandards.builtIn)

        for table in standard.tables {
            _ = (table.scopeColumn, table.isSynced, table.isUnitWritable, table.syncedColumnIndices, table.primaryKeyIndices)
            for column in table.columns {
                for value in probes(for: column) {
                    _ = column.problem(with: value)
                    if case .masked(let rule) = column.classification { _ = rule.apply(to: value) }
                }
            }
        }
        try writeAndRead(standard)
    }

    /// Values at the edges of what a column may be asked to hold.
    static func probes(for column: ColumnDefinition) -> [Value] {
        var values: [Value] = [
            .null, .integer(0), .integer(1), .integer(-1), .integer(.max), .integer(.min), .real(.nan), .real(-.infinity),
            .real(1.5), .text(""), .text("2024-02-29"), .text("2023-02-29"), .text(String(repeating: "长", count: 70)), .blob([]),
        ]
        if let d = column.defaultValue { values.append(d) }
        values += (column.allowedValues ?? []).prefix(3)
        return values
    }

    /// One row for every synced table, filled with values the standard accepts, sent
    /// through the codec and the validation against the standard it was built from.
    static func writeAndRead(_ standard: Standard) throws(FuzzFinding) {
        let changeset = sampleChangeset(for: standard)
        try ChangesetTarget.roundTrip(changeset)
        try ChangesetTarget.validate(changeset, against: standard)
        try ChangesetTarget.validate(changeset.restricted(to: FuzzStandards.builtIn), against: standard)
        try ChangesetTarget.merge(changeset)
    }

    /// A changeset unit u1 could send under `standard`: one live row per synced table.
    static func sampleChangeset(for standard: Standard) -> Changeset {
        let writer = NodeID(unchecked: "node-u1")
        let version = CellVersion(generation: 1, clock: HLCTimestamp(physicalMillis: 1_767_225_600_000, counter: 0), origin: writer)
        var tables: [TableChanges] = []
        for table in standard.syncedTables {
            let scope: String? = table.scopeColumn == nil ? nil : "u1"
            func sample(_ column: ColumnDefinition) -> Value {
                if column.name == table.scopeColumn { return .text("u1") }
                return column.defaultValue ?? column.allowedValues?.first ?? typical(column.type)
            }
            let key = table.primaryKey.map { name in table.column(named: name).map(sample) ?? .null }
            let cells = table.columns.filter(\.isSynced).map { CellChange(column: $0.name, value: sample($0), version: version) }
            tables.append(TableChanges(name: table.name, rows: [RowChange(key: key, scope: scope, causalLength: 1, cells: cells)]))
        }
        return Changeset(
            origin: writer, standardVersion: standard.version, batch: BatchPosition(sequence: 1, through: 1, isFinal: true),
            tables: tables)
    }

    static func typical(_ type: ColumnType) -> Value {
        switch type {
        case .text: return .text("x")
        case .date: return .text("2026-01-01")
        case .integer, .boolean: return .integer(1)
        case .real: return .real(1)
        case .blob: return .blob([1])
        }
    }
}
