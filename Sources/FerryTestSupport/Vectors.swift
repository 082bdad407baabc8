import FerryCore
import Foundation

/// The language-neutral changeset vectors in protocol/vectors: a changeset written as JSON
/// and the exact bytes it encodes to, or bytes and the error decoding them must give.
///
/// 64-bit numbers (clocks, integer values) are JSON strings so that readers whose numbers
/// are doubles keep every bit.
public struct ChangesetVector: Codable, Sendable {
    public var name: String
    public var description: String
    public var hex: String
    public var changeset: JSONChangeset?
    /// For a vector that must fail: the `CoreError.Code` raw value.
    public var error: String?
    /// The format version of `hex` when it is not the current one (a release-1 changeset
    /// that must still decode; it is not re-encoded).
    public var format: Int?

    public init(name: String, description: String, hex: String, changeset: JSONChangeset?, error: String?, format: Int? = nil) {
        self.name = name
        self.description = description
        self.hex = hex
        self.changeset = changeset
        self.error = error
        self.format = format
    }

    public static var directory: String { Repository.path("protocol/vectors") }

    public static func loadAll() throws -> [ChangesetVector] {
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".json") }.sorted()
        return try files.map { f in
            try JSONDecoder().decode(ChangesetVector.self, from: Data(contentsOf: URL(fileURLWithPath: "\(directory)/\(f)")))
        }
    }

    public func write() throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try (enc.encode(self) + Data("\n".utf8)).write(to: URL(fileURLWithPath: "\(Self.directory)/\(name).json"))
    }

    public var bytes: [UInt8] { Hex.decode(hex) }
}

public struct JSONValue: Codable, Sendable {
    public var null: Bool?
    public var integer: String?
    public var real: Double?
    public var text: String?
    public var blob: String?

    public init(_ v: Value) {
        switch v {
        case .null: null = true
        case .integer(let i): integer = String(i)
        case .real(let d): real = d
        case .text(let s): text = s
        case .blob(let b): blob = Hex.encode(b)
        }
    }

    public var value: Value {
        if let i = integer { return .integer(Int64(i)!) }
        if let d = real { return .real(d) }
        if let s = text { return .text(s) }
        if let b = blob { return .blob(Hex.decode(b)) }
        return .null
    }
}

public struct JSONVersionID: Codable, Sendable {
    public var clock: String
    public var origin: String
}

public struct JSONVersion: Codable, Sendable {
    public var generation: UInt32
    public var supervisor_generation: UInt32
    public var clock: String
    public var origin: String
    public var authority: String
    /// The other writers this version has seen (absent: none).
    public var seen: [JSONVersionID]?

    public init(_ v: CellVersion) {
        generation = v.generation
        supervisor_generation = v.supervisorGeneration
        clock = String(v.clock.rawValue)
        origin = v.origin.rawValue
        authority = v.authority == .supervisor ? "supervisor" : "unit"
        seen = v.seen.isEmpty ? nil : v.seen.map { JSONVersionID(clock: String($0.clock.rawValue), origin: $0.origin.rawValue) }
    }

    public var version: CellVersion {
        CellVersion(
            generation: generation, supervisorGeneration: supervisor_generation,
            clock: HLCTimestamp(rawValue: UInt64(clock)!), origin: NodeID(unchecked: origin),
            authority: authority == "supervisor" ? .supervisor : .unit,
            seen: (seen ?? []).map { VersionID(clock: HLCTimestamp(rawValue: UInt64($0.clock)!), origin: NodeID(unchecked: $0.origin)) })
    }
}

public struct JSONCell: Codable, Sendable {
    public var column: String
    public var value: JSONValue?
    public var version: JSONVersion
}

public struct JSONRow: Codable, Sendable {
    public var key: [JSONValue]
    public var scope: String?
    public var causal_length: UInt32
    public var cells: [JSONCell]
    /// Any of "whole", "leave", "repair" (absent: none).
    public var flags: [String]?

    static let names: [(String, RowFlags)] = [("whole", .whole), ("leave", .leave), ("repair", .repair)]

    public var rowFlags: RowFlags {
        var f: RowFlags = []
        for (n, v) in Self.names where flags?.contains(n) == true { f.insert(v) }
        return f
    }

    public static func names(of f: RowFlags) -> [String]? {
        let n = names.filter { f.contains($0.1) }.map(\.0)
        return n.isEmpty ? nil : n
    }
}

public struct JSONTable: Codable, Sendable {
    public var name: String
    public var rows: [JSONRow]
}

public struct JSONBatch: Codable, Sendable {
    public var sequence: UInt64
    public var through: UInt64
    public var final: Bool
}

public struct JSONChangeset: Codable, Sendable {
    public var origin: String
    public var standard_version: String
    public var batch: JSONBatch
    public var tables: [JSONTable]

    public init(_ c: Changeset) {
        origin = c.origin.rawValue
        standard_version = c.standardVersion.description
        batch = JSONBatch(sequence: c.batch.sequence, through: c.batch.through, final: c.batch.isFinal)
        tables = c.tables.map { t in
            JSONTable(
                name: t.name,
                rows: t.rows.map { r in
                    JSONRow(
                        key: r.key.map(JSONValue.init), scope: r.scope, causal_length: r.causalLength,
                        cells: r.cells.map { JSONCell(column: $0.column, value: $0.value.map(JSONValue.init), version: JSONVersion($0.version)) },
                        flags: JSONRow.names(of: r.flags))
                })
        }
    }

    public var changeset: Changeset {
        Changeset(
            origin: NodeID(unchecked: origin), standardVersion: StandardVersion(parsing: standard_version)!,
            batch: BatchPosition(sequence: batch.sequence, through: batch.through, isFinal: batch.final),
            tables: tables.map { t in
                TableChanges(
                    name: t.name,
                    rows: t.rows.map { r in
                        RowChange(
                            key: r.key.map(\.value), scope: r.scope, causalLength: r.causal_length,
                            cells: r.cells.map { CellChange(column: $0.column, value: $0.value?.value, version: $0.version.version) },
                            flags: r.rowFlags)
                    })
            })
    }
}
