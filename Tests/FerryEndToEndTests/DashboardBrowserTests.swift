import FerryTestSupport
import FerryTestTraits
import Foundation
import Testing

/// The dashboard as a supervisor meets it: a real hub process serving a sample province,
/// a real login, and the page rendered by headless Chromium (installed by scripts/setup).
/// The figures the page shows are checked against SQL run by the `sqlite3` shell on the
/// hub's database, sharing no code with the hub.
@Suite("Dashboard in a real browser", .serialized, .tags(.slow), .offThePool)
struct DashboardBrowserTests {
    static var chromium: String? {
        if let p = ProcessInfo.processInfo.environment["FERRY_CHROMIUM"] { return p }
        return ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    func ferry(_ args: [String], input: String? = nil) throws -> String {
        let r = try runCommand(FerryBinary.path, args, input: input)
        #expect(r.status == 0, "ferry \(args.joined(separator: " ")): \(r.stderr)")
        return r.stdout
    }

    func sql(_ db: String, _ query: String) throws -> String {
        let r = try runCommand("/usr/bin/env", ["sqlite3", "-batch", db, query])
        #expect(r.status == 0, "\(r.stderr)")
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func curl(_ args: [String]) throws -> CommandResult {
        try runCommand("/usr/bin/env", ["curl", "-s", "--max-time", "30"] + args)
    }

    /// Renders `page` in headless Chromium after a one-time login link; returns the DOM.
    func render(_ dir: String, base: String, page: String, screenshot: String? = nil) throws -> String {
        let browser = try #require(Self.chromium, "headless Chromium is needed for this test; scripts/setup installs it (apt-get install chromium)")
        let link = try ferry(["hub", "admin", "link", "--dir", dir, "--name", "analyst", "--url", base, "--page", page]).trimmingCharacters(in: .whitespacesAndNewlines)
        let profile = try TemporaryDirectory("ferry-chromium")
        defer { profile.remove() }
        var args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=\(profile.path)", "--hide-scrollbars"]
        if let screenshot {
            args += ["--window-size=1400,1600", "--screenshot=\(screenshot)", link]
        } else {
            args += ["--dump-dom", link]
        }
        let r = try runCommand(browser, args)
        #expect(r.status == 0, "chromium: \(r.stderr)")
        return r.stdout
    }

    /// A sample province of 16 units (every fifth silent) with an analyst's account, served on
    /// a free port: its folder, the hub process, its URL.
    func servedSample(_ dir: TemporaryDirectory) throws -> (String, ChildProcess, String) {
        let hubDir = dir.file("hub")
        let made = try ferry(["hub", "sample", "--dir", hubDir, "--cities", "2", "--counties", "2", "--units", "4", "--years", "1", "--silent-every", "5"])
        #expect(made.contains("16 units"), "\(made)")
        _ = try ferry(["hub", "admin", "add", "--dir", hubDir, "--name", "analyst"], input: "a long enough password\n")
        let hub = try ChildProcess(FerryBinary.path, ["hub", "serve", "--dir", hubDir, "--listen", "127.0.0.1:0"])
        do {
            let port = try hub.waitFor("listening on http://127\\.0\\.0\\.1:(\\d+)")
            return (hubDir, hub, "http://127.0.0.1:\(port)")
        } catch {
            hub.stop()
            throw error
        }
    }

    func cell(_ dom: String, row: String, indicator: String) -> Double? {
        guard let start = dom.range(of: "data-row=\"\(row)\"") else { return nil }
        let rest = dom[start.upperBound...]
        guard let c = rest.range(of: "data-indicator=\"\(indicator)\">") else { return nil }
        let text = rest[c.upperBound...].prefix { $0 != "<" }
        return Double(text)
    }

    @Test("the dashboard shows the org tree, a county's figure as SQL computes it, and the silent units; a screenshot is saved")
    func dashboardInChromium() throws {
        let dir = try TemporaryDirectory("ferry-dash")
        defer { dir.remove() }
        let (hubDir, hub, base) = try servedSample(dir)
        defer { hub.stop() }
        let db = "\(hubDir)/hub.db"

        // No login, no data.
        let anonymous = try curl(["-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "\(base)/dashboard"])
        #expect(anonymous.stdout == "303 \(base)/login")
        #expect(try curl(["-o", "/dev/null", "-w", "%{http_code}", "\(base)/v1/report/freshness"]).stdout == "401")

        let root = try sql(db, "SELECT id FROM org_unit WHERE parent_id IS NULL")
        let dom = try render(hubDir, base: base, page: "/dashboard?org=\(root)&at=2026-10-15")
        // The tree: every city and county, by the names the hub's reference data holds.
        let tree = String(dom[dom.range(of: "<nav id=\"org-tree\"")!.lowerBound...].prefix { $0 != "\u{0}" }.split(separator: "</nav>")[0])
        for name in try sql(db, "SELECT name FROM org_unit WHERE level IN ('city', 'county') ORDER BY id").split(separator: "\n") {
            #expect(tree.contains(String(name)), "org tree lacks \(name)")
        }
        // A city's attendance rate for 2026-Q4, computed by SQL over the raw rows.
        for city in try sql(db, "SELECT id FROM org_unit WHERE level = 'city' ORDER BY id").split(separator: "\n").map(String.init) {
            let want = try sql(
                db,
                """
                SELECT 100.0 * sum(a.status = 'present') / count(*) FROM attendance a JOIN meeting m ON m.id = a.meeting_id
                WHERE m.held_on BETWEEN '2026-10-01' AND '2026-12-31'
                  AND a.unit_id IN (SELECT u.id FROM org_unit u JOIN org_unit k ON k.id = u.parent_id WHERE k.parent_id = '\(city)')
                """)
            let shown = try #require(cell(dom, row: city, indicator: "attendance_rate"), "no attendance cell for \(city)")
            #expect(abs(shown - Double(want)!) <= 0.051, "\(city): page shows \(shown), SQL gives \(want)")
        }
        // The silent units, by the registry's own record of their last sync.
        let cutoff = UInt64(Date().timeIntervalSince1970 * 1000) - 7 * 86_400_000
        let silent = try sql("\(hubDir)/registry.db", "SELECT unit_id FROM nodes WHERE last_sync_at < \(cutoff) ORDER BY unit_id").split(separator: "\n").map(String.init)
        #expect(!silent.isEmpty)
        #expect(dom.contains("id=\"silent-count\" class=\"silent\">\(silent.count)<"), "silent count")
        let units = try render(hubDir, base: base, page: "/dashboard/units?org=\(root)")
        for u in silent {
            #expect(units.contains("data-unit=\"\(u)\" class=\"silent-unit\""), "\(u) is not marked silent")
        }
        #expect(units.components(separatedBy: "class=\"silent-unit\"").count - 1 == silent.count)

        let shot = ProcessInfo.processInfo.environment["FERRY_SCREENSHOT"] ?? Repository.path(".build/dashboard.png")
        try? FileManager.default.removeItem(atPath: shot)
        _ = try render(hubDir, base: base, page: "/dashboard?org=\(root)&at=2026-10-15", screenshot: shot)
        let png = try Data(contentsOf: URL(fileURLWithPath: shot))
        #expect(png.count > 20_000 && png.prefix(4) == Data([0x89, 0x50, 0x4E, 0x47]), "screenshot at \(shot)")
    }

    @Test("every dashboard screen fits a phone (390 px) and a desktop (1280 px) without scrolling sideways, in headless Chromium; screenshots of each")
    func pagesFitAPhone() throws {
        let python = Repository.path(".build/playwright-venv/bin/python")
        try #require(FileManager.default.isExecutableFile(atPath: python), "Playwright is needed for this test; scripts/setup installs it into .build/playwright-venv")
        let dir = try TemporaryDirectory("ferry-dash-width")
        defer { dir.remove() }
        let (hubDir, hub, base) = try servedSample(dir)
        defer { hub.stop() }
        let db = "\(hubDir)/hub.db"
        let root = try sql(db, "SELECT id FROM org_unit WHERE parent_id IS NULL")
        let county = try sql(db, "SELECT id FROM org_unit WHERE level = 'county' ORDER BY id LIMIT 1")
        let unit = try sql(db, "SELECT id FROM org_unit WHERE level = 'unit' ORDER BY id LIMIT 1")
        let link = try ferry(["hub", "admin", "link", "--dir", hubDir, "--name", "analyst", "--url", base]).trimmingCharacters(in: .whitespacesAndNewlines)
        // FERRY_SCREENS=docs/screens refreshes the screenshots the README shows.
        let out = ProcessInfo.processInfo.environment["FERRY_SCREENS"].map { Repository.path($0) } ?? dir.file("screens")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let pages = [
            "/dashboard?org=\(root)", "/dashboard?org=\(county)", "/dashboard?org=\(unit)", "/dashboard/units?org=\(root)",
            "/dashboard/conflicts?org=\(root)", "/dashboard/quarantine?org=\(root)",
        ]
        let r = try runCommand(python, [Repository.path("scripts/dashboard_check.py"), link, base, out] + pages)
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let results = try #require(json?["pages"] as? [[String: Any]], "\(r.stdout) \(r.stderr)")
        #expect(results.count == pages.count * 2)
        for p in results {
            let page = p["page"] as? String ?? "?"
            let width = p["width"] as? Int ?? 0
            #expect(p["overflows"] as? Bool == false, "\(page) at \(width) px is \(p["scroll_width"] ?? "?") px wide: it scrolls sideways")
            let shot = try Data(contentsOf: URL(fileURLWithPath: p["shot"] as? String ?? "/nonexistent"))
            #expect(shot.prefix(4) == Data([0x89, 0x50, 0x4E, 0x47]), "\(page) at \(width) px: no screenshot")
        }
    }

    @Test("the report API: form login and CSV with a byte-order mark, bearer tokens, and a county account kept to its county")
    func reportAPI() throws {
        let dir = try TemporaryDirectory("ferry-api")
        defer { dir.remove() }
        let hubDir = dir.file("hub")
        _ = try ferry(["hub", "sample", "--dir", hubDir, "--cities", "1", "--counties", "2", "--units", "2", "--years", "1"])
        let county = try sql("\(hubDir)/hub.db", "SELECT id FROM org_unit WHERE level = 'county' ORDER BY id LIMIT 1")
        let other = try sql("\(hubDir)/hub.db", "SELECT id FROM org_unit WHERE level = 'county' ORDER BY id DESC LIMIT 1")
        _ = try ferry(["hub", "admin", "add", "--dir", hubDir, "--name", "county", "--org", county], input: "county password 123\n")
        let short = try runCommand(FerryBinary.path, ["hub", "admin", "add", "--dir", hubDir, "--name", "x"], input: "short\n")
        #expect(short.status != 0 && short.stderr.contains("at least 10"))
        let hub = try ChildProcess(FerryBinary.path, ["hub", "serve", "--dir", hubDir, "--listen", "127.0.0.1:0"])
        defer { hub.stop() }
        let base = "http://127.0.0.1:\(try hub.waitFor("listening on http://127\\.0\\.0\\.1:(\\d+)"))"

        let jar = dir.file("cookies")
        let wrong = try curl(["-o", "/dev/null", "-w", "%{http_code}", "-d", "name=county&password=nope", "\(base)/login"])
        #expect(wrong.stdout == "401")
        let login = try curl(["-c", jar, "-o", "/dev/null", "-w", "%{http_code}", "--data-urlencode", "name=county", "--data-urlencode", "password=county password 123", "\(base)/login"])
        #expect(login.stdout == "303")
        let csvFile = dir.file("freshness.csv")
        #expect(try curl(["-b", jar, "-o", csvFile, "-w", "%{http_code}", "\(base)/v1/report/freshness?format=csv"]).stdout == "200")
        let csv = try Data(contentsOf: URL(fileURLWithPath: csvFile))
        #expect(csv.prefix(3) == Data([0xEF, 0xBB, 0xBF]), "UTF-8 byte-order mark")
        let text = String(decoding: csv.dropFirst(3), as: UTF8.self)
        #expect(text.hasPrefix("单位,id,上级,") && text.contains("\r\n"))
        #expect(text.split(separator: "\r\n").count == 1 + 2, "header and the county's two units: \(text)")

        let token = try curl(["-H", "Content-Type: application/json", "-d", #"{"name":"county","password":"county password 123"}"#, "\(base)/v1/admin/login"])
        let tokenJSON = try JSONSerialization.jsonObject(with: Data(token.stdout.utf8)) as? [String: Any]
        let bearer = try #require(tokenJSON?["token"] as? String, "\(token.stdout)")
        #expect(tokenJSON?["org"] as? String == county)
        let mine = try curl(["-H", "Authorization: Bearer \(bearer)", "\(base)/v1/report/indicators?at=2026-10-15"])
        let report = try JSONSerialization.jsonObject(with: Data(mine.stdout.utf8)) as? [String: Any]
        #expect((report?["org"] as? [String: Any])?["id"] as? String == county)
        #expect((report?["figures"] as? [Any])?.count == 10)
        let beside = try curl(["-H", "Authorization: Bearer \(bearer)", "-w", "\n%{http_code}", "\(base)/v1/report/indicators?org=\(other)"])
        #expect(beside.stdout.hasSuffix("\n403") && beside.stdout.contains("\"forbidden\""), "\(beside.stdout)")
        // Changes need the bearer token: the cookie alone cannot resolve anything.
        let viaCookie = try curl(["-b", jar, "-o", "/dev/null", "-w", "%{http_code}", "-H", "Content-Type: application/json", "-d", #"{"id":1,"action":"keep"}"#, "\(base)/v1/report/conflicts/resolve"])
        #expect(viaCookie.stdout == "401")
    }
}
