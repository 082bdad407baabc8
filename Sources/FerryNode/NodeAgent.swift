import FerryCore
import FerryStore
import FerryWire
import Foundation
import Logging
import Metrics
import Synchronization

/// What one sync did.
public struct SyncReport: Sendable, Equatable {
    public var exchanges = 0
    public var pushedBatches = 0
    public var pushedRows = 0
    public var pushedBytes = 0
    public var pulledBatches = 0
    public var pulledRows = 0
    public var pulledBytes = 0
    public var conflicts = 0
    /// Rows the hub holds back for this unit (quarantined), as it said at the end.
    public var heldByHub = 0
    /// Conflicts on this node's list that a supervisor settled at the hub, closed here.
    public var settledAtHub = 0
    /// Anti-entropy: rounds of questions, and rows found held differently (repaired).
    public var reconcileRounds = 0
    public var repairedRows = 0
    /// The hub found that this database went back in time (restored from an older copy).
    public var rollbackDetected = false
    public var seconds = 0.0
    public init() {}
}

/// Progress of a running sync, for `ferry sync`'s display.
public enum SyncProgress: Sendable {
    case pushed(batch: Int, rows: Int, bytes: Int)
    case pulled(batch: Int, rows: Int, bytes: Int)
    case compared(equal: Bool)
    case repaired(rows: Int)
}

/// A unit's node: exchanges its replica's changes with the hub.
///
/// One sync is a run of exchanges (`POST /v1/exchange`): each sends the node's next batch,
/// acknowledges the batch pulled before, and brings back the hub's acknowledgement and the
/// next batch for the node. A small sync is one round trip; the last pulled batch is
/// acknowledged with the next sync's first exchange. When both sides are up to date the
/// node compares its digest with the hub's, and if they differ runs anti-entropy and
/// repairs every difference before it finishes. A cut link costs the batch in flight:
/// the next exchange resumes from the last acknowledgement.
public final class NodeAgent: Sendable {
    public let store: ReplicaStore
    public let hub: any HubConnection
    public let identity: NodeIdentity
    public let batchBytes: Int
    let clock: any WallClock
    let logger: Logger
    let metrics = NodeMetrics()
    /// Whether this agent has heard from the hub since it was made: until then it pushes
    /// nothing, so that nothing is stamped before the hub could say the database was
    /// restored from an older copy (see `ExchangeResponse.clockFloor`).
    private let heardFromHub = Mutex(false)
    /// The batch size used on this link now: halved (down to `minimumBatchBytes`) after a
    /// transfer failed, grown back by half after each exchange that moved a batch, up to
    /// `batchBytes`. On a link that cuts every few kilobytes a batch that never fits is
    /// otherwise sent again and again whole.
    private let linkBatch: Mutex<Int>
    /// The exchange whose transfer failed, kept so that the next attempt sends the very same
    /// bytes: then the connection can resume its upload where the cut left it instead of
    /// sending a new batch from its first byte (`HTTPHubConnection.sendResumable`).
    private let unsent = Mutex<UnsentExchange?>(nil)
    struct UnsentExchange: Sendable {
        var batch: Changeset
        var changeset: [UInt8]
        var envelope: [UInt8]
        var pulled: PullAcknowledgement?
    }
    public static let minimumBatchBytes = 4 * 1024

    public init(
        store: ReplicaStore, hub: any HubConnection, identity: NodeIdentity, clock: any WallClock,
        batchBytes: Int = 64 * 1024, logger: Logger = Logger(label: "ferry.node")
    ) {
        self.store = store
        self.hub = hub
        self.identity = identity
        self.clock = clock
        self.batchBytes = batchBytes
        self.linkBatch = Mutex(batchBytes)
        self.logger = logger
    }

    /// The batch size the next exchange asks for and sends (see `linkBatch`).
    public var currentBatchBytes: Int { linkBatch.withLock { $0 } }

    var hubPeer: Peer { Peer(id: NodeID(unchecked: identity.hubNodeID), direction: .upstream) }

