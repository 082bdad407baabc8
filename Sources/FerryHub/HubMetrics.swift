import Metrics

/// The hub's metrics, created once per hub (after the process bootstrapped a metrics
/// backend). Labels are bounded: routes and error codes, never node or unit ids.
public struct HubMetrics: Sendable {
    let sessionsInFlight = Gauge(label: "ferry_hub_sessions_in_flight")
    let sessionsShed = Counter(label: "ferry_hub_sessions_shed_total")
    let batchesApplied = Counter(label: "ferry_hub_batches_applied_total")
    let rowsApplied = Counter(label: "ferry_hub_rows_applied_total")
    let bytesReceived = Counter(label: "ferry_hub_bytes_received_total")
    let batchesSent = Counter(label: "ferry_hub_batches_sent_total")
    let rowsSent = Counter(label: "ferry_hub_rows_sent_total")
    let conflicts = Counter(label: "ferry_hub_conflicts_total")
    let quarantined = Counter(label: "ferry_hub_quarantined_total")
    let enrolments = Counter(label: "ferry_hub_enrolments_total")
    /// Incoming versions a node may not author (forged origin or authority), set aside.
    let refusedVersions = Counter(label: "ferry_hub_refused_versions_total")
    /// Cells anti-entropy repaired at the hub, and reconciliation questions answered.
    let repairedCells = Counter(label: "ferry_hub_antientropy_repaired_cells_total")
    let reconcileRounds = Counter(label: "ferry_hub_antientropy_rounds_total")
    /// Nodes whose database was found to have gone back in time (a restore).
    let rollbacks = Counter(label: "ferry_hub_node_rollbacks_total")

    public init() {}

    func error(_ code: String) { Counter(label: "ferry_hub_errors_total", dimensions: [("code", code)]).increment() }
}

extension Hub {
    /// Freshness as gauges, computed when metrics are scraped: units in the org tree, units
    /// silent for `silentAfterDays` (no successful sync, as the dashboard counts them), and
    /// the age of the stalest unit's last sync.
    public func recordFreshnessMetrics() {
        guard let units = try? registry.units().filter({ $0.level == .unit }), let nodes = try? registry.nodes() else { return }
        let now = clock.nowMillis()
        var newest: [String: UInt64] = [:]
        for n in nodes where n.revokedAt == nil {
            if let at = n.lastSyncAt { newest[n.unitID] = max(newest[n.unitID] ?? 0, at) }
        }
        let limit = UInt64(settings.silentAfterDays) * 86_400_000
        var silent = 0
        var oldest: UInt64 = 0
        for u in units {
            let at = newest[u.id]
            if at.map({ now > $0 && now - $0 > limit }) ?? true { silent += 1 }
            oldest = max(oldest, at.map { now > $0 ? now - $0 : 0 } ?? 0)
        }
        Gauge(label: "ferry_hub_units").record(units.count)
        Gauge(label: "ferry_hub_units_silent").record(silent)
        Gauge(label: "ferry_hub_stalest_unit_sync_age_seconds").record(Double(oldest) / 1000)
    }
}
