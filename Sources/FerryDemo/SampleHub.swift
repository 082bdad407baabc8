import FerryCore
import FerryHub
import FerrySample
import FerryStore
import FerryTrust
import Foundation

/// A hub directory holding a sample province as if its units had been syncing for years:
/// for trying the dashboard and `ferry report` without a province of real nodes, and for
/// the dashboard's browser test and the roll-up benchmark.
///
/// The records come from `FerrySample` (seeded, deterministic). Each unit's records are
/// written into a replica of its own (in memory, with the reference data it would have
/// pulled) and reach the hub the way a node's do: extracted in batches, masked, validated
/// and applied as that unit's changesets. Each unit gets one node
/// record whose last sync is recent, except every `silentEvery`-th unit, which has been
/// silent for 8–27 days, and the one after it, which never enrolled.
public enum SampleHub {
    public struct Summary: Sendable {
        public var units: Int
        public var statements: Int
        public var silentUnits: [String]
        public var notEnrolled: [String]
    }

    public static func build(
        directory: String, shape: ProvinceShape, silentEvery: Int = 12, now: UInt64, progress: (String) -> Void = { _ in }
    ) throws -> Summary {
        // A new or empty folder only: a sample must not land in a supervisor's real hub.
        let hub = try Hub.create(directory: directory)
        defer { try? hub.store.close() }
        let province = SampleProvince(shape: shape)
        for o in province.orgUnits {
            try hub.registry.addUnit(o, now: now)
        }
        var statements = 0
        try hub.store.executeAll(province.hubStatements().map { (sql: $0.sql, arguments: $0.arguments) })
        var silent: [String] = []
        var absent: [String] = []
        for (i, u) in province.units.enumerated() {
            statements += try sync(unit: u.id, province: province, hub: hub, decisions: i % silentEvery == 3 && i < silentEvery * 3)
            let day: UInt64 = 86_400_000
            let lastSync: UInt64?
            switch i % silentEvery {
            case silentEvery - 2:
                lastSync = now - (8 + UInt64(i * 7 % 20)) * day
                silent.append(u.id)
            case silentEvery - 1:
                lastSync = nil
                absent.append(u.id)
            default:
                lastSync = now - UInt64(i * 7919 % 36) * 3_600_000
            }
            if let lastSync {
                try hub.registry.importNode(
                    unitID: u.id, publicKey: Array(Data(base64Encoded: SigningKey().publicKeyBase64)!), hostname: "sample-\(u.id)",
                    enrolledAt: lastSync - 400 * day, lastSyncAt: lastSync, standardVersion: hub.store.standard.version.description,
                    pendingRows: i % 5 == 0 ? i % 40 : 0, clockSkewMillis: Int64(i % 7) * 1_300 - 3_000)
            }
            if (i + 1) % 10 == 0 { progress("\(i + 1)/\(province.units.count) units, \(statements) statements") }
        }
        try hub.store.stampPendingChanges()
        return Summary(units: province.units.count, statements: statements, silentUnits: silent, notEnrolled: absent)
    }

    /// Writes one unit's history into a replica of its own and pushes it to the hub. With
    /// `decisions`, the unit also leaves the supervisor something to decide, the way it
    /// happens in the field: a member's position corrected at the hub while the clerk
    /// changed it too (a conflict the hub's edit won), and a status the standard does not
    /// allow, as from a node on an unpublished standard (a quarantined value).
    public static func sync(unit: String, province: SampleProvince, hub: Hub, decisions: Bool = false) throws -> Int {
        let node = try NodeID("sample-\(unit)")
        let replica = try ReplicaStore(
            path: ":memory:", standard: hub.store.standard, identity: ReplicaIdentity(node: node, role: .unit(unit)), clock: SystemClock())
        defer { try? replica.close() }
        while let cs = try hub.store.extract(for: Peer(id: node, direction: .downstream(unit: unit)), maxBytes: 1 << 20) {
            try replica.apply(cs, sender: .trusted, from: hub.nodeID)
            try hub.store.acknowledge(cs.batch, from: node)
        }
        var count = 0
        var members: [Value] = []
        try province.unitStatements(unit) { chunk in
            try replica.executeAll(chunk.map { (sql: $0.sql, arguments: $0.arguments) })
            count += chunk.count
            if members.count < 2 { members += chunk.filter { $0.sql.hasPrefix("INSERT INTO member ") }.prefix(2 - members.count).compactMap(\.arguments.first) }
        }
        let hubID = hub.nodeID
        func push(tamper: (inout Changeset) -> Void = { _ in }) throws {
            while var cs = try replica.extract(for: Peer(id: hubID, direction: .upstream), maxBytes: 1 << 20) {
                tamper(&cs)
                try hub.store.apply(cs, sender: .unit(unit), quarantine: true)
                try replica.acknowledge(cs.batch, from: hubID)
            }
        }
        try push()
        guard decisions, members.count == 2 else { return count }
        try hub.store.execute("UPDATE member SET position = '党支部书记' WHERE id = ?", [members[0]])
        try replica.execute("UPDATE member SET position = '组织委员' WHERE id = ?", [members[0]])
        try push()
        try replica.execute("UPDATE member SET status = 'probationary' WHERE id = ?", [members[1]])
        try push { cs in
            for t in cs.tables.indices where cs.tables[t].name == "member" {
                for r in cs.tables[t].rows.indices {
                    cs.tables[t].rows[r].cells = cs.tables[t].rows[r].cells.map {
                        $0.column == "status" ? CellChange(column: "status", value: .text("retired"), version: $0.version) : $0
                    }
                }
            }
        }
        return count + 3
    }

    /// The day after `date` (`YYYY-MM-DD`), for the first day of changes after a sample's history.
    public static func dayAfter(_ date: String) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd"
        guard let d = f.date(from: date) else { return date }
        return f.string(from: d.addingTimeInterval(86_400))
    }
}
