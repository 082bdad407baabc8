import FerryCore
import FerryHub
import Foundation

/// Words of the supervisor's view in Chinese (first) and English, and the formatting of
/// figures, times and CSV shared by the dashboard and the report API.
public enum ReportLanguage: String, Sendable {
    case zh, en

    public init(_ text: String?) { self = text?.lowercased().hasPrefix("en") == true ? .en : .zh }

    public func t(_ zh: String, _ en: String) -> String { self == .zh ? zh : en }

    public func industry(_ id: String?) -> String {
        switch id {
        case "education": return t("教育", "education")
        case "medical": return t("医疗卫生", "medical")
        case "research": return t("科研", "research")
        case "culture": return t("文化", "culture")
        case "public_service": return t("公共服务", "public service")
        case nil: return "—"
        case let other?: return other == "other" ? t("其他", "other") : other
        }
    }

    public func level(_ id: String) -> String {
        switch id {
        case "province": return t("省", "province")
        case "city": return t("市", "city")
        case "county": return t("县（区）", "county")
        case "unit": return t("单位", "unit")
        default: return id
        }
    }

    public func status(_ s: TargetStatus) -> String {
        switch s {
        case .met: return t("达标", "met")
        case .missed: return t("未达标", "below target")
        case .inProgress: return t("本期进行中，尚未达标", "below target so far (period in progress)")
        case .noTarget: return t("无目标", "no target")
        case .noData: return t("无数据", "no data")
        }
    }

    /// "第 3/30 天" for a period still running, "" for one that has ended.
    public func progress(_ f: IndicatorFigure) -> String {
        guard f.inProgress else { return "" }
        return t("进行中 · 第 \(f.daysElapsed)/\(f.days) 天", "in progress · day \(f.daysElapsed) of \(f.days)")
    }

    /// A conflict's status and policy as the hub stores them (`overwritten`, `lww`, …),
    /// in this language.
    public func conflictStatus(_ raw: String) -> String { ConflictStatus(rawValue: raw).map { t($0.labelZh, raw) } ?? raw }
    public func policy(_ raw: String) -> String { ConflictPolicy(rawValue: raw).map { t($0.labelZh, raw) } ?? raw }
    public func quarantineStatus(_ raw: String) -> String {
        switch raw {
        case "held": return t("暂扣待处理", raw)
        case "corrected": return t("已更正入库", raw)
        case "discarded": return t("已舍弃", raw)
        case "superseded": return t("已被新值取代", raw)
        default: return raw
        }
    }

    public func contact(_ c: UnitContact) -> String {
        switch c {
        case .current: return t("正常", "in touch")
        case .silent: return t("失联", "silent")
        case .notEnrolled: return t("未登记", "not enrolled")
        }
    }

    /// "12 schools in county X silent for 9 days"
    public func silentLine(_ g: SilentGroup) -> String {
        t("\(g.orgName) 有 \(g.units) 个\(industry(g.industry))单位已超过 \(g.days) 天未同步",
          "\(g.units) \(industry(g.industry)) unit\(g.units == 1 ? "" : "s") in \(g.orgName) silent for \(g.days)+ days")
    }
}

public enum ReportFormat {
    /// A figure with at most one decimal, trailing zeros dropped; "—" for no value.
    public static func number(_ v: Double?) -> String {
        guard let v, v.isFinite else { return "—" }
        let r = (v * 10).rounded() / 10
        return r == r.rounded() ? String(Int64(r)) : String(format: "%.1f", r)
    }

