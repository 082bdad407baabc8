import FerryCore

/// A push or pull body: bytes a peer sent, decoded and then handled as the hub and the
/// nodes handle a changeset that decoded.
enum ChangesetTarget {
    static let target = FuzzTarget.changeset

    static func run(_ input: [UInt8]) throws(FuzzFinding) {
        try exercise(input)
        // Almost every mutation of a seed breaks its CRC-32C, and the decoder checks that
        // before anything else; with the checksum made right again the mutation reaches
        // the decoder's body, the validation and the merge.
        if let framed = reframed(input), framed != input { try exercise(framed) }
    }

    /// `bytes` with the magic, the format version and the trailing CRC-32C made valid,
    /// or nil when it is too short to be taken for a changeset at all.
    static func reframed(_ bytes: [UInt8]) -> [UInt8]? {
        let header = ChangesetCodec.magic + [ChangesetCodec.formatVersion]
        guard bytes.count >= header.count + 1 + 4 else { return nil }
        var framed = bytes
        framed.replaceSubrange(0..<header.count, with: header)
        let bodyEnd = framed.count - 4
        let crc = CRC32C.checksum(framed[0..<bodyEnd])
        for i in 0..<4 { framed[bodyEnd + i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i))) }
        return framed
    }

    static func exercise(_ bytes: [UInt8]) throws(FuzzFinding) {
        let changeset: Changeset
        do { changeset = try ChangesetCodec.decode(bytes) } catch { return }
        _ = (changeset.rowCount, changeset.cellCount, changeset.isEmpty, changeset.clockRange)
        try roundTrip(changeset)
        for standard in FuzzStandards.all {
            try validate(changeset, against: standard)
            try validate(changeset.restricted(to: standard), against: standard)
        }
        try merge(changeset)
    }

    /// What the decoder accepts, the encoder must write back in a form the decoder accepts,
    /// and both must agree on every bit.
    static func roundTrip(_ changeset: Changeset) throws(FuzzFinding) {
        let encoded = ChangesetCodec.encode(changeset)
        let again: Changeset
        do { again = try ChangesetCodec.decode(encoded) } catch {
            throw target.finding("a decoded changeset re-encodes to bytes the decoder refuses: \(error)")
        }
        guard ChangesetCodec.encode(again) == encoded else {
            throw target.finding("encoding a decoded changeset is not stable across a second round trip")
        }
        // A NaN real is not equal to itself, so equality can only be asked of changesets
        // without one (`changeset == changeset` would not tell: arrays that share storage
        // compare equal without looking at their elements); the byte comparison above
        // already covered those bit for bit.
        if !holdsNaN(changeset), again != changeset {
            throw target.finding("a changeset changed on its way through encode and decode")
        }
    }

    static func holdsNaN(_ changeset: Changeset) -> Bool {
        changeset.tables.contains { t in
            t.rows.contains { r in r.key.contains(where: \.isNaN) || r.cells.contains { $0.value?.isNaN ?? false } }
        }
    }

    /// `validate` and the quarantining `check` must agree: a changeset that validates
    /// quarantines nothing, and one whose structure fails is refused by both.
    static func validate(_ changeset: Changeset, against standard: Standard) throws(FuzzFinding) {
        var senders: [SenderScope] = [.trusted, .unit("u1")]
        // The rows' own units as well, so the scope check passes and the value checks run.
        for table in changeset.tables {
            for row in table.rows.prefix(4) {
                if let scope = row.scope, !senders.contains(.unit(scope)) { senders.append(.unit(scope)) }
            }
        }
        for sender in senders {
            var strict: CoreError? = nil
            do { try changeset.validate(against: standard, sender: sender) } catch { strict = error }
            let quarantined: [QuarantinedRow]
            do {
                quarantined = try changeset.check(against: standard, sender: sender, quarantineValues: true)
            } catch {
                guard strict != nil else {
                    throw target.finding("validate accepts the changeset but check with quarantine refuses it: \(error)")
                }
                continue
            }
            if strict == nil, !quarantined.isEmpty {
                throw target.finding("validate accepts the changeset but check quarantines \(quarantined.count) rows")
            }
            if let strict, quarantined.isEmpty {
                throw target.finding("validate refuses the changeset (\(strict)) but check with quarantine neither refuses nor quarantines")
            }
            var seen = Set<[String]>()
            for q in quarantined {
                guard let table = changeset.tables.first(where: { $0.name == q.table }), table.rows.indices.contains(q.rowIndex) else {
                    throw target.finding("quarantined row \(q.rowIndex) of table '\(q.table)' is not in the changeset")
                }
                // (A key holding a NaN equals nothing, not even itself.)
                guard table.rows[q.rowIndex].key == q.key || q.key.contains(where: \.isNaN) else {
                    throw target.finding("quarantined row \(q.rowIndex) of table '\(q.table)' names another row's key")
                }
                guard seen.insert([q.table, String(q.rowIndex)]).inserted else {
                    throw target.finding("row \(q.rowIndex) of table '\(q.table)' is quarantined twice")
                }
            }
        }
    }

    /// Every row against the local states a replica could hold for it, under every policy.
    static func merge(_ changeset: Changeset) throws(FuzzFinding) {
        let rival = NodeID(unchecked: "fuzz-rival")
        for table in changeset.tables {
            for row in table.rows {
                var own: [String: CellVersion] = [:]
                for cell in row.cells where own[cell.column] == nil { own[cell.column] = cell.version }
                // Another replica's concurrent write of every cell, with the supervisor's authority.
                let concurrent = own.mapValues { v in
                    var theirs = v
                    theirs.origin = rival
                    theirs.authority = .supervisor
                    theirs.supervisorGeneration &+= 1
                    return theirs
                }
                let cl = row.causalLength
                var locals: [LocalRow?] = [nil, LocalRow(causalLength: cl, versions: own), LocalRow(causalLength: cl, versions: concurrent)]
                if cl < .max { locals.append(LocalRow(causalLength: cl + 1, versions: own)) }
                if cl > 1 { locals.append(LocalRow(causalLength: cl - 1, versions: concurrent)) }

                for policy in ConflictPolicy.allCases {
                    try order(Array(own.values) + Array(concurrent.values), policy)
                    for local in locals {
                        try plan(row, local, policy, isItsOwnState: local == LocalRow(causalLength: cl, versions: own))
                    }
                }
            }
        }
    }

    static func plan(_ row: RowChange, _ local: LocalRow?, _ policy: ConflictPolicy, isItsOwnState: Bool) throws(FuzzFinding) {
        let plan = RowMerge.plan(local: local, incoming: row, policy: policy)
        let expectedLength = max(local?.causalLength ?? 0, row.causalLength)
        guard plan.causalLength == expectedLength else {
            throw target.finding("\(policy) plan leaves causal length \(plan.causalLength), not \(expectedLength)")
        }
        // By column and version: a NaN value is equal to nothing, not even itself.
        for cell in plan.adopt where !row.cells.contains(where: { $0.column == cell.column && $0.version == cell.version }) {
            throw target.finding("\(policy) plan adopts a cell for '\(cell.column)' the incoming row does not carry")
        }
        if isItsOwnState, plan.changesState || plan.action != .none || !plan.lostLocal.isEmpty || !plan.lostIncoming.isEmpty {
            throw target.finding("\(policy): merging a row into the state it describes is not a no-op (\(plan.action))")
        }
        // A changeset applied twice changes nothing (Changeset's contract).
        let after = LocalRow(causalLength: plan.causalLength, versions: plan.versions)
        let second = RowMerge.plan(local: after, incoming: row, policy: policy)
        if second.changesState || second.action != .none || !second.adopt.isEmpty {
            throw target.finding("\(policy): merging the same row a second time changes the row again (\(second.action))")
        }
    }

    /// `prefers` must be a strict total order on versions with distinct ids, or replicas
    /// that see the same versions in a different order settle on different winners.
    static func order(_ versions: [CellVersion], _ policy: ConflictPolicy) throws(FuzzFinding) {
        for a in versions.prefix(8) {
            if policy.prefers(a, over: a) { throw target.finding("\(policy) prefers a version over itself") }
            for b in versions.prefix(8) where a.id != b.id {
                if policy.prefers(a, over: b) == policy.prefers(b, over: a) {
                    throw target.finding("\(policy) cannot order \(a) and \(b)")
                }
            }
        }
    }
}

extension Value {
    /// A real that is NaN, which compares unequal to everything, itself included.
    var isNaN: Bool {
        if case .real(let d) = self { return d.isNaN }
        return false
    }
}