    /// Runs one sync with the hub. On failure the error says whether to retry; what was
    /// acknowledged before it stays acknowledged.
    ///
    /// `shouldStop` is asked between exchanges: when it says true (a shutdown began) the
    /// sync ends after the exchange in flight, which is acknowledged or rolled back whole.
    public func syncOnce(progress: (SyncProgress) -> Void = { _ in }, shouldStop: () -> Bool = { false }) throws(SyncFailure) -> SyncReport {
        let started = clock.nowMillis()
        var report = SyncReport()
        // A shutdown ended the sync between exchanges, before both sides were up to date.
        var interrupted = false
        // What `ferry status` shows while this runs: rows sent and left, the last progress.
        note([
            "last_attempt_at": .integer(Int64(started)), "sync_running_since": .integer(Int64(started)),
            "sync_progress_at": .integer(Int64(started)), "sync_rows_sent": .integer(0), "sync_rows_left": .null,
            "sync_rows_received": .integer(0),
        ])
        defer { note(["sync_running_since": .null]) }
        var pendingAtRequest: Int?
        do throws(SyncFailure) {
            var pulled = pendingAcknowledgement()
            var resend: [RowRef] = []
            var repair: [RowRef] = []
            var compared = false
            var scrubbed = false
            var completed = false
            defer { if !completed { interrupted = true } }
            while !shouldStop() {
                let batch: Changeset?
                let pushedBytes: [UInt8]?
                let envelope: [UInt8]
                let retry = unsent.withLock { u -> UnsentExchange? in
                    defer { u = nil }
                    return u
                }
                if let retry, heardFromHub.withLock({ $0 }), retry.pulled == pulled, resend.isEmpty, repair.isEmpty {
                    // The same bytes as the attempt that was cut, so its upload resumes.
                    batch = retry.batch
                    pushedBytes = retry.changeset
                    envelope = retry.envelope
                } else {
                    if heardFromHub.withLock({ $0 }) {
                        do { batch = try store.extract(for: hubPeer, maxBytes: currentBatchBytes) } catch { throw local("reading local changes failed", error) }
                    } else {
                        batch = nil
                    }
                    let pending = (try? store.pendingRows(for: hubPeer)) ?? 0
                    pendingAtRequest = pending
                    metrics.pendingRows.record(pending)
                    let request = ExchangeRequest(
                        maxBytes: currentBatchBytes, standardVersion: store.standard.version.description, pendingRows: pending,
                        clockMillis: clock.nowMillis(), epoch: epoch(), pulled: pulled, resend: resend, repair: repair,
                        settledSince: settledSince())
                    let header = (try? JSONEncoder().encode(request)).map { [UInt8]($0) } ?? []
                    pushedBytes = batch.map(ChangesetCodec.encode)
                    envelope = ExchangeEnvelope(header: header, changeset: pushedBytes).encode()
                }
                let answerBytes: [UInt8]
                do { answerBytes = try hub.exchange(envelope) } catch {
                    if error.kind == .transport, let batch, let pushedBytes {
                        unsent.withLock { $0 = UnsentExchange(batch: batch, changeset: pushedBytes, envelope: envelope, pulled: pulled) }
                    }
                    throw error
                }
                report.exchanges += 1
                let (answer, incoming) = try decodeAnswer(answerBytes)
                if batch != nil || incoming != nil {
                    let full = batchBytes
                    linkBatch.withLock { $0 = min(full, max($0, $0 + $0 / 2)) }
                }
                let firstContact = !heardFromHub.withLock { $0 }
                // The hub has what this request carried.
                resend = []
                repair = []
                pulled = nil
                saveAcknowledgement(nil)
                try recordAnswer(answer)
                heardFromHub.withLock { $0 = true }
                if let cs = batch, let bytes = pushedBytes {
                    guard let ack = answer.pushed, ack.sequence == cs.batch.sequence, ack.through == cs.batch.through else {
                        throw SyncFailure(
                            kind: .hub(.malformed), message: "the hub acknowledged another batch than the one sent",
                            messageZh: "上级确认的批次与发送的不符", isRetryable: true)
                    }
                    do {
                        try store.acknowledge(cs.batch, from: hubPeer.id)
                        try store.sendWhole(ack.resend, to: hubPeer.id)
                    } catch { throw local("recording the hub's acknowledgement failed", error) }
                    report.pushedBatches += 1
                    report.pushedRows += cs.rowCount
                    report.pushedBytes += bytes.count
                    metrics.batchesUp.increment()
                    metrics.rowsUp.increment(by: cs.rowCount)
                    metrics.bytesUp.increment(by: bytes.count)
                    progress(.pushed(batch: report.pushedBatches, rows: cs.rowCount, bytes: bytes.count))
                }
                if answer.clockFloor != nil { report.rollbackDetected = true }
                if let bytes = incoming {
                    let cs: Changeset
                    do { cs = try ChangesetCodec.decode(bytes) } catch {
                        throw SyncFailure(
                            kind: .transport, message: "a batch from the hub did not decode: \(error.message)", messageZh: "从上级收到的数据无法解析，将重新获取",
                            isRetryable: true)
                    }
                    let applied: ApplyReport
                    // A value this node's (older) standard does not allow is quarantined, not fatal: the
                    // hub sends everything again once the node has moved to the newer standard.
                    do {
                        applied = try store.apply(
                            cs, sender: .trusted, quarantine: true, from: hubPeer.id, authorship: .hub(hubPeer.id))
                    } catch { throw local("applying the hub's batch failed", error) }
                    pulled = PullAcknowledgement(cs.batch)
                    saveAcknowledgement(pulled)
                    resend = applied.resendWhole
                    report.pulledBatches += 1
                    report.pulledRows += cs.rowCount
                    report.pulledBytes += bytes.count
                    report.conflicts += applied.conflictsLogged
                    metrics.batchesDown.increment()
                    metrics.rowsDown.increment(by: cs.rowCount)
                    metrics.bytesDown.increment(by: bytes.count)
                    metrics.conflicts.increment(by: applied.conflictsLogged)
                    progress(.pulled(batch: report.pulledBatches, rows: cs.rowCount, bytes: bytes.count))
                }
                report.heldByHub = answer.heldTotal
                try recordSettled(answer, report: &report)
                note([
                    "sync_progress_at": .integer(Int64(clock.nowMillis())), "sync_rows_sent": .integer(Int64(report.pushedRows)),
                    "sync_rows_left": pendingAtRequest.map { .integer(Int64(max(0, $0 - (batch?.rowCount ?? 0)))) } ?? .null,
                    "sync_rows_received": .integer(Int64(report.pulledRows)),
                ])
                let morePush = batch.map { !$0.batch.isFinal } ?? false
                if answer.more || morePush || !resend.isEmpty || firstContact { continue }
                if batch != nil || ((try? store.pendingRows(for: hubPeer)) ?? 0) > 0 { continue }
                // A write past the guards added a row no digest shows: scrub first (it removes
                // the row, or captures it), then exchange what that changed.
                if !scrubbed, store.scrubDue {
                    scrubbed = true
                    do { _ = try store.scrub() } catch { throw local("looking for writes made past Ferry's guards failed", error) }
                    continue
                }
                // Both sides are up to date: compare what they hold, once per sync.
                guard !compared, let theirs = answer.digest.flatMap({ UInt64($0, radix: 16) }) else {
                    completed = true
                    break
                }
                compared = true
                let held = (try? store.held().filter { $0.kind != .local }.map { RowRef(table: $0.table, key: $0.key) }) ?? []
                let mine: UInt64
                do { mine = try store.digestRoot(unit: nil, excluding: held) } catch { throw local("computing this node's digest failed", error) }
                progress(.compared(equal: mine == theirs))
                note(["last_compared_at": .integer(Int64(clock.nowMillis())), "last_compare_equal": .integer(mine == theirs ? 1 : 0)])
                if mine == theirs {
                    completed = true
                    break
                }
                let found = try reconcile(excluding: held, report: &report)
                repair = found.fetch
                report.repairedRows += found.rows
                progress(.repaired(rows: found.rows))
                if repair.isEmpty && found.pushed == 0 {
                    completed = true
                    break
                }
                compared = false  // one more comparison after the repair, to be sure
                if report.reconcileRounds > 64 {
                    completed = true
                    break
                }
            }
        } catch {
            var error = error
            error.progressed = report.pushedBatches + report.pulledBatches + report.repairedRows > 0
            error.partial = report
            if error.kind == .transport {
                let floor = min(batchBytes, Self.minimumBatchBytes)
                linkBatch.withLock { $0 = max(floor, $0 / 2) }
            }
            note(["last_error": .text(error.message), "last_error_zh": .text(error.messageZh), "last_error_kind": .text(Self.kindText(error))])
            logger.warning(
                "sync failed",
                metadata: ["error": "\(error.message)", "retryable": "\(error.isRetryable)", "exchanges": "\(report.exchanges)", "rows_up": "\(report.pushedRows)"])
            metrics.syncFailed.increment()
            metrics.error(error.kind)
            if let pending = try? store.pendingRows(for: hubPeer) { metrics.pendingRows.record(pending) }
            throw error
        }
        let finished = clock.nowMillis()
        report.seconds = Double(finished - started) / 1000
        if let pending = try? store.pendingRows(for: hubPeer) { metrics.pendingRows.record(pending) }
        if interrupted {
            // Not a completed sync: nothing is recorded as synced, and the log says so.
            logger.notice(
                "sync interrupted by shutdown",
                metadata: ["exchanges": "\(report.exchanges)", "pushed_rows": "\(report.pushedRows)", "pulled_rows": "\(report.pulledRows)"])
            return report
        }
        metrics.syncOK.increment()
        metrics.lastSuccess.record(Double(finished) / 1000)
        var state: [String: Value] = [
            "last_sync_ok_at": .integer(Int64(finished)), "last_error": .null, "last_error_zh": .null, "last_error_kind": .null,
            "last_received_rows": .integer(Int64(report.pulledRows)), "last_sent_rows": .integer(Int64(report.pushedRows)),
            "hub_clock_offset_ms": .integer(hub.clockOffsetMillis), "held_by_hub": .integer(Int64(report.heldByHub)),
        ]
        if report.repairedRows > 0 {
            state["last_repair_at"] = .integer(Int64(finished))
            state["last_repair_rows"] = .integer(Int64(report.repairedRows))
        }
        if report.rollbackDetected { state["last_rollback_at"] = .integer(Int64(finished)) }
        note(state)
        logger.info(
            "sync done",
            metadata: [
                "exchanges": "\(report.exchanges)", "pushed_rows": "\(report.pushedRows)", "pulled_rows": "\(report.pulledRows)",
                "bytes_up": "\(report.pushedBytes)", "bytes_down": "\(report.pulledBytes)", "held": "\(report.heldByHub)",
                "repaired_rows": "\(report.repairedRows)",
            ])
        return report
    }

