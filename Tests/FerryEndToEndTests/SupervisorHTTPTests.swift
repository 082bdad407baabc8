import FerryTestSupport
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

    func stop() { hub.stop() }

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

@Suite("The supervisor's view over HTTP", .serialized)
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
}
