import FerryCore
import FerryHub
import FerryNode
import FerrySample
import FerryStandardFile
import FerryStore
import FerryTestSupport
import Foundation

/// The reference unit's day over a weak link (64 kbit/s, 300 ms each way), once clean and once
/// cut every 10–30 KB, with the daemon's own rule between attempts (`SyncRetry`, no sleeping:
/// the waits are counted, not slept). The same day on two identical hubs, measured by the fault
/// proxy's byte counters (HTTP included); the clean run is the baseline for what the cuts cost.
enum CutsBench {
    struct Run {
        var bytes = 0
        var attempts = 0
        var cuts = 0
        var seconds = 0.0
        var waited = 0.0
    }

    static func run(batchBytes: Int) async throws -> (clean: Run, cut: Run, rows: Int) {
        var clean = Run()
        var cut = Run()
        var rows = 0
        for cutting in [false, true] {
            let dir = try TemporaryDirectory("ferry-cutsbench")
            defer { dir.remove() }
            let (bench, province, unitID) = try await BenchHub.referenceUnit(directory: dir)
            let (identity, store, clock) = (bench.identity, bench.store, bench.clock)
            // The history goes straight to the hub; the day goes through the proxy.
            let direct = NodeAgent(store: store, hub: try HTTPHubConnection(identity: identity, clock: clock), identity: identity, clock: clock, batchBytes: 256 * 1024)
            _ = try direct.syncOnce()
            try province.unitStatements(unitID) { chunk in try store.executeAll(chunk.map { ($0.sql, $0.arguments) }) }
            _ = try direct.syncOnce()
            // A busy day: five of the sample's days of work, about 1,500 statements (the
            // workload the issue measured had 1,314 changed rows).
            rows = 0
            for (i, date) in ["2026-12-01", "2026-12-02", "2026-12-03", "2026-12-04", "2026-12-05"].enumerated() {
                let day = province.dayOfChanges(unitID, day: date, seed: 7 + UInt64(i))
                try store.executeAll(day.map { ($0.sql, $0.arguments) })
                rows += day.count
            }
            let plan = FaultPlan(latencyMillis: 300, bytesPerSecond: 8_000, cutAfterBytes: cutting ? 10_000...30_000 : nil, seed: 20)
            let proxy = try FaultProxy(upstreamPort: bench.port, plan: plan)
            defer { proxy.stop() }
            var viaProxy = identity
            viaProxy.hubURL = "http://127.0.0.1:\(proxy.port)"
            let agent = NodeAgent(store: store, hub: try HTTPHubConnection(identity: viaProxy, clock: clock), identity: viaProxy, clock: clock, batchBytes: batchBytes)
            var retry = SyncRetry()
            var r = Run()
            let started = ContinuousClock.now
            while true {
                r.attempts += 1
                do {
                    _ = try agent.syncOnce()
                    break
                } catch {
                    guard let wait = retry.next(after: error, random: 0.5), r.attempts < 200 else { throw error }
                    r.waited += wait
                }
            }
            let took = ContinuousClock.now - started
            r.seconds = Double(took.components.seconds) + Double(took.components.attoseconds) / 1e18
            let stats = proxy.stats
            r.bytes = stats.bytesToServer + stats.bytesToClient
            r.cuts = stats.cuts
            if cutting { cut = r } else { clean = r }
            await bench.stop()
        }
        return (clean, cut, rows)
    }

    static func report() async throws {
        print("Five days of the reference unit's work in one sync over 64 kbit/s, 300 ms each way: clean, and cut every 10–30 KB of a connection")
        print("")
        print("| batch size | clean: bytes, requests' time | cut: bytes, attempts, cuts, time (+ the retry waits the daemon would sleep) | bytes resent ÷ bytes of the clean day |")
        print("| --- | --- | --- | --- |")
        for batch in [64 * 1024, 16 * 1024] {
            let (clean, cut, rows) = try await run(batchBytes: batch)
            if batch == 64 * 1024 { print("(\(rows) statements)") }
            print(
                "| \(batch / 1024) KiB | \(clean.bytes) B, \(String(format: "%.1f", clean.seconds)) s | \(cut.bytes) B, \(cut.attempts), \(cut.cuts), \(String(format: "%.1f", cut.seconds)) s (+ \(String(format: "%.0f", cut.waited)) s) | \(String(format: "%.1f %%", Double(cut.bytes - clean.bytes) / Double(clean.bytes) * 100)) |")
        }
    }
}
