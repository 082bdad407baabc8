@testable import FerryHubServer
import FerryTestSupport
import FerryTestTraits
import Foundation
import Testing

/// A real hub process serving the supervisor's view, reached with curl as a browser or a
/// script would.
final class ServedHub: @unchecked Sendable {
    let hub: ChildProcess
    let base: String
    let hubDir: String
    static let password = "a long enough password"

    /// Serves `hubDir` with an account `analyst`; `arguments` are extra `ferry hub serve` flags.
    init(_ hubDir: String, arguments: [String] = []) throws {
        self.hubDir = hubDir
        let add = try runCommand(FerryBinary.path, ["hub", "admin", "add", "--dir", hubDir, "--name", "analyst"], input: Self.password + "\n")
        #expect(add.status == 0, "\(add.stderr)")
        hub = try ChildProcess(FerryBinary.path, ["hub", "serve", "--dir", hubDir, "--listen", "127.0.0.1:0"] + arguments)
        base = "http://127.0.0.1:\(try hub.waitFor("listening on http://127\\.0\\.0\\.1:(\\d+)"))"
    }

    /// A new hub in `dir` with a province to give accounts a scope, served.
    static func fresh(_ dir: TemporaryDirectory, arguments: [String] = []) throws -> ServedHub {
        let hubDir = dir.file("hub")
        for args in [
            ["hub", "init", "--dir", hubDir, "--standard", Repository.path("Tests/Fixtures/test-standard.toml")],
            ["hub", "unit", "add", "--dir", hubDir, "--id", "prov", "--name", "省", "--level", "province"],
        ] {
            let r = try runCommand(FerryBinary.path, args)
            #expect(r.status == 0, "\(r.stderr)")
        }
        return try ServedHub(hubDir, arguments: arguments)
    }

    func stop() { hub.stop() }

    /// An API login attempt: the status, the headers (lower-cased names) and the JSON body.
    func apiLogin(_ name: String, _ password: String, headers: [String] = []) throws -> (status: Int, headers: [String: String], json: [String: Any]) {
        let body = String(decoding: try JSONSerialization.data(withJSONObject: ["name": name, "password": password]), as: UTF8.self)
        let r = try curl(["-i", "-H", "Content-Type: application/json", "-d", body] + headers.flatMap { ["-H", $0] }, "/v1/admin/login")
        let (status, fields, rest) = Self.response(r.stdout)
        return (status, fields, (try? JSONSerialization.jsonObject(with: Data(rest.utf8)) as? [String: Any]) ?? [:])
    }

    /// A dashboard form login: the status, the headers and the page.
    func formLogin(_ name: String, _ password: String, headers: [String] = []) throws -> (status: Int, headers: [String: String], setCookies: [String], body: String) {
        let r = try curl(
            ["-i", "--data-urlencode", "name=\(name)", "--data-urlencode", "password=\(password)"] + headers.flatMap { ["-H", $0] }, "/login")
        let (status, fields, rest) = Self.response(r.stdout)
        return (status, fields, Self.setCookies(r.stdout), rest)
    }

    /// Splits `curl -i` output into status, headers and body.
    static func response(_ text: String) -> (Int, [String: String], String) {
        let parts = text.components(separatedBy: "\r\n\r\n")
        let head = parts.first ?? ""
        let lines = head.components(separatedBy: "\r\n")
        let status = Int(lines.first?.split(separator: " ").dropFirst().first ?? "") ?? 0
        var fields: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return (status, fields, parts.dropFirst().joined(separator: "\r\n\r\n"))
    }

    static func setCookies(_ text: String) -> [String] {
        text.components(separatedBy: "\r\n").filter { $0.lowercased().hasPrefix("set-cookie:") }
    }

    /// Rows of `sql` on the hub's registry, read by the sqlite3 shell.
    func registry(_ sql: String) throws -> [String] {
        let r = try SQLiteShell.run("\(hubDir)/registry.db", sql)
        #expect(r.status == 0, "\(r.error)")
        return r.output.split(separator: "\n").map(String.init)
    }

    /// curl with `args`; `-s`, a time limit and the hub's base URL before `path`.
    func curl(_ args: [String], _ path: String) throws -> CommandResult {
        try runCommand("/usr/bin/env", ["curl", "-s", "--max-time", "60"] + args + ["\(base)\(path)"])
    }

    /// A bearer token from `POST /v1/admin/login`.
    func token(name: String = "analyst", password: String = ServedHub.password) throws -> String {
        let body = String(decoding: try JSONSerialization.data(withJSONObject: ["name": name, "password": password]), as: UTF8.self)
        let r = try curl(["-H", "Content-Type: application/json", "-d", body], "/v1/admin/login")
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        return try #require(json?["token"] as? String, "no token: \(r.stdout)")
    }
}

