import FerryCore
import FerryHub
import FerryNode
import FerrySample
import FerryStandardFile
import FerryStore
import FerryTestSupport
import FerryTrust
import FerryWire
import Foundation
import GRDB

/// Province scale: N units, each a lightweight client (its own Ed25519 key, libcurl, the
/// real signed protocol) against a real `ferry hub serve` process on loopback.
///
/// Each unit's workload comes from the sample province: its first chunk of records (the
/// branches, member roll and service posts) for the steady pattern, and its first month
/// (meetings, attendance, study, service) for the burst, each extracted from a replica of
/// the unit's own, so the bytes are exactly what its node would send. A unit's session is
/// one push and pulls until up to date, with the acknowledgements; a session refused with
/// 503 waits for Retry-After and tries again.
///
/// Patterns: steady (arrivals spread evenly over a window), then burst (every unit starts
/// within a few seconds, as on a Monday morning after a holiday). Afterwards the hub's
/// content is compared with the union of what the units sent, and the same changesets are
/// applied in-process, one after another, to a fresh hub replica: the single-writer
/// ceiling the concurrent ingest is measured against.
enum ProvinceLoad {
    struct Unit: Sendable {
        var id: String
        var token: String
        var steady: [[UInt8]]
        var burst: [[UInt8]]
        var rows: Int
    }

    struct Session: Sendable {
        /// The successful attempt: push and pulls, with acknowledgements.
        var seconds: Double
        /// From the unit's arrival (first attempt) to synced, waits after 503 included.
        var untilSynced: Double
        var began = Date.distantPast
        var ended = Date.distantPast
        var shed: Int
        var rows: Int
        var pulled: Int
        var failed: String?
    }

