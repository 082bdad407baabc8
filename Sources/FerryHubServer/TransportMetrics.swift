import Metrics

/// Counters of the listener's defences. Labels are bounded: a fixed reason, never an address.
enum TransportMetrics {
    /// A connection closed as soon as it was accepted (`limit`: total or per_address).
    static func connectionsRefused(_ limit: String) {
        Counter(label: "ferry_hub_connections_refused_total", dimensions: [("limit", limit)]).increment()
    }

    /// A connection closed because a head or a body stopped arriving (`waiting_for`: head or body).
    static func timeouts(_ waitingFor: String) {
        Counter(label: "ferry_hub_connection_timeouts_total", dimensions: [("waiting_for", waitingFor)]).increment()
    }

    /// A request refused before its body was read (`code`: the wire error code).
    static func refused(_ code: String) {
        Counter(label: "ferry_hub_requests_refused_total", dimensions: [("code", code)]).increment()
    }
}