@Suite("The supervisor's view over HTTP", .serialized, .offThePool)
struct SupervisorHTTPTests {
    @Test("the report API's and the dashboard's CSV exports carry a unit's formula-like values as text")
    func apiCSVNeutralisesUnitValues() throws {
        let fixture = try UnitWrittenText()
        defer { fixture.remove() }
        let served = try ServedHub(fixture.hubDir)
        defer { served.stop() }
        let bearer = try served.token()
        let jar = fixture.dir.file("cookies")
        let login = try served.curl(
            ["-c", jar, "-o", "/dev/null", "-w", "%{http_code}", "--data-urlencode", "name=analyst", "--data-urlencode", "password=\(ServedHub.password)"],
            "/login")
        #expect(login.stdout == "303")
        for (path, value) in [("/v1/report/conflicts?format=csv", UnitWrittenText.hostileName), ("/v1/report/quarantine?format=csv", UnitWrittenText.hostileStatus)] {
            for auth in [["-H", "Authorization: Bearer \(bearer)"], ["-b", jar]] {
                let file = fixture.dir.file("export.csv")
                let r = try served.curl(auth + ["-o", file, "-w", "%{http_code}"], path)
                #expect(r.stdout == "200", "\(path): \(r.stdout)")
                let rows = csvCells(try Data(contentsOf: URL(fileURLWithPath: file)))
                #expect(formulaCells(rows).isEmpty, "\(path) exports live formulas: \(formulaCells(rows))")
                #expect(rows.flatMap { $0 }.contains("'" + value), "\(path): \(rows)")
            }
        }
    }

