// The sync core's benchmarks: capture overhead, stamping, extraction, apply, and encoded
// size, each against a plain-SQLite baseline measured in the same run.
//
//   swift run -c release FerryBench [rows]      (default 20000)
//
// Prints a Markdown table; scripts/bench saves it under bench-output/.
import FerryCore
import FerryStore
import FerryTestSupport
import Foundation
import GRDB

let rows = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 20_000 : 20_000
let standard = try Repository.testStandard()
let member = standard.table(named: "member")!
let dir = try TemporaryDirectory("ferry-bench")
defer { dir.remove() }

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

/// Best of `n` runs of `body`, each on fresh state made by `setup`.
func best<S>(_ n: Int = 3, setup: () throws -> S, _ body: (S) throws -> Void) rethrows -> Double {
    var t = Double.infinity
    for _ in 0..<n {
        let s = try setup()
        t = min(t, try seconds { try body(s) })
    }
    return t
}

var counter = 0
@MainActor func freshPath(_ name: String) -> String {
    counter += 1
    return dir.file("\(name)-\(counter).db")
}

@MainActor func plainDatabase() throws -> DatabasePool {
    var config = Configuration()
    config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
    let pool = try DatabasePool(path: freshPath("plain"), configuration: config)
    try pool.write { db in try db.execute(sql: StandardSQL.createTable(member)) }
    return pool
}

@MainActor func ferryStore(_ name: String = "unit", role: ReplicaRole = .unit("u-a"), node: String = "node-a1") throws -> ReplicaStore {
    try ReplicaStore(
        path: freshPath(name), standard: standard, identity: .init(node: NodeID(unchecked: node), role: role),
        clock: SystemClock())
}

let insertSQL = "INSERT INTO member (id, unit_id, name, status, join_date, phone, note) VALUES (?, 'u-a', ?, 'full', '2020-05-04', ?, ?)"
func insertArgs(_ i: Int) -> StatementArguments {
    ["m\(i)", "党员\(i)", "1391234\(String(format: "%04d", i % 10000))", "第\(i % 7)支部"]
}

func insertAll(_ db: Database) throws {
    let stmt = try db.makeStatement(sql: insertSQL)
    for i in 0..<rows { try stmt.execute(arguments: insertArgs(i)) }
}

func updateAll(_ db: Database) throws {
    let stmt = try db.makeStatement(sql: "UPDATE member SET note = ? WHERE id = ?")
    for i in 0..<rows { try stmt.execute(arguments: ["更新\(i)", "m\(i)"]) }
}

/// The GRDB writer behind a store, for timing raw SQL through the same connection type.
func writer(_ s: ReplicaStore) throws -> DatabasePool {
    var config = Configuration()
    config.busyMode = .timeout(10)
    config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
    return try DatabasePool(path: s.path, configuration: config)
}

var lines: [String] = []
@MainActor func report(_ what: String, _ value: String, _ baseline: String, _ ratio: Double, _ goal: String) {
    lines.append("| \(what) | \(value) | \(baseline) | \(String(format: "%.2f×", ratio)) | \(goal) |")
}
func rate(_ n: Int, _ t: Double) -> String { String(format: "%.0f rows/s", Double(n) / t) }

// 1. Insert and update throughput, one transaction, capture vs plain.
let plainInsert = try best(setup: plainDatabase) { p in try p.write { try insertAll($0) } }
let ferryInsert = try best(setup: { try writer(try ferryStore()) }) { p in try p.write { try insertAll($0) } }
report("insert, one transaction (write path)", rate(rows, ferryInsert), rate(rows, plainInsert), ferryInsert / plainInsert, "≤ 1.3×")

let plainUpdate = try best(setup: { () -> DatabasePool in
    let p = try plainDatabase()
    try p.write { try insertAll($0) }
    return p
}) { p in try p.write { try updateAll($0) } }
let ferryUpdate = try best(setup: { () -> DatabasePool in
    let s = try ferryStore()
    let p = try writer(s)
    try p.write { try insertAll($0) }
    try s.stampPendingChanges()
    return p
}) { p in try p.write { try updateAll($0) } }
report("update one column, one transaction (write path)", rate(rows, ferryUpdate), rate(rows, plainUpdate), ferryUpdate / plainUpdate, "≤ 1.3×")

