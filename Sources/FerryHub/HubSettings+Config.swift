import FerryConfig

extension HubSettings {
    /// The settings a hub.toml gives: every key of it mapped here, once (the listen
    /// address, folder, standard, TLS files, metrics and log level are the server's).
    public init(config c: HubConfig) {
        self.init()
        maxConcurrentSessions = c.maxConcurrentSessions
        maxBodyBytes = c.maxBodyBytes
        tokenLifetimeSeconds = UInt64(c.tokenLifetimeDays) * 86_400
        silentAfterDays = c.silentAfterDays
        adminSessionSeconds = UInt64(c.adminSessionHours) * 3600
        trustedProxies = c.trustedProxyRanges
        transport.maxConnections = c.limits.maxConnections
        transport.maxConnectionsPerAddress = c.limits.maxConnectionsPerAddress
        transport.maxUnauthenticatedReads = c.limits.maxUnauthenticatedReads
        transport.maxUnauthenticatedPerAddress = c.limits.maxUnauthenticatedPerAddress
        transport.maxEnrolBodyBytes = c.limits.maxEnrolBodyBytes
        transport.maxConcurrentEnrolments = c.limits.maxConcurrentEnrolments
        transport.enrolAttemptsPerMinute = c.limits.enrolAttemptsPerMinute
        transport.requestHeadTimeoutSeconds = c.timeouts.requestHeadSeconds
        transport.bodyProgressTimeoutSeconds = c.timeouts.bodyProgressSeconds
    }
}