    @Test("after five failed logins the API answers 429 with Retry-After in the one error shape and the dashboard a bilingual 429 page; a forged X-Forwarded-For changes nothing")
    func failedLoginsGet429() throws {
        let dir = try TemporaryDirectory("ferry-throttle")
        defer { dir.remove() }
        let served = try ServedHub.fresh(dir)
        defer { served.stop() }
        for n in 1...5 { #expect(try served.apiLogin("analyst", "wrong \(n)").status == 401, "failure \(n) is free") }
        let refused = try served.apiLogin("analyst", ServedHub.password)
        #expect(refused.status == 429)
        #expect(refused.headers["retry-after"] == "30", "\(refused.headers)")
        #expect(refused.json["code"] as? String == "rate_limited" && refused.json["retryable"] as? Bool == true && refused.json["retry_after"] as? Int == 30)
        #expect((refused.json["message_zh"] as? String)?.contains("登录失败次数过多") == true && (refused.json["message"] as? String)?.contains("30 s") == true)
        // A client cannot escape its address by naming another one: no proxy is trusted.
        #expect(try served.apiLogin("someone", "x", headers: ["X-Forwarded-For: 203.0.113.5"]).status == 429)
        let page = try served.formLogin("analyst", ServedHub.password)
        #expect(page.status == 429 && page.headers["retry-after"] != nil, "\(page.status) \(page.headers)")
        #expect(page.body.contains("登录失败次数过多") && page.body.contains("too many failed logins"), "both languages: \(page.body)")
        #expect(page.setCookies.allSatisfy { !$0.contains("ferry_session") }, "no session")
        let audit = try served.registry("SELECT client, outcome, attempts FROM audit WHERE action = 'login' ORDER BY id")
        #expect(audit.first == "127.0.0.1|refused|5", "\(audit)")
        #expect(audit.contains { $0.hasPrefix("127.0.0.1|rate_limited|") } && !audit.contains { $0.contains("203.0.113.5") }, "\(audit)")
    }

    @Test("behind a trusted proxy, failed logins are counted and audited per client named in X-Forwarded-For")
    func trustedProxyNamesTheClient() throws {
        let dir = try TemporaryDirectory("ferry-proxy")
        defer { dir.remove() }
        let served = try ServedHub.fresh(dir, arguments: ["--trusted-proxies", "127.0.0.1, ::1"])
        defer { served.stop() }
        for n in 1...5 {
            #expect(try served.apiLogin("user\(n)", "x", headers: ["X-Forwarded-For: 198.51.100.7"]).status == 401)
        }
        #expect(try served.apiLogin("user6", "x", headers: ["X-Forwarded-For: 198.51.100.7"]).status == 429, "the forwarded client is held back")
        #expect(try served.apiLogin("user7", "x", headers: ["X-Forwarded-For: 198.51.100.8"]).status == 401, "another client behind the proxy is not")
        // What the client wrote to the left of its proxy's entry is not believed.
        #expect(try served.apiLogin("user8", "x", headers: ["X-Forwarded-For: 198.51.100.99, 198.51.100.7"]).status == 429)
        let clients = Set(try served.registry("SELECT DISTINCT client FROM audit WHERE action = 'login'"))
        #expect(clients == ["198.51.100.7", "198.51.100.8"], "\(clients)")
    }

    @Test("64 logins at once: at most two passwords are checked at a time, each answer is 401, 429 or 503 with Retry-After, and the hub keeps answering")
    func parallelLoginsAreBounded() throws {
        let dir = try TemporaryDirectory("ferry-storm")
        defer { dir.remove() }
        // All 64 come from one address: let them all connect, so the bound under test is the
        // password checks', not the listener's per-address connection limit.
        let config = dir.file("hub.toml")
        try """
            dir = "\(dir.file("hub"))"
            listen = "127.0.0.1:0"
            [limits]
            max_connections_per_address = 128
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let served = try ServedHub.fresh(dir, arguments: ["--config", config])
        defer { served.stop() }
        let url = "\(served.base)/v1/admin/login"
        let storm = try ChildProcess(
            "/usr/bin/env",
            ["curl", "-s", "--max-time", "60", "-Z", "--parallel-immediate", "--parallel-max", "64", "-w", "%{http_code} %header{retry-after}\n",
             "-H", "Content-Type: application/json", "-d", #"{"name":"analyst","password":"not the password"}"#]
                + (0..<64).flatMap { _ in ["-o", "/dev/null", url] })
        Thread.sleep(forTimeInterval: 0.3)
        let health = try served.curl(["-o", "/dev/null", "-w", "%{http_code} %{time_total}"], "/v1/health")
        let healthParts = health.stdout.split(separator: " ")
        // Generous: the machine may be busy with more than this test.
        #expect(healthParts.first == "200" && (Double(healthParts.last ?? "") ?? 99) < 10, "the hub answered health in \(health.stdout)")
        storm.process.waitUntilExit()
        Thread.sleep(forTimeInterval: 0.2)
        let answers = storm.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: false).map(String.init) }
        #expect(answers.count == 64, "\(storm.stdout)")
        let codes = answers.map { $0[0] }
        #expect(Set(codes).isSubset(of: ["401", "429", "503"]), "\(codes)")
        // Five free failures, plus the second of the two checks running when the fifth landed.
        let checked = codes.filter { $0 == "401" }.count
        #expect((5...6).contains(checked), "\(checked) passwords were checked: \(codes)")
        #expect(answers.filter { $0[0] != "401" }.allSatisfy { $0.count == 2 && Int($0[1]) != nil }, "every refusal says when to return: \(answers)")
        let rows = try served.registry("SELECT outcome, attempts FROM audit WHERE action = 'login' ORDER BY id")
        #expect(rows.count <= 2, "the 64 attempts fold into a row per outcome: \(rows)")
    }

    @Test("the session and language cookies are Secure when the dashboard is reached over TLS through a proxy, and not over plain HTTP")
    func cookiesAreSecureOverTLS() throws {
        let dir = try TemporaryDirectory("ferry-cookies")
        defer { dir.remove() }
        let served = try ServedHub.fresh(dir)
        defer { served.stop() }
        let plain = try served.formLogin("analyst", ServedHub.password)
        #expect(plain.status == 303)
        let plainSession = try #require(plain.setCookies.first { $0.contains("ferry_session=") })
        #expect(!plainSession.contains("Secure") && plainSession.contains("HttpOnly") && plainSession.contains("SameSite=Strict"), "\(plainSession)")

        let viaTLS = try served.formLogin("analyst", ServedHub.password, headers: ["X-Forwarded-Proto: https"])
        #expect(viaTLS.status == 303)
        let session = try #require(viaTLS.setCookies.first { $0.contains("ferry_session=") })
        #expect(session.contains("; Secure") && session.contains("HttpOnly") && session.contains("SameSite=Strict"), "\(session)")
        let lang = try served.curl(["-i", "-H", "X-Forwarded-Proto: https"], "/login?lang=en")
        let langCookie = try #require(ServedHub.setCookies(lang.stdout).first { $0.contains("ferry_lang=") })
        #expect(langCookie.contains("; Secure"), "\(langCookie)")
        // Logging out clears the cookie with the same attributes.
        let token = String(session.split(separator: "=", maxSplits: 1)[1].prefix { $0 != ";" })
        let logout = try served.curl(["-i", "-H", "X-Forwarded-Proto: https", "-b", "ferry_session=\(token)", "-d", "csrf="], "/logout")
        let cleared = try #require(ServedHub.setCookies(logout.stdout).first { $0.contains("ferry_session=") })
        #expect(cleared.contains("; Secure") && cleared.contains("Max-Age=0"), "\(cleared)")
    }

    @Test("cookies are Secure whenever the hub serves TLS itself, whatever the headers, and behind a proxy that says https")
    func secureCookieRule() {
        #expect(SupervisorHTTP.cookiesSecure(hubServesTLS: true, forwardedProto: nil))
        #expect(SupervisorHTTP.cookiesSecure(hubServesTLS: true, forwardedProto: "http"))
        #expect(SupervisorHTTP.cookiesSecure(hubServesTLS: false, forwardedProto: "HTTPS"))
        #expect(SupervisorHTTP.cookiesSecure(hubServesTLS: false, forwardedProto: "https, http"), "the first proxy's word counts")
        #expect(!SupervisorHTTP.cookiesSecure(hubServesTLS: false, forwardedProto: nil))
        #expect(!SupervisorHTTP.cookiesSecure(hubServesTLS: false, forwardedProto: "http"))
    }
}
