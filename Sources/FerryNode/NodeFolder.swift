import FerryConfig
import FerryCore
import FerryHTTPClient
import FerryStandardFile
import FerryStore
import FerryWire
import Foundation

/// A node's data directory and how it reaches its hub: opens its replica, makes its agent,
/// and moves it to a newer standard. Every `ferry` command on a node goes through this.
public struct NodeFolder: Sendable {
    public var directory: String
    public var http: HTTPClientConfiguration
    /// Added to the system clock (tests and drills of a skewed box only).
    public var clockOffsetMillis: Int64

    public init(directory: String, http: HTTPClientConfiguration = HTTPClientConfiguration(), clockOffsetMillis: Int64 = 0) {
        self.directory = directory
        var http = http
        if http.userAgent == HTTPClientConfiguration().userAgent { http.userAgent = "ferry/\(FerryRelease.version)" }
        self.http = http
        self.clockOffsetMillis = clockOffsetMillis
    }

    public var clock: SystemClock { SystemClock(offsetMillis: clockOffsetMillis) }

    /// `readOnly`: for looking (the status screen): no write lock is taken, so it never waits
    /// behind a clerk's open transaction. A database this build must first upgrade is opened
    /// writable once instead.
    public func open(clock: any WallClock = SystemClock(), readOnly: Bool = false) throws -> (NodeIdentity, ReplicaStore) {
        let identity = try NodeIdentity.load(directory: directory)
        let standard = try StandardFile.load(path: "\(directory)/standard.toml")
        let replica = ReplicaIdentity(node: try NodeID(identity.nodeID), role: .unit(identity.unitID))
        do {
            return (identity, try ReplicaStore(path: "\(directory)/unit.db", standard: standard, identity: replica, clock: clock, readOnly: readOnly))
        } catch StoreError.needsUpgrade {
            return (identity, try ReplicaStore(path: "\(directory)/unit.db", standard: standard, identity: replica, clock: clock))
        }
    }

    /// The node's agent over HTTP to its hub.
    public func agent(batchBytes: Int = FerryDefaults.Node.batchBytes) throws -> NodeAgent {
        let clock = self.clock
        let (identity, store) = try open(clock: clock)
        return NodeAgent(
            store: store, hub: try HTTPHubConnection(identity: identity, clock: clock, configuration: http), identity: identity, clock: clock,
            batchBytes: batchBytes)
    }

    /// Installs the hub's newer standard and reopens the database with it (migrating it);
    /// returns the new agent, or nil when the node is up to date.
    public func upgradeIfAvailable(_ agent: NodeAgent) throws -> NodeAgent? {
        guard StandardUpgrade.isAvailable(agent.hub, current: agent.store.standard) else { return nil }
        _ = try StandardUpgrade.install(from: agent.hub, identity: agent.identity, current: agent.store.standard, directory: directory)
        try agent.store.close()
        return try self.agent(batchBytes: agent.batchBytes)
    }
}

/// What `ferry node run` runs with: the flags' values, or a node config file's (every key
/// of ferry-node.toml mapped here, once).
public struct NodeRunSettings: Sendable {
    public var folder: NodeFolder
    public var intervalSeconds = Double(FerryDefaults.Node.syncIntervalSeconds)
    public var debounceSeconds = Double(FerryDefaults.Node.debounceSeconds)
    public var batchBytes = FerryDefaults.Node.batchBytes
    public var retry = RetryPolicy()
    /// host:port for Prometheus metrics; nil or empty: none.
    public var metricsListen: String?
    /// swift-log's level name (trace … critical).
    public var logLevel = "info"

    public init(folder: NodeFolder) { self.folder = folder }

    public init(config c: NodeConfig, clockOffsetMillis: Int64 = 0) {
        var http = HTTPClientConfiguration()
        http.connectTimeoutSeconds = c.http.connectTimeoutSeconds
        http.totalTimeoutSeconds = c.http.totalTimeoutSeconds
        http.lowSpeedLimitBytesPerSecond = c.http.lowSpeedBytesPerSecond
        http.lowSpeedTimeSeconds = c.http.lowSpeedSeconds
        http.caFile = c.http.caFile.isEmpty ? nil : c.http.caFile
        http.pinnedPublicKey = c.http.pinnedPublicKey.isEmpty ? nil : c.http.pinnedPublicKey
        http.proxy = c.http.proxy.isEmpty ? nil : c.http.proxy
        folder = NodeFolder(directory: c.dir, http: http, clockOffsetMillis: clockOffsetMillis)
        intervalSeconds = Double(c.sync.intervalSeconds)
        debounceSeconds = Double(c.sync.debounceSeconds)
        batchBytes = c.sync.batchBytes
        retry = RetryPolicy(baseSeconds: Double(c.retry.baseSeconds), capSeconds: Double(c.retry.capSeconds))
        metricsListen = c.metrics.listen
        logLevel = c.log.level
    }
}