    /// Anti-entropy: finds every row this node and the hub hold differently, queues this
    /// node's side of each to be sent whole, forgets hub rows the hub no longer has for it,
    /// and returns the rows to ask the hub for.
    func reconcile(excluding held: [RowRef], report: inout SyncReport) throws(SyncFailure) -> (fetch: [RowRef], pushed: Int, rows: Int) {
        var walk = Reconciliation(tables: store.syncedTableNames)
        while !walk.pending.isEmpty {
            guard walk.rounds < 24 else { break }
            // This node's digest of each range goes with the question, so the hub answers the
            // ranges both hold the same with their digest alone.
            let own: [DigestRange: DigestSum]
            do { own = try store.rangeDigests(unit: nil, ranges: walk.pending, excluding: held) } catch {
                throw local("computing this node's digests failed", error)
            }
            let answer = try hub.reconcile(
                ReconcileRequest(standardVersion: store.standard.version.description, ranges: walk.pending.map { WireRange($0, digest: own[$0] ?? DigestSum()) }))
            let theirs = answer.ranges.compactMap(\.answer)
            guard theirs.count == answer.ranges.count else {
                throw SyncFailure(kind: .transport, message: "the hub's digests arrived damaged", messageZh: "上级的数据摘要已损坏，将重试", isRetryable: true)
            }
            let leaves = Set(theirs.filter { $0.leaves != nil }.map(\.range))
            let children = Set(theirs.filter { $0.children != nil }.map(\.range))
            let differing = walk.pending.filter { leaves.contains($0) || children.contains($0) }
            var mine: [DigestRange: RangeAnswer] = [:]
            for r in walk.pending { mine[r] = RangeAnswer(range: r, digest: own[r] ?? DigestSum()) }
            do {
                for a in try store.rangeAnswers(unit: nil, ranges: differing, excluding: held, leaves: leaves, children: children) { mine[a.range] = a }
            } catch { throw local("computing this node's digests failed", error) }
            walk.receive(theirs: theirs, mine: mine)
            report.reconcileRounds += 1
        }
        let r = walk.result
        var push: [RowRef] = []
        var forget: [RowRef] = []
        let onlyHere = Set(r.onlyHere)
        for k in r.different + r.onlyHere {
            guard let t = store.standard.table(named: k.table) else { continue }
            let ref = RowRef(table: k.table, key: k.key)
            // The unit's own rows go up whole; a hub row the hub no longer has for us goes.
            if t.isUnitWritable { push.append(ref) } else if onlyHere.contains(k) { forget.append(ref) }
        }
        let fetch = (r.different + r.onlyThere).map { RowRef(table: $0.table, key: $0.key) }
        do {
            try store.sendWhole(push, to: hubPeer.id, repair: true)
            _ = try store.forget(forget)
        } catch { throw local("queueing the repair failed", error) }
        let rows = Set(r.different + r.onlyHere + r.onlyThere).count
        logger.notice(
            "anti-entropy found differences",
            metadata: ["different": "\(r.different.count)", "only_here": "\(r.onlyHere.count)", "only_at_hub": "\(r.onlyThere.count)", "rounds": "\(walk.rounds)"])
        metrics.repairs.increment(by: rows)
        return (Array(fetch.prefix(ExchangeRequest.maxRowRefs)), push.count, rows)
    }

