// End-to-end benchmarks over HTTP on loopback (libcurl client, Hummingbird server, real
// SQLite files on both sides):
//
//   swift run -c release FerryNetBench push [rows]   one node pushes N new rows (default 100000)
//   swift run -c release FerryNetBench day           the reference unit's day of changes: wire
//                                                    bytes against sqldiff --changeset, raw and gzip'd
//
//   swift run -c release FerryNetBench rollup [cities counties units years]
//                                                    the supervisor's view over a sample province
//                                                    (default 3 × 3 × 22 units, 5 years)
//
//   swift run -c release FerryNetBench bootstrap [years]
//                                                    a new node of the reference unit pulls its scope
//   swift run -c release FerryNetBench province [units steady-seconds burst-seconds max-sessions]
//                                                    N units over real HTTP against a hub process,
//                                                    steady then burst (default 2000 120 5 32)
//
//   swift run -c release FerryNetBench antientropy   the reference unit compared with its hub: equal,
//                                                    one row different, unit.db put back a day
//   swift run -c release FerryNetBench cuts          the reference day over 64 kbit/s, 300 ms, clean
//                                                    and cut every 10-30 KB: bytes resent
//
// With no argument, push and day run.
import FerryCore
import FerryHub
import FerryHubServer
import FerryNode
import FerrySample
import FerryStore
import FerryTestSupport
import FerryTrust
import FerryWire
import Foundation
import Hummingbird

let mode = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "all"
let rows = CommandLine.arguments.count > 2 ? Int(CommandLine.arguments[2]) ?? 100_000 : 100_000
if mode == "bootstrap" {
    try BootstrapBench.run(years: rows == 100_000 ? 5 : rows)
    exit(0)
}
if mode == "province" {
    let n = CommandLine.arguments.dropFirst(2).compactMap { Int($0) }
    try await ProvinceLoad.run(
        units: n.count > 0 ? n[0] : 2000, steadyWindow: Double(n.count > 1 ? n[1] : 120), burstWindow: Double(n.count > 2 ? n[2] : 5),
        maxSessions: n.count > 3 ? n[3] : 32)
    exit(0)
}
if mode == "rollup" {
    let n = CommandLine.arguments.dropFirst(2).compactMap { Int($0) }
    try await RollupBench.run(
        shape: ProvinceShape(
            cities: n.count > 0 ? n[0] : 3, countiesPerCity: n.count > 1 ? n[1] : 3, unitsPerCounty: n.count > 2 ? n[2] : 22,
            years: n.count > 3 ? n[3] : 5))
    exit(0)
}
if mode == "cuts" {
    try await CutsBench.report()
    exit(0)
}
if mode == "antientropy" {
    try await AntiEntropyBench.run()
    exit(0)
}
if mode == "day" || mode == "all" { try await DayBench.run() }
guard mode == "push" || mode == "all" else { exit(0) }
let dir = try TemporaryDirectory("ferry-netbench")
defer { dir.remove() }
let bench = try await BenchHub.start(
    directory: dir, standard: try String(contentsOfFile: Repository.path("Tests/Fixtures/test-standard.toml"), encoding: .utf8),
    unit: OrgUnit(id: "u-a", name: "单位", parentID: "prov", level: .unit, industry: "medical", region: nil))
let (hub, identity, store, clock) = (bench.hub, bench.identity, bench.store, bench.clock)
try store.executeAll((0..<rows).map { i in
    (
        "INSERT INTO member (id, unit_id, name, status, join_date, phone, note) VALUES (?, 'u-a', ?, 'full', '2020-05-04', ?, ?)",
        [.text("m\(i)"), .text("党员\(i)"), .text("1391234\(String(format: "%04d", i % 10000))"), .text("第\(i % 7)支部")]
    )
})
try store.stampPendingChanges()

let connection = try HTTPHubConnection(identity: identity, clock: clock)
let agent = NodeAgent(store: store, hub: connection, identity: identity, clock: clock, batchBytes: 256 * 1024)
let start = DispatchTime.now().uptimeNanoseconds
let report = try agent.syncOnce()
let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
let landed = try hub.store.syncedContents(of: "member").count
let wire = connection.transferred
precondition(landed == rows, "hub has \(landed) of \(rows) rows")

print("Ferry end-to-end bench: one node pushes \(rows) new member rows to a hub over HTTP on loopback")
print("")
print("| measure | value |")
print("| --- | --- |")
print("| push throughput | \(String(format: "%.0f", Double(rows) / seconds)) rows/s (\(String(format: "%.2f", seconds)) s, \(report.pushedBatches) batches) |")
print("| changeset bytes (uncompressed) | \(report.pushedBytes) (\(String(format: "%.1f", Double(report.pushedBytes) / Double(rows))) B/row) |")
print("| bytes on the wire up / down (gzip bodies, headers, signatures) | \(wire.sent) / \(wire.received) (\(String(format: "%.1f", Double(wire.sent) / Double(rows))) B/row up) |")
await bench.stop()
