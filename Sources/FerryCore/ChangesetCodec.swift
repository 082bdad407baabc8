/// The binary changeset format, version 2 (specified in protocol/CHANGESET.md).
///
/// Encoding is deterministic: the same `Changeset` value always yields the same bytes, so
/// the vectors in protocol/vectors pin it. Decoding is strict and checks the CRC-32C
/// before it reads anything else; any fault is a `CoreError` naming what is wrong. Version 1
/// (release 1) still decodes, its single `base` read as a one-entry `seen` list, so stored
/// batches of that release stay readable; it is never written.
public enum ChangesetCodec {
    public static let magic: [UInt8] = [0x46, 0x52, 0x59, 0x43]  // "FRYC"
    public static let formatVersion: UInt8 = 2
    /// The default upper bound on one encoded changeset (16 MiB).
    public static let defaultMaxBytes = 16 << 20

    enum ValueTag: UInt8 {
        case null = 0, integer = 1, real = 2, text = 3, blob = 4
    }

    // MARK: Encoding

    public static func encode(_ changeset: Changeset) -> [UInt8] {
        var w = ByteWriter(capacity: 1024)
        w.append(magic)
        w.byte(formatVersion)
        // The scope most rows carry (a unit's batch: its own unit) is written once.
        let defaultScope = Self.defaultScope(changeset)
        w.byte((changeset.batch.isFinal ? 1 : 0) | (defaultScope != nil ? 2 : 0))
        w.string(changeset.origin.rawValue)
        if let d = defaultScope { w.string(d) }
        w.varint(UInt64(changeset.standardVersion.major))
        w.varint(UInt64(changeset.standardVersion.minor))
        w.varint(UInt64(changeset.standardVersion.patch))
        w.varint(changeset.batch.sequence)
        w.varint(changeset.batch.through)
        let range = changeset.clockRange
        w.varint(range.lowerBound.rawValue)
        w.varint(range.upperBound.rawValue - range.lowerBound.rawValue)

        // Node dictionary: every origin (and seen origin) in order of first appearance.
        var nodes: [NodeID] = []
        var authority: [NodeID: Authority] = [:]
        var nodeIndex: [NodeID: Int] = [:]
        func note(_ n: NodeID, _ a: Authority?) {
            if nodeIndex[n] == nil {
                nodeIndex[n] = nodes.count
                nodes.append(n)
            }
            if let a, authority[n] == nil { authority[n] = a }
        }
        for t in changeset.tables {
            for r in t.rows {
                for c in r.cells {
                    note(c.version.origin, c.version.authority)
                    for s in c.version.seen { note(s.origin, nil) }
                }
            }
        }
        w.varint(UInt64(nodes.count))
        for n in nodes {
            w.string(n.rawValue)
            w.byte((authority[n] ?? .unit).rawValue)
        }

        w.varint(UInt64(changeset.tables.count))
        for t in changeset.tables {
            w.string(t.name)
            var columns: [String] = []
            var columnIndex: [String: Int] = [:]
            for r in t.rows {
                for c in r.cells where columnIndex[c.column] == nil {
                    columnIndex[c.column] = columns.count
                    columns.append(c.column)
                }
            }
            w.varint(UInt64(columns.count))
            for c in columns { w.string(c) }
            w.varint(UInt64(t.rows.count))
            for r in t.rows {
                w.varint(UInt64(r.key.count))
                for v in r.key { writeValue(v, &w) }
                let scopeMode: UInt8 = r.scope == nil ? 0 : r.scope == defaultScope ? 2 : 1
                w.byte(scopeMode | (r.flags.rawValue << 2))
                if scopeMode == 1 { w.string(r.scope!) }
                w.varint(UInt64(r.causalLength))
                w.varint(UInt64(r.cells.count))
                let rowVersion = r.cells.first?.version
                if let rv = rowVersion { writeVersion(rv, base: range.lowerBound, nodeIndex, &w) }
                for c in r.cells {
                    w.varint(UInt64(columnIndex[c.column]!))
                    let own = c.version != rowVersion
                    w.byte((c.value == nil ? 1 : 0) | (own ? 2 : 0))
                    if let v = c.value { writeValue(v, &w) }
                    if own { writeVersion(c.version, base: range.lowerBound, nodeIndex, &w) }
                }
            }
        }
        w.fixed32(CRC32C.checksum(w.bytes))
        return w.bytes
    }

