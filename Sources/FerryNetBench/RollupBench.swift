import FerryCore
import FerryDemo
import FerryHub
import FerryHubServer
import FerrySample
import FerryStore
import FerryTestSupport
import Foundation
import GRDB
import Hummingbird

/// The supervisor's view at province scale: a hub holding a sample province (synced the
/// way nodes sync), then
/// - a full recompute of every indicator for every unit and period, rolled up the tree,
///   against the time SQLite takes just to read every row the indicators read once (the
///   floor for any recompute from the data);
/// - the incremental refresh after one unit's day of changes arrives, against the full
///   recompute;
/// - the dashboard page of the province node over HTTP (and the JSON report), median of 5.
enum RollupBench {
    static func run(shape: ProvinceShape) async throws {
        let dir = try TemporaryDirectory("ferry-rollup")
        defer { dir.remove() }
        let province = SampleProvince(shape: shape)
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        var t0 = DispatchTime.now().uptimeNanoseconds
        func lap() -> Double {
            let t = DispatchTime.now().uptimeNanoseconds
            defer { t0 = t }
            return Double(t - t0) / 1e9
        }
        let summary = try SampleHub.build(directory: dir.file("hub"), shape: shape, now: now)
        let setup = lap()
        let hub = try Hub(directory: dir.file("hub"))
        let view = try SupervisorView(hub: hub)
        let tree = try view.tree()

        // Floor: read once every row any indicator reads (SQLite's own scan, no grouping).
        var scanned = 0
        _ = lap()
        let tables = Set(hub.store.standard.indicators.flatMap { [$0.numerator.table] + ($0.denominator.map { [$0.table] } ?? []) })
        try hub.store.read { db in
            for t in tables.sorted() { scanned += try Int.fetchOne(db, sql: "SELECT count(*) FROM (SELECT * FROM \"\(t)\")") ?? 0 }
        }
        let scan = lap()
        let full = try view.refresh()
        let fullSeconds = lap()
        precondition(full.full)
        // Again from an empty report.db, to show the first one was not helped by a cache.
        let again = try IndicatorFacts(path: dir.file("again.db"), standard: hub.store.standard)
        _ = lap()
        _ = try again.refresh(from: hub.store, tree: tree)
        let fullAgain = lap()

        // One unit's day of changes, synced the way a node syncs it.
        let unit = province.units[0].id
        let day = province.dayOfChanges(unit, day: SampleHub.dayAfter(shape.endDate), seed: 9)
        let replica = try ReplicaStore(
            path: dir.file("unit.db"), standard: hub.store.standard, identity: ReplicaIdentity(node: NodeID(unchecked: "\(unit)-n9"), role: .unit(unit)),
            clock: SystemClock())
        let peer = NodeID(unchecked: "\(unit)-n9")
        while let cs = try hub.store.extract(for: Peer(id: peer, direction: .downstream(unit: unit)), maxBytes: 1 << 20) {
            try replica.apply(cs, sender: .trusted, from: hub.nodeID)
            try hub.store.acknowledge(cs.batch, from: peer)
        }
        try replica.executeAll(day.map { (sql: $0.sql, arguments: $0.arguments) })
        var dayRows = 0
        while let cs = try replica.extract(for: Peer(id: hub.nodeID, direction: .upstream), maxBytes: 1 << 20) {
            dayRows += cs.rowCount
            try hub.store.apply(cs, sender: .unit(unit), quarantine: true)
            try replica.acknowledge(cs.batch, from: hub.nodeID)
        }
        _ = lap()
        let inc = try view.refresh()
        let incSeconds = lap()
        precondition(!inc.full && inc.units == 1, "\(inc)")

        // The province's page over HTTP.
        let portBox = PortBox()
        let app = try HubServer(hub: hub, host: "127.0.0.1", port: 0).application { portBox.set($0) }
        let serving = Task { try await app.runService() }
        while portBox.get() == 0 { try await Task.sleep(for: .milliseconds(20)) }
        let base = "http://127.0.0.1:\(portBox.get())"
        try hub.registry.setAdmin(name: "bench", password: "bench password", orgID: tree.roots[0], now: hub.now())
        let jar = dir.file("jar")
        let ticket = try hub.registry.loginTicket(name: "bench", now: hub.now())
        _ = try runCommand("/usr/bin/env", ["curl", "-s", "-c", jar, "-o", "/dev/null", "\(base)/login?ticket=\(ticket)"])
        func timed(_ path: String) throws -> (Double, Int) {
            var times: [Double] = []
            var size = 0
            for _ in 0..<5 {
                let r = try runCommand("/usr/bin/env", ["curl", "-s", "-b", jar, "-o", dir.file("page"), "-w", "%{time_total} %{size_download} %{http_code}", "\(base)\(path)"])
                let f = r.stdout.split(separator: " ")
                guard f.count == 3, f[2] == "200" else {
                    print("GET \(path) failed: \(r.stdout) \(r.stderr)")
                    return (-1, 0)
                }
                times.append(Double(f[0])!)
                size = Int(f[1])!
            }
            return (times.sorted()[2], size)
        }
        let root = tree.roots[0]
        let (page, pageBytes) = try timed("/dashboard?org=\(root)")
        let (json, _) = try timed("/v1/report/indicators?org=\(root)")
        let county = tree.nodes.values.filter { $0.level == .county }.map(\.id).sorted()[0]
        let (countyPage, _) = try timed("/dashboard?org=\(county)")
        serving.cancel()
        _ = await serving.result

        let rows = try hub.store.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM ferry_rows") ?? 0 }
        print("Ferry roll-up bench: \(summary.units) units (\(shape.cities) cities × \(shape.countiesPerCity) counties × \(shape.unitsPerCounty)), \(shape.years) years, \(summary.statements) records (\(rows) rows at the hub); built in \(String(format: "%.0f", setup)) s")
        print("")
        print("| measure | time | baseline (same run) | ratio |")
        print("| --- | --- | --- | --- |")
        print("| full recompute, every indicator × unit × period, rolled up (from an empty report.db) | \(String(format: "%.2f", fullAgain)) s | SQLite reading the \(scanned) rows once: \(String(format: "%.2f", scan)) s | \(String(format: "%.1f", fullAgain / scan))× |")
        print("| the first full recompute on this hub, which also builds the report's indexes | \(String(format: "%.2f", fullSeconds)) s | the same scan | \(String(format: "%.1f", fullSeconds / scan))× |")
        print("| incremental refresh after one unit's day (\(day.count) statements, \(dayRows) rows synced) | \(String(format: "%.3f", incSeconds)) s | full recompute: \(String(format: "%.2f", fullAgain)) s | \(String(format: "%.4f", incSeconds / fullAgain))× |")
        print("| province dashboard page (GET /dashboard, \(pageBytes / 1024) KiB), median of 5 | \(String(format: "%.3f", page)) s | – | – |")
        print("| province report JSON (GET /v1/report/indicators), median of 5 | \(String(format: "%.3f", json)) s | – | – |")
        print("| county dashboard page, median of 5 | \(String(format: "%.3f", countyPage)) s | – | – |")
    }
}
