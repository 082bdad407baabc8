import FerryCore
import FerryStandardFile
import FerryWire
import Foundation

extension FuzzTarget {
    /// Well-formed inputs made from the current code, so a campaign starts past the
    /// parsers' first checks: changesets that validate against the standards, every JSON
    /// body type, the standard files. Written at run time rather than committed, so they
    /// follow the standard and the message types as those change.
    public func seeds() -> [(name: String, bytes: [UInt8])] {
        switch self {
        case .changeset: return changesetSeeds()
        case .wireJSON: return wireJSONSeeds()
        case .standard:
            var seeds: [(name: String, bytes: [UInt8])] = []
            if let text = try? StandardFile.builtInText() { seeds.append(("built-in.toml", Array(text.utf8))) }
            let testStandard = FuzzStandards.repositoryPath("Tests/Fixtures/test-standard.toml")
            if let text = try? String(contentsOfFile: testStandard, encoding: .utf8) { seeds.append(("test-standard.toml", Array(text.utf8))) }
            return seeds
        }
    }

    private func changesetSeeds() -> [(name: String, bytes: [UInt8])] {
        var seeds = vectorSeeds()
        for (i, standard) in FuzzStandards.all.enumerated() {
            let live = StandardTarget.sampleChangeset(for: standard)
            seeds.append(("standard-\(i)-live-rows", ChangesetCodec.encode(live)))

            // The same rows deleted, and edited by the supervisor, so the seeds hold value-less
            // cells, cells with their own version and both authorities.
            var deleted = live
            var edited = live
            let hub = NodeID(unchecked: "hub")
            for t in live.tables.indices {
                for r in live.tables[t].rows.indices {
                    deleted.tables[t].rows[r].causalLength = 2
                    for c in live.tables[t].rows[r].cells.indices {
                        deleted.tables[t].rows[r].cells[c].value = nil
                        if c % 2 == 1 {
                            var hubVersion = live.tables[t].rows[r].cells[c].version
                            hubVersion.origin = hub
                            hubVersion.authority = .supervisor
                            hubVersion.generation += 1
                            hubVersion.supervisorGeneration += 1
                            hubVersion.clock = HLCTimestamp(rawValue: hubVersion.clock.rawValue + 65_536)
                            edited.tables[t].rows[r].cells[c].version = hubVersion
                        }
                    }
                }
            }
            seeds.append(("standard-\(i)-deleted-rows", ChangesetCodec.encode(deleted)))
            seeds.append(("standard-\(i)-supervisor-edits", ChangesetCodec.encode(edited)))
        }
        return seeds
    }

    private func wireJSONSeeds() -> [(name: String, bytes: [UInt8])] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        func json(_ name: String, _ message: some Encodable) -> (name: String, bytes: [UInt8])? {
            (try? encoder.encode(message)).map { (name: name, bytes: Array($0)) }
        }
        let standardText = (try? StandardFile.builtInText()) ?? ""
        return [
            json(
                "enrol-request.json",
                EnrolRequest(
                    tokenDigest: String(repeating: "a", count: 64), proof: String(repeating: "b", count: 64),
                    publicKey: String(repeating: "A", count: 43) + "=", hostname: "unit-u1-box", nonce: String(repeating: "c", count: 32))),
            json(
                "enrol-response.json",
                EnrolResponse(
                    nodeID: "node-u1", unitID: "u1", unitName: "第一支部", hubNodeID: "hub", hubPublicKey: String(repeating: "B", count: 43) + "=",
                    standardVersion: "1.2.0", standard: String(standardText.prefix(400)), compression: ["gzip"],
                    publicKey: String(repeating: "A", count: 43) + "=")),
            json(
                "exchange-request.json",
                ExchangeRequest(
                    maxBytes: 1 << 20, standardVersion: "1.2.0", pendingRows: 12, clockMillis: 1_767_225_600_000, epoch: 3,
                    pulled: PullAcknowledgement(BatchPosition(sequence: 2, through: 9, isFinal: true)),
                    resend: [RowRef(table: "member", key: [.text("m1")])], repair: [RowRef(table: "attendance", key: [.text("mt1"), .text("m1")])])),
            json(
                "exchange-response.json",
                ExchangeResponse(
                    pushed: PushAcknowledgement(sequence: 3, through: 42, final: true, rows: 10, cellsAdopted: 55, conflicts: 1, quarantined: 1),
                    more: false,
                    held: [HeldRowNotice(row: RowRef(table: "member", key: [.text("m2")]), column: "status", kind: "value", reason: "not allowed", reasonZh: "不允许")],
                    heldTotal: 1, digest: "1f2e3d4c5b6a7988", epoch: 4, clockFloor: 115_816_896_921_600_000)),
            json("reconcile-request.json", ReconcileRequest(standardVersion: "1.2.0", ranges: [WireRange(DigestRange(table: "member", prefix: "a3"))])),
            json(
                "reconcile-response.json",
                ReconcileResponse(ranges: [
                    WireRangeAnswer(RangeAnswer(range: DigestRange(table: "member", prefix: ""), digest: DigestSum(sum: 77, count: 2), leaves: [[.text("m1")]: 5, [.text("m2")]: 72]))
                ])),
            json("pull-acknowledgement.json", PullAcknowledgement(BatchPosition(sequence: 3, through: 42, isFinal: true))),
            json("push-acknowledgement.json", PushAcknowledgement(sequence: 3, through: 42, final: false, rows: 10, cellsAdopted: 55, conflicts: 1, quarantined: 2)),
            json("signed-standard.json", SignedStandard(version: "1.2.0", standard: "name = \"x\"\n", signature: String(repeating: "C", count: 86) + "==")),
            json("wire-error.json", WireError(.outOfScope, "row (m1) belongs to unit 'u2'")),
        ].compactMap { $0 }
    }

    /// The bytes of every vector in protocol/vectors, the valid ones and the refused ones.
    private func vectorSeeds() -> [(name: String, bytes: [UInt8])] {
        struct Vector: Decodable {
            var name: String
            var hex: String
        }
        let folder = FuzzStandards.repositoryPath("protocol/vectors")
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
        return files.compactMap { file in
            guard let data = FileManager.default.contents(atPath: folder + "/" + file),
                let vector = try? JSONDecoder().decode(Vector.self, from: data),
                let bytes = Self.bytes(hex: vector.hex)
            else { return nil }
            return ("vector-" + vector.name, bytes)
        }
    }

    private static func bytes(hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        for i in stride(from: 0, to: digits.count, by: 2) {
            guard let byte = UInt8(String(decoding: digits[i..<i + 2], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }
}