    /// The scope carried by most rows when it is carried by at least two (ties: the one
    /// that appears first), else nil.
    static func defaultScope(_ c: Changeset) -> String? {
        var counts: [String: Int] = [:]
        var order: [String] = []
        for t in c.tables {
            for r in t.rows {
                guard let s = r.scope else { continue }
                if counts[s] == nil { order.append(s) }
                counts[s, default: 0] += 1
            }
        }
        var best: String?
        for s in order where counts[s]! >= 2 && counts[s]! > (best.map { counts[$0]! } ?? 0) { best = s }
        return best
    }

    static func writeValue(_ v: Value, _ w: inout ByteWriter) {
        switch v {
        case .null: w.byte(ValueTag.null.rawValue)
        case .integer(let i):
            w.byte(ValueTag.integer.rawValue)
            w.signedVarint(i)
        case .real(let d):
            w.byte(ValueTag.real.rawValue)
            w.fixed64(d.bitPattern)
        case .text(let s):
            w.byte(ValueTag.text.rawValue)
            w.string(s)
        case .blob(let b):
            w.byte(ValueTag.blob.rawValue)
            w.lengthPrefixed(b)
        }
    }

    static func writeVersion(_ v: CellVersion, base: HLCTimestamp, _ nodes: [NodeID: Int], _ w: inout ByteWriter) {
        w.varint(UInt64(v.generation))
        w.varint(UInt64(v.supervisorGeneration))
        w.varint(v.clock.rawValue - base.rawValue)
        w.varint(UInt64(nodes[v.origin]!))
        w.varint(UInt64(v.seen.count))
        for s in v.seen {
            w.varint(UInt64(nodes[s.origin]!))
            // Seen clocks are usually a little before the version's own: a small signed delta.
            w.signedVarint(Int64(bitPattern: v.clock.rawValue &- s.clock.rawValue))
        }
    }

    // MARK: Decoding