    func decodeAnswer(_ bytes: [UInt8]) throws(SyncFailure) -> (ExchangeResponse, [UInt8]?) {
        let envelope: ExchangeEnvelope
        do { envelope = try ExchangeEnvelope.decode(bytes) } catch {
            throw SyncFailure(kind: .transport, message: "the hub's answer arrived damaged: \(error.message)", messageZh: "上级的答复已损坏，将重试", isRetryable: true)
        }
        do { return (try JSONDecoder().decode(ExchangeResponse.self, from: Data(envelope.header)), envelope.changeset) } catch {
            throw SyncFailure(kind: .transport, message: "the hub's answer did not decode: \(WireError.describe(error))", messageZh: "上级的答复无法解析，将重试", isRetryable: true)
        }
    }

    /// Stores what the hub said of this node: its next epoch, a clock it must pass, the
    /// rows it holds back.
    func recordAnswer(_ answer: ExchangeResponse) throws(SyncFailure) {
        do {
            if let floor = answer.clockFloor {
                // The database went back in time: write as a new incarnation from now on, past
                // every clock this node already gave out, and let anti-entropy bring back the rest.
                try store.beginIncarnation(atLeast: answer.epoch)
                try store.raiseClock(toAtLeast: HLCTimestamp(rawValue: floor))
                logger.warning(
                    "database restored from an older copy; recovering from the hub", metadata: ["clock_floor": "\(floor)", "writer": "\(store.writer)"])
            }
            try store.recordEpoch(answer.epoch)
            try store.setHeldByHub(
                answer.held.map {
                    HeldRow(
                        table: $0.row.table, key: $0.row.key, column: $0.column, kind: HeldRow.Kind(rawValue: $0.kind) ?? .value, reason: $0.reason,
                        reasonZh: $0.reasonZh)
                })
            try store.setClockOffset(hub.clockOffsetMillis)
        } catch { throw local("recording the hub's answer failed", error) }
    }

