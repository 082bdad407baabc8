import FerryCore
import FerryWire
import Foundation

/// A JSON body, read as every message type a hub or a node decodes from the other side.
enum WireJSONTarget {
    static let target = FuzzTarget.wireJSON

    static func run(_ input: [UInt8]) throws(FuzzFinding) {
        let body = Data(input)
        if let m = try probe(EnrolRequest.self, body) { _ = m.hostname.utf8.count }
        if let m = try probe(EnrolResponse.self, body) {
            _ = try? NodeID(m.nodeID)
            _ = try? NodeID(m.hubNodeID)
            _ = StandardVersion(parsing: m.standardVersion)
        }
        if let m = try probe(ExchangeRequest.self, body) {
            _ = StandardVersion(parsing: m.standardVersion)
            _ = (m.resend + m.repair).map { KeyEncoding.encode($0.key) }
        }
        if let m = try probe(ExchangeResponse.self, body) { _ = m.held.map(\.row.key) }
        if let m = try probe(ReconcileRequest.self, body) { _ = m.ranges.map { $0.range.isValid } }
        if let m = try probe(ReconcileResponse.self, body) { _ = m.ranges.map(\.answer) }
        // An exchange body: the envelope around a header and a changeset.
        if let env = try? ExchangeEnvelope.decode(input) {
            _ = try? JSONDecoder().decode(ExchangeRequest.self, from: Data(env.header))
            if let c = env.changeset { _ = try? ChangesetCodec.decode(c) }
            guard (try? ExchangeEnvelope.decode(env.encode())) == env else {
                throw target.finding("an exchange envelope changed on its way through encode and decode")
            }
        }
        if let m = try probe(PullAcknowledgement.self, body) { _ = m.position }
        if let m = try probe(PushAcknowledgement.self, body) { _ = m.position }
        if let m = try probe(SignedStandard.self, body) {
            _ = SignedStandard.signedBytes(m.standard)
            _ = StandardVersion(parsing: m.version)
        }
        if let m = try probe(WireError.self, body) { _ = (m.httpStatus, m.code.isRetryable, m.description) }
    }

    /// Decodes `body` as `T`; what decodes must come back equal from its own encoding, or
    /// a hub relaying or logging it would change what the node sent.
    static func probe<T: Codable & Equatable>(_: T.Type, _ body: Data) throws(FuzzFinding) -> T? {
        guard let message = try? JSONDecoder().decode(T.self, from: body) else { return nil }
        let encoded: Data
        do { encoded = try JSONEncoder().encode(message) } catch {
            throw target.finding("a decoded \(T.self) cannot be encoded again: \(error)")
        }
        let again: T
        do { again = try JSONDecoder().decode(T.self, from: encoded) } catch {
            throw target.finding("a decoded \(T.self) re-encodes to JSON that does not decode: \(error)")
        }
        guard again == message else { throw target.finding("a \(T.self) changed on its way through encode and decode") }
        return message
    }
}
