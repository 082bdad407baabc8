import FerryCore
import FerryStore
import Foundation

/// What `ferry status` shows a unit's clerk: read from the node's folder without taking
/// its write lock, then written as the terminal screen (Chinese or English) or as JSON
/// for scripts.
public struct StatusScreen: Sendable {
    public var identity: NodeIdentity
    public var state: NodeState
    public var daemonRunning: Bool?
    public var pendingRows: Int
    public var conflictsHeld: Int
    public var lastOK: Int64?
    public var lastAttempt: Int64?
    public var lastErrorKind: String?
    public var lastError: String?
    public var lastErrorZh: String?
    public var clockOffsetMillis: Int64
    public var lastReceivedRows: Int64?
    public var heldRows: [HeldRow]
    public var heldByHub: Int
    public var lastCompared: Int64?
    public var lastCompareEqual: Bool
    public var lastRepairAt: Int64?
    public var lastRepairRows: Int64?
    public var lastRestoreDetected: Int64?
    public var standardVersion: String
    /// A sync under way (`NodeAgent.syncOnce` notes its progress after every exchange).
    public var sync: SyncInProgress?
    /// After a failure, when the daemon tries again (wall-clock ms).
    public var nextAttemptAt: Int64?

    public struct SyncInProgress: Sendable, Equatable {
        public var since: Int64
        public var progressAt: Int64
        public var rowsSent: Int64
        /// Rows still to send, as counted at the last request (nil before the first).
        public var rowsLeft: Int64?
        public var rowsReceived: Int64

        /// Percent of the rows to send that went, when known.
        public var percent: Int? {
            guard let left = rowsLeft else { return nil }
            return rowsSent + left == 0 ? 100 : Int(Double(rowsSent) * 100 / Double(rowsSent + left))
        }

        /// A sync that noted no progress for this long is not shown as running: its process
        /// was killed, or it hangs (the transfer's own limits end a hung request sooner).
        public static let staleAfterMillis: Int64 = 10 * 60_000
    }

    /// Reads the screen of the node in `folder` (read-only: it never waits behind a clerk's
    /// open transaction).
    public static func read(_ folder: NodeFolder) throws -> StatusScreen {
        let (identity, store) = try folder.open(clock: folder.clock, readOnly: true)
        defer { try? store.close() }
        func int(_ key: String) -> Int64? {
            if case .integer(let i) = (try? store.state(key)) ?? .null { return i }
            return nil
        }
        func text(_ key: String) -> String? { (try? store.state(key))?.textValue }
        let running = DaemonLock.isHeld(directory: folder.directory)
        let kind = text("last_error_kind")
        let held = (try? store.held()) ?? []
        return StatusScreen(
            identity: identity,
            state: NodeState.assess(daemonRunning: running, lastOK: int("last_sync_ok_at"), lastError: text("last_error"), errorKind: kind),
            daemonRunning: running, pendingRows: try store.pendingRows(for: Peer(id: try NodeID(identity.hubNodeID), direction: .upstream)),
            conflictsHeld: try store.conflicts(status: .held).count, lastOK: int("last_sync_ok_at"), lastAttempt: int("last_attempt_at"),
            lastErrorKind: kind, lastError: text("last_error"), lastErrorZh: text("last_error_zh"), clockOffsetMillis: int("hub_clock_offset_ms") ?? 0,
            lastReceivedRows: int("last_received_rows"), heldRows: held,
            heldByHub: int("held_by_hub").map(Int.init) ?? held.filter { $0.kind != .local }.count,
            lastCompared: int("last_compared_at"), lastCompareEqual: int("last_compare_equal") == 1, lastRepairAt: int("last_repair_at"),
            lastRepairRows: int("last_repair_rows"), lastRestoreDetected: int("last_rollback_at"), standardVersion: store.standard.version.description,
            sync: int("sync_running_since").map { since in
                SyncInProgress(
                    since: since, progressAt: int("sync_progress_at") ?? since, rowsSent: int("sync_rows_sent") ?? 0, rowsLeft: int("sync_rows_left"),
                    rowsReceived: int("sync_rows_received") ?? 0)
            },
            nextAttemptAt: int("next_attempt_at"))
    }

