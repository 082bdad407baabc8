/// Every default of Ferry's settings in one table. The config files' defaults
/// (FerryConfig), the command flags' defaults (`ferry`), and the settings the hub, the
/// node and the HTTP client run with when nothing is said (FerryHub, FerryNode,
/// FerryHTTPClient) all read their values from here, so they cannot disagree.
public enum FerryDefaults {
    /// A unit's node (`ferry node run`, ferry-node.toml).
    public enum Node {
        public static let directory = "ferry-node"
        /// Between scheduled syncs.
        public static let syncIntervalSeconds = 300
        /// After the last local write before syncing it.
        public static let debounceSeconds = 5
        /// Upper bound on one batch (smaller batches lose less when a weak link drops).
        public static let batchBytes = 64 * 1024
        public static let connectTimeoutSeconds = 20
        /// Longest one request may take.
        public static let totalTimeoutSeconds = 300
        /// Below this many bytes a second for `lowSpeedSeconds`, a transfer counts as stalled.
        public static let lowSpeedBytesPerSecond = 64
        public static let lowSpeedSeconds = 60
        /// Backoff after failures: the first wait and the longest.
        public static let retryBaseSeconds = 5
        public static let retryCapSeconds = 600
    }

    /// A supervisor's hub (`ferry hub serve`, hub.toml).
    public enum Hub {
        public static let directory = "ferry-hub"
        public static let port = 7700
        public static let listen = "127.0.0.1:\(port)"
        /// Sync requests served at once; more get 503 + Retry-After.
        public static let maxConcurrentSessions = 32
        public static let maxBodyBytes = 16 << 20
        public static let maxPullBytes = 4 << 20
        public static let tokenLifetimeDays = 7
        /// Days without a sync before a unit counts as silent.
        public static let silentAfterDays = 7
        public static let adminSessionHours = 8
        /// How long a request waits for the registry's write lock.
        public static let busyTimeoutSeconds = 10
        public static let maxConnections = 1024
        public static let maxConnectionsPerAddress = 16
        public static let maxUnauthenticatedReads = 8
        public static let maxUnauthenticatedPerAddress = 4
        public static let maxEnrolBodyBytes = 16 * 1024
        public static let maxConcurrentEnrolments = 4
        public static let enrolAttemptsPerMinute = 10
        public static let requestHeadSeconds = 30
        public static let bodyProgressSeconds = 30
    }
}
