import FerryCore
import FerryDemo
import FerryHub
import FerrySample
import FerryStore
import FerryTestSupport
import Foundation
import GRDB

/// A new node for an existing unit: the reference unit (300 members, five years of records)
/// is at the hub; a newly enrolled node pulls the unit's scope and the reference data.
/// Real processes: `ferry hub serve`, `ferry node init`, `ferry sync`; peak memory of both
/// from /proc (VmHWM), so "streamed" is measured, not assumed.
enum BootstrapBench {
    static func run(years: Int) throws {
        let dir = try TemporaryDirectory("ferry-bootstrap")
        defer { dir.remove() }
        var shape = SampleProvince.referenceUnitShape()
        shape.years = years
        let province = SampleProvince(shape: shape)
        let unit = province.referenceUnit().id
        let hubDir = dir.file("hub")
        let token: String
        do {
            let hub = try Hub(directory: hubDir)
            for o in province.orgUnits {
                _ = try hub.addUnit(o)
            }
            try hub.store.executeAll(province.hubStatements().filter { !$0.sql.contains("INTO org_unit") }.map { (sql: $0.sql, arguments: $0.arguments) })
            _ = try SampleHub.sync(unit: unit, province: province, hub: hub)
            token = try hub.issueToken(unitID: unit)
            try hub.store.close()
        }
        let server = try ChildProcess(FerryBinary.path, ["hub", "serve", "--dir", hubDir, "--listen", "127.0.0.1:0"])
        defer { server.stop() }
        let url = "http://127.0.0.1:\(try server.waitFor("listening on http://127\\.0\\.0\\.1:(\\d+)"))"
        let hubBefore = peakResidentKiB(of: server.process.processIdentifier) ?? 0
        let node = dir.file("node")
        let initResult = try runCommand(FerryBinary.path, ["node", "init", "--dir", node, "--hub", url, "--token", token, "--lang", "en"])
        precondition(initResult.status == 0, initResult.stderr)

        let start = DispatchTime.now().uptimeNanoseconds
        let sync = try ChildProcess(FerryBinary.path, ["sync", "--dir", node, "--lang", "en", "--batch-bytes", String(1 << 20)])
        let nodePeak = sync.waitSamplingPeak(every: 0.02)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        precondition(sync.process.terminationStatus == 0, "ferry sync failed: \(sync.stderr)")
        let hubPeak = peakResidentKiB(of: server.process.processIdentifier) ?? 0
        server.stop()
        let db = try DatabaseQueue(path: "\(node)/unit.db")
        let rows = try db.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM ferry_rows") ?? 0 }
        let unitRows = try db.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM ferry_rows WHERE scope = ?", arguments: [unit]) ?? 0 }
        try db.close()
        let hubDB = try DatabaseQueue(path: "\(hubDir)/hub.db")
        let hubUnitRows = try hubDB.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM ferry_rows WHERE scope = ?", arguments: [unit]) ?? 0 }
        try hubDB.close()
        precondition(unitRows == hubUnitRows, "the node holds \(unitRows) of the unit's \(hubUnitRows) rows")
        let file = (try? FileManager.default.attributesOfItem(atPath: "\(node)/unit.db")[.size] as? Int) ?? 0
        print("Ferry bootstrap: a new node of the reference unit (\(shape.years) years) pulls its scope from a hub process over loopback (`ferry sync`, 1 MiB batches)")
        print("")
        print("| measure | value |")
        print("| --- | --- |")
        print("| rows pulled | \(rows) (\(unitRows) of the unit's own, \(rows - unitRows) reference) |")
        print("| time, `ferry sync` start to exit | \(String(format: "%.2f", seconds)) s |")
        print("| rate end to end | \(String(format: "%.0f", Double(rows) / seconds)) rows/s (goal ≥ 50,000) |")
        print("| node peak RSS | \(nodePeak / 1024) MiB (unit.db is \(file >> 20) MiB) |")
        print("| hub peak RSS | \(hubPeak / 1024) MiB (\(hubBefore / 1024) MiB before the pull) |")
    }
}