    /// Decodes one changeset. Throws `.oversized` past `maxBytes`, `.corrupted` when the
    /// checksum fails, `.unsupportedFormat` for an unknown magic or version, `.truncated`
    /// and `.malformed` for bytes that do not follow the format, or whose counters, clocks
    /// or lists exceed the bounds a receiver accepts (`CellVersion.wireProblem`).
    public static func decode(_ bytes: [UInt8], maxBytes: Int = defaultMaxBytes) throws(CoreError) -> Changeset {
        guard bytes.count <= maxBytes else {
            throw CoreError(.oversized, "changeset is \(bytes.count) bytes; the limit is \(maxBytes)")
        }
        guard !bytes.isEmpty else {
            throw CoreError(.malformed, "the body is empty; a changeset starts with 'FRYC'")
        }
        guard bytes.count >= magic.count + 2 + 4 else {
            throw CoreError(.truncated, "changeset is only \(bytes.count) bytes, shorter than any valid one")
        }
        guard Array(bytes[0..<4]) == magic else {
            throw CoreError(.unsupportedFormat, "not a Ferry changeset (the first bytes are not 'FRYC')")
        }
        let format = bytes[4]
        guard format == 1 || format == formatVersion else {
            throw CoreError(.unsupportedFormat, "changeset format version \(format) is not supported (this build reads versions 1 and \(formatVersion)); upgrade Ferry")
        }
        let bodyEnd = bytes.count - 4
        var tail = ByteReader(bytes, offset: bodyEnd)
        let stored = try tail.fixed32("checksum")
        let computed = CRC32C.checksum(bytes[0..<bodyEnd])
        guard stored == computed else {
            throw CoreError(.corrupted, "changeset checksum mismatch (stored \(hex(stored)), computed \(hex(computed))): the bytes were damaged in transit; send it again")
        }

        var r = ByteReader(bytes, offset: 5, end: bodyEnd)
        let flags = try r.byte("flags")
        let knownFlags: UInt8 = format == 1 ? 1 : 3
        guard flags & ~knownFlags == 0 else { throw CoreError(.malformed, "unknown flag bits \(flags) in the header") }
        let originText = try r.string("origin node id", maxBytes: 64)
        let origin: NodeID
        do { origin = try NodeID(originText) } catch { throw CoreError(.malformed, "origin: \(error.message)") }
        let defaultScope: String? = flags & 2 != 0 ? try r.string("default scope", maxBytes: 256) : nil
        let major = try r.varint("standard major version")
        let minor = try r.varint("standard minor version")
        let patch = try r.varint("standard patch version")
        guard major <= UInt32.max, minor <= UInt32.max, patch <= UInt32.max else {
            throw CoreError(.malformed, "standard version out of range")
        }
        let sequence = try r.varint("batch sequence")
        let through = try r.varint("batch through")
        let clockMin = try r.varint("clock minimum")
        let clockSpan = try r.varint("clock span")
        guard clockMin <= UInt64.max - clockSpan else { throw CoreError(.malformed, "clock range overflows") }

        let nodeCount = try r.count("node count", max: 1 << 16)
        var nodes: [(NodeID, Authority)] = []
        nodes.reserveCapacity(nodeCount)
        var known = Set<NodeID>()
        for i in 0..<nodeCount {
            let text = try r.string("node \(i) id", maxBytes: 64)
            let id: NodeID
            do { id = try NodeID(text) } catch { throw CoreError(.malformed, "node \(i): \(error.message)") }
            guard let a = Authority(rawValue: try r.byte("node \(i) authority")) else {
                throw CoreError(.malformed, "node \(i) ('\(text)') has an unknown authority")
            }
            guard known.insert(id).inserted else {
                throw CoreError(.malformed, "node '\(text)' is listed twice")
            }
            nodes.append((id, a))
        }

        func node(_ what: String, _ r: inout ByteReader) throws(CoreError) -> Int {
            let i = try r.varint(what)
            guard i < UInt64(nodes.count) else { throw CoreError(.malformed, "\(what) names node \(i) of \(nodes.count)") }
            return Int(i)
        }

        func version(_ what: String, _ r: inout ByteReader) throws(CoreError) -> CellVersion {
            let gen = try r.varint("\(what) generation")
            let sgen = try r.varint("\(what) supervisor generation")
            let delta = try r.varint("\(what) clock")
            guard gen <= UInt64(CellVersion.maxCounter), sgen <= UInt64(CellVersion.maxCounter) else {
                throw CoreError(.malformed, "\(what) generation \(gen)/\(sgen) is above the limit \(CellVersion.maxCounter)")
            }
            guard delta <= clockSpan else { throw CoreError(.malformed, "\(what) clock lies outside the header's clock range") }
            let originIndex = try node("\(what) origin", &r)
            let clock = clockMin + delta
            var seen: [VersionID] = []
            if format == 1 {
                let hasBase = try r.byte("\(what) base flag")
                switch hasBase {
                case 0: break
                case 1:
                    let bc = try r.varint("\(what) base clock")
                    let bo = try node("\(what) base origin", &r)
                    if nodes[bo].0 != nodes[originIndex].0 { seen = [VersionID(clock: HLCTimestamp(rawValue: bc), origin: nodes[bo].0)] }
                default: throw CoreError(.malformed, "\(what) base flag is \(hasBase), not 0 or 1")
                }
            } else {
                let n = try r.count("\(what) seen count", max: CellVersion.maxSeen)
                for k in 0..<n {
                    let o = try node("\(what) seen \(k) origin", &r)
                    let d = try r.signedVarint("\(what) seen \(k) clock")
                    let c = Int128(clock) - Int128(d)
                    guard c >= 0, c <= Int128(UInt64.max) else { throw CoreError(.malformed, "\(what) seen \(k) clock is out of range") }
                    seen.append(VersionID(clock: HLCTimestamp(rawValue: UInt64(c)), origin: nodes[o].0))
                }
            }
            let (o, a) = nodes[originIndex]
            let v = CellVersion(
                generation: UInt32(gen), supervisorGeneration: UInt32(sgen),
                clock: HLCTimestamp(rawValue: clock), origin: o, authority: a, seen: seen)
            if let problem = v.wireProblem { throw CoreError(.malformed, "\(what) \(problem)") }
            return v
        }

        let tableCount = try r.count("table count", max: 1 << 16)
        var tables: [TableChanges] = []
        for ti in 0..<tableCount {
            let name = try r.string("table \(ti) name", maxBytes: 256)
            let columnCount = try r.count("column count of table '\(name)'", max: 1 << 10)
            var columns: [String] = []
            for ci in 0..<columnCount {
                columns.append(try r.string("column \(ci) name of table '\(name)'", maxBytes: 256))
            }
            guard Set(columns).count == columns.count else {
                throw CoreError(.malformed, "table '\(name)' lists a column twice")
            }
            let rowCount = try r.count("row count of table '\(name)'", max: Int.max)
            var rows: [RowChange] = []
            rows.reserveCapacity(rowCount)
            for ri in 0..<rowCount {
                let what = "row \(ri) of table '\(name)'"
                let keyCount = try r.count("key length of \(what)", max: Standard.maxPrimaryKeyColumns)
                guard keyCount >= 1 else { throw CoreError(.malformed, "\(what) has an empty key") }
                var key: [Value] = []
                for _ in 0..<keyCount { key.append(try readValue("key of \(what)", &r)) }
                let rowByte = try r.byte("scope and flags of \(what)")
                let scopeMode = format == 1 ? rowByte : rowByte & 3
                let rowFlags = RowFlags(rawValue: format == 1 ? 0 : rowByte >> 2)
                guard RowFlags.known.isSuperset(of: rowFlags) else {
                    throw CoreError(.malformed, "\(what) has unknown flag bits \(rowByte)")
                }
                var scope: String? = nil
                switch scopeMode {
                case 0: break
                case 1: scope = try r.string("scope of \(what)", maxBytes: 256)
                case 2 where format != 1:
                    guard let d = defaultScope else { throw CoreError(.malformed, "\(what) takes the default scope, but the header has none") }
                    scope = d
                default: throw CoreError(.malformed, "scope flag of \(what) is \(scopeMode)")
                }
                let cl = try r.varint("causal length of \(what)")
                guard cl >= 1, cl <= UInt64(CellVersion.maxCounter) else {
                    throw CoreError(.malformed, "\(what) has causal length \(cl), outside 1…\(CellVersion.maxCounter)")
                }
                let cellCount = try r.count("cell count of \(what)", max: Int.max)
                if rowFlags.contains(.leave), cellCount > 0 {
                    throw CoreError(.malformed, "\(what) leaves the receiver's scope but carries cells")
                }
                if cellCount == 0 {
                    guard cl % 2 == 0 || rowFlags.contains(.leave) else { throw CoreError(.malformed, "\(what) is live but carries no cells") }
                    rows.append(RowChange(key: key, scope: scope, causalLength: UInt32(cl), cells: [], flags: rowFlags))
                    continue
                }
                let rowVersion = try version("row version of \(what)", &r)
                var cells: [CellChange] = []
                cells.reserveCapacity(cellCount)
                var seenColumns = Set<Int>()
                for ci in 0..<cellCount {
                    let cwhat = "cell \(ci) of \(what)"
                    let idx = try r.varint("column of \(cwhat)")
                    guard idx < UInt64(columns.count) else {
                        throw CoreError(.malformed, "\(cwhat) names column \(idx) of \(columns.count)")
                    }
                    guard seenColumns.insert(Int(idx)).inserted else {
                        throw CoreError(.malformed, "\(what) carries column '\(columns[Int(idx)])' twice")
                    }
                    let cflags = try r.byte("flags of \(cwhat)")
                    guard cflags & ~3 == 0 else { throw CoreError(.malformed, "\(cwhat) has unknown flag bits \(cflags)") }
                    let value: Value? = cflags & 1 == 0 ? try readValue(cwhat, &r) : nil
                    let v = cflags & 2 != 0 ? try version("version of \(cwhat)", &r) : rowVersion
                    if cl % 2 == 0, value != nil {
                        throw CoreError(.malformed, "\(what) is deleted but carries a value for '\(columns[Int(idx)])'")
                    }
                    if cl % 2 == 1, value == nil {
                        throw CoreError(.malformed, "\(what) is live but carries no value for '\(columns[Int(idx)])'")
                    }
                    cells.append(CellChange(column: columns[Int(idx)], value: value, version: v))
                }
                rows.append(RowChange(key: key, scope: scope, causalLength: UInt32(cl), cells: cells, flags: rowFlags))
            }
            tables.append(TableChanges(name: name, rows: rows))
        }
        guard r.isAtEnd else {
            throw CoreError(.malformed, "\(r.remaining) unexpected bytes after the last table")
        }
        return Changeset(
            origin: origin,
            standardVersion: StandardVersion(UInt32(major), UInt32(minor), UInt32(patch)),
            batch: BatchPosition(sequence: sequence, through: through, isFinal: flags & 1 == 1),
            tables: tables)
    }

    static func readValue(_ what: String, _ r: inout ByteReader) throws(CoreError) -> Value {
        let tagByte = try r.byte("value tag of \(what)")
        guard let tag = ValueTag(rawValue: tagByte) else {
            throw CoreError(.malformed, "\(what) has unknown value tag \(tagByte)")
        }
        switch tag {
        case .null: return .null
        case .integer: return .integer(try r.signedVarint("integer of \(what)"))
        case .real: return .real(Double(bitPattern: try r.fixed64("real of \(what)")))
        case .text: return .text(try r.string("text of \(what)"))
        case .blob:
            let n = try r.count("blob length of \(what)", max: Int.max)
            return .blob(Array(try r.bytes(n, "blob of \(what)")))
        }
    }

    static func hex(_ v: UInt32) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 8 - s.count) + s
    }
}
