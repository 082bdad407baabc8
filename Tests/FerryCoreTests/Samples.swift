import FerryCore
import FerryTestSupport

enum Samples {
    static let nodeA = NodeID(unchecked: "node-a1")
    static let hub = NodeID(unchecked: "hub")
    static let t0 = HLCTimestamp(physicalMillis: 1_767_225_600_000, counter: 0)

    static func version(_ gen: UInt32 = 1, _ clock: HLCTimestamp = t0, _ origin: NodeID = nodeA, seen: [VersionID] = []) -> CellVersion {
        CellVersion(
            generation: gen, supervisorGeneration: origin == hub ? 1 : 0, clock: clock, origin: origin,
            authority: origin == hub ? .supervisor : .unit, seen: seen)
    }

    /// A unit's batch with what format 2 added: a default scope, a version that has seen two
    /// other writers, a row sent whole for repair, and a hub row leaving the scope.
    static var wholeAndLeave: Changeset {
        let v = version()
        let nodeB = NodeID(unchecked: "node-b2")
        let t1 = HLCTimestamp(physicalMillis: 1_767_225_602_000, counter: 1)
        let seenTwo = CellVersion(
            generation: 3, supervisorGeneration: 1, clock: t1, origin: nodeA,
            seen: [VersionID(clock: HLCTimestamp(physicalMillis: 1_767_225_601_000, counter: 3), origin: hub), VersionID(clock: t0, origin: nodeB)])
        return Changeset(
            origin: nodeA, standardVersion: StandardVersion(1, 2, 0), batch: BatchPosition(sequence: 9, through: 120, isFinal: false),
            tables: [
                TableChanges(
                    name: "member",
                    rows: [
                        RowChange(
                            key: [.text("m1")], scope: "u-a", causalLength: 3,
                            cells: [CellChange(column: "name", value: .text("李四"), version: seenTwo), CellChange(column: "note", value: .null, version: v)],
                            flags: [.whole, .repair]),
                        RowChange(key: [.text("m3")], scope: "u-a", causalLength: 1, cells: [CellChange(column: "name", value: .text("王五"), version: v)]),
                    ]),
                TableChanges(name: "directive", rows: [RowChange(key: [.text("d7")], scope: nil, causalLength: 1, cells: [], flags: .leave)]),
            ])
    }

    /// A changeset touching the test standard's member, attendance and a deleted row.
    static var changeset: Changeset {
        let v = version()
        let later = version(2, HLCTimestamp(physicalMillis: 1_767_225_601_000, counter: 3), hub, seen: [v.id])
        return Changeset(
            origin: nodeA, standardVersion: StandardVersion(1, 0, 0),
            batch: BatchPosition(sequence: 3, through: 42, isFinal: true),
            tables: [
                TableChanges(
                    name: "member",
                    rows: [
                        RowChange(
                            key: [.text("m1")], scope: "u-a", causalLength: 1,
                            cells: [
                                CellChange(column: "id", value: .text("m1"), version: v),
                                CellChange(column: "unit_id", value: .text("u-a"), version: v),
                                CellChange(column: "name", value: .text("张三"), version: later),
                                CellChange(column: "phone", value: .text("*******5678"), version: v),
                                CellChange(column: "note", value: .null, version: v),
                            ]),
                        RowChange(
                            key: [.text("m2")], scope: "u-a", causalLength: 2,
                            cells: [CellChange(column: "name", value: nil, version: v)]),
                    ]),
                TableChanges(
                    name: "attendance",
                    rows: [
                        RowChange(
                            key: [.text("mt1"), .text("m1")], scope: "u-a", causalLength: 1,
                            cells: [
                                CellChange(column: "meeting_id", value: .text("mt1"), version: v),
                                CellChange(column: "member_id", value: .text("m1"), version: v),
                                CellChange(column: "unit_id", value: .text("u-a"), version: v),
                                CellChange(column: "present", value: .integer(1), version: v),
                            ])
                    ]),
                TableChanges(
                    name: "evaluation",
                    rows: [
                        RowChange(
                            key: [.text("e1")], scope: "u-a", causalLength: 1,
                            cells: [CellChange(column: "year", value: .integer(2025), version: v)])
                    ]),
            ])
    }
}
