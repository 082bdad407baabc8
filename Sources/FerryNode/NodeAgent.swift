import FerryCore
import FerryStore
import FerryWire
import Foundation
import Logging
import Metrics

/// What one sync did.
public struct SyncReport: Sendable, Equatable {
    public var pushedBatches = 0
    public var pushedRows = 0
    public var pushedBytes = 0
    public var pulledBatches = 0
    public var pulledRows = 0
    public var pulledBytes = 0
    public var conflicts = 0
    public var seconds = 0.0
    public init() {}
}

/// Progress of a running sync, for `ferry sync`'s display.
public enum SyncProgress: Sendable {
    case pushed(batch: Int, rows: Int, bytes: Int)
    case pulled(batch: Int, rows: Int, bytes: Int)
}

/// A unit's node: exchanges its replica's changes with the hub.
///
/// One exchange pushes every batch the hub has not acknowledged, then pulls every batch the
/// node has not seen, acknowledging each after it is durably applied. A cut link costs the
/// batch in flight: the next exchange resumes from the last acknowledgement.
public final class NodeAgent: Sendable {
    public let store: ReplicaStore
    public let hub: any HubConnection
    public let identity: NodeIdentity
    public let batchBytes: Int
    let clock: any WallClock
    let logger: Logger
    let metrics = NodeMetrics()

    public init(
        store: ReplicaStore, hub: any HubConnection, identity: NodeIdentity, clock: any WallClock,
        batchBytes: Int = 64 * 1024, logger: Logger = Logger(label: "ferry.node")
    ) {
        self.store = store
        self.hub = hub
        self.identity = identity
        self.clock = clock
        self.batchBytes = batchBytes
        self.logger = logger
    }

    var hubPeer: Peer { Peer(id: NodeID(unchecked: identity.hubNodeID), direction: .upstream) }

    /// Runs one exchange with the hub. On failure the error says whether to retry; what was
    /// acknowledged before it stays acknowledged.
    ///
    /// `shouldStop` is asked between batches: when it says true (a shutdown began) the
    /// exchange ends after the batch in flight, which is acknowledged or rolled back whole.
    public func syncOnce(progress: (SyncProgress) -> Void = { _ in }, shouldStop: () -> Bool = { false }) throws(SyncFailure) -> SyncReport {
        let started = clock.nowMillis()
        var report = SyncReport()
        note(["last_attempt_at": .integer(Int64(started))])
        do throws(SyncFailure) {
            // Push.
            while !shouldStop() {
                let cs: Changeset?
                do { cs = try store.extract(for: hubPeer, maxBytes: batchBytes) } catch { throw local("reading local changes failed: \(error)") }
                guard let cs else { break }
                let bytes = ChangesetCodec.encode(cs)
                let ack = try hub.push(bytes)
                guard ack.sequence == cs.batch.sequence, ack.through == cs.batch.through else {
                    throw SyncFailure(kind: .hub(.malformed), message: "the hub acknowledged batch \(ack.sequence) while \(cs.batch.sequence) was sent", messageZh: "上级确认的批次与发送的不符", isRetryable: true)
                }
                do { try store.acknowledge(cs.batch, from: hubPeer.id) } catch { throw local("recording the hub's acknowledgement failed: \(error)") }
                report.pushedBatches += 1
                report.pushedRows += cs.rowCount
                report.pushedBytes += bytes.count
                metrics.batchesUp.increment()
                metrics.rowsUp.increment(by: cs.rowCount)
                metrics.bytesUp.increment(by: bytes.count)
                progress(.pushed(batch: report.pushedBatches, rows: cs.rowCount, bytes: bytes.count))
            }
            // Pull.
            while !shouldStop() {
                let pending = (try? store.pendingRows(for: hubPeer)) ?? 0
                let request = PullRequest(
                    maxBytes: batchBytes, standardVersion: store.standard.version.description, pendingRows: pending,
                    clockMillis: clock.nowMillis())
                guard let bytes = try hub.pull(request) else { break }
                let cs: Changeset
                do { cs = try ChangesetCodec.decode(bytes) } catch {
                    throw SyncFailure(kind: .local, message: "a batch from the hub did not decode: \(error.message)", messageZh: "从上级收到的数据无法解析", isRetryable: error.isRetryable)
                }
                let applied: ApplyReport
                // A value this node's (older) standard does not allow is quarantined, not fatal: the
                // hub sends everything again once the node has moved to the newer standard.
                do { applied = try store.apply(cs, sender: .trusted, quarantine: true, from: hubPeer.id) } catch { throw local("applying the hub's batch failed: \(error)") }
                try hub.acknowledgePull(PullAcknowledgement(cs.batch))
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
        } catch {
            note(["last_error": .text(error.message), "last_error_zh": .text(error.messageZh)])
            logger.warning("sync failed", metadata: ["error": "\(error.message)", "retryable": "\(error.isRetryable)"])
            metrics.syncFailed.increment()
            metrics.error(error.kind)
            if let pending = try? store.pendingRows(for: hubPeer) { metrics.pendingRows.record(pending) }
            throw error
        }
        let finished = clock.nowMillis()
        report.seconds = Double(finished - started) / 1000
        metrics.syncOK.increment()
        metrics.lastSuccess.record(Double(finished) / 1000)
        if let pending = try? store.pendingRows(for: hubPeer) { metrics.pendingRows.record(pending) }
        note([
            "last_sync_ok_at": .integer(Int64(finished)), "last_error": .null, "last_error_zh": .null,
            "last_received_rows": .integer(Int64(report.pulledRows)), "last_sent_rows": .integer(Int64(report.pushedRows)),
            "hub_clock_offset_ms": .integer(hub.clockOffsetMillis),
        ])
        logger.info(
            "sync done",
            metadata: ["pushed_rows": "\(report.pushedRows)", "pulled_rows": "\(report.pulledRows)", "bytes_up": "\(report.pushedBytes)", "bytes_down": "\(report.pulledBytes)"])
        return report
    }

    func local(_ message: String) -> SyncFailure {
        SyncFailure(kind: .local, message: message, messageZh: "本地数据库操作失败", isRetryable: true)
    }

    func note(_ values: [String: Value]) {
        // Status bookkeeping must never fail a sync.
        try? store.setState(values)
    }
}
