import FerryCore
import FerryNode
import FerryTestSupport
import FerryTrust
import FerryWire
import Foundation

/// A real hub process and real nodes (directories enrolled with `ferry node init`) on
/// loopback, driven through the `ferry` command as an operator would.
final class Province: @unchecked Sendable {
    let dir: TemporaryDirectory
    var hub: ChildProcess!
    var port = 0
    var hubDir: String { dir.file("hub") }
    var url: String { "http://127.0.0.1:\(port)" }

    /// `standard`: the file `ferry hub init` publishes; nil for the built-in standard (no `--standard`).
    init(units: [String], standard: String? = Repository.path("Tests/Fixtures/test-standard.toml"), maxSessions: Int = 32) throws {
        dir = try TemporaryDirectory("ferry-e2e")
        _ = try ferry(["hub", "init", "--dir", hubDir] + (standard.map { ["--standard", $0] } ?? []))
        try startHub(maxSessions: maxSessions)
        _ = try ferry(["hub", "unit", "add", "--dir", hubDir, "--id", "prov", "--name", "省", "--level", "province"])
        for u in units {
            let out = try ferry(["hub", "unit", "add", "--dir", hubDir, "--id", u, "--name", "单位 \(u)", "--parent", "prov", "--industry", "medical"])
            let token = out.stdout.split(separator: "\n").last.map(String.init) ?? ""
            _ = try ferry(["node", "init", "--dir", nodeDir(u), "--hub", url, "--token", token, "--lang", "en"])
        }
    }

    /// Extra arguments for `ferry hub serve`, and its environment.
    var hubArguments: [String] = []
    var hubEnvironment: [String: String] = [:]
    /// Port of the hub's Prometheus endpoint.
    let metricsPort = Int.random(in: 20000...29999)

    func startHub(maxSessions: Int = 32) throws {
        hub = try ChildProcess(
            FerryBinary.path,
            ["hub", "serve", "--dir", hubDir, "--listen", "127.0.0.1:\(port)", "--max-sessions", String(maxSessions), "--metrics", "127.0.0.1:\(metricsPort)"] + hubArguments, environment: hubEnvironment)
        port = Int(try hub.waitFor("listening on http://127\\.0\\.0\\.1:(\\d+)"))!
    }

    func nodeDir(_ unit: String) -> String { dir.file("node-\(unit)") }
    func unitDB(_ unit: String) -> String { "\(nodeDir(unit))/unit.db" }
    var hubDB: String { "\(hubDir)/hub.db" }

    @discardableResult
    func ferry(_ args: [String], expectFailure: Bool = false) throws -> CommandResult {
        let r = try runCommand(FerryBinary.path, args)
        if r.status != 0 && !expectFailure {
            throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "ferry \(args.joined(separator: " ")) failed (\(r.status)): \(r.stderr) \(r.stdout)"])
        }
        return r
    }

    @discardableResult
    func sync(_ unit: String, expectFailure: Bool = false) throws -> CommandResult {
        try ferry(["sync", "--dir", nodeDir(unit), "--lang", "en"], expectFailure: expectFailure)
    }

    /// Rows of a query through the sqlite3 shell, split on '|'.
    func query(_ db: String, _ sql: String) throws -> [[String]] {
        let r = try SQLiteShell.run(db, sql)
        guard r.status == 0 else { throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: r.error]) }
        return r.output.split(separator: "\n").map { $0.split(separator: "|", omittingEmptySubsequences: false).map(String.init) }
    }

    func identity(_ unit: String) throws -> NodeIdentity { try NodeIdentity.load(directory: nodeDir(unit)) }

    /// Sends a request signed with `unit`'s real key, as a node would, with curl.
    func signedPost(_ unit: String, path: String, body: [UInt8], contentType: String = WireMediaType.exchange) throws -> (status: Int, body: String, headers: [(String, String)]) {
        let id = try identity(unit)
        let key = try SigningKey(base64: id.privateKey)
        let headers = try key.signedHeaders(node: id.nodeID, method: "POST", path: path, body: body, nowMillis: UInt64(Date().timeIntervalSince1970 * 1000))
        let r = try post(path: path, body: body, headers: headers + [("Content-Type", contentType)])
        return (r.0, r.1, headers)
    }

    /// One exchange as `unit`'s node would make it, pushing `changeset` (if any); returns the
    /// status, the answer's header (decoded when the exchange succeeded), its pulled batch,
    /// and the raw body (the error shape otherwise).
    func exchange(
        _ unit: String, pushing changeset: [UInt8]? = nil, request: ExchangeRequest? = nil
    ) throws -> (status: Int, answer: ExchangeResponse?, pulled: Changeset?, body: String, headers: [(String, String)]) {
        let req = request ?? ExchangeRequest(maxBytes: 1 << 20, standardVersion: "1.0.0", pendingRows: 0, clockMillis: UInt64(Date().timeIntervalSince1970 * 1000), epoch: 0)
        let header = [UInt8](try JSONEncoder().encode(req))
        let body = ExchangeEnvelope(header: header, changeset: changeset).encode()
        let id = try identity(unit)
        let key = try SigningKey(base64: id.privateKey)
        let headers = try key.signedHeaders(node: id.nodeID, method: "POST", path: "/v1/exchange", body: body, nowMillis: UInt64(Date().timeIntervalSince1970 * 1000))
        let (status, bytes) = try postBytes(path: "/v1/exchange", body: body, headers: headers + [("Content-Type", WireMediaType.exchange)])
        var answer: ExchangeResponse?
        var pulled: Changeset?
        if status == 200, let env = try? ExchangeEnvelope.decode(bytes) {
            answer = try? JSONDecoder().decode(ExchangeResponse.self, from: Data(env.header))
            pulled = try env.changeset.map { try ChangesetCodec.decode($0) }
        }
        return (status, answer, pulled, String(decoding: bytes, as: UTF8.self), headers)
    }

    /// POSTs with the curl command; returns the HTTP status and body.
    func post(path: String, body: [UInt8], headers: [(String, String)]) throws -> (Int, String) {
        let (status, bytes) = try postBytes(path: path, body: body, headers: headers)
        return (status, String(decoding: bytes, as: UTF8.self))
    }

    /// POSTs with the curl command; returns the HTTP status and the body's bytes.
    func postBytes(path: String, body: [UInt8], headers: [(String, String)]) throws -> (Int, [UInt8]) {
        let file = dir.file("body-\(UUID().uuidString.prefix(6))")
        let out = file + ".out"
        guard FileManager.default.createFile(atPath: file, contents: Data(body)) else { throw CocoaError(.fileWriteUnknown) }
        var args = ["-s", "-o", out, "-w", "%{http_code}", "-X", "POST", "--data-binary", "@\(file)", "-H", "Expect:"]
        for (k, v) in headers { args += ["-H", "\(k): \(v)"] }
        args.append(url + path)
        let r = try runCommand("/usr/bin/curl", args)
        let bytes = FileManager.default.contents(atPath: out).map { [UInt8]($0) } ?? []
        return (Int(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0, bytes)
    }

    func shutdown() {
        hub?.stop()
        dir.remove()
    }
}