    /// The sync under way at `now`, if its process still notes progress.
    public func running(at now: Int64) -> SyncInProgress? {
        guard let sync, now - sync.progressAt < SyncInProgress.staleAfterMillis else { return nil }
        return sync
    }

    /// When the running daemon tries again after the last failure. It may be just past: the
    /// daemon looks once a second whether an attempt is due, and notes the next one only when
    /// this one has failed too.
    public var retryingAt: Int64? {
        guard lastError != nil, daemonRunning == true else { return nil }
        return nextAttemptAt
    }

    /// For scripts: stable keys, the reasons and last error in the chosen language.
    public func json(chinese: Bool, nowMillis now: Int64) throws -> String {
        let syncing: [String: Any?]? = running(at: now).map {
            [
                "running_since_ms": $0.since, "progress_at_ms": $0.progressAt, "rows_sent": $0.rowsSent, "rows_left": $0.rowsLeft,
                "rows_received": $0.rowsReceived, "percent": $0.percent,
            ]
        }
        let obj: [String: Any?] = [
            "sync_in_progress": syncing?.compactMapValues { $0 }, "next_attempt_at_ms": retryingAt,
            "node": identity.nodeID, "unit": identity.unitID, "hub": identity.hubURL, "pending_rows": pendingRows,
            "state": state.condition.rawValue, "daemon_running": daemonRunning, "last_error_kind": lastErrorKind,
            "conflicts_held": conflictsHeld, "last_sync_ok_at_ms": lastOK, "last_attempt_at_ms": lastAttempt,
            "last_error": chinese ? lastErrorZh : lastError, "standard_version": standardVersion, "clock_offset_ms": clockOffsetMillis,
            "last_received_rows": lastReceivedRows, "held_by_hub": heldByHub,
            "held": heldRows.map {
                ["table": $0.table, "key": $0.key.map(\.description).joined(separator: ","), "column": $0.column ?? "", "kind": $0.kind.rawValue,
                 "reason": chinese ? $0.reasonZh : $0.reason]
            },
            "last_compared_at_ms": lastCompared, "last_compare_equal": lastCompared.map { _ in lastCompareEqual },
            "last_repair_at_ms": lastRepairAt, "last_repair_rows": lastRepairRows, "last_restore_detected_at_ms": lastRestoreDetected,
        ]
        let data = try JSONSerialization.data(withJSONObject: obj.compactMapValues { $0 }, options: [.sortedKeys, .prettyPrinted])
        return String(decoding: data, as: UTF8.self)
    }