    /// While conflicts are open on this node: the hub time its supervisors' decisions
    /// have been heard through (0: never asked). Nil otherwise, so an exchange without
    /// open conflicts carries nothing for it.
    func settledSince() -> UInt64? {
        guard (try? store.hasOpenConflicts()) == true else { return nil }
        if case .integer(let t) = (try? store.state("settled_through")) ?? .null, t > 0 { return UInt64(t) }
        return 0
    }

    /// Closes the conflicts a supervisor settled at the hub, then remembers how far the
    /// hub's list ran (in that order: a crash between them lists them again, harmlessly).
    func recordSettled(_ answer: ExchangeResponse, report: inout SyncReport) throws(SyncFailure) {
        guard let through = answer.settledThrough else { return }
        let list = (answer.settled ?? []).map {
            SettledConflict(table: $0.row.table, key: $0.row.key, column: $0.column, lostOrigin: $0.lostOrigin, lostClock: $0.lostClock, outcome: $0.outcome)
        }
        let closed: Int
        do { closed = try store.closeSettledAtHub(list) } catch { throw local("closing conflicts the hub settled failed", error) }
        note(["settled_through": .integer(Int64(clamping: through))])
        if closed > 0 {
            report.settledAtHub += closed
            logger.notice("conflicts settled at the hub", metadata: ["closed": "\(closed)"])
        }
    }

