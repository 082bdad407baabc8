import FerryCore
import FerryHub
import FerryHubServer
import FerryNode
import FerrySample
import FerryStandardFile
import FerryStore
import FerryTestSupport
import FerryTrust
import FerryWire
import Foundation
import Hummingbird

/// A hub serving HTTP on a loopback port in this process, with one enrolled unit node whose
/// replica lives in `directory`: the setup every end-to-end bench starts from.
struct BenchHub {
    let hub: Hub
    let url: String
    let port: Int
    let identity: NodeIdentity
    let store: ReplicaStore
    let clock = SystemClock()
    let serving: Task<Void, any Error>

    static func start(directory: TemporaryDirectory, standard: String, unit: OrgUnit, hubStatements: [(String, [Value])] = []) async throws -> BenchHub {
        let hub = try Hub(directory: directory.file("hub"), standard: standard)
        if !hubStatements.isEmpty { try hub.store.executeAll(hubStatements.map { (sql: $0.0, arguments: $0.1) }) }
        _ = try hub.addUnit(OrgUnit(id: "prov", name: "省", parentID: nil, level: .province, industry: nil, region: nil))
        let token = try hub.addUnit(unit)
        let portBox = PortBox()
        let app = try HubServer(hub: hub, host: "127.0.0.1", port: 0).application { portBox.set($0) }
        let serving = Task { try await app.runService() }
        while portBox.get() == 0 { try await Task.sleep(for: .milliseconds(20)) }
        let url = "http://127.0.0.1:\(portBox.get())"
        let key = SigningKey()
        let answer = try HTTPHubConnection.enrol(hubURL: url, token: token, key: key, hostname: "bench")
        let identity = NodeIdentity(
            hubURL: url, nodeID: answer.nodeID, unitID: answer.unitID, unitName: answer.unitName, hubNodeID: answer.hubNodeID,
            hubPublicKey: answer.hubPublicKey, privateKey: key.base64, gzip: true)
        let store = try ReplicaStore(
            path: directory.file("unit.db"), standard: hub.store.standard,
            identity: ReplicaIdentity(node: try NodeID(answer.nodeID), role: .unit(unit.id)), clock: SystemClock())
        return BenchHub(hub: hub, url: url, port: portBox.get(), identity: identity, store: store, serving: serving)
    }

    /// A hub of the built-in standard holding the sample province's hub data, with the
    /// reference unit (a 300-member county hospital) enrolled: the day, anti-entropy and
    /// cuts benches start from it.
    static func referenceUnit(directory: TemporaryDirectory) async throws -> (bench: BenchHub, province: SampleProvince, unit: String) {
        let province = SampleProvince.reference()
        let unit = province.referenceUnit()
        let bench = try await start(
            directory: directory, standard: try StandardFile.builtInText(),
            unit: OrgUnit(id: unit.id, name: unit.name, parentID: "prov", level: .unit, industry: unit.industry, region: unit.region),
            hubStatements: province.hubStatements().map { ($0.sql, $0.arguments) })
        return (bench, province, unit.id)
    }

    func stop() async {
        serving.cancel()
        _ = await serving.result
    }
}

final class PortBox: @unchecked Sendable {
    private let lock = NSLock()
    private var port = 0
    func set(_ p: Int) { lock.lock(); port = p; lock.unlock() }
    func get() -> Int { lock.lock(); defer { lock.unlock() }; return port }
}
