import FerryTestSupport
import FerryTestTraits
import Foundation
import Testing

/// Keys, password hashes and personal data stay readable by the user running Ferry only,
/// as the README runs it (outside systemd, with the usual umask 022).
@Suite("Private files", .serialized, .offThePool)
struct PrivateFilesTests {
    /// `ferry ARGS` under umask 022, the common login shell default.
    static let umask022 = ["-c", "umask 022 && exec \"$0\" \"$@\"", FerryBinary.path]

    func ferry(_ args: [String], input: String? = nil) throws -> CommandResult {
        let r = try runCommand("/bin/sh", Self.umask022 + args, input: input)
        #expect(r.status == 0, "ferry \(args.joined(separator: " ")): \(r.stderr)")
        return r
    }

    static func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    /// Every file and folder under `root`, with its mode.
    static func modes(under root: String) throws -> [(path: String, mode: Int, isFolder: Bool)] {
        var out = [(root, try mode(root), true)]
        for name in try FileManager.default.subpathsOfDirectory(atPath: root).sorted() {
            var isFolder: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: "\(root)/\(name)", isDirectory: &isFolder)
            out.append(("\(root)/\(name)", try mode("\(root)/\(name)"), isFolder.boolValue))
        }
        return out
    }

    /// Files whose content is secret: databases with their companions, keys, the node's identity.
    static func holdsSecrets(_ path: String) -> Bool {
        let name = (path as NSString).lastPathComponent
        return name.contains(".db") || name.hasSuffix(".key") || name == "node.json"
    }

    /// What a running daemon leaves beside its data, no secret but no one else's business
    /// either: the hub's address and settings (serving.json), the node daemon's lock.
    static func isStateFile(_ path: String) -> Bool {
        ["serving.json", "daemon.lock"].contains((path as NSString).lastPathComponent)
    }

    /// Checks the rule on a hub's or node's folder: the folder 0700, every secret file 0600,
    /// nothing anywhere open to others (the standard files are public by nature — the hub
    /// serves them to every node — and sit inside the private folder).
    static func expectPrivate(_ root: String, mustHold: [String]) throws {
        let all = try modes(under: root)
        #expect(all[0].mode == 0o700, "\(root) is \(String(all[0].mode, radix: 8))")
        for f in all where holdsSecrets(f.path) || isStateFile(f.path) {
            #expect(f.mode == 0o600, "\(f.path) is \(String(f.mode, radix: 8))")
        }
        for f in all {
            #expect(f.mode & 0o022 == 0, "\(f.path) is writable by others: \(String(f.mode, radix: 8))")
            #expect(f.isFolder || holdsSecrets(f.path) || isStateFile(f.path) || f.path.hasSuffix(".toml"), "unexpected file \(f.path)")
        }
        let names = Set(all.map { ($0.path as NSString).lastPathComponent })
        for name in mustHold { #expect(names.contains(name), "\(root) lacks \(name); present: \(names.sorted())") }
    }

    @Test("a hub and a node run under umask 022 create every folder 0700 and every database, -wal, -shm, key and identity file 0600")
    func newFilesArePrivate() throws {
        let dir = try TemporaryDirectory("ferry-private")
        defer { dir.remove() }
        let hubDir = dir.file("hub")
        let nodeDir = dir.file("node")
        _ = try ferry(["hub", "init", "--dir", hubDir, "--standard", Repository.path("Tests/Fixtures/test-standard.toml")])
        let hub = try ChildProcess("/bin/sh", Self.umask022 + ["hub", "serve", "--dir", hubDir, "--listen", "127.0.0.1:0"])
        defer { hub.stop() }
        let url = "http://127.0.0.1:\(try hub.waitFor("listening on http://127\\.0\\.0\\.1:(\\d+)"))"
        _ = try ferry(["hub", "unit", "add", "--dir", hubDir, "--id", "prov", "--name", "省", "--level", "province"])
        let token = try ferry(["hub", "unit", "add", "--dir", hubDir, "--id", "u-a", "--name", "甲", "--parent", "prov", "--industry", "medical"])
            .stdout.split(separator: "\n").last.map(String.init) ?? ""
        _ = try ferry(["hub", "admin", "add", "--dir", hubDir, "--name", "analyst"], input: "a long enough password\n")
        _ = try ferry(["node", "init", "--dir", nodeDir, "--hub", url, "--token", token, "--lang", "en"])
        _ = try ferry(["record", "add", "--dir", nodeDir, "member", "id=m1", "unit_id=u-a", "name=王芳", "id_card=440101198003120011"])
        _ = try ferry(["sync", "--dir", nodeDir, "--lang", "en"])
        // The node's daemon keeps unit.db open, so its -wal and -shm exist while we look.
        let node = try ChildProcess("/bin/sh", Self.umask022 + ["node", "run", "--dir", nodeDir, "--interval", "3600"])
        defer { node.stop() }
        let deadline = Date().addingTimeInterval(20)
        while !FileManager.default.fileExists(atPath: "\(nodeDir)/unit.db-shm") && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }

        try Self.expectPrivate(
            hubDir,
            mustHold: ["hub.key", "hub.db", "hub.db-wal", "hub.db-shm", "registry.db", "registry.db-wal", "registry.db-shm", "report.db"])
        try Self.expectPrivate(nodeDir, mustHold: ["node.json", "unit.db", "unit.db-wal", "unit.db-shm"])
        #expect(!FileManager.default.fileExists(atPath: "\(nodeDir)/enrol.key"), "the enrolment key is gone once node.json holds it")
    }

    @Test("files and folders an older release left open to others are tightened when opened, with a warning naming each")
    func olderFilesAreTightened() throws {
        let dir = try TemporaryDirectory("ferry-private-old")
        defer { dir.remove() }
        let release1 = Repository.path("Tests/Fixtures/release-1")
        for name in ["hub", "node-hosp"] { try FileManager.default.copyItem(atPath: "\(release1)/\(name)", toPath: dir.file(name)) }
        // As release 1 left them under umask 022.
        for root in [dir.file("hub"), dir.file("node-hosp")] {
            for f in try Self.modes(under: root) { try FileManager.default.setAttributes([.posixPermissions: f.isFolder ? 0o755 : 0o644], ofItemAtPath: f.path) }
        }
        let nodes = try ferry(["hub", "nodes", "--dir", dir.file("hub")])
        let report = try ferry(["report", "--dir", dir.file("hub"), "--view", "freshness", "--lang", "en"])
        let status = try ferry(["status", "--dir", dir.file("node-hosp"), "--lang", "en"])
        try Self.expectPrivate(dir.file("hub"), mustHold: ["hub.key", "hub.db", "registry.db", "report.db"])
        try Self.expectPrivate(dir.file("node-hosp"), mustHold: ["node.json", "unit.db"])
        let warnings = nodes.stderr + report.stderr + status.stderr
        for name in ["hub", "hub/hub.key", "hub/hub.db", "hub/registry.db", "hub/report.db", "node-hosp", "node-hosp/node.json", "node-hosp/unit.db"] {
            #expect(warnings.contains("tightened permissions") && warnings.contains("path=\(dir.file(name))"), "no warning for \(name): \(warnings)")
        }
        // Once tight, opening again warns no more.
        let quiet = try ferry(["hub", "nodes", "--dir", dir.file("hub")])
        #expect(!quiet.stderr.contains("tightened"), "\(quiet.stderr)")
    }
}
