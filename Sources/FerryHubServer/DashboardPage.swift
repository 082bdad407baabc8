import FerryCore
import FerryHub
import FerryReports
import Foundation

/// The dashboard's HTML, rendered on the server: plain HTML, inline CSS and SVG charts,
/// no scripts and nothing fetched from anywhere (hubs often have no internet).
enum DashboardPage {
    typealias F = ReportFormat

    static let style = """
        *{box-sizing:border-box}body{margin:0;font:14px/1.5 "Noto Sans CJK SC","WenQuanYi Micro Hei","Microsoft YaHei",sans-serif;color:#1f2328;background:#f4f5f7}
        header{background:#b71c1c;color:#fff;padding:10px 20px;display:flex;gap:16px;align-items:center}
        header h1{font-size:17px;margin:0;flex:1}header a,header button{color:#fff;background:none;border:1px solid #fff8;border-radius:4px;padding:2px 8px;font:inherit;cursor:pointer;text-decoration:none}
        .wrap{display:flex;gap:16px;padding:16px}nav#org-tree{width:260px;flex:none;background:#fff;border-radius:6px;padding:10px;max-height:85vh;overflow:auto}
        nav ul{list-style:none;margin:0;padding-left:14px}nav>ul{padding-left:0}nav a{color:#1f2328;text-decoration:none}nav a.here{font-weight:bold;color:#b71c1c}
        main{flex:1;min-width:0}section{background:#fff;border-radius:6px;padding:12px 16px;margin-bottom:16px}
        h2{font-size:16px;margin:0 0 8px}table{border-collapse:collapse;width:100%}th,td{padding:4px 8px;border-bottom:1px solid #e5e7eb;text-align:left;vertical-align:middle}
        th{background:#fafafa;font-weight:600}#children td:first-child,#industries td:first-child{white-space:nowrap}td.num{text-align:right;font-variant-numeric:tabular-nums}
        .met{color:#2e7d32}.missed{color:#c62828;font-weight:600}.in_progress{color:#8a5a00}
        .legend{font-size:12px;color:#6b7280}.swatch{margin-right:12px;white-space:nowrap}.swatch i{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:-1px}.swatch i.dash{height:0;width:14px;border-top:2px dashed #1f2328;vertical-align:3px}
        tr.refused{background:#fdecea}.silent{color:#b71c1c;font-weight:600}.muted{color:#6b7280}
        .cards{display:flex;gap:12px;margin-bottom:16px}.card{background:#fff;border-radius:6px;padding:10px 16px;min-width:140px}.card b{font-size:22px;display:block}
        .crumbs a{color:#b71c1c}form.inline{display:inline}input,select,button{font:inherit}.links a{margin-right:14px}
        .error{background:#fdecea;border:1px solid #f5c2c0;padding:8px 12px;border-radius:6px;margin-bottom:12px}
        .scroll{overflow-x:auto;max-width:100%}
        @media (max-width:760px){
        header{flex-wrap:wrap;padding:8px 12px;gap:8px}header h1{flex-basis:100%}
        .wrap{flex-direction:column;padding:8px;gap:8px}nav#org-tree{width:auto;max-height:38vh}
        section{padding:10px;margin-bottom:10px}.cards{flex-wrap:wrap;gap:8px}.card{min-width:0;flex:1 1 40%;padding:8px 10px}
        table{display:block;overflow-x:auto;max-width:100%}th,td{padding:4px 6px}
        form input,form select{max-width:100%}.links a{display:inline-block;margin:2px 12px 2px 0}
        }
        """

    struct Chrome {
        var lang: ReportLanguage
        var account: AdminAccount
        var csrf: String
        var title: String
        var root: String
        /// The hub's own node id: the origin of what its supervisors wrote.
        var hubNode: String
    }

    static func document(_ title: String, lang: ReportLanguage, body: String) -> String {
        """
        <!doctype html><html lang="\(lang == .zh ? "zh-CN" : "en")"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width,initial-scale=1"><title>\(F.html(title))</title><style>\(style)</style></head>
        <body>\(body)</body></html>
        """
    }