    /// ms since the epoch as "2026-11-29 16:05" in China Standard Time; "—" when nil.
    public static func time(_ millis: UInt64?) -> String {
        guard let millis else { return "—" }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "Asia/Shanghai")
        f.dateFormat = "yyyy-MM-dd HH:mm"
        return f.string(from: Date(timeIntervalSince1970: Double(millis) / 1000))
    }

    public static func html(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }

    /// Text written by a unit or a node (values, keys, host names, reasons), made safe to
    /// print on a supervisor's or clerk's terminal: every C0 control character (newline and
    /// tab included, so a value cannot forge lines or columns), DEL, every C1 control
    /// character (U+0080–U+009F, among them the one-byte CSI) and the bidirectional
    /// overrides and isolates (which reorder what the eye sees) are shown as inert escapes
    /// — `\n`, `\t`, `\r`, `\x1b`, `\u{202E}` — so an escape sequence such as `ESC ]52;…`
    /// (write the clipboard) or `ESC [2J` (clear the screen) prints as visible text instead
    /// of acting. Everything else, Chinese included, is unchanged.
    ///
    ///     ReportFormat.terminal("王\u{1B}[2J芳")   // "王\x1b[2J芳"
    public static func terminal(_ s: String) -> String { TerminalText.escape(s) }

    /// A CSV document: UTF-8 with a byte-order mark (so spreadsheet programs read Chinese
    /// correctly), RFC 4180 quoting, CRLF line ends. Every cell passes through
    /// `spreadsheetSafe`, so a unit-written value cannot become a live formula.
    public static func csv(_ header: [String], _ rows: [[String]]) -> [UInt8] {
        func field(_ raw: String) -> String {
            let s = spreadsheetSafe(raw)
            guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
            return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        var text = ""
        for r in [header] + rows { text += r.map(field).joined(separator: ",") + "\r\n" }
        return [0xEF, 0xBB, 0xBF] + Array(text.utf8)
    }

    /// A CSV cell a spreadsheet shows as text (OWASP "CSV injection"): a cell starting with
    /// `=`, `+`, `-`, `@`, a tab or a carriage return — which Excel, LibreOffice and WPS read
    /// as the start of a formula such as `=HYPERLINK(…)` or `@SUM(…)` — gets a leading `'`.
    /// A plain decimal number (`-3`, `-0.5`, the hub's own figures such as a negative clock
    /// skew) is left as it is: it is read as that number and cannot be a formula.
    ///
    ///     ReportFormat.spreadsheetSafe("=HYPERLINK(\"http://x\")")   // "'=HYPERLINK(\"http://x\")"
    public static func spreadsheetSafe(_ s: String) -> String {
        guard let first = s.unicodeScalars.first, ["=", "+", "-", "@", "\t", "\r"].contains(first) else { return s }
        return isPlainNumber(s) ? s : "'" + s
    }

    /// `-12`, `-0.5`, `+3`: an optional sign, digits, at most one point with digits after it.
    static func isPlainNumber(_ s: String) -> Bool {
        var digits = Substring(s)
        if digits.first == "-" || digits.first == "+" { digits = digits.dropFirst() }
        let parts = digits.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        return !parts.isEmpty && parts.count <= 2 && parts.allSatisfy { !$0.isEmpty && $0.allSatisfy { $0.isASCII && $0.isNumber } }
    }
}

/// The table views of the supervisor's view as rows, shared by CSV export and `ferry report`.
public enum ReportTables {
    public static func indicators(_ r: IndicatorReport, _ l: ReportLanguage) -> (header: [String], rows: [[String]]) {
        (
            [l.t("指标", "indicator"), "id", l.t("期间", "period"), l.t("数值", "value"), l.t("单位", "unit"), l.t("目标", "target"),
             l.t("状态", "status"), l.t("分子", "numerator"), l.t("分母", "denominator")],
            r.figures.map { f in
                [l.t(f.labelZh, f.labelEn), f.id, f.inProgress ? "\(f.period) (\(l.progress(f)))" : f.period, ReportFormat.number(f.value), f.unitText,
                 ReportFormat.number(f.target),
                 l.status(f.status), ReportFormat.number(f.numerator), ReportFormat.number(f.denominator)]
            }
        )
    }

    public static func breakdown(_ rows: [BreakdownRow], _ r: IndicatorReport, _ l: ReportLanguage) -> (header: [String], rows: [[String]]) {
        (
            [l.t("名称", "name"), "id", l.t("层级", "level"), l.t("单位数", "units"), l.t("失联单位", "silent")]
                + r.figures.map { "\(l.t($0.labelZh, $0.labelEn)) (\($0.unitText))" },
            rows.map { b in
                [b.level == "industry" ? l.industry(b.id) : b.name, b.id, b.level == "industry" ? l.t("行业", "industry") : l.level(b.level),
                 String(b.units), String(b.silentUnits)]
                    + r.figures.map { ReportFormat.number(b.values[$0.id]) }
            }
        )
    }

