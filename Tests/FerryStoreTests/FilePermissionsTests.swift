import FerryCore
import FerryStore
import FerryTestSupport
import FerryTestTraits
import Foundation
import Testing

@Suite("File permissions", .offThePool)
struct FilePermissionsTests {
    func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    func setMode(_ path: String, _ mode: Int) throws {
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
    }

    @Test("a replica's database is created 0600 before SQLite opens it, and its -wal and -shm follow it")
    func replicaFilesArePrivate() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let old = umask(0o022)
        defer { umask(old) }
        let store = try ReplicaStore(
            path: dir.file("unit.db"), standard: try Repository.testStandard(),
            identity: ReplicaIdentity(node: NodeID(unchecked: "u-a-n1"), role: .unit("u-a")), clock: ManualClock())
        try store.execute("INSERT INTO member (id, unit_id, name) VALUES ('m1', 'u-a', '王芳')")
        for name in ["unit.db", "unit.db-wal", "unit.db-shm"] {
            let m = try mode(dir.file(name))
            #expect(m == 0o600, "\(name) is \(String(m, radix: 8))")
        }
        try store.close()
    }

    @Test("a folder the operator opened to a group keeps the group's access and loses the others'; a sticky folder like /tmp is refused")
    func groupSharedFolderKeepsItsGroup() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let shared = dir.file("ferry")
        try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: false)
        try setMode(shared, 0o2775)
        #expect(FileManager.default.createFile(atPath: "\(shared)/unit.db", contents: Data()))
        try setMode("\(shared)/unit.db", 0o664)
        try FilePermissions.ensurePrivateDirectory(shared)
        try FilePermissions.preparePrivateFile("\(shared)/unit.db")
        #expect(try mode(shared) == 0o2770)
        #expect(try mode("\(shared)/unit.db") == 0o660)
        // A new database in it is open to the group too, never to others.
        try FilePermissions.preparePrivateFile("\(shared)/report.db")
        #expect(try mode("\(shared)/report.db") == 0o660)

        let sticky = dir.file("tmp")
        try FileManager.default.createDirectory(atPath: sticky, withIntermediateDirectories: false)
        try setMode(sticky, 0o1777)
        #expect(throws: FilePermissionError.self) { try FilePermissions.ensurePrivateDirectory(sticky) }
        #expect(try mode(sticky) == 0o1777, "a shared folder is left as it is")
    }

    @Test("a private file is written whole and 0600 even under umask 000, replacing the old one atomically")
    func privateFileWrite() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let old = umask(0)
        defer { umask(old) }
        let path = dir.file("node.json")
        try FilePermissions.writePrivateFile(Data("{\"a\":1}".utf8), to: path)
        #expect(try mode(path) == 0o600)
        try setMode(path, 0o644)
        try FilePermissions.writePrivateFile(Data("{\"a\":2}".utf8), to: path)
        #expect(try mode(path) == 0o600)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "{\"a\":2}")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["node.json"], "no temporary file is left")
        try FilePermissions.ensurePrivateDirectory(dir.file("a/b/c"))
        #expect(try mode(dir.file("a/b/c")) == 0o700)
    }
}
