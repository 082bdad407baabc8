import FerryWire

/// What `ferry status` says of a node's link to its hub, and what the clerk should do: told
/// apart by what the daemon and the last sync recorded, never "check the network" for a
/// failure the network did not cause.
public struct NodeState: Sendable, Equatable {
    public enum Condition: String, Sendable, Equatable {
        /// Synced, the daemon runs, no error since.
        case connected
        /// Synced before, but no daemon runs: nothing syncs until one is started.
        case daemonStopped = "daemon_stopped"
        /// Only ever synced by hand (`ferry sync`): fine, but nothing syncs by itself.
        case manual
        /// Never synced yet.
        case neverSynced = "never_synced"
        /// The link fails: network, hub down, TLS.
        case unreachable
        /// The hub is busy or briefly unavailable; the node retries by itself.
        case hubBusy = "hub_busy"
        /// The hub refused what this node sent: the rows need fixing, or the supervisor's word.
        case refused
        /// This node is revoked or unknown at the hub: it must be enrolled again.
        case notEnrolled = "not_enrolled"
        /// This box's disk is full.
        case diskFull = "disk_full"
        /// The node's own database failed (locked by another program, damaged).
        case localProblem = "local_problem"
    }

    public var condition: Condition
    public var zh: String
    public var en: String
    /// What to do, nil when nothing is needed.
    public var adviceZh: String?
    public var adviceEn: String?

    /// - Parameters:
    ///   - daemonRunning: `DaemonLock.isHeld` (nil: no daemon ever ran on the folder).
    ///   - lastOK, lastError, errorKind: what the last syncs recorded (`last_error_kind` is a
    ///     `WireErrorCode` raw value, "transport" or "local").
    public static func assess(daemonRunning: Bool?, lastOK: Int64?, lastError: String?, errorKind: String?) -> NodeState {
        let start = "sudo systemctl start ferry-node（或运行 ferry node run）"
        let startEn = "sudo systemctl start ferry-node (or run ferry node run)"
        if lastError == nil || errorKind == nil {
            guard lastOK != nil else {
                return NodeState(
                    condition: .neverSynced, zh: "尚未同步", en: "never synced",
                    adviceZh: daemonRunning == true ? "后台同步已启动，稍候片刻" : "运行 ferry sync，或启动后台同步：\(start)",
                    adviceEn: daemonRunning == true ? "the daemon is running; give it a moment" : "run ferry sync, or start the daemon: \(startEn)")
            }
            switch daemonRunning {
            case true?: return NodeState(condition: .connected, zh: "正常", en: "connected", adviceZh: nil, adviceEn: nil)
            case false?:
                return NodeState(
                    condition: .daemonStopped, zh: "后台同步未运行", en: "the sync daemon is not running",
                    adviceZh: "新录入的记录不会自动上报。请启动：\(start)", adviceEn: "new records are not sent until it runs: \(startEn)")
            case nil:
                return NodeState(
                    condition: .manual, zh: "正常（手动同步）", en: "connected (synced by hand)",
                    adviceZh: "未运行后台同步，只在运行 ferry sync 时同步；要自动同步请启动：\(start)",
                    adviceEn: "no daemon runs, so it syncs only when ferry sync is run; to sync by itself: \(startEn)")
            }
        }
        let stopped = daemonRunning == false ? "；后台同步也未运行：\(start)" : ""
        let stoppedEn = daemonRunning == false ? "; the daemon is not running either: \(startEn)" : ""
        switch errorKind {
        case "transport":
            return NodeState(
                condition: .unreachable, zh: "未连接上级", en: "cannot reach the hub",
                adviceZh: "检查网络连接；恢复后会自动续传（也可运行 ferry sync）\(stopped)",
                adviceEn: "check the network; it resumes by itself once the link is back (or run ferry sync)\(stoppedEn)")
        case "local":
            let full = lastError.map { $0.contains("disk") || $0.contains("full") || $0.contains("磁盘") || $0.contains("SQLite error 13") } ?? false
            if full {
                return NodeState(
                    condition: .diskFull, zh: "本机磁盘已满", en: "this box's disk is full",
                    adviceZh: "清理磁盘空间（不要删除 ferry-node 目录中的文件），之后会自动继续", adviceEn: "free disk space (not in the node's folder); it carries on by itself")
            }
            return NodeState(
                condition: .localProblem, zh: "本机数据库暂时无法使用", en: "this node's database failed",
                adviceZh: "关闭正在使用该数据库的其他程序（如 sqlite3）后运行 ferry sync；如仍失败，请把上次错误告诉上级管理员",
                adviceEn: "close other programs using the database (an open sqlite3?), then run ferry sync; if it still fails, send the last error to the supervisor's administrator")
        default:
            let code = errorKind.flatMap(WireErrorCode.init(rawValue:))
            switch code {
            case .revoked?, .unknownNode?:
                return NodeState(
                    condition: .notEnrolled, zh: "本节点已被上级停用或未登记", en: "this node is revoked or not enrolled at the hub",
                    adviceZh: "请上级管理员签发新的登记令牌，然后在新目录运行 ferry node init --hub 地址 --token 令牌 --restore 本目录的unit.db（数据不会丢失）",
                    adviceEn: "ask the supervisor for a new enrolment token, then in a new folder run ferry node init --hub URL --token TOKEN --restore this folder's unit.db (nothing is lost)")
            case .overloaded?, .rateLimited?, .unavailable?, .internal?, .staleRequest?, .replayed?, .truncated?, .corrupted?:
                return NodeState(
                    condition: .hubBusy, zh: "上级繁忙，将自动重试", en: "the hub is busy; retrying by itself",
                    adviceZh: daemonRunning == false ? "后台同步未运行：\(start)" : nil, adviceEn: daemonRunning == false ? "the daemon is not running: \(startEn)" : nil)
            default:
                return NodeState(
                    condition: .refused, zh: "上级拒收了本单位的数据", en: "the hub refused what this node sent",
                    adviceZh: "按下面列出的原因修改这些记录（修改后自动重新上报）；看不懂原因时，请把上次错误告诉上级管理员",
                    adviceEn: "fix the rows listed with their reasons (they are sent again by themselves); if the reason is unclear, send the last error to the supervisor's administrator")
            }
        }
    }
}