    public static func freshness(_ units: [UnitFreshness], _ l: ReportLanguage) -> (header: [String], rows: [[String]]) {
        (
            [l.t("单位", "unit"), "id", l.t("上级", "parent"), l.t("行业", "industry"), l.t("状态", "contact"),
             l.t("最近同步", "last sync"), l.t("最近联系", "last contact"), l.t("距上次同步(天)", "days since sync"),
             l.t("待上传", "pending rows"), l.t("标准版本", "standard"), l.t("时钟偏差(秒)", "clock skew (s)"), l.t("节点数", "nodes")],
            units.map { u in
                [u.name, u.unitID, u.parentName ?? "—", l.industry(u.industry), l.contact(u.contact), ReportFormat.time(u.lastSyncAt),
                 ReportFormat.time(u.lastContactAt), u.daysSinceSync.map(String.init) ?? "—", u.pendingRows.map(String.init) ?? "—",
                 u.standardVersion ?? "—", u.clockSkewMillis.map { ReportFormat.number(Double($0) / 1000) } ?? "—", String(u.nodes)]
            }
        )
    }

    public static func conflicts(_ items: [ConflictItem], _ l: ReportLanguage) -> (header: [String], rows: [[String]]) {
        (
            ["id", l.t("单位", "unit"), l.t("单位名称", "unit name"), l.t("表", "table"), l.t("记录", "record"), l.t("主键", "key"), l.t("字段", "column"),
             l.t("策略", "policy"), l.t("状态", "status"), l.t("当前值", "current value"), l.t("当前来源", "current origin"), l.t("当前时间", "current time"),
             l.t("另一方值", "other value"), l.t("另一方来源", "other origin"), l.t("另一方时间", "other time"), l.t("记录时间", "recorded")],
            items.map { c in
                [String(c.id), c.unitID ?? "—", c.names.unitName ?? "—", l.t(c.names.tableZh, c.names.tableEn), c.names.record ?? "—", c.key,
                 l.t(c.names.columnZh, c.names.columnEn), l.policy(c.policy), l.conflictStatus(c.status), c.currentValue ?? l.t("（已删除）", "(deleted)"),
                 c.currentOrigin ?? "—", ReportFormat.time(c.currentTime), c.otherValue, c.otherOrigin, ReportFormat.time(c.otherTime),
                 ReportFormat.time(c.recordedAt)]
            }
        )
    }

    public static func quarantine(_ items: [QuarantineItem], _ l: ReportLanguage) -> (header: [String], rows: [[String]]) {
        (
            ["id", l.t("单位", "unit"), l.t("单位名称", "unit name"), l.t("表", "table"), l.t("记录", "record"), l.t("主键", "key"), l.t("字段", "column"),
             l.t("被拒收的值", "refused value"), l.t("原因", "reason"), l.t("来源", "origin"), l.t("收到时间", "received"), l.t("状态", "status")],
            items.map { q in
                [String(q.id), q.unitID ?? "—", q.names.unitName ?? "—", l.t(q.names.tableZh, q.names.tableEn), q.names.record ?? "—", q.key,
                 l.t(q.names.columnZh, q.names.columnEn), q.value, l.t(q.reasonZh, q.reason), q.origin, ReportFormat.time(q.receivedAt),
                 l.quarantineStatus(q.status)]
            }
        )
    }

    /// Columns padded to their widest cell (counting CJK characters as two), for terminals;
    /// every cell passes through `ReportFormat.terminal`.
    public static func aligned(_ header: [String], _ rows: [[String]]) -> String {
        func width(_ s: String) -> Int { s.unicodeScalars.reduce(0) { $0 + ($1.value >= 0x1100 && $1.properties.isIdeographic || (0xFF00...0xFFEF).contains($1.value) || (0x3000...0x303F).contains($1.value) ? 2 : 1) } }
        let all = ([header] + rows).map { $0.map(ReportFormat.terminal) }
        var widths = Array(repeating: 0, count: header.count)
        for r in all { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], width(c)) } }
        return all.enumerated().map { n, r in
            let line = r.enumerated().map { i, c in i == r.count - 1 ? c : c + String(repeating: " ", count: widths[i] - width(c)) }.joined(separator: "  ")
            return n == 0 ? line + "\n" + widths.map { String(repeating: "─", count: $0) }.joined(separator: "  ") : line
        }.joined(separator: "\n")
    }
}
