import ArgumentParser
import FerryConfig
import FerryCore
import FerryDemo
import FerryHub
import FerryReports
import FerryHubServer
import FerrySample
import FerryWire
import Foundation

/// `ferry report`: the supervisor's view as aligned tables (or CSV) in the terminal, read
/// straight from the hub's directory.
struct Report: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Indicators rolled up the org tree, silent units, conflicts and quarantine, from a hub's directory. 上级汇总报表。")
    @Option(name: .long, help: "The hub's data directory (default: the config's dir, else ferry-hub).") var dir: String?
    @Option(name: .long, help: "The hub's config file (hub.toml): its dir and silent_after_days are the defaults.") var config: String?
    @Option(name: .long, help: "The org node to report on (default: the top of the tree).") var org: String?
    @Option(name: .long, help: "Each indicator over its period containing this date, YYYY-MM-DD (default: today).") var at: String?
    @Option(name: .long, help: "Only units of this industry.") var industry: String?
    @Option(name: .customLong("view"), help: "indicators, children, industries, freshness, silent, conflicts or quarantine.") var viewName = "indicators"
    @Option(name: .long, help: "Days without a sync before a unit counts as silent (default: the hub's silent_after_days, as its dashboard counts).")
    var silentAfterDays: Int?
    @Flag(name: .long, help: "Print CSV (UTF-8 with BOM) instead of a table.") var csv = false
    @Option(name: .long, help: "zh or en (default: from LC_ALL, LC_MESSAGES or LANG)") var lang: String?

    func run() throws {
        let language: ReportLanguage = TerminalLanguage.isChinese(flag: lang, environment: ProcessInfo.processInfo.environment) ? .zh : .en
        let file = try config.map { try HubConfig.load(path: $0) }
        let dir = self.dir ?? file?.dir ?? "ferry-hub"
        // As the dashboard counts: the flag, else hub.toml, else what the serving hub recorded.
        var settings = HubSettings()
        let silentAfterDays = self.silentAfterDays ?? file?.silentAfterDays ?? HubServing.recorded(in: dir)?.silentAfterDays ?? settings.silentAfterDays
        guard silentAfterDays >= 1 else { throw ValidationError("--silent-after-days must be at least 1") }
        settings.silentAfterDays = silentAfterDays
        let hub = try Hub.open(existing: dir, settings: settings)
        let view = try SupervisorView(hub: hub, silentAfterDays: silentAfterDays)
        let tree = try view.tree()
        guard let root = view.defaultRoot(tree) else { throw Failure(description: "the hub's org tree is empty; add units with ferry hub unit add") }
        let table: (header: [String], rows: [[String]])
        var heading = ""
        do throws(WireError) {
            switch viewName {
            case "indicators", "children", "industries", "silent":
                let r = try view.report(org: org, root: root, at: at, industry: industry)
                heading = "\(r.path.map(\.name).joined(separator: " › ")) · \(r.at)\(r.industry.map { " · \(language.industry($0))" } ?? "") · \(language.t("单位", "units")) \(r.units) · \(language.t("失联", "silent")) \(r.silentUnits)"
                switch viewName {
                case "children": table = ReportTables.breakdown(r.children, r, language)
                case "industries": table = ReportTables.breakdown(r.industries, r, language)
                case "silent": table = ([language.t("失联单位", "silent units")], r.silentGroups.map { [language.silentLine($0)] })
                default: table = ReportTables.indicators(r, language)
                }
            case "freshness": table = ReportTables.freshness(try view.freshness(org: org, root: root), language)
            case "conflicts": table = ReportTables.conflicts(try view.conflicts(org: org, root: root), language)
            case "quarantine": table = ReportTables.quarantine(try view.quarantine(org: org, root: root), language)
            default: throw WireError(.badRequest, "--view must be indicators, children, industries, freshness, silent, conflicts or quarantine")
            }
        } catch {
            throw Failure(description: language.t(error.messageZh + "（" + error.message + "）", error.message))
        }
        if csv {
            FileHandle.standardOutput.write(Data(ReportFormat.csv(table.header, table.rows)))
        } else {
            if !heading.isEmpty { print(ReportFormat.terminal(heading) + "\n") }
            print(ReportTables.aligned(table.header, table.rows))
        }
    }
}