    static func link(_ path: String, _ params: [(String, String?)]) -> String {
        var c = URLComponents()
        c.path = path
        let items = params.compactMap { k, v in v.map { URLQueryItem(name: k, value: $0) } }
        c.queryItems = items.isEmpty ? nil : items
        return F.html(c.string ?? path)
    }

    static func page(_ chrome: Chrome, tree: OrgTree, org: String, at: String?, main: String) -> String {
        let l = chrome.lang
        let other: ReportLanguage = l == .zh ? .en : .zh
        let header = """
            <header><h1>\(l.t("Ferry 党建工作数据 · 上级视图", "Ferry party-building data · supervisor's view"))</h1>
            <span>\(F.html(chrome.account.name))</span>
            <a id="lang-switch" href="\(link("/dashboard", [("org", org), ("at", at), ("lang", other.rawValue)]))">\(other == .zh ? "中文" : "English")</a>
            <form class="inline" method="post" action="/logout"><input type="hidden" name="csrf" value="\(F.html(chrome.csrf))"><button>\(l.t("退出", "Log out"))</button></form>
            </header>
            """
        return document(chrome.title, lang: l, body: header + "<div class=\"wrap\">" + orgTree(tree, root: chrome.root, current: org, at: at, lang: l) + "<main>" + main + "</main></div>")
    }

