import FerryCore

/// The stored sync state of one row: causal length, the change sequence that last touched
/// it, each synced cell's version with the local sequence that set it, and the row's
/// fingerprint (what anti-entropy compares).
struct RowMeta {
    var causalLength: UInt32
    var seq: Int64
    var scope: String?
    /// Keyed by column index in the table definition.
    var cells: [Int: StoredCell]
    /// The row's fingerprint as last stored (0: none yet).
    var fingerprint: UInt64 = 0

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

    /// Blob layout (format 3): the cells' column mask (bit i: the i-th synced column has a
    /// version), then — when any — one common version and sequence, then the exceptions:
    /// cells whose version or sequence differs, each with only what differs. A row written
    /// by one insert (the usual case) costs one version, whatever its width.
    ///
    ///     mask:varint [common:version seq:varint] exceptions:varint
    ///     exception := position:varint flags:u8 [version] [seq-delta:zigzag]
    ///     version   := gen:varint sgen:varint clock:varint origin*2+authority:varint
    ///                  seen-count:varint [seen-origin:varint clock-delta:zigzag]*
    func encodeCells(_ t: TableDefinition, _ nodes: NodeTable) -> [UInt8] {
        let synced = t.syncedColumnIndices
        var mask: UInt64 = 0
        var entries: [(position: Int, cell: StoredCell)] = []
        for (p, i) in synced.enumerated() {
            guard let c = cells[i] else { continue }
            mask |= 1 << UInt64(p)
            entries.append((p, c))
        }
        var w = ByteWriter(capacity: 24 + entries.count * 2)
        w.varint(mask)
        guard !entries.isEmpty else { return w.bytes }
        let common = Self.mode(entries.map(\.cell.version))
        let commonSeq = Self.mode(entries.map(\.cell.seq))
        Self.write(common, nodes, &w)
        w.varint(UInt64(commonSeq))
        let exceptions = entries.filter { $0.cell.version != common || $0.cell.seq != commonSeq }
        w.varint(UInt64(exceptions.count))
        for e in exceptions {
            w.varint(UInt64(e.position))
            let ownVersion = e.cell.version != common
            let ownSeq = e.cell.seq != commonSeq
            w.byte((ownVersion ? 1 : 0) | (ownSeq ? 2 : 0))
            if ownVersion { Self.write(e.cell.version, nodes, &w) }
            if ownSeq { w.signedVarint(e.cell.seq &- commonSeq) }
        }
        return w.bytes
    }

    static func mode<T: Hashable>(_ values: [T]) -> T {
        var counts: [T: Int] = [:]
        var best = values[0]
        for v in values {
            counts[v, default: 0] += 1
            if counts[v]! > counts[best]! { best = v }
        }
        return best
    }

    static func write(_ v: CellVersion, _ nodes: NodeTable, _ w: inout ByteWriter) {
        w.varint(UInt64(v.generation))
        w.varint(UInt64(v.supervisorGeneration))
        w.varint(v.clock.rawValue)
        w.varint(UInt64(nodes.index(of: v.origin)) << 1 | UInt64(v.authority.rawValue))
        w.varint(UInt64(v.seen.count))
        for s in v.seen {
            w.varint(UInt64(nodes.index(of: s.origin)))
            w.signedVarint(Int64(bitPattern: v.clock.rawValue &- s.clock.rawValue))
        }
    }

    static func readVersion(_ r: inout ByteReader, _ nodes: NodeTable) throws(CoreError) -> CellVersion {
        let gen = try r.varint("generation")
        let sgen = try r.varint("supervisor generation")
        let clock = try r.varint("clock")
        let origin = try r.varint("origin")
        guard gen <= UInt32.max, sgen <= UInt32.max else { throw CoreError(.malformed, "stored generation out of range") }
        let n = try r.count("seen", max: 1 << 8)
        var seen: [VersionID] = []
        for _ in 0..<n {
            let o = try nodes.node(at: Int(try r.varint("seen origin")))
            let d = try r.signedVarint("seen clock")
            seen.append(VersionID(clock: HLCTimestamp(rawValue: clock &- UInt64(bitPattern: d)), origin: o))
        }
        return CellVersion(
            generation: UInt32(gen), supervisorGeneration: UInt32(sgen), clock: HLCTimestamp(rawValue: clock),
            origin: try nodes.node(at: Int(origin >> 1)), authority: Authority(rawValue: UInt8(origin & 1)) ?? .unit, seen: seen)
    }