extension HubCommand {
    struct Admin: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Supervisors' accounts for the dashboard and the report API.", subcommands: [Add.self, List.self, Remove.self, Link.self])

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Add an account (or change its password and scope); reads the password from stdin.")
            @OptionGroup var dir: Dir
            @Option(name: .long, help: "Account name.") var name: String
            @Option(name: .long, help: "The org node the account sees, with everything below it (default: the top of the tree).") var org: String?
            func run() throws {
                let hub = try dir.open()
                let tree = try SupervisorView(hub: hub).tree()
                guard let scope = org ?? tree.roots.first else { throw Failure(description: "the org tree is empty; add units first (ferry hub unit add)") }
                if isatty(0) != 0 { FileHandle.standardError.write(Data("password for \(name) (at least 10 characters): ".utf8)) }
                guard let password = readLine(strippingNewline: true), !password.isEmpty else {
                    throw Failure(description: "no password given; type it, or pipe it in: printf '%s\\n' \"$PASSWORD\" | ferry hub admin add --name \(name)")
                }
                try hub.registry.setAdmin(name: name, password: password, orgID: scope, now: hub.now())
                print("account \(name) sees \(scope) and everything below it")
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List accounts and what each sees.")
            @OptionGroup var dir: Dir
            func run() throws {
                for a in try dir.open().registry.admins() { print("\(a.name)\t\(a.orgID)") }
            }
        }

        struct Remove: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Remove an account and end its sessions.")
            @OptionGroup var dir: Dir
            @Option(name: .long) var name: String
            func run() throws {
                guard try dir.open().registry.removeAdmin(name: name) else { throw Failure(description: "no account named \(name)") }
                print("removed \(name)")
            }
        }

        struct Link: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Print a one-time login link for an account, valid for 10 minutes.")
            @OptionGroup var dir: Dir
            @Option(name: .long) var name: String
            @Option(name: .long, help: "The hub's address as the browser reaches it (default: where the hub last served, as it recorded in its folder).")
            var url: String?
            @Option(name: .long, help: "The dashboard page to open, e.g. /dashboard/units?org=k-390102.") var page: String?
            func run() throws {
                let hub = try dir.open()
                let url: String
                if let given = self.url {
                    url = given.hasSuffix("/") ? String(given.dropLast()) : given
                } else if let served = HubServing.recorded(in: dir.dir) {
                    url = served.url
                } else {
                    url = "http://127.0.0.1:7700"
                    FileHandle.standardError.write(
                        Data("该上级尚未运行过（\(dir.dir)/serving.json 不存在），链接按默认地址 \(url) 生成；如不对，请用 --url 指定浏览器访问上级的地址。\nthis hub has not served yet (no \(dir.dir)/serving.json), so the link uses the default address \(url); pass --url with the address browsers reach the hub at if that is wrong\n".utf8))
                }
                let ticket = try hub.registry.loginTicket(name: name, now: hub.now())
                var c = URLComponents(string: "\(url)/login")
                c?.queryItems = [URLQueryItem(name: "ticket", value: ticket)] + (page.map { [URLQueryItem(name: "next", value: $0)] } ?? [])
                print(c?.string ?? "\(url)/login?ticket=\(ticket)")
            }
        }
    }

    struct Sample: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a hub directory holding a seeded sample province, as if its units had synced (to try the dashboard and reports).")
        @Option(name: .long, help: "A new directory for the sample hub.") var dir = "ferry-sample-hub"
        @Option(name: .long, help: "Cities in the province.") var cities = 2
        @Option(name: .long, help: "Counties per city.") var counties = 2
        @Option(name: .long, help: "Units per county.") var units = 6
        @Option(name: .long, help: "Years of history per unit.") var years = 2
        @Option(name: .long, help: "Seed of the generator (same seed, same province).") var seed: UInt64 = 2026
        @Option(name: .long, help: "Every Nth unit has been silent for over a week (and the next one never enrolled).") var silentEvery = 12
        func run() throws {
            let shape = ProvinceShape(cities: cities, countiesPerCity: counties, unitsPerCounty: units, years: years, seed: seed)
            let now = UInt64(Date().timeIntervalSince1970 * 1000)
            let s = try SampleHub.build(directory: dir, shape: shape, silentEvery: silentEvery, now: now) { FileHandle.standardError.write(Data("  \($0)\n".utf8)) }
            print("sample hub in \(dir): \(s.units) units, \(s.statements) records; silent: \(s.silentUnits.count), never enrolled: \(s.notEnrolled.count)")
            print("next: ferry hub admin add --dir \(dir) --name admin; ferry hub serve --dir \(dir); open http://127.0.0.1:7700/")
        }
    }
}
