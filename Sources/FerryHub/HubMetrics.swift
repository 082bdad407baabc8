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

    public init() {}

    func error(_ code: String) { Counter(label: "ferry_hub_errors_total", dimensions: [("code", code)]).increment() }
}