// Single-statement transactions, as a clerk's tool writes.
let single = min(rows, 5000)
let plainSingle = try best(setup: plainDatabase) { p in
    for i in 0..<single { try p.write { try $0.execute(sql: insertSQL, arguments: insertArgs(i)) } }
}
let ferrySingle = try best(setup: { try writer(try ferryStore()) }) { p in
    for i in 0..<single { try p.write { try $0.execute(sql: insertSQL, arguments: insertArgs(i)) } }
}
report("insert, one transaction per row (write path)", rate(single, ferrySingle), rate(single, plainSingle), ferrySingle / plainSingle, "≤ 1.3×")

// 2. Stamping: the deferred half of capture (clock, version, sequence per row).
var stampStore: ReplicaStore! = nil
let stampTime = try best(setup: { () -> ReplicaStore in
    let s = try ferryStore()
    try writer(s).write { try insertAll($0) }
    stampStore = s
    return s
}) { s in try s.stampPendingChanges() }
report("insert + stamp (full capture cost)", rate(rows, ferryInsert + stampTime), rate(rows, plainInsert), (ferryInsert + stampTime) / plainInsert, "reported")

// 3. Extraction, and 4. apply vs the equivalent plain SQL.
let hubID = NodeID(unchecked: "hub")
var batches: [Changeset] = []
let extractTime = try seconds {
    let peer = Peer(id: hubID, direction: .upstream)
    while let cs = try stampStore.extract(for: peer, maxBytes: 256 * 1024) {
        batches.append(cs)
        try stampStore.acknowledge(cs.batch, from: hubID)
    }
}
let extracted = batches.reduce(0) { $0 + $1.rowCount }
lines.append("| extraction | \(rate(extracted, extractTime)) | – | – | reported |")

let encoded = batches.map(ChangesetCodec.encode)
let applyTime = try best(setup: { try ferryStore("hub", role: .hub, node: "hub") }) { hub in
    for b in encoded { try hub.apply(try ChangesetCodec.decode(b), sender: .unit("u-a")) }
}
let plainApply = try best(setup: plainDatabase) { p in try p.write { try insertAll($0) } }
report("apply (decode + validate + merge), rows/s", rate(extracted, applyTime), rate(rows, plainApply), plainApply / applyTime, "≥ 0.5× plain speed")

// 5. Bytes per changed row.
let rawBytes = encoded.reduce(0) { $0 + $1.count }
let gzBytes = try encoded.reduce(0) { $0 + (try gzipSize($1)) }
lines.append("| encoded insert, bytes/row (raw / gzip -6) | \(String(format: "%.1f / %.1f", Double(rawBytes) / Double(extracted), Double(gzBytes) / Double(extracted))) | – | – | reported |")

// Updates of one column: what a typical day's edit costs on the wire.
try writer(stampStore).write { try updateAll($0) }
var updBytes: [[UInt8]] = []
while let cs = try stampStore.extract(for: Peer(id: hubID, direction: .upstream), maxBytes: 256 * 1024) {
    updBytes.append(ChangesetCodec.encode(cs))
    try stampStore.acknowledge(cs.batch, from: hubID)
}
let updRaw = updBytes.reduce(0) { $0 + $1.count }
let updGz = try updBytes.reduce(0) { $0 + (try gzipSize($1)) }
lines.append("| encoded one-column update, bytes/row (raw / gzip -6) | \(String(format: "%.1f / %.1f", Double(updRaw) / Double(rows), Double(updGz) / Double(rows))) | – | – | reported |")

print("Ferry sync-core bench, \(rows) rows of the test standard's `member` table, \(ProcessInfo.processInfo.activeProcessorCount) cores")
print("")
print("| measure | Ferry | plain SQLite baseline | ratio | goal |")
print("| --- | --- | --- | --- | --- |")
for l in lines { print(l) }
