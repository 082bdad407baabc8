import FerryTestSupport
import FerryTestTraits
import Foundation
import Testing

/// A throwaway certificate authority and the hub certificates it signs, made with the
/// openssl command.
struct TestCA {
    let dir: TemporaryDirectory
    let name: String
    var certificate: String { dir.file("\(name)-ca.pem") }
    var key: String { dir.file("\(name)-ca.key") }

    init(_ dir: TemporaryDirectory, name: String) throws {
        self.dir = dir
        self.name = name
        try Self.openssl([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", certificate,
            "-days", "2", "-subj", "/CN=Ferry test CA \(name)",
        ])
    }

    /// A certificate for 127.0.0.1 and its key, written to `certificate` and `key`.
    func issue(certificate: String, key: String) throws {
        let csr = dir.file("\(name)-\(UUID().uuidString.prefix(6)).csr")
        let ext = dir.file("\(name)-ext.cnf")
        try "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
            .write(toFile: ext, atomically: true, encoding: .utf8)
        try Self.openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"])
        try Self.openssl([
            "x509", "-req", "-in", csr, "-CA", self.certificate, "-CAkey", self.key, "-CAcreateserial", "-out", certificate, "-days", "2",
            "-extfile", ext,
        ])
    }

    @discardableResult
    static func openssl(_ args: [String]) throws -> String {
        let r = try runCommand("/usr/bin/openssl", args)
        guard r.status == 0 else { throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "openssl \(args.joined(separator: " ")): \(r.stderr)"]) }
        return r.stdout
    }

    /// The SHA-256 fingerprint of a PEM certificate file.
    static func fingerprint(file: String) throws -> String {
        try openssl(["x509", "-noout", "-fingerprint", "-sha256", "-in", file]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The SHA-256 fingerprint of the certificate a new TLS connection to `port` is shown.
    static func servedFingerprint(port: Int) throws -> String {
        let r = try runCommand(
            "/bin/sh", ["-c", "openssl s_client -connect 127.0.0.1:\(port) </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"])
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// The hub serving TLS itself (issue #12): real hub and node processes, a CA made in the test.
@Suite("Hub over TLS", .serialized, .offThePool)
struct HubTLSTests {
    @Test("a node enrols and syncs over the hub's own TLS with --ca-file; a wrong CA is refused; a replaced certificate is served after SIGHUP without a restart")
    func tlsEnrolSyncRefuseAndReload() throws {
        let dir = try TemporaryDirectory("ferry-tls")
        defer { dir.remove() }
        let ca = try TestCA(dir, name: "province")
        let stranger = try TestCA(dir, name: "stranger")
        let cert = dir.file("hub.pem")
        let key = dir.file("hub.key.pem")
        try ca.issue(certificate: cert, key: key)

        let hubDir = dir.file("hub")
        let standard = Repository.path("Tests/Fixtures/test-standard.toml")
        func ferry(_ args: [String], expectFailure: Bool = false) throws -> CommandResult {
            let r = try runCommand(FerryBinary.path, args)
            if r.status != 0 && !expectFailure {
                throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "ferry \(args.joined(separator: " ")): \(r.stderr)"])
            }
            return r
        }
        _ = try ferry(["hub", "init", "--dir", hubDir, "--standard", standard])
        _ = try ferry(["hub", "unit", "add", "--dir", hubDir, "--id", "prov", "--name", "省", "--level", "province"])
        let token = try ferry(["hub", "unit", "add", "--dir", hubDir, "--id", "u-a", "--name", "甲", "--parent", "prov"])
            .stdout.split(separator: "\n").last.map(String.init) ?? ""
        let hub = try ChildProcess(FerryBinary.path, ["hub", "serve", "--dir", hubDir, "--listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key])
        defer { hub.stop() }
        let port = Int(try hub.waitFor("listening on https://127\\.0\\.0\\.1:(\\d+)"))!
        let url = "https://127.0.0.1:\(port)"

        // A CA that did not sign the hub's certificate: refused, nothing enrolled.
        let refused = try ferry(
            ["node", "init", "--dir", dir.file("node-wrong"), "--hub", url, "--token", token, "--ca-file", stranger.certificate, "--lang", "en"],
            expectFailure: true)
        #expect(refused.status != 0 && refused.stderr.contains("certificate"), "\(refused.stderr)")

        let node = dir.file("node-a")
        _ = try ferry(["node", "init", "--dir", node, "--hub", url, "--token", token, "--ca-file", ca.certificate, "--lang", "en"])
        _ = try SQLiteShell.run("\(node)/unit.db", "INSERT INTO member (id, unit_id, name) VALUES ('t1', 'u-a', '加密');")
        _ = try ferry(["sync", "--dir", node, "--ca-file", ca.certificate, "--lang", "en"])
        let arrived = try SQLiteShell.run("\(hubDir)/hub.db", "SELECT name FROM member WHERE id = 't1';")
        #expect(arrived.output.trimmingCharacters(in: .whitespacesAndNewlines) == "加密")
        // Without the CA the system bundle does not trust it.
        let untrusted = try ferry(["sync", "--dir", node, "--lang", "en"], expectFailure: true)
        #expect(untrusted.status != 0)

        // Renewal: new files in place (as certbot or an operator would), SIGHUP, and the next
        // connection is shown the new certificate by the same process.
        let first = try TestCA.fingerprint(file: cert)
        #expect(try TestCA.servedFingerprint(port: port) == first)
        let renewed = dir.file("renewed.pem")
        let renewedKey = dir.file("renewed.key.pem")
        try ca.issue(certificate: renewed, key: renewedKey)
        let second = try TestCA.fingerprint(file: renewed)
        #expect(second != first)
        #expect(rename(renewedKey, key) == 0 && rename(renewed, cert) == 0)
        let pid = hub.process.processIdentifier
        kill(pid, SIGHUP)
        var served = ""
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            served = try TestCA.servedFingerprint(port: port)
            if served == second { break }
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(served == second, "still served \(served)")
        #expect(hub.process.isRunning && hub.process.processIdentifier == pid, "the hub did not restart")
        _ = try SQLiteShell.run("\(node)/unit.db", "INSERT INTO member (id, unit_id, name) VALUES ('t2', 'u-a', '续期');")
        _ = try ferry(["sync", "--dir", node, "--ca-file", ca.certificate, "--lang", "en"])
        #expect(hub.stdout.components(separatedBy: "listening on").count == 2, "one start only")
    }

    @Test("hub.toml's tls keys are validated by name: one without the other, or an unreadable file")
    func tlsConfigIsValidated() throws {
        let dir = try TemporaryDirectory("ferry-tls-config")
        defer { dir.remove() }
        let file = dir.file("hub.toml")
        try "[tls]\ncertificate = \"/nonexistent/hub.pem\"\n".write(toFile: file, atomically: true, encoding: .utf8)
        let onlyCert = try runCommand(FerryBinary.path, ["config", "check", "--role", "hub", file])
        #expect(onlyCert.status != 0 && onlyCert.stderr.contains("tls.key"), "\(onlyCert.stderr)")
        try "[tls]\ncertificate = \"/nonexistent/hub.pem\"\nkey = \"/nonexistent/hub.key\"\n".write(toFile: file, atomically: true, encoding: .utf8)
        let missing = try runCommand(FerryBinary.path, ["config", "check", "--role", "hub", file])
        #expect(missing.status != 0 && missing.stderr.contains("tls.certificate"), "\(missing.stderr)")
    }
}
