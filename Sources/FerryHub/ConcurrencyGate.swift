import Foundation
import Synchronization

/// At most `limit` holders at once; the next `maxWaiting` callers wait their turn in order
/// of arrival for up to a deadline, and anyone beyond is turned away at once.
///
/// The hub's password checks pass through one (`HubRegistry.passwordChecks`): scrypt is
/// slow on purpose, and 64 of them at once would take every core from the syncs.
///
///     guard await gate.enter(waitingAtMost: 2) else { throw overloaded }
///     defer { gate.leave() }
public final class ConcurrencyGate: Sendable {
    public let limit: Int
    public let maxWaiting: Int

    struct State {
        var holders = 0
        var nextTicket: UInt64 = 0
        var waiting: [UInt64: CheckedContinuation<Bool, Never>] = [:]
        var peak = 0
    }
    private let state = Mutex(State())

    public init(limit: Int, maxWaiting: Int) {
        precondition(limit >= 1 && maxWaiting >= 0)
        self.limit = limit
        self.maxWaiting = maxWaiting
    }

    /// Becomes a holder, waiting at most `seconds`; false when the wait ran out or too many
    /// already wait. A true answer must be followed by exactly one `leave()`.
    public func enter(waitingAtMost seconds: Double) async -> Bool {
        await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
            enum Decision {
                case admitted, refused
                case queued(UInt64)
            }
            let decision = state.withLock { s -> Decision in
                if s.holders < limit {
                    s.holders += 1
                    s.peak = max(s.peak, s.holders)
                    return .admitted
                }
                guard s.waiting.count < maxWaiting else { return .refused }
                s.nextTicket += 1
                s.waiting[s.nextTicket] = c
                return .queued(s.nextTicket)
            }
            switch decision {
            case .admitted: c.resume(returning: true)
            case .refused: c.resume(returning: false)
            case .queued(let ticket):
                // A timer, not a task: it only takes the waiter back out if it is still waiting.
                DispatchQueue.global().asyncAfter(deadline: .now() + seconds) { [self] in
                    state.withLock { $0.waiting.removeValue(forKey: ticket) }?.resume(returning: false)
                }
            }
        }
    }

    /// Gives the place to the longest-waiting caller, or frees it.
    public func leave() {
        let next = state.withLock { s -> CheckedContinuation<Bool, Never>? in
            if let first = s.waiting.keys.min() { return s.waiting.removeValue(forKey: first) }
            s.holders -= 1
            return nil
        }
        // The place passes straight to the waiter: `holders` is unchanged.
        next?.resume(returning: true)
    }

    /// The most holders there ever were at once (never above `limit`).
    public var peakHolders: Int { state.withLock { $0.peak } }
    /// Callers waiting now.
    public var waitingCount: Int { state.withLock { $0.waiting.count } }
}
