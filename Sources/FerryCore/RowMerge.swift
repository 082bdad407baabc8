/// Why a value was set aside in the conflict log.
public enum ConflictKind: String, Sendable, Hashable, CaseIterable {
    /// Two replicas wrote the same cell without seeing each other's write.
    case concurrentEdit = "concurrent-edit"
    /// An edit arrived for a row this replica had deleted, or deleted again since.
    case editOfDeletedRow = "edit-of-deleted-row"
    /// A local edit was removed by a peer's delete that had not seen it.
    case deletedByPeer = "deleted-by-peer"
    /// A local edit was replaced by a peer's re-insert that had not seen it.
    case replacedByReinsert = "replaced-by-reinsert"
    /// Not a conflict: a value a later write replaced, kept for a table with `history`.
    case superseded
}

/// What happens to a conflict's losing value: kept and restorable (`overwritten`), or
/// waiting for a human (`held`, under the `review` and `append-only` policies).
public enum ConflictStatus: String, Sendable, Hashable, CaseIterable {
    case overwritten
    case held
    case resolved
    case restored
    /// A superseded value of a table with `history`: a record of how it was corrected.
    case history
}

/// The merge decision for one incoming row against the local state of that row.
///
/// Pure: the store loads `LocalRow`, asks for a plan, and carries it out in the apply
/// transaction (reading the local values of `lostLocal` before it overwrites them).
public struct RowMergePlan: Sendable, Equatable {
    public enum Action: Sendable, Equatable {
        /// Nothing to change in the data table.
        case none
        /// Delete the local row.
        case delete
        /// Insert the row (it does not exist locally) with `adopt`'s values.
        case insert
        /// Replace the whole local row (re-insert at a newer lifetime) with `adopt`'s values.
        case replace
        /// Update the columns in `adopt`.
        case update
    }

    public struct LostLocal: Sendable, Equatable {
        public var column: String
        public var version: CellVersion
        public var winner: CellVersion?
        public var kind: ConflictKind
    }

    public struct LostIncoming: Sendable, Equatable {
        public var cell: CellChange
        public var winner: CellVersion?
        public var kind: ConflictKind
    }

    public var causalLength: UInt32
    public var action: Action
    /// Incoming cells whose values become the local ones.
    public var adopt: [CellChange]
    /// The cell versions to store after the merge (value-less for a deleted row).
    public var versions: [String: CellVersion]
    public var lostLocal: [LostLocal]
    public var lostIncoming: [LostIncoming]
    /// True when anything about the row's stored state changes.
    public var changesState: Bool
    /// Incoming cells set aside because the sender may not author their version (see
    /// `Authorship`); nothing of them was used.
    public var refused: [CellChange] = []
    /// Incoming cells of a `repair` row whose version the receiver already holds: the store
    /// compares values and takes the incoming one where the sender is canonical for it.
    public var repairs: [CellChange] = []
}

/// Which versions a replica accepts from the peer a changeset came from.
///
/// A node introduces versions with itself (or another node of its unit) as origin and a
/// unit's authority only; supervisor authority comes only from a hub. A version naming any
/// other origin is accepted only where the receiver can verify it: it already holds exactly
/// that version, which makes it a no-op. Everything else is set aside (`RowMergePlan.refused`),
/// so a unit cannot claim to be the hub, raise its authority, or attribute its edits to
/// another unit's node.
public enum Authorship: Sendable, Equatable {
    /// Every version is accepted (a peer trusted for everything, and tests).
    case any
    /// A unit's node: versions authored by `nodes` (the nodes of the sender's unit) with a
    /// unit's authority; under `supervisor-wins`, with no higher supervisor generation than
    /// the receiver's own version of the cell (a unit inherits a supervisor generation by
    /// writing on top of a correction it received, it never creates one).
    case unitNodes(Set<NodeID>)
    /// A hub sending down: its own versions carry a supervisor's authority, everyone else's
    /// a unit's.
    case hub(NodeID)

    func accepts(_ v: CellVersion, local: CellVersion?, policy: ConflictPolicy) -> Bool {
        switch self {
        case .any:
            return true
        case .hub(let hub):
            return v.authority == (v.origin == hub ? .supervisor : .unit)
        case .unitNodes(let nodes):
            guard nodes.contains(v.origin.node) else { return local == v }
            guard v.authority == .unit, v.generation <= CellVersion.maxAuthoredCounter,
                v.supervisorGeneration <= CellVersion.maxAuthoredCounter
            else { return false }
            if policy == .supervisorWins, v.supervisorGeneration > (local?.supervisorGeneration ?? 0) { return false }
            return true
        }
    }
}

/// A row's sync state on this replica: its causal length and the version of each cell.
public struct LocalRow: Sendable, Equatable {
    public var causalLength: UInt32
    public var versions: [String: CellVersion]
    public init(causalLength: UInt32, versions: [String: CellVersion]) {
        self.causalLength = causalLength
        self.versions = versions
    }
    public var exists: Bool { causalLength % 2 == 1 }
}

