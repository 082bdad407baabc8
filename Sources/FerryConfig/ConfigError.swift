/// A config file that cannot be used: the file, the key, and what is wrong with it.
///
/// Every message names the key and what would be accepted, e.g.
/// `ferry.toml: sync.interval_seconds must be a whole number ≥ 1 (found -5)`.
/// Config errors are permanent: fix the file and restart.
public struct ConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The file as given to `load(path:)`; empty for a config built in code and validated.
    public var file: String
    /// The dotted key, e.g. `sync.interval_seconds`; nil when the file as a whole is at
    /// fault (unreadable, not TOML).
    public let key: String?
    /// What is wrong, phrased to follow the key: "must be …", "is not a known key …".
    public let problem: String

    public init(file: String = "", key: String?, problem: String) {
        self.file = file
        self.key = key
        self.problem = problem
    }

    public var description: String {
        let subject = key.map { "\($0) \(problem)" } ?? problem
        return file.isEmpty ? subject : "\(file): \(subject)"
    }

    func `in`(_ file: String) -> ConfigError {
        var e = self
        e.file = file
        return e
    }
}