    /// The terminal screen, one line per fact; text from elsewhere (reasons, keys) escaped.
    public func text(chinese: Bool, nowMillis now: Int64) -> String {
        func say(_ zh: String, _ en: String) -> String { chinese ? zh : en }
        func ago(_ ms: Int64?) -> String {
            guard let ms else { return say("从未", "never") }
            let s = max(0, (now - ms) / 1000)
            return s < 120 ? say("\(s) 秒前", "\(s) s ago") : s < 7200 ? say("\(s / 60) 分钟前", "\(s / 60) min ago") : say("\(s / 3600) 小时前", "\(s / 3600) h ago")
        }
        var lines = [
            say("单位：\(identity.unitName)（\(identity.unitID)） 节点：\(identity.nodeID)", "Unit: \(identity.unitName) (\(identity.unitID))  node: \(identity.nodeID)"),
            say("上级：\(identity.hubURL)", "Hub: \(identity.hubURL)"),
            say("状态：\(state.zh)", "State: \(state.en)"),
        ]
        if let s = running(at: now) {
            let left = s.rowsLeft.map { say("，还剩 \($0) 行", ", \($0) to go") } ?? ""
            let percent = s.percent.map { say("（\($0) %）", " (\($0) %)") } ?? ""
            lines.append(say(
                "正在同步：已上传 \(s.rowsSent) 行\(left)\(percent)，已收到 \(s.rowsReceived) 行；最近进展 \(ago(s.progressAt))",
                "Syncing: \(s.rowsSent) rows sent\(left)\(percent), \(s.rowsReceived) received; last progress \(ago(s.progressAt))"))
        } else if let next = retryingAt {
            let seconds = (next - now + 999) / 1000
            let wait =
                seconds <= 0 ? say("即将", "now") : seconds < 120 ? say("\(seconds) 秒后", "in \(seconds) s") : say("\(seconds / 60) 分钟后", "in \(seconds / 60) min")
            lines.append(say("下次自动重试：\(Self.clockTime(next))（\(wait)）", "Next attempt: \(Self.clockTime(next)) (\(wait))"))
        }
        lines += [
            say("上次成功同步：\(ago(lastOK))", "Last successful sync: \(ago(lastOK))"),
            say("待上传：\(pendingRows) 行", "Waiting to go up: \(pendingRows) rows"),
        ]
        if let r = lastReceivedRows { lines.append(say("上次收到：\(r) 行", "Last received: \(r) rows")) }
        lines.append(say("待人工处理的冲突：\(conflictsHeld) 条", "Conflicts awaiting review: \(conflictsHeld)"))
        func list(_ rows: [HeldRow]) {
            for h in rows.prefix(5) {
                lines.append("  · \(h.table)（\(TerminalText.escape(h.key.map(\.description).joined(separator: ", ")))）：\(TerminalText.escape(chinese ? h.reasonZh : h.reason))")
            }
        }
        let here = heldRows.filter { $0.kind == .local }
        if heldByHub > 0 {
            lines.append(say("上级暂未接收的记录：\(heldByHub) 条（修改后会自动重新发送，或由上级处理）", "Held back by the hub: \(heldByHub) rows (fix them and they are sent again, or the supervisor decides)"))
            list(heldRows.filter { $0.kind != .local })
        }
        if !here.isEmpty {
            lines.append(say("本机无法同步的修改：\(here.count) 条（请联系上级）", "Writes here that cannot be synced: \(here.count) (tell the supervisor)"))
            list(here)
        }
        if let lastCompared {
            lines.append(say(
                "与上级核对：\(lastCompareEqual ? "一致" : "有差异，已修复")（\(ago(lastCompared))）",
                "Checked against the hub: \(lastCompareEqual ? "the same" : "differences repaired") (\(ago(lastCompared)))"))
        }
        if let lastRepairAt, let rows = lastRepairRows {
            lines.append(say("上次自动修复：\(rows) 行（\(ago(lastRepairAt))）", "Last repair: \(rows) rows (\(ago(lastRepairAt)))"))
        }
        if let lastRestoreDetected {
            lines.append(say(
                "注意：本机数据库曾被恢复为旧副本（\(ago(lastRestoreDetected))发现），已从上级补齐",
                "Note: this database was put back from an older copy (found \(ago(lastRestoreDetected))); recovered from the hub"))
        }
        lines.append(say("数据标准版本：\(standardVersion)", "Standard version: \(standardVersion)"))
        let offset = clockOffsetMillis
        if abs(offset) > 5 * 60 * 1000 {
            lines.append(say(
                "警告：本机时钟与上级相差 \(offset / 60000) 分钟，请校准系统时间",
                "Warning: this box's clock is \(abs(offset) / 60000) min \(offset > 0 ? "behind" : "ahead of") the hub's; correct the system time"))
        }
        if let error = chinese ? lastErrorZh : lastError { lines.append(say("上次错误：\(error)", "Last error: \(error)")) }
        if let zh = state.adviceZh, let en = state.adviceEn { lines.append(say("怎么办：\(zh)", "What to do: \(en)")) }
        return lines.joined(separator: "\n")
    }

    /// A wall-clock time of day on this box, "14:05".
    static func clockTime(_ ms: Int64) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = .current
        f.dateFormat = "HH:mm"
        return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }
}