public enum RowMerge {
    /// Plans the merge of `incoming` into `local` (nil: the row was never seen here).
    ///
    /// `authorship` says which incoming versions the sender may author; the others are left
    /// out of the merge and listed in `refused`.
    public static func plan(
        local: LocalRow?, incoming original: RowChange, policy: ConflictPolicy, authorship: Authorship = .any
    ) -> RowMergePlan {
        var incoming = original
        var refused: [CellChange] = []
        if authorship != .any {
            incoming.cells = original.cells.filter { c in
                if authorship.accepts(c.version, local: local?.versions[c.column], policy: policy) { return true }
                refused.append(c)
                return false
            }
        }
        var plan = plan(local: local, accepted: incoming, policy: policy)
        plan.refused = refused
        if incoming.flags.contains(.repair), let local {
            plan.repairs = incoming.cells.filter { c in c.value != nil && local.versions[c.column] == c.version }
        }
        return plan
    }

    static func plan(local: LocalRow?, accepted incoming: RowChange, policy: ConflictPolicy) -> RowMergePlan {
        let lc = local?.causalLength ?? 0
        let ic = incoming.causalLength
        var versions = local?.versions ?? [:]
        var plan = RowMergePlan(
            causalLength: max(lc, ic), action: .none, adopt: [], versions: versions,
            lostLocal: [], lostIncoming: [], changesState: false)

        if ic < lc {
            // An older lifetime of the row: every cell loses. Keep those this replica never saw.
            for cell in incoming.cells where cell.value != nil {
                if let mine = versions[cell.column], mine.knows(cell.version) { continue }
                plan.lostIncoming.append(
                    .init(cell: cell, winner: versions[cell.column], kind: .editOfDeletedRow))
            }
            return plan
        }

        if ic > lc {
            let localLive = lc % 2 == 1
            if ic % 2 == 0 {
                // A delete this replica has not applied yet.
                if localLive {
                    for (column, mine) in versions {
                        let theirs = incoming.cells.first { $0.column == column }?.version
                        if let t = theirs, t.knows(mine) { continue }
                        plan.lostLocal.append(.init(column: column, version: mine, winner: nil, kind: .deletedByPeer))
                    }
                    plan.action = .delete
                }
                for cell in incoming.cells {
                    if let mine = versions[cell.column], !policy.prefers(cell.version, over: mine) { continue }
                    versions[cell.column] = cell.version
                }
            } else {
                // A newer lifetime: the incoming cells are the whole row.
                if localLive {
                    for (column, mine) in versions {
                        if let t = incoming.cells.first(where: { $0.column == column })?.version, t.knows(mine) {
                            continue
                        }
                        plan.lostLocal.append(
                            .init(column: column, version: mine, winner: nil, kind: .replacedByReinsert))
                    }
                }
                versions = [:]
                for cell in incoming.cells { versions[cell.column] = cell.version }
                plan.adopt = incoming.cells
                plan.action = localLive ? .replace : .insert
            }
            plan.versions = versions
            plan.changesState = true
            return plan
        }

        // Same lifetime.
        if ic % 2 == 0 {
            for cell in incoming.cells {
                if let mine = versions[cell.column], mine == cell.version || !policy.prefers(cell.version, over: mine) {
                    continue
                }
                versions[cell.column] = cell.version
                plan.changesState = true
            }
            plan.versions = versions
            return plan
        }
        for cell in incoming.cells {
            guard let mine = versions[cell.column] else {
                plan.adopt.append(cell)
                versions[cell.column] = cell.version
                continue
            }
            if mine.id == cell.version.id { continue }
            let concurrent = CellVersion.areConcurrent(mine, cell.version)
            if policy.prefers(cell.version, over: mine) {
                plan.adopt.append(cell)
                versions[cell.column] = cell.version
                if concurrent {
                    plan.lostLocal.append(.init(column: cell.column, version: mine, winner: cell.version, kind: .concurrentEdit))
                }
            } else if concurrent {
                plan.lostIncoming.append(.init(cell: cell, winner: mine, kind: .concurrentEdit))
            }
        }
        if !plan.adopt.isEmpty {
            plan.action = .update
            plan.changesState = true
        }
        plan.versions = versions
        return plan
    }
}

extension ConflictKind {
    /// For a clerk or a supervisor reading Chinese.
    public var labelZh: String {
        switch self {
        case .concurrentEdit: return "同时修改"
        case .editOfDeletedRow: return "修改了已删除的记录"
        case .deletedByPeer: return "修改被对方删除"
        case .replacedByReinsert: return "修改被重新录入替换"
        case .superseded: return "已被后来的修改取代"
        }
    }
}

extension ConflictStatus {
    /// For a clerk or a supervisor reading Chinese.
    public var labelZh: String {
        switch self {
        case .overwritten: return "已被覆盖（可恢复）"
        case .held: return "待人工处理"
        case .resolved: return "已处理"
        case .restored: return "已恢复"
        case .history: return "历史记录"
        }
    }
}

extension ConflictPolicy {
    /// For a clerk or a supervisor reading Chinese.
    public var labelZh: String {
        switch self {
        case .lww: return "后改为准"
        case .supervisorWins: return "上级为准"
        case .appendOnly: return "只增不改"
        case .review: return "人工审核"
        }
    }
}
