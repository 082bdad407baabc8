import Metrics

/// The node's metrics. Labels are bounded (direction, outcome, error kind).
public struct NodeMetrics: Sendable {
    let syncOK = Counter(label: "ferry_node_sync_sessions_total", dimensions: [("outcome", "ok")])
    let syncFailed = Counter(label: "ferry_node_sync_sessions_total", dimensions: [("outcome", "failed")])
    let batchesUp = Counter(label: "ferry_node_batches_total", dimensions: [("direction", "up")])
    let batchesDown = Counter(label: "ferry_node_batches_total", dimensions: [("direction", "down")])
    let rowsUp = Counter(label: "ferry_node_rows_total", dimensions: [("direction", "up")])
    let rowsDown = Counter(label: "ferry_node_rows_total", dimensions: [("direction", "down")])
    let bytesUp = Counter(label: "ferry_node_bytes_total", dimensions: [("direction", "up")])
    let bytesDown = Counter(label: "ferry_node_bytes_total", dimensions: [("direction", "down")])
    let conflicts = Counter(label: "ferry_node_conflicts_total")
    /// Rows anti-entropy found held differently from the hub (then repaired).
    let repairs = Counter(label: "ferry_node_antientropy_repaired_rows_total")
    let pendingRows = Gauge(label: "ferry_node_pending_rows")
    let lastSuccess = Gauge(label: "ferry_node_last_success_timestamp_seconds")

    public init() {}

    func error(_ kind: SyncFailure.Kind) {
        let k: String
        switch kind {
        case .hub(let code): k = "hub_" + code.rawValue
        case .transport: k = "transport"
        case .local: k = "local"
        }
        Counter(label: "ferry_node_errors_total", dimensions: [("kind", k)]).increment()
    }
}
