import FerryCore
import FerryStore
import FerryTestSupport
import Foundation

let hubID = NodeID(unchecked: "hub")
let unitA = "u-a"
let unitB = "u-b"

/// A unit node and its hub on real SQLite files, with helpers to sync them in-process.
struct Pair {
    let dir: TemporaryDirectory
    let clock = ManualClock()
    let standard: Standard
    let hub: ReplicaStore
    let node: ReplicaStore
    let nodeID = NodeID(unchecked: "node-a1")

    init() throws {
        dir = try TemporaryDirectory()
        standard = try Repository.testStandard()
        hub = try ReplicaStore(
            path: dir.file("hub.db"), standard: standard, identity: .init(node: hubID, role: .hub), clock: clock)
        node = try ReplicaStore(
            path: dir.file("node.db"), standard: standard, identity: .init(node: nodeID, role: .unit(unitA)),
            clock: clock)
    }

    /// Pushes everything the node has to the hub, batch by batch, acknowledging each.
    @discardableResult
    func push(maxBytes: Int = 64 * 1024) throws -> [ApplyReport] {
        var reports: [ApplyReport] = []
        while let cs = try node.extract(for: Peer(id: hubID, direction: .upstream), maxBytes: maxBytes) {
            let wire = try ChangesetCodec.decode(ChangesetCodec.encode(cs))
            reports.append(try hub.apply(wire, sender: .unit(unitA)))
            try node.acknowledge(wire.batch, from: hubID)
        }
        return reports
    }

    @discardableResult
    func pull(maxBytes: Int = 64 * 1024) throws -> [ApplyReport] {
        var reports: [ApplyReport] = []
        while let cs = try hub.extract(for: Peer(id: nodeID, direction: .downstream(unit: unitA)), maxBytes: maxBytes) {
            let wire = try ChangesetCodec.decode(ChangesetCodec.encode(cs))
            reports.append(try node.apply(wire, sender: .trusted))
            try hub.acknowledge(wire.batch, from: nodeID)
        }
        return reports
    }

    func cleanup() {
        try? hub.close()
        try? node.close()
        dir.remove()
    }
}