    /// The tree from the viewer's root: every node above the units, and the units of the
    /// branch being looked at (a province has thousands).
    static func orgTree(_ tree: OrgTree, root: String, current: String, at: String?, lang: ReportLanguage) -> String {
        let open = Set(tree.path(to: current).map(\.id))
        func item(_ id: String) -> String {
            guard let n = tree[id] else { return "" }
            let kids = (tree.children[id] ?? []).filter { tree[$0]?.level != .unit || open.contains(id) }
            let a = "<a href=\"\(link("/dashboard", [("org", id), ("at", at)]))\" data-org=\"\(F.html(id))\"\(id == current ? " class=\"here\"" : "")>\(F.html(n.name))</a>"
            return "<li>" + a + (kids.isEmpty ? "" : "<ul>" + kids.map(item).joined() + "</ul>") + "</li>"
        }
        return "<nav id=\"org-tree\"><h2>\(lang.t("组织树", "Org tree"))</h2><ul>\(item(root))</ul></nav>"
    }

    static func crumbs(_ path: [OrgUnit], at: String?) -> String {
        "<div class=\"crumbs\">" + path.map { "<a href=\"\(link("/dashboard", [("org", $0.id), ("at", at)]))\">\(F.html($0.name))</a>" }.joined(separator: " › ") + "</div>"
    }

    /// The colours of a figure's state, the same in the table, the bars and the legend:
    /// green met, red below target, amber a period still in progress, grey no target.
    static let colours: [TargetStatus: String] = [.met: "#2e7d32", .missed: "#c62828", .inProgress: "#d79b00", .noTarget: "#78909c", .noData: "#cfd8dc"]

    /// Bars of the last periods, each coloured by its own state, with the target as a
    /// dashed line, the first and last period named below and the scale's top beside:
    /// enough to see a trend without reading the table.
    static func chart(_ f: IndicatorFigure, lang l: ReportLanguage) -> String {
        let w = 200.0, plot = 40.0, h = 56.0, left = 30.0, gap = 4.0
        let values = f.series.map { $0.value ?? 0 }
        let top = max((values + [f.target ?? 0]).max() ?? 1, 1e-9) * 1.1
        let n = max(f.series.count, 1)
        let bw = (w - left - gap * Double(n - 1)) / Double(n)
        let name = l.t(f.labelZh, f.labelEn)
        var svg = "<svg class=\"chart\" width=\"\(Int(w))\" height=\"\(Int(h))\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" role=\"img\" aria-label=\"\(F.html(l.t("\(name)近 \(f.series.count) 期走势", "\(name), last \(f.series.count) periods")))\">"
        // The value axis: its top and zero, so a bar's height means something.
        svg += "<line x1=\"\(Int(left) - 3)\" x2=\"\(Int(left) - 3)\" y1=\"0\" y2=\"\(Int(plot))\" stroke=\"#9ca3af\"/><line x1=\"\(Int(left) - 3)\" x2=\"\(Int(w))\" y1=\"\(Int(plot))\" y2=\"\(Int(plot))\" stroke=\"#9ca3af\"/>"
        svg += "<text class=\"axis\" x=\"\(Int(left) - 5)\" y=\"9\" text-anchor=\"end\" font-size=\"9\" fill=\"#6b7280\">\(F.html(F.number(top / 1.1)))</text>"
        svg += "<text class=\"axis\" x=\"\(Int(left) - 5)\" y=\"\(Int(plot))\" text-anchor=\"end\" font-size=\"9\" fill=\"#6b7280\">0</text>"
        for (i, p) in f.series.enumerated() {
            let v = p.value ?? 0
            let bh = max(v / top * plot, p.value == nil ? 0 : 1)
            let state = p.status
            svg += "<rect class=\"bar \(state.rawValue)\" x=\"\(F.number(left + Double(i) * (bw + gap)))\" y=\"\(F.number(plot - bh))\" width=\"\(F.number(bw))\" height=\"\(F.number(bh))\" fill=\"\(colours[state] ?? "#78909c")\"><title>\(F.html(p.period)): \(F.number(p.value)) · \(F.html(l.status(state)))</title></rect>"
        }
        if let t = f.target {
            let y = F.number(plot - t / top * plot)
            svg += "<line class=\"target\" x1=\"\(Int(left) - 3)\" x2=\"\(Int(w))\" y1=\"\(y)\" y2=\"\(y)\" stroke=\"#1f2328\" stroke-dasharray=\"4 3\"><title>\(F.html(l.t("目标", "target"))) \(F.number(t))</title></line>"
        }
        if let first = f.series.first, let last = f.series.last {
            svg += "<text class=\"axis\" x=\"\(Int(left))\" y=\"\(Int(h) - 3)\" font-size=\"9\" fill=\"#6b7280\">\(F.html(first.period))</text>"
            if f.series.count > 1 {
                svg += "<text class=\"axis\" x=\"\(Int(w))\" y=\"\(Int(h) - 3)\" text-anchor=\"end\" font-size=\"9\" fill=\"#6b7280\">\(F.html(last.period))</text>"
            }
        }
        return svg + "</svg>"
    }

    /// What the bars' colours and the dashed line mean, once under the table.
    static func legend(_ l: ReportLanguage) -> String {
        func swatch(_ s: TargetStatus) -> String {
            "<span class=\"swatch\"><i style=\"background:\(colours[s] ?? "#78909c")\"></i>\(F.html(l.status(s)))</span>"
        }
        return "<p class=\"legend\" id=\"chart-legend\">\(l.t("走势图：", "Trend bars: "))" + [TargetStatus.met, .missed, .inProgress, .noTarget].map(swatch).joined()
            + "<span class=\"swatch\"><i class=\"dash\"></i>\(l.t("虚线为目标值", "dashed line: target"))</span></p>"
    }

    static func indicators(_ r: IndicatorReport, chrome: Chrome) -> String {
        let l = chrome.lang
        var s = crumbs(r.path, at: r.at)
        s += """
            <section><form method="get" action="/dashboard"><input type="hidden" name="org" value="\(F.html(r.org.id))">
            \(l.t("日期", "Date")) <input type="date" name="at" value="\(F.html(r.at))">
            \(l.t("行业", "Industry")) <select name="industry"><option value="">\(l.t("全部", "all"))</option>
            \(["education", "medical", "research", "culture", "public_service", "other"].map { "<option value=\"\($0)\"\(r.industry == $0 ? " selected" : "")>\(l.industry($0))</option>" }.joined())
            </select> <button>\(l.t("查看", "Show"))</button></form></section>
            <div class="cards"><div class="card">\(l.t("机构", "Org node"))<b id="org-name">\(F.html(r.org.name))</b><span class="muted">\(l.level(r.org.level.rawValue))</span></div>
            """
        if let u = r.unit {
            // A unit's own page: when it last synced and what waits, not counts of one.
            let state = u.contact == .current ? "" : "silent"
            s += """
                <div class="card" id="unit-contact">\(l.t("同步状态", "Sync status"))<b class="\(state)">\(F.html(l.contact(u.contact)))</b><span class="muted">\(u.daysSinceSync.map { l.t("距上次同步 \($0) 天", "\($0) days since the last sync") } ?? l.t("尚未同步", "never synced"))</span></div>
                <div class="card" id="unit-last-sync">\(l.t("最近同步", "Last sync"))<b>\(F.html(F.time(u.lastSyncAt)))</b><span class="muted">\(l.t("最近联系", "last contact")) \(F.html(F.time(u.lastContactAt)))</span></div>
                <div class="card" id="unit-pending">\(l.t("待上传", "Waiting to upload"))<b>\(u.pendingRows.map(String.init) ?? "—")</b><span class="muted">\(l.t("条记录（单位上次报告）", "rows (as the unit last said)"))</span></div>
                <div class="card" id="unit-standard">\(l.t("标准版本", "Standard"))<b>\(F.html(u.standardVersion ?? "—"))</b><span class="muted">\(l.t("节点", "nodes")) \(u.nodes)</span></div></div>
                """
        } else {
            s += """
                <div class="card">\(l.t("单位数", "Units"))<b id="unit-count">\(r.units)</b></div>
                <div class="card">\(l.t("失联单位", "Silent units"))<b id="silent-count" class="\(r.silentUnits > 0 ? "silent" : "")">\(r.silentUnits)</b><span class="muted">\(l.t("超过 \(r.silentAfterDays) 天未同步", "no sync for \(r.silentAfterDays)+ days"))</span></div></div>
                """
        }
        s += "<section id=\"indicators\"><h2>\(l.t("指标", "Indicators"))</h2><table><tr><th>\(l.t("指标", "Indicator"))</th><th>\(l.t("期间", "Period"))</th><th>\(l.t("数值", "Value"))</th><th>\(l.t("目标", "Target"))</th><th>\(l.t("状态", "Status"))</th><th>\(l.t("近期走势", "Recent periods"))</th></tr>"
        for f in r.figures {
            s += """
                <tr data-indicator="\(F.html(f.id))"><td>\(F.html(l.t(f.labelZh, f.labelEn)))</td><td>\(F.html(f.period))\(f.inProgress ? "<br><span class=\"muted in-progress\">\(F.html(l.progress(f)))</span>" : "")</td>
                <td class="num value">\(F.number(f.value)) <span class="muted">\(F.html(f.unitText))</span></td><td class="num">\(F.number(f.target))</td>
                <td class="\(f.status.rawValue)">\(l.status(f.status))</td><td>\(chart(f, lang: l))</td></tr>
                """
        }
        s += "</table>" + legend(l) + "<p class=\"links\"><a href=\"\(link("/v1/report/indicators", [("org", r.org.id), ("at", r.at), ("industry", r.industry), ("format", "csv"), ("lang", l.rawValue)]))\">\(l.t("导出 CSV", "Export CSV"))</a></p></section>"
        if !r.children.isEmpty { s += breakdown(r.children, r, title: l.t("下级对比", "Below this node"), table: "children", chrome: chrome) }
        if !r.industries.isEmpty { s += breakdown(r.industries, r, title: l.t("按行业", "By industry"), table: "industries", chrome: chrome) }
        s += "<section id=\"silent\"><h2>\(l.t("失联单位", "Silent units"))</h2>"
        if r.silentGroups.isEmpty {
            s += "<p class=\"muted\">\(l.t("没有超过 \(r.silentAfterDays) 天未同步的单位。", "No unit has been silent for more than \(r.silentAfterDays) days."))</p>"
        } else {
            s += "<ul>" + r.silentGroups.map { "<li class=\"silent-group\">\(F.html(l.silentLine($0)))</li>" }.joined() + "</ul>"
        }
        s += "<p class=\"links\"><a href=\"\(link("/dashboard/units", [("org", r.org.id)]))\">\(l.t("各单位同步情况", "Every unit's sync status"))</a><a href=\"\(link("/dashboard/conflicts", [("org", r.org.id)]))\">\(l.t("冲突", "Conflicts"))</a><a href=\"\(link("/dashboard/quarantine", [("org", r.org.id)]))\">\(l.t("隔离数据", "Quarantine"))</a></p></section>"
        return s
    }

    static func breakdown(_ rows: [BreakdownRow], _ r: IndicatorReport, title: String, table: String, chrome: Chrome) -> String {
        let l = chrome.lang
        var s = "<section id=\"\(table)\"><h2>\(title)</h2><table><tr><th>\(l.t("名称", "Name"))</th><th>\(l.t("单位数", "Units"))</th><th>\(l.t("失联", "Silent"))</th>"
        s += r.figures.map { "<th title=\"\(F.html(l.t($0.labelZh, $0.labelEn)))\">\(F.html(l.t($0.labelZh, $0.labelEn)))</th>" }.joined() + "</tr>"
        for b in rows {
            let name = b.level == "industry"
                ? "<a href=\"\(link("/dashboard", [("org", r.org.id), ("at", r.at), ("industry", b.id)]))\">\(F.html(l.industry(b.id)))</a>"
                : "<a href=\"\(link("/dashboard", [("org", b.id), ("at", r.at), ("industry", r.industry)]))\">\(F.html(b.name))</a>"
            s += "<tr data-row=\"\(F.html(b.id))\"><td>\(name)</td><td class=\"num\">\(b.units)</td><td class=\"num\(b.silentUnits > 0 ? " silent" : "")\">\(b.silentUnits)</td>"
            for f in r.figures {
                let v = b.values[f.id]
                // A ratio's target holds at every level; a sum's is only shown for the page's own node.
                let st = TargetStatus.of(v, goal: f.denominator == nil ? nil : f.target)
                s += "<td class=\"num \(st.rawValue)\" data-indicator=\"\(F.html(f.id))\">\(F.number(v))</td>"
            }
            s += "</tr>"
        }
        return s + "</table><p class=\"links\"><a href=\"\(link("/v1/report/indicators", [("org", r.org.id), ("at", r.at), ("industry", r.industry), ("table", table), ("format", "csv"), ("lang", l.rawValue)]))\">\(l.t("导出 CSV", "Export CSV"))</a></p></section>"
    }

    static func units(_ list: [UnitFreshness], org: OrgUnit, path: [OrgUnit], silentAfterDays: Int, chrome: Chrome) -> String {
        let l = chrome.lang
        var s = crumbs(path, at: nil) + "<section id=\"freshness\"><h2>\(l.t("各单位同步情况", "Sync status of every unit")) · \(F.html(org.name))</h2>"
        s += "<p class=\"muted\">\(l.t("超过 \(silentAfterDays) 天未成功同步的单位标为失联。", "Units without a successful sync for \(silentAfterDays)+ days are marked silent."))</p>"
        let (header, rows) = ReportTables.freshness(list, l)
        s += "<table><tr>" + header.map { "<th>\(F.html($0))</th>" }.joined() + "</tr>"
        for (u, row) in zip(list, rows) {
            s += "<tr data-unit=\"\(F.html(u.unitID))\" class=\"\(u.contact == .silent ? "silent-unit" : "")\">" + row.enumerated().map { i, c in
                "<td class=\"\(i == 4 && u.contact != .current ? "silent" : "")\">\(F.html(c))</td>"
            }.joined() + "</tr>"
        }
        s += "</table><p class=\"links\"><a href=\"\(link("/v1/report/freshness", [("org", org.id), ("format", "csv"), ("lang", l.rawValue)]))\">\(l.t("导出 CSV", "Export CSV"))</a></p></section>"
        return s
    }

    /// A decision the hub refused, shown above the list it was made on (with the value
    /// that was typed kept in its row's field) rather than on a page of its own.
    struct Refusal {
        var id: Int64
        var value: String?
        var message: String
    }

    /// The record a conflict or quarantined value is about, as a person names it: the
    /// standard's labels, the record's title (a member's name), the key only beside it.
    static func record(_ n: RecordNames, key: String, l: ReportLanguage) -> String {
        "\(F.html(l.t(n.tableZh, n.tableEn))) · <b>\(F.html(l.t(n.columnZh, n.columnEn)))</b><br>"
            + (n.record.map { "\(F.html($0)) <span class=\"muted\">\(F.html(key))</span>" } ?? "<span class=\"muted\">\(F.html(key))</span>")
    }

    static func unit(_ n: RecordNames, _ id: String?, l: ReportLanguage) -> String {
        guard let id else { return F.html(l.t("（上级数据）", "(hub data)")) }
        return n.unitName.map { "\(F.html($0))<br><span class=\"muted\">\(F.html(id))</span>" } ?? F.html(id)
    }

    static func refusal(_ r: Refusal?) -> String {
        r.map { "<div class=\"error\" id=\"decision-error\">\(F.html($0.message))</div>" } ?? ""
    }

    static func conflicts(_ list: [ConflictItem], org: OrgUnit, path: [OrgUnit], chrome: Chrome, refused: Refusal? = nil) -> String {
        let l = chrome.lang
        var s = crumbs(path, at: nil) + "<section id=\"conflicts\"><h2>\(l.t("待处理冲突", "Open conflicts")) · \(F.html(org.name))</h2>" + refusal(refused)
        s += "<p class=\"muted\">\(l.t("保留当前值、采用另一方的值，或填写新值；处理结果像其他修改一样同步到单位，并记入审计日志。", "Keep the current value, take the other side's, or enter a new one; the outcome syncs to the unit like any edit and is audited."))</p>"
        if list.isEmpty { return s + "<p class=\"muted\">\(l.t("没有待处理的冲突。", "No open conflicts."))</p></section>" }
        s += "<table><tr><th>\(l.t("编号", "No."))</th><th>\(l.t("单位", "Unit"))</th><th>\(l.t("记录", "Record"))</th><th>\(l.t("当前值", "Current"))</th><th>\(l.t("另一方", "Other side"))</th><th>\(l.t("处理", "Resolve"))</th></tr>"
        for c in list {
            let typed = refused?.id == c.id ? refused?.value : nil
            s += """
                <tr data-conflict="\(c.id)"\(refused?.id == c.id ? " class=\"refused\"" : "")><td>\(c.id)</td><td>\(unit(c.names, c.unitID, l: l))</td><td>\(record(c.names, key: c.key, l: l))<br><span class="muted">\(F.html(l.policy(c.policy)))</span></td>
                <td>\(F.html(c.currentValue ?? l.t("（已删除）", "(deleted)")))<br><span class="muted">\(F.html(who(c.currentOrigin, chrome))) · \(F.time(c.currentTime))</span></td>
                <td>\(F.html(c.otherValue))<br><span class="muted">\(F.html(who(c.otherOrigin, chrome))) · \(F.time(c.otherTime))</span></td>
                <td><form method="post" action="/dashboard/conflicts"><input type="hidden" name="csrf" value="\(F.html(chrome.csrf))"><input type="hidden" name="org" value="\(F.html(org.id))"><input type="hidden" name="id" value="\(c.id)">
                <button name="action" value="keep">\(l.t("保留当前", "Keep current"))</button> <button name="action" value="take_other">\(l.t("采用另一方", "Take other"))</button>
                <input name="value" size="10" placeholder="\(l.t("新值", "new value"))"\(typed.map { " value=\"\(F.html($0))\"" } ?? "")> <button name="action" value="edit">\(l.t("改为新值", "Set value"))</button></form></td></tr>
                """
        }
        return s + "</table><p class=\"links\"><a href=\"\(link("/v1/report/conflicts", [("org", org.id), ("format", "csv"), ("lang", l.rawValue)]))\">\(l.t("导出 CSV", "Export CSV"))</a></p></section>"
    }

    /// Who wrote a side: this hub (a supervisor's edit) or a unit's node, by its id.
    static func who(_ origin: String?, _ chrome: Chrome) -> String {
        guard let origin else { return "—" }
        return origin == chrome.hubNode ? chrome.lang.t("上级（本级）", "this hub (a supervisor)") : chrome.lang.t("单位节点 ", "unit node ") + origin
    }

    static func quarantine(_ list: [QuarantineItem], org: OrgUnit, path: [OrgUnit], chrome: Chrome, refused: Refusal? = nil) -> String {
        let l = chrome.lang
        var s = crumbs(path, at: nil) + "<section id=\"quarantine\"><h2>\(l.t("被隔离的数据", "Quarantined values")) · \(F.html(org.name))</h2>" + refusal(refused)
        s += "<p class=\"muted\">\(l.t("不符合标准的值被暂扣，其余数据照常入库。填写更正值后该记录入库，并把更正同步回单位；或将其舍弃。", "Values that failed the standard's checks are held; the rest was applied. Enter a correction to apply the row and send the correction back to the unit, or discard it."))</p>"
        if list.isEmpty { return s + "<p class=\"muted\">\(l.t("没有被隔离的数据。", "Nothing is quarantined."))</p></section>" }
        s += "<table><tr><th>\(l.t("编号", "No."))</th><th>\(l.t("单位", "Unit"))</th><th>\(l.t("记录", "Record"))</th><th>\(l.t("被拒收的值", "Refused value"))</th><th>\(l.t("原因", "Reason"))</th><th>\(l.t("处理", "Resolve"))</th></tr>"
        for q in list {
            let typed = refused?.id == q.id ? refused?.value : nil
            s += """
                <tr data-quarantine="\(q.id)"\(refused?.id == q.id ? " class=\"refused\"" : "")><td>\(q.id)</td><td>\(unit(q.names, q.unitID, l: l))</td><td>\(record(q.names, key: q.key, l: l))</td>
                <td>\(F.html(q.value))<br><span class="muted">\(F.html(who(q.origin, chrome))) · \(F.time(q.receivedAt))</span></td><td>\(F.html(l.t(q.reasonZh, q.reason)))</td>
                <td><form method="post" action="/dashboard/quarantine"><input type="hidden" name="csrf" value="\(F.html(chrome.csrf))"><input type="hidden" name="org" value="\(F.html(org.id))"><input type="hidden" name="id" value="\(q.id)">
                <input name="value" size="10" placeholder="\(l.t("更正值", "correction"))"\(typed.map { " value=\"\(F.html($0))\"" } ?? "")> <button name="action" value="correct">\(l.t("更正入库", "Apply corrected"))</button>
                <button name="action" value="discard">\(l.t("舍弃", "Discard"))</button></form></td></tr>
                """
        }
        return s + "</table><p class=\"links\"><a href=\"\(link("/v1/report/quarantine", [("org", org.id), ("format", "csv"), ("lang", l.rawValue)]))\">\(l.t("导出 CSV", "Export CSV"))</a></p></section>"
    }

    /// The login form, with `error` above it; `alsoEnglish` adds the English words on a
    /// second line (for a refusal whoever gets it must understand: a lockout, a busy hub).
    static func login(lang: ReportLanguage, error: String?, alsoEnglish: String? = nil) -> String {
        let l = lang
        return document(
            l.t("登录 · Ferry", "Log in · Ferry"), lang: l,
            body: """
                <header><h1>\(l.t("Ferry 党建工作数据 · 上级视图", "Ferry party-building data · supervisor's view"))</h1><a href="/login?lang=\(l == .zh ? "en" : "zh")">\(l == .zh ? "English" : "中文")</a></header>
                <div class="wrap"><main><section style="max-width:420px"><h2>\(l.t("管理员登录", "Administrator login"))</h2>
                \(error.map { "<div class=\"error\" id=\"login-error\">\(F.html($0))\(alsoEnglish.map { "<br><span lang=\"en\">\(F.html($0))</span>" } ?? "")</div>" } ?? "")
                <form method="post" action="/login"><input type="hidden" name="lang" value="\(l.rawValue)">
                <p>\(l.t("用户名", "Account"))<br><input name="name" autocomplete="username" required></p>
                <p>\(l.t("密码", "Password"))<br><input name="password" type="password" autocomplete="current-password" required></p>
                <p><button>\(l.t("登录", "Log in"))</button></p></form>
                <p class="muted">\(l.t("账号由管理员用 ferry hub admin add 创建。", "Accounts are created with ferry hub admin add."))</p></section></main></div>
                """)
    }

    static func error(_ message: String, chrome: Chrome, tree: OrgTree, org: String) -> String {
        page(chrome, tree: tree, org: org, at: nil, main: "<div class=\"error\">\(F.html(message))</div>")
    }
}
