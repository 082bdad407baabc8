import FerryHub
import FerryWire

/// How many connections are open, in all and per client address; decides whether a new one
/// may stay. A plain value: the listener keeps it under a lock and acts on its answers.
struct ConnectionCounts: Sendable, Equatable {
    let maxTotal: Int
    let maxPerAddress: Int
    private(set) var total = 0
    private(set) var perAddress: [String: Int] = [:]

    init(maxTotal: Int, maxPerAddress: Int) {
        self.maxTotal = maxTotal
        self.maxPerAddress = maxPerAddress
    }

    enum Refusal: String, Sendable { case total, perAddress = "per_address" }

    /// Counts a new connection from `address`, or says why it must be closed at once (then
    /// nothing is counted).
    mutating func open(_ address: String) -> Refusal? {
        guard total < maxTotal else { return .total }
        let mine = perAddress[address, default: 0]
        guard mine < maxPerAddress else { return .perAddress }
        total += 1
        perAddress[address] = mine + 1
        return nil
    }

    /// Forgets a connection counted by `open`.
    mutating func close(_ address: String) {
        total -= 1
        let left = perAddress[address, default: 1] - 1
        perAddress[address] = left > 0 ? left : nil
    }
}

/// Admission of requests the hub must read before anyone is authenticated: enrolments
/// (every signed request has its body's hash in a signed header, so it is authenticated
/// before its body is read). Bounded in all, per address and in rate, so that such requests
/// cannot take the memory and threads the units' syncs need.
///
/// A plain value with an injected `now` (seconds on a monotonic clock); every `admit` that
/// returns nil must be matched by one `release`.
struct RequestAdmission: Sendable {
    enum Kind: Sendable, Equatable {
        /// An enrolment: its body is the only credential, read before anyone is known.
        case enrol
    }

    let settings: TransportSettings
    private(set) var unauthenticated = 0
    private(set) var enrolments = 0
    private(set) var perAddress: [String: Int] = [:]
    /// Enrolment attempts per address: a token bucket (tokens, time of the last refill).
    private(set) var enrolBuckets: [String: (tokens: Double, at: Double)] = [:]
    /// Addresses whose enrolment bucket is remembered at most; full buckets are dropped first.
    static let maxTrackedAddresses = 4096

    init(settings: TransportSettings) { self.settings = settings }

    /// Admits one request of `kind` from `address` at `now`, or returns the error to answer.
    mutating func admit(_ kind: Kind, from address: String, now: Double) -> WireError? {
        if kind == .enrol {
            guard enrolments < settings.maxConcurrentEnrolments else {
                return WireError(
                    .overloaded, "the hub is serving \(settings.maxConcurrentEnrolments) enrolments; retry after the delay in Retry-After",
                    zh: "上级服务器正在处理其他节点的登记，请稍后自动重试")
            }
            guard takeEnrolToken(address, now: now) else {
                return WireError(
                    .rateLimited,
                    "more than \(settings.enrolAttemptsPerMinute) enrolment attempts a minute came from \(address); wait for Retry-After, and check the token before trying again",
                    zh: "本地址每分钟登记尝试次数过多，请稍后再试，并核对登记令牌")
            }
        }
        guard unauthenticated < settings.maxUnauthenticatedReads else {
            return WireError(
                .overloaded, "the hub is reading \(settings.maxUnauthenticatedReads) unauthenticated requests; retry after the delay in Retry-After")
        }
        guard perAddress[address, default: 0] < settings.maxUnauthenticatedPerAddress else {
            return WireError(
                .rateLimited,
                "\(settings.maxUnauthenticatedPerAddress) unauthenticated requests from \(address) are in progress; retry after the delay in Retry-After")
        }
        unauthenticated += 1
        perAddress[address, default: 0] += 1
        if kind == .enrol { enrolments += 1 }
        return nil
    }

    /// Gives back what `admit` took.
    mutating func release(_ kind: Kind, from address: String) {
        unauthenticated -= 1
        let left = perAddress[address, default: 1] - 1
        perAddress[address] = left > 0 ? left : nil
        if kind == .enrol { enrolments -= 1 }
    }

    private mutating func takeEnrolToken(_ address: String, now: Double) -> Bool {
        let capacity = Double(settings.enrolAttemptsPerMinute)
        let perSecond = capacity / 60
        var bucket = enrolBuckets[address] ?? (capacity, now)
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.at) * perSecond)
        bucket.at = now
        guard bucket.tokens >= 1 else {
            enrolBuckets[address] = bucket
            return false
        }
        bucket.tokens -= 1
        if enrolBuckets[address] == nil, enrolBuckets.count >= Self.maxTrackedAddresses { forgetRefilledBuckets(now: now) }
        enrolBuckets[address] = bucket
        return true
    }

    /// Drops buckets that have refilled (they mean nothing any more); if none has, the oldest.
    private mutating func forgetRefilledBuckets(now: Double) {
        let capacity = Double(settings.enrolAttemptsPerMinute)
        let perSecond = capacity / 60
        enrolBuckets = enrolBuckets.filter { $0.value.tokens + (now - $0.value.at) * perSecond < capacity }
        if enrolBuckets.count >= Self.maxTrackedAddresses, let oldest = enrolBuckets.min(by: { $0.value.at < $1.value.at }) {
            enrolBuckets[oldest.key] = nil
        }
    }
}

/// The deadlines of one HTTP/1.1 connection: a request head must be complete within
/// `headTimeout` of the connection's start or of the end of the previous exchange (so an
/// idle kept-alive connection closes too), and a body must never go `bodyTimeout` without a
/// byte. While the hub works on a request whose body it has, or writes its answer, no
/// deadline runs.
///
/// A state machine over an injected clock (seconds): events update it, `deadline` is when
/// to look again (nil: none runs), `expired(now:)` whether to close the connection.
struct ConnectionDeadlines: Sendable, Equatable {
    enum Expiry: String, Sendable { case head, body }

    let headTimeout: Double
    let bodyTimeout: Double
    /// A request head arrived and its body's end has not.
    private(set) var reading = false
    /// A request head arrived and the answer's end is not written yet.
    private(set) var answering = false
    /// When the wait for the next head began, or the last body byte arrived.
    private(set) var since: Double

    init(headTimeout: Double, bodyTimeout: Double, now: Double) {
        self.headTimeout = headTimeout
        self.bodyTimeout = bodyTimeout
        since = now
    }

    /// When the connection must next be looked at, nil when no deadline runs.
    var deadline: Double? {
        if reading { return since + bodyTimeout }
        if answering { return nil }
        return since + headTimeout
    }

    mutating func headReceived(now: Double) {
        reading = true
        answering = true
        since = now
    }

    mutating func bodyReceived(now: Double) {
        if reading { since = now }
    }

    mutating func requestEnded(now: Double) {
        reading = false
        if !answering { since = now }
    }

    /// The answer's last byte is written. One written before the body was all read (a
    /// refusal) leaves the body deadline running.
    mutating func responseEnded(now: Double) {
        answering = false
        if !reading { since = now }
    }

    /// Which deadline has passed at `now`, if any.
    func expired(now: Double) -> Expiry? {
        guard let deadline, now >= deadline else { return nil }
        return reading ? .body : .head
    }
}
