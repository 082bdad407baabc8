import Hummingbird

/// Serves Prometheus text at GET /metrics on its own (local) address, apart from the sync
/// API, so metrics can stay on loopback while the API is reachable.
public enum MetricsEndpoint {
    /// `render` gives the registry's text; each metric gets its `# HELP` line from `help`
    /// (swift-metrics has no place for one, so it is added here), which promtool asks for.
    public static func application(host: String, port: Int, render: @escaping @Sendable () -> [UInt8]) -> some ApplicationProtocol {
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: withHelp(render()))))
        }
        return Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "ferry-metrics"))
    }
}

extension MetricsEndpoint {
    /// What each of Ferry's metrics means, for its `# HELP` line. A metric missing here is
    /// served without one, and the metrics test (promtool) fails.
    public static let help: [String: String] = [
        "ferry_hub_sessions_in_flight": "Sync sessions (exchange, reconcile) being served now.",
        "ferry_hub_sessions_shed_total": "Sync sessions turned away with 503 overloaded for want of a slot.",
        "ferry_hub_batches_applied_total": "Pushed batches validated and applied.",
        "ferry_hub_rows_applied_total": "Rows in applied pushed batches.",
        "ferry_hub_bytes_received_total": "Bytes of applied pushed changesets, uncompressed.",
        "ferry_hub_batches_sent_total": "Batches sent down to nodes.",
        "ferry_hub_rows_sent_total": "Rows in batches sent down to nodes.",
        "ferry_hub_conflicts_total": "Conflicts kept when merging pushes.",
        "ferry_hub_quarantined_total": "Values set aside because they failed the standard's checks.",
        "ferry_hub_enrolments_total": "Nodes enrolled.",
        "ferry_hub_refused_versions_total": "Incoming versions a node may not author, set aside.",
        "ferry_hub_antientropy_repaired_cells_total": "Cells anti-entropy repaired at the hub.",
        "ferry_hub_antientropy_rounds_total": "Anti-entropy rounds answered.",
        "ferry_hub_node_rollbacks_total": "Node databases found put back from an older copy.",
        "ferry_hub_errors_total": "Sync requests failed, by error code.",
        "ferry_hub_connections_refused_total": "Connections closed at once, by the limit they hit.",
        "ferry_hub_connection_timeouts_total": "Connections closed for a request head or body that stopped arriving.",
        "ferry_hub_requests_refused_total": "Requests refused before their body was read, by error code.",
        "ferry_hub_units": "Units in the hub's org tree.",
        "ferry_hub_units_silent": "Units without a successful sync for silent_after_days (never synced included).",
        "ferry_hub_stalest_unit_sync_age_seconds": "Seconds since the last successful sync of the unit that synced longest ago.",
        "ferry_node_sync_sessions_total": "Syncs with the hub, by outcome.",
        "ferry_node_batches_total": "Batches moved, by direction.",
        "ferry_node_rows_total": "Rows moved, by direction.",
        "ferry_node_bytes_total": "Changeset bytes moved (uncompressed), by direction.",
        "ferry_node_conflicts_total": "Conflicts kept when merging the hub's batches.",
        "ferry_node_antientropy_repaired_rows_total": "Rows anti-entropy found held differently from the hub, then repaired.",
        "ferry_node_pending_rows": "Rows waiting to go up to the hub.",
        "ferry_node_last_success_timestamp_seconds": "Unix time of the last successful sync.",
        "ferry_node_errors_total": "Failed syncs, by kind (transport, local, or hub_ and the hub's error code).",
    ]

    /// Prometheus text with a `# HELP` line before each `# TYPE` line that lacks one.
    public static func withHelp(_ text: [UInt8]) -> [UInt8] {
        let lines = String(decoding: text, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        var out: [Substring] = []
        var helped = Set<Substring>()
        for line in lines {
            if line.hasPrefix("# HELP ") { helped.insert(line.dropFirst(7).prefix { $0 != " " }) }
            if line.hasPrefix("# TYPE ") {
                let name = line.dropFirst(7).prefix { $0 != " " }
                if !helped.contains(name), let h = help[String(name)] {
                    out.append(Substring("# HELP \(name) \(h)"))
                    helped.insert(name)
                }
            }
            out.append(line)
        }
        return Array(out.joined(separator: "\n").utf8)
    }
}
