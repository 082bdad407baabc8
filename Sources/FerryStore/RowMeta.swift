import FerryCore

/// The stored sync state of one row: causal length, the change sequence that last touched
/// it, and each synced cell's version with the local sequence that set it.
struct RowMeta {
    var causalLength: UInt32
    var seq: Int64
    var scope: String?
    /// Keyed by column index in the table definition.
    var cells: [Int: StoredCell]

    struct StoredCell: Equatable {
        var version: CellVersion
        var seq: Int64
    }

    var exists: Bool { causalLength % 2 == 1 }

    func localRow(_ t: TableDefinition) -> LocalRow {
        var versions: [String: CellVersion] = [:]
        for (i, c) in cells { versions[t.columns[i].name] = c.version }
        return LocalRow(causalLength: causalLength, versions: versions)
    }

    /// Blob layout: count, then per cell: column index, generation, supervisor generation,
    /// clock, origin node index, authority, base flag [base clock, base node index], seq.
    func encodeCells(_ nodes: NodeTable) -> [UInt8] {
        var w = ByteWriter(capacity: 16 + cells.count * 16)
        w.varint(UInt64(cells.count))
        for i in cells.keys.sorted() {
            let c = cells[i]!
            w.varint(UInt64(i))
            w.varint(UInt64(c.version.generation))
            w.varint(UInt64(c.version.supervisorGeneration))
            w.varint(c.version.clock.rawValue)
            w.varint(UInt64(nodes.index(of: c.version.origin)))
            w.byte(c.version.authority.rawValue)
            if let b = c.version.base {
                w.byte(1)
                w.varint(b.clock.rawValue)
                w.varint(UInt64(nodes.index(of: b.origin)))
            } else {
                w.byte(0)
            }
            w.varint(UInt64(c.seq))
        }
        return w.bytes
    }

    static func decodeCells(_ bytes: [UInt8], _ nodes: NodeTable) throws -> [Int: StoredCell] {
        var r = ByteReader(bytes)
        let n = try r.count("cells", max: 1 << 16)
        var out: [Int: StoredCell] = [:]
        out.reserveCapacity(n)
        for _ in 0..<n {
            let i = Int(try r.varint("column"))
            let gen = UInt32(try r.varint("generation"))
            let sgen = UInt32(try r.varint("supervisor generation"))
            let clock = HLCTimestamp(rawValue: try r.varint("clock"))
            let origin = try nodes.node(at: Int(try r.varint("origin")))
            let authority = Authority(rawValue: try r.byte("authority")) ?? .unit
            var base: VersionID? = nil
            if try r.byte("base flag") == 1 {
                let bc = HLCTimestamp(rawValue: try r.varint("base clock"))
                base = VersionID(clock: bc, origin: try nodes.node(at: Int(try r.varint("base origin"))))
            }
            let seq = Int64(try r.varint("seq"))
            out[i] = StoredCell(
                version: CellVersion(
                    generation: gen, supervisorGeneration: sgen, clock: clock, origin: origin,
                    authority: authority, base: base),
                seq: seq)
        }
        return out
    }
}

/// Node ids stored once (`ferry_nodes`) and referred to by a small index in row metadata.
final class NodeTable {
    private var ids: [NodeID] = []
    private var indices: [NodeID: Int] = [:]
    /// Nodes added since the last `flushNew`, to be inserted into `ferry_nodes`.
    private(set) var pending: [(Int, NodeID)] = []

    func load(_ rows: [(Int, String)]) throws {
        ids = []
        indices = [:]
        pending = []
        for (i, s) in rows.sorted(by: { $0.0 < $1.0 }) {
            let id = try NodeID(s)
            guard i == ids.count else { throw StoreError.corruptMetadata("node index \(i) out of order") }
            indices[id] = i
            ids.append(id)
        }
    }

    func index(of id: NodeID) -> Int {
        if let i = indices[id] { return i }
        let i = ids.count
        ids.append(id)
        indices[id] = i
        pending.append((i, id))
        return i
    }

    func node(at i: Int) throws(CoreError) -> NodeID {
        guard i >= 0, i < ids.count else { throw CoreError(.malformed, "node index \(i) unknown") }
        return ids[i]
    }

    func takePending() -> [(Int, NodeID)] {
        defer { pending = [] }
        return pending
    }

    /// Forgets nodes added since the last flush (the transaction that added them rolled back).
    func discardPending() {
        for (i, id) in pending {
            indices[id] = nil
            if ids.count > i { ids.removeLast(ids.count - i) }
        }
        pending = []
    }
}
