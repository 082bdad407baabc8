import Foundation
import Logging
import Synchronization

/// One log line per event, `key=value` throughout (logfmt), at the right journald priority.
///
/// Under systemd (`$JOURNAL_STREAM` set: stderr is the journal) each line starts with the
/// syslog priority in angle brackets (`<4>` for a warning), which journald reads as the
/// line's priority (`SyslogLevelPrefix=`, on by default) — so `journalctl -p warning` shows
/// warnings and errors only — and no timestamp (the journal keeps its own). Elsewhere each
/// line starts with an ISO 8601 time instead.
///
///     <6>level=info logger=ferry.node msg="sync done" exchanges=2 pushed_rows=12
///     2026-12-01T16:37:28Z level=warning logger=ferry.node msg="sync failed" error="…"
///
/// swift-log's `StreamLogHandler` writes neither priorities nor quoted values, which is why
/// this small handler exists.
public struct JournalLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    let journal: Bool
    let sink: @Sendable (String) -> Void

    /// - Parameter journal: whether stderr is the journal; by default, whether `$JOURNAL_STREAM` is set.
    public init(
        label: String, level: Logger.Level = .info, journal: Bool = ProcessInfo.processInfo.environment["JOURNAL_STREAM"] != nil,
        sink: @escaping @Sendable (String) -> Void = JournalLogHandler.standardError
    ) {
        self.label = label
        self.logLevel = level
        self.journal = journal
        self.sink = sink
    }

    public static let standardError: @Sendable (String) -> Void = { line in
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// syslog priorities, as sd-daemon(3) defines the prefixes.
    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let provided = metadataProvider?.get() { fields.merge(provided) { $1 } }
        if let extra = event.metadata { fields.merge(extra) { $1 } }
        sink(Self.line(level: event.level, label: label, message: "\(event.message)", fields: fields, journal: journal, now: Date()))
    }

    static func line(level: Logger.Level, label: String, message: String, fields: Logger.Metadata, journal: Bool, now: Date) -> String {
        var out = journal ? "<\(priority(level))>" : now.formatted(.iso8601) + " "
        out += "level=\(level.rawValue) logger=\(quoted(label)) msg=\(quoted(message))"
        for key in fields.keys.sorted() {
            out += " \(key)=\(quoted("\(fields[key]!)"))"
        }
        return out
    }

    /// A value as logfmt takes it: bare when it is a plain token, else in double quotes with
    /// `"` and `\` escaped and line breaks as `\n`, so one event is always one line.
    static func quoted(_ s: String) -> String {
        let plain = !s.isEmpty && s.unicodeScalars.allSatisfy { $0.value > 0x20 && $0 != "\"" && $0 != "=" && $0 != "\\" && $0.value != 0x7F }
        if plain { return s }
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if c.value < 0x20 || c.value == 0x7F || (0x80...0x9F).contains(c.value) {
                    out += String(format: "\\u%04x", c.value)
                } else {
                    out.unicodeScalars.append(c)
                }
            }
        }
        return out + "\""
    }
}
