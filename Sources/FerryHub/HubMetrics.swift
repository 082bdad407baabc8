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