    func epoch() -> UInt64 { (try? store.epoch()) ?? 0 }

    /// The last pulled batch, applied but not yet acknowledged (the next exchange does it).
    func pendingAcknowledgement() -> PullAcknowledgement? {
        guard case .text(let json) = (try? store.state("pull_ack")) ?? .null else { return nil }
        return try? JSONDecoder().decode(PullAcknowledgement.self, from: Data(json.utf8))
    }

    func saveAcknowledgement(_ ack: PullAcknowledgement?) {
        let text = ack.flatMap { try? JSONEncoder().encode($0) }.map { Value.text(String(decoding: $0, as: UTF8.self)) } ?? .null
        note(["pull_ack": text])
    }

    static func kindText(_ e: SyncFailure) -> String {
        switch e.kind {
        case .hub(let code): return code.rawValue
        case .transport: return "transport"
        case .local: return "local"
        }
    }

    /// A failure of this node's own database, in words a clerk can act on: a full disk, a
    /// database another program holds, a damaged file, or another failure of the database.
    func local(_ message: String, _ error: any Error) -> SyncFailure {
        let text = "\(error)"
        let zh: String
        if text.contains("SQLite error 13") || text.contains("disk is full") {
            zh = "本机磁盘已满，未能保存同步数据；请清理磁盘空间（不要删除 ferry 的数据目录），之后会自动继续"
        } else if text.contains("SQLite error 5") || text.contains("SQLite error 6") || text.contains("database is locked") {
            zh = "本机数据库正被其他程序占用（例如打开着的 sqlite3 或备份程序），稍后自动重试；如一直如此，请关闭该程序"
        } else if text.contains("SQLite error 11") || text.contains("SQLite error 26") || text.contains("malformed") {
            zh = "本机数据库文件已损坏；请联系上级管理员，用备份或上级的数据恢复本节点（ferry node init --restore）"
        } else {
            zh = "本机数据库操作失败，将自动重试；如一直失败，请把上次错误告诉上级管理员"
        }
        return SyncFailure(kind: .local, message: "\(message): \(error)", messageZh: zh, isRetryable: true)
    }

    func note(_ values: [String: Value]) {
        // Status bookkeeping must never fail a sync.
        try? store.setState(values)
    }
}