    static func decodeCells(_ bytes: [UInt8], _ t: TableDefinition, _ nodes: NodeTable) throws(CoreError) -> [Int: StoredCell] {
        var r = ByteReader(bytes)
        let mask = try r.varint("mask")
        guard mask != 0 else { return [:] }
        let synced = t.syncedColumnIndices
        let common = try readVersion(&r, nodes)
        let commonSeq = Int64(bitPattern: try r.varint("seq"))
        var out: [Int: StoredCell] = [:]
        for p in 0..<64 where mask & (1 << UInt64(p)) != 0 {
            guard p < synced.count else {
                throw CoreError(.malformed, "stored cells name a column beyond the table's \(synced.count) synced columns")
            }
            out[synced[p]] = StoredCell(version: common, seq: commonSeq)
        }
        let n = try r.count("exceptions", max: 64)
        for _ in 0..<n {
            let p = Int(try r.varint("position"))
            guard p < synced.count else { throw CoreError(.malformed, "stored exception for column \(p) of \(synced.count)") }
            let flags = try r.byte("flags")
            var cell = out[synced[p]] ?? StoredCell(version: common, seq: commonSeq)
            if flags & 1 != 0 { cell.version = try readVersion(&r, nodes) }
            if flags & 2 != 0 { cell.seq = commonSeq &+ (try r.signedVarint("seq delta")) }
            out[synced[p]] = cell
        }
        return out
    }

    /// The row's fingerprint given its current values (`values[i]` for column index i; nil
    /// for a deleted row). Implied columns (the key, a unit row's unit) are left out: they
    /// travel in the row's header and carry no version at the receiver.
    func computeFingerprint(_ t: TableDefinition, key: [Value], values: [Int: Value]?) -> UInt64 {
        let implied = Set(t.primaryKeyIndices + (t.isUnitWritable ? t.scopeColumn.flatMap(t.columnIndex(named:)).map { [$0] } ?? [] : []))
        var digestCells: [RowDigest.Cell] = []
        for (p, i) in t.syncedColumnIndices.enumerated() where !implied.contains(i) {
            guard let c = cells[i] else { continue }
            let value = exists ? values?[i].map { RowDigest.compared($0, column: t.columns[i]) } ?? .null : nil
            digestCells.append(RowDigest.Cell(position: p, version: c.version, value: value))
        }
        return RowDigest.fingerprint(table: t.name, key: key, causalLength: causalLength, cells: digestCells)
    }
}

/// Reads the release-1 cell layout (one full version per cell, a single `base`), for the
/// upgrade of databases written by that release.
enum LegacyRowMeta {
    static func decodeCells(_ bytes: [UInt8], _ nodes: NodeTable) throws -> [Int: RowMeta.StoredCell] {
        var r = ByteReader(bytes)
        let n = try r.count("cells", max: 1 << 16)
        var out: [Int: RowMeta.StoredCell] = [:]
        for _ in 0..<n {
            let i = Int(try r.varint("column"))
            let gen = UInt32(truncatingIfNeeded: try r.varint("generation"))
            let sgen = UInt32(truncatingIfNeeded: try r.varint("supervisor generation"))
            let clock = HLCTimestamp(rawValue: try r.varint("clock"))
            let origin = try nodes.node(at: Int(try r.varint("origin")))
            let authority = Authority(rawValue: try r.byte("authority")) ?? .unit
            var seen: [VersionID] = []
            if try r.byte("base flag") == 1 {
                let bc = HLCTimestamp(rawValue: try r.varint("base clock"))
                let bo = try nodes.node(at: Int(try r.varint("base origin")))
                if bo != origin { seen = [VersionID(clock: bc, origin: bo)] }
            }
            let seq = Int64(try r.varint("seq"))
            out[i] = RowMeta.StoredCell(
                version: CellVersion(
                    generation: gen, supervisorGeneration: sgen, clock: clock, origin: origin, authority: authority, seen: seen),
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