    static func run(units count: Int, steadyWindow: Double, burstWindow: Double, maxSessions: Int) async throws {
        let dir = try TemporaryDirectory("ferry-load")
        defer { dir.remove() }
        var clock0 = DispatchTime.now().uptimeNanoseconds
        func lap() -> Double {
            let t = DispatchTime.now().uptimeNanoseconds
            defer { clock0 = t }
            return Double(t - clock0) / 1e9
        }
        // The org tree: a province with as many 22-unit counties as needed.
        let counties = max(1, (count + 21) / 22)
        let province = SampleProvince(shape: ProvinceShape(cities: max(1, (counties + 8) / 9), countiesPerCity: min(9, counties), unitsPerCounty: 22, years: 1))
        let sampleUnits = Array(province.units.prefix(count))
        let hubDir = dir.file("hub")
        var units: [Unit] = []
        do {
            let hub = try Hub(directory: hubDir)
            for o in province.orgUnits where o.level != .unit || sampleUnits.contains(where: { $0.id == o.id }) {
                // The registry only: the org_unit reference rows would make every first pull
                // carry the whole tree, which the bootstrap bench measures on its own.
                try hub.registry.addUnit(o, now: hub.now())
            }
            // Courses only: study records refer to them.
            try hub.store.executeAll(province.hubStatements().filter { $0.sql.hasPrefix("INSERT INTO course") }.map { (sql: $0.sql, arguments: $0.arguments) })
            let courses = try hub.store.extract(for: Peer(id: NodeID(unchecked: "courses"), direction: .downstream(unit: "none")), maxBytes: 64 << 20)
            units = try prepare(sampleUnits.map(\.id), province: province, standard: hub.store.standard, courses: courses, hub: hub)
            try hub.store.close()
        }
        let prepared = lap()
        let totalRows = units.reduce(0) { $0 + $1.rows }

        let server = try ChildProcess(FerryBinary.path, ["hub", "serve", "--dir", hubDir, "--listen", "127.0.0.1:0", "--max-sessions", String(maxSessions)])
        defer { server.stop() }
        let port = try server.waitFor("listening on http://127\\.0\\.0\\.1:(\\d+)")
        let url = "http://127.0.0.1:\(port)"
        let pid = server.process.processIdentifier

        // Enrolment, 16 at a time.
        _ = lap()
        let identities = try concurrentMap(units, width: 16) { u -> NodeIdentity in
            let key = SigningKey()
            var attempt = 0
            while true {
                do throws(SyncFailure) {
                    let a = try HTTPHubConnection.enrol(hubURL: url, token: u.token, key: key, hostname: "load-\(u.id)")
                    return NodeIdentity(
                        hubURL: url, nodeID: a.nodeID, unitID: a.unitID, unitName: a.unitName, hubNodeID: a.hubNodeID, hubPublicKey: a.hubPublicKey,
                        privateKey: key.base64, gzip: true)
                } catch {
                    guard error.isRetryable && attempt < 20 else { throw error }
                    attempt += 1
                    Thread.sleep(forTimeInterval: error.retryAfter ?? 1)
                }
            }
        }
        let enrolSeconds = lap()

        print("Ferry province load: \(units.count) units against one `ferry hub serve` process (max \(maxSessions) sessions at once), loopback, 2 cores shared by hub and clients")
        print("")
        print("setup: workloads prepared in \(f1(prepared)) s (\(totalRows) rows); \(units.count) enrolments in \(f1(enrolSeconds)) s (\(f0(Double(units.count) / enrolSeconds))/s)")
        print("")
        print("| pattern | sessions | shed (503 + Retry-After) | sessions/s | rows/s accepted | session p50 / p95 / p99 | start → synced p50 / p99 / max | hub peak RSS |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        var results: [(String, [Session], Double)] = []
        for (name, window) in [("steady", steadyWindow), ("burst", burstWindow)] {
            let payloads = units.map { name == "steady" ? $0.steady : $0.burst }
            if name == "burst" {
                // The supervisor issued directives to every unit over the weekend: every
                // burst session pulls them.
                let statements = (0..<5).map { i in
                    "INSERT INTO directive (id, target_unit_id, issued_by, issued_on, title, body, due_on, priority) VALUES ('load-d\(i)', NULL, '省委组织部', '2026-12-0\(i + 1)', '关于做好第\(i + 1)项工作的通知', '请各单位按要求落实。', '2026-12-31', 'normal');"
                }
                let r = try runCommand("/usr/bin/env", ["sqlite3", "\(hubDir)/hub.db", statements.joined()])
                precondition(r.status == 0, r.stderr)
            }
            let start = Date().addingTimeInterval(0.5)
            let sessions = try runSessions(identities: identities, payloads: payloads, start: start, window: window)
            // From the first arrival to the last unit synced.
            let wall = (sessions.map(\.ended).max() ?? start).timeIntervalSince(start)
            results.append((name, sessions, wall))
            let ok = sessions.filter { $0.failed == nil }
            let times = ok.map { $0.seconds }.sorted()
            let synced = ok.map { $0.untilSynced }.sorted()
            let rows = ok.reduce(0) { $0 + $1.rows }
            print(
                "| \(name) (arrivals over \(f0(window)) s) | \(ok.count)/\(sessions.count) | \(sessions.reduce(0) { $0 + $1.shed }) | \(f1(Double(ok.count) / wall)) | \(f0(Double(rows) / wall)) | \(ms(pct(times, 0.5))) / \(ms(pct(times, 0.95))) / \(ms(pct(times, 0.99))) | \(f1(pct(synced, 0.5))) / \(f1(pct(synced, 0.99))) / \(f1(synced.last ?? 0)) s | \(peakResidentKiB(of: pid).map { "\($0 / 1024) MiB" } ?? "?") |"
            )
            for s in sessions where s.failed != nil { print("  failed: \(s.failed!)") }
        }
        server.stop()

        // Nothing lost, nothing doubled: the hub holds exactly what was sent.
        let sent = try expectedContents(units: units)
        let held = try hubContents(
            path: "\(hubDir)/hub.db", standard: try StandardFile.load(path: "\(hubDir)/standard.toml"), units: Set(units.map(\.id)), columns: sent.columns)
        let differ = sent.digests.filter { held[$0.key] != $0.value }.map(\.key) + held.keys.filter { sent.digests[$0] == nil }
        let rowsHeld = held.values.reduce(0) { $0 + Int($1[0]) }
        print("")
        print("hub content vs the union of what the units sent: \(sent.digests.count) (unit, table) row counts and digests compared, \(rowsHeld) rows held, \(differ.count) differ\(differ.isEmpty ? "" : ": \(differ.prefix(5))")")

        // The single-writer ceiling: the same changesets applied in-process, in order, no HTTP.
        let ceilingDir = dir.file("ceiling")
        let ceilingHub = try Hub(directory: ceilingDir)
        let all = units.flatMap { u in (u.steady + u.burst).map { (u.id, $0) } }
        let decoded = try all.map { ($0.0, try ChangesetCodec.decode($0.1)) }
        _ = lap()
        for (unit, cs) in decoded { try ceilingHub.store.apply(cs, sender: .unit(unit), quarantine: true) }
        let ceiling = lap()
        let ceilingRate = Double(totalRows) / ceiling
        let burst = results.last!
        let burstOK = burst.1.filter { $0.failed == nil }
        // The burst's ingest rate while the hub was busy: first to last accepted push.
        let busy = burstOK.map(\.ended).max()!.timeIntervalSince(burstOK.map(\.began).min()!)
        let burstRows = burstOK.reduce(0) { $0 + $1.rows }
        print("single-writer ceiling (same \(decoded.count) changesets applied in order in-process): \(f0(ceilingRate)) rows/s; burst ingest over HTTP \(f0(Double(burstRows) / busy)) rows/s = \(String(format: "%.2f", Double(burstRows) / busy / ceilingRate))× the ceiling")
    }

    /// Each unit's changesets for both patterns, from a replica of its own.
    static func prepare(_ ids: [String], province: SampleProvince, standard: Standard, courses: Changeset?, hub: Hub) throws -> [Unit] {
        try concurrentMap(ids, width: 2) { id -> Unit in
            // The id enrolment will give the unit's first node: a batch must name its sender.
            let node = NodeID(unchecked: "\(id)-n1")
            let replica = try ReplicaStore(path: ":memory:", standard: standard, identity: ReplicaIdentity(node: node, role: .unit(id)), clock: SystemClock())
            defer { try? replica.close() }
            if let courses { try replica.apply(courses, sender: .trusted) }
            var chunks: [[SQLStatement]] = []
            province.unitStatements(id) { chunk in if chunks.count < 2 { chunks.append(chunk) } }
            var rows = 0
            func take(_ statements: [SQLStatement]) throws -> [[UInt8]] {
                try replica.executeAll(statements.map { (sql: $0.sql, arguments: $0.arguments) })
                var out: [[UInt8]] = []
                while let cs = try replica.extract(for: Peer(id: NodeID(unchecked: "hub"), direction: .upstream), maxBytes: 256 * 1024) {
                    rows += cs.rowCount
                    out.append(ChangesetCodec.encode(cs))
                    try replica.acknowledge(cs.batch, from: NodeID(unchecked: "hub"))
                }
                return out
            }
            let steady = try take(chunks[0])
            let burst = try take(chunks.count > 1 ? chunks[1] : [])
            return Unit(id: id, token: try hub.issueToken(unitID: id), steady: steady, burst: burst, rows: rows)
        }
    }

    /// One thread per unit, as N separate machines would be; each starts at its arrival time.
    static func runSessions(identities: [NodeIdentity], payloads: [[[UInt8]]], start: Date, window: Double) throws -> [Session] {
        let n = identities.count
        let results = LockedArray<Session?>(repeating: nil, count: n)
        let group = DispatchGroup()
        for i in 0..<n {
            group.enter()
            let arrival = start.addingTimeInterval(window * Double(i) / Double(max(n, 1)))
            let thread = Thread {
                defer { group.leave() }
                Thread.sleep(until: arrival)
                results.set(i, session(identity: identities[i], batches: payloads[i], arrival: arrival))
            }
            thread.stackSize = 512 * 1024
            thread.start()
        }
        group.wait()
        return results.values.map { $0! }
    }

    static func session(identity: NodeIdentity, batches: [[UInt8]], arrival: Date) -> Session {
        var shed = 0
        var last = ""
        for _ in 0..<40 {
            let began = Date()
            do throws(SyncFailure) {
                let hub: HTTPHubConnection
                do { hub = try HTTPHubConnection(identity: identity, clock: SystemClock()) } catch {
                    return Session(seconds: 0, untilSynced: 0, shed: shed, rows: 0, pulled: 0, failed: "\(identity.unitID): \(error)")
                }
                var rows = 0
                var pulled = 0
                var queue = batches[...]
                var ack: PullAcknowledgement?
                var epoch: UInt64 = 0
                var more = true
                // Exchanges as a node makes them: a batch up, the next one down, until neither side has more.
                while !queue.isEmpty || more {
                    let request = ExchangeRequest(
                        maxBytes: 1 << 20, standardVersion: hub.hubStandardVersion ?? "1.0.0", pendingRows: 0,
                        clockMillis: SystemClock().nowMillis() &+ UInt64(bitPattern: hub.clockOffsetMillis), epoch: epoch, pulled: ack)
                    let header = [UInt8]((try? JSONEncoder().encode(request)) ?? Data())
                    let answerBytes = try hub.exchange(ExchangeEnvelope(header: header, changeset: queue.popFirst()).encode())
                    guard let answer = try? ExchangeEnvelope.decode(answerBytes) else {
                        throw SyncFailure(kind: .local, message: "the hub's answer is not an exchange", messageZh: "", isRetryable: false)
                    }
                    guard let reply = try? JSONDecoder().decode(ExchangeResponse.self, from: Data(answer.header)) else {
                        throw SyncFailure(kind: .local, message: "the hub's answer did not decode", messageZh: "", isRetryable: false)
                    }
                    rows += reply.pushed?.rows ?? 0
                    epoch = reply.epoch
                    more = reply.more
                    ack = nil
                    if let bytes = answer.changeset {
                        let cs: Changeset
                        do { cs = try ChangesetCodec.decode(bytes) } catch { throw SyncFailure(kind: .local, message: "\(error)", messageZh: "", isRetryable: false) }
                        pulled += cs.rowCount
                        ack = PullAcknowledgement(cs.batch)
                    }
                }
                let end = Date()
                return Session(
                    seconds: end.timeIntervalSince(began), untilSynced: end.timeIntervalSince(arrival), began: began, ended: end, shed: shed, rows: rows,
                    pulled: pulled)
            } catch {
                last = error.message
                guard error.isRetryable else { break }
                if case .hub(.overloaded) = error.kind { shed += 1 }
                // Re-pushing an acknowledged batch is harmless: applying is idempotent.
                Thread.sleep(forTimeInterval: error.retryAfter ?? 2)
            }
        }
        return Session(seconds: 0, untilSynced: Date().timeIntervalSince(arrival), shed: shed, rows: 0, pulled: 0, failed: "\(identity.unitID): \(last)")
    }

    // MARK: Verification

    /// (unit|table) → (rows, order-independent digest of every row the unit sent, with the
    /// values the hub should hold), and the columns sent per table.
    static func expectedContents(units: [Unit]) throws -> (digests: [String: [UInt64]], columns: [String: Set<String>]) {
        var out: [String: [UInt64]] = [:]
        var columns: [String: Set<String>] = [:]
        for u in units {
            var latest: [String: [String: Value?]] = [:]  // table|key → column → value
            for bytes in u.steady + u.burst {
                let cs = try ChangesetCodec.decode(bytes)
                for t in cs.tables {
                    for r in t.rows {
                        let k = "\(t.name)|\(r.key.map(\.description).joined(separator: ","))"
                        for c in r.cells {
                            latest[k, default: [:]][c.column] = c.value
                            columns[t.name, default: []].insert(c.column)
                        }
                    }
                }
            }
            for (k, cells) in latest {
                let table = String(k.split(separator: "|")[0])
                let d = fnv("\(k)|" + cells.keys.sorted().map { "\($0)=\(cells[$0]!.map(\.description) ?? "∅")" }.joined(separator: ";"))
                var e = out["\(u.id)|\(table)"] ?? [0, 0]
                e[0] += 1
                e[1] &+= d
                out["\(u.id)|\(table)"] = e
            }
        }
        return (out, columns)
    }

    static func hubContents(path: String, standard: Standard, units: Set<String>, columns: [String: Set<String>]) throws -> [String: [UInt64]] {
        let db = try DatabaseQueue(path: path)
        defer { try? db.close() }
        var out: [String: [UInt64]] = [:]
        try db.read { db in
            for (name, sent) in columns.sorted(by: { $0.key < $1.key }) {
                let t = standard.table(named: name)!
                let cols = sent.sorted()
                let read = Array(Set(cols + t.primaryKey + [t.scopeColumn!]))
                for r in try Row.fetchAll(db, sql: "SELECT \(read.map { "\"\($0)\"" }.joined(separator: ", ")) FROM \"\(name)\"") {
                    guard let unit = r[t.scopeColumn!] as String?, units.contains(unit) else { continue }
                    let key = t.primaryKey.map { Value(r[$0] as DatabaseValue).description }.joined(separator: ",")
                    let cells = cols.map { "\($0)=\(Value(r[$0] as DatabaseValue).description)" }
                    var e = out["\(unit)|\(name)"] ?? [0, 0]
                    e[0] += 1
                    e[1] &+= fnv("\(name)|\(key)|" + cells.joined(separator: ";"))
                    out["\(unit)|\(name)"] = e
                }
            }
        }
        return out
    }

    static func fnv(_ s: String) -> UInt64 {
        var h = FNV1a()
        h.add(s)
        return h.value
    }

    // MARK: Helpers

    static func concurrentMap<T, R: Sendable>(_ items: [T], width: Int, _ body: @escaping @Sendable (T) throws -> R) throws -> [R] where T: Sendable {
        let out = LockedArray<Result<R, any Error>?>(repeating: nil, count: items.count)
        let next = LockedArray<Int>(repeating: 0, count: 1)
        let group = DispatchGroup()
        for _ in 0..<width {
            group.enter()
            Thread {
                defer { group.leave() }
                while true {
                    let i = next.increment(0)
                    guard i < items.count else { return }
                    out.set(i, Result { try body(items[i]) })
                }
            }.start()
        }
        group.wait()
        return try out.values.map { try $0!.get() }
    }

    static func pct(_ sorted: [Double], _ p: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
    }
    static func f0(_ v: Double) -> String { String(format: "%.0f", v) }
    static func f1(_ v: Double) -> String { String(format: "%.1f", v) }
    static func ms(_ v: Double) -> String { String(format: "%.0f ms", v * 1000) }
}

final class LockedArray<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [T]
    init(repeating v: T, count: Int) { items = Array(repeating: v, count: count) }
    func set(_ i: Int, _ v: T) { lock.lock(); items[i] = v; lock.unlock() }
    var values: [T] { lock.lock(); defer { lock.unlock() }; return items }
}

extension LockedArray where T == Int {
    /// Returns the value at `i`, then adds one.
    func increment(_ i: Int) -> Int { lock.lock(); defer { lock.unlock() }; let v = items[i]; items[i] += 1; return v }
}
