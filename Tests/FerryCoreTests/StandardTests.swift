import FerryCore
import FerryStandardFile
import FerryTestSupport
import FerryTestTraits
import Testing

@Suite("Standard files", .offThePool)
struct StandardTests {
    @Test("the test standard loads")
    func testStandardLoads() throws {
        let s = try Repository.testStandard()
        #expect(s.version == StandardVersion(1, 0, 0))
        #expect(s.table(named: "member")?.column(named: "phone")?.classification == .masked(.keepLast(4)))
        #expect(s.table(named: "attendance")?.primaryKey == ["meeting_id", "member_id"])
    }

    static let base = """
        name = "x"
        version = "1.0.0"
        [[table]]
        name = "member"
        ownership = "unit"
        scope = "unit_id"
        primary_key = ["id"]
          [[table.column]]
          name = "id"
          type = "text"
          nullable = false
          [[table.column]]
          name = "unit_id"
          type = "text"
          nullable = false
        """

    @Test(
        "a malformed standard fails naming the file, table, column and problem",
        arguments: [
            ("  [[table.column]]\n  name = \"age\"\n  type = \"number\"", "table 'member', column 'age': type 'number'"),
            ("  [[table.column]]\n  name = \"x\"\n  type = \"text\"\n  nulable = false", "column 'x': unknown key 'nulable'"),
            ("  [[table.column]]\n  name = \"card\"\n  type = \"text\"\n  nullable = false\n  classification = \"local\"", "'card' is local"),
            ("  [[table.column]]\n  name = \"s\"\n  type = \"text\"\n  allowed = [1, 2]", "column 's': an entry of 'allowed' must be a string"),
            ("[[table]]\nname = \"member\"\nownership = \"hub\"\nprimary_key = [\"id\"]\n  [[table.column]]\n  name = \"id\"\n  type = \"text\"\n  nullable = false", "defined twice"),
            ("[[table]]\nname = \"t\"\nownership = \"hub\"\npolicy = \"newest\"\nprimary_key = [\"id\"]", "policy 'newest'"),
        ])
    func malformedStandardsFailClearly(extra: String, expected: String) {
        do {
            _ = try StandardFile.parse(Self.base + "\n" + extra, file: "bad.toml")
            Issue.record("accepted a malformed standard")
        } catch {
            let text = "\(error)"
            #expect(text.hasPrefix("bad.toml: "), "\(text)")
            #expect(text.contains(expected), "\(text)")
        }
    }

    @Test("a TOML syntax error names the line")
    func syntaxErrorNamesLine() {
        #expect {
            try StandardFile.parse("name = \"x\"\nversion = ", file: "s.toml")
        } throws: { "\($0)".contains("s.toml: line 2") }
    }
}

@Suite("Changeset validation", .offThePool)
struct ValidationTests {
    @Test("validation names what is wrong", arguments: [
        ("unknown table", CoreError.Code.unknownTable),
        ("unknown column", .unknownColumn),
        ("wrong type", .wrongType),
        ("not allowed", .notAllowed),
        ("out of scope", .outOfScope),
        ("hub table from unit", .notWritable),
        ("local column", .notWritable),
    ])
    func validationErrors(kind: String, code: CoreError.Code) throws {
        let s = try Repository.testStandard()
        var cs = Samples.changeset
        let v = Samples.version()
        switch kind {
        case "unknown table": cs.tables[0].name = "members"
        case "unknown column": cs.tables[0].rows[0].cells[2].column = "nmae"
        case "wrong type": cs.tables[2].rows[0].cells[0].value = .text("2025")
        case "not allowed": cs.tables[0].rows[0].cells.append(CellChange(column: "status", value: .text("expelled"), version: v))
        case "out of scope": cs.tables[0].rows[0].scope = "u-b"
        case "hub table from unit": cs.tables.append(TableChanges(name: "org", rows: []))
        default: cs.tables[0].rows[0].cells.append(CellChange(column: "id_card", value: .text("1101"), version: v))
        }
        #expect {
            try cs.validate(against: s, sender: .unit("u-a"))
        } throws: { ($0 as? CoreError)?.code == code }
    }
}

@Suite("Standard evolution", .offThePool)
struct StandardEvolutionTests {
    @Test("a changeset restricted to an older standard carries no table or column it lacks")
    func restrictedDropsUnknownColumns() throws {
        let old = try Repository.testStandard()
        var cs = Samples.changeset
        let v = Samples.version()
        cs.tables[0].rows[0].cells.append(CellChange(column: "education", value: .text("phd"), version: v))
        cs.tables.append(TableChanges(name: "project", rows: [RowChange(key: [.text("p1")], scope: "u-a", causalLength: 1, cells: [CellChange(column: "id", value: .text("p1"), version: v)])]))
        let r = cs.restricted(to: old)
        #expect(r.tables.map(\.name) == ["member", "attendance", "evaluation"])
        #expect(!r.tables[0].rows[0].cells.contains { $0.column == "education" })
        try r.validate(against: old, sender: .unit("u-a"))
    }

    @Test("additions are compatible; removals, narrowing and retyping are not")
    func compatibility() throws {
        let old = try Repository.testStandard()
        var tables = old.tables
        tables[1].columns.append(ColumnDefinition(name: "education", type: .text))
        tables[1].columns[3].allowedValues?.append(.text("retired"))
        let added = try Standard(name: old.name, version: StandardVersion(1, 1, 0), tables: tables)
        #expect(StandardEvolution.incompatibilities(from: old, to: added).isEmpty)
        var broken = old.tables
        broken[1].columns[3].allowedValues = [.text("full")]
        broken[2].columns[3].type = .text
        broken[2].columns[3].minimum = nil
        broken[2].columns[3].maximum = nil
        broken.remove(at: 4)
        let bad = try Standard(name: old.name, version: StandardVersion(1, 1, 0), tables: broken)
        let problems = StandardEvolution.incompatibilities(from: old, to: bad).map(\.description)
        #expect(problems.contains { $0.contains("member") && $0.contains("allowed values") })
        #expect(problems.contains { $0.contains("evaluation") && $0.contains("type changed") })
        #expect(problems.contains { $0.contains("attendance") && $0.contains("removed") })
    }
}

@Suite("The party-building standard", .offThePool)
struct PartyBuildingStandardTests {
    @Test("the built-in standard loads with its indicators, module and references")
    func builtInLoads() throws {
        let s = try StandardFile.builtIn()
        #expect(s.name == "party-building")
        #expect(s.indicators.count >= 9)
        #expect(s.table(named: "research_project")?.module == "research")
        #expect(s.table(named: "attendance")?.column(named: "member_id")?.references == ColumnReference(table: "member", column: "id"))
        #expect(s.table(named: "member")?.column(named: "id_card_number")?.classification == .local)
        for t in s.tables { #expect(t.label != nil, "table \(t.name) has a bilingual label") }
    }

    @Test("an indicator naming a missing column, or a table in an undefined module, is refused", arguments: [
        ("[[indicator]]\nid = \"x\"\nnumerator = { table = \"member\", sum = \"age\" }", "indicator 'x': numerator sums 'member.age'"),
        ("[[indicator]]\nid = \"x\"\nnumerator = { table = \"member\", filter = { status = [\"gone\"] } }", "never hold"),
        ("[[table]]\nname = \"p\"\nownership = \"hub\"\nmodule = \"space\"\nprimary_key = [\"id\"]\n  [[table.column]]\n  name = \"id\"\n  type = \"text\"\n  nullable = false", "module 'space' is not defined"),
    ])
    func badDefinitionsRefused(extra: String, expected: String) throws {
        let base = try String(contentsOfFile: Repository.path("Tests/Fixtures/test-standard.toml"), encoding: .utf8)
        #expect {
            try StandardFile.parse(base + "\n" + extra, file: "s.toml")
        } throws: { "\($0)".contains(expected) }
    }
}

@Suite("Typed values", .offThePool)
struct TypedValueTests {
    func typed(_ c: ColumnDefinition, _ text: String) -> Value? { try? c.value(typed: text).get() }

    @Test("one parser reads what a clerk or a supervisor types, by the column's type and checks")
    func typedTextBecomesAValue() {
        let count = ColumnDefinition(name: "n", type: .integer, nullable: false, minimum: 0, maximum: 10)
        #expect(typed(count, " 7 ") == .integer(7))
        #expect(typed(count, "11") == nil && typed(count, "seven") == nil && typed(count, "NULL") == nil)
        let flag = ColumnDefinition(name: "f", type: .boolean)
        #expect(typed(flag, "是") == .integer(1) && typed(flag, "否") == .integer(0) && typed(flag, "TRUE") == .integer(1) && typed(flag, "") == .null)
        #expect(typed(flag, "maybe") == nil)
        let hours = ColumnDefinition(name: "h", type: .real)
        #expect(typed(hours, "1.5") == .real(1.5) && typed(hours, "inf") == nil && typed(hours, "nan") == nil)
        let status = ColumnDefinition(name: "s", type: .text, nullable: false, allowedValues: [.text("full"), .text("probationary")])
        #expect(typed(status, "full") == .text("full") && typed(status, "retired") == nil)
        if case .failure(let p) = status.value(typed: "retired") { #expect(p.chinese.contains("不是允许的取值")) } else { Issue.record("retired was accepted") }
        let note = ColumnDefinition(name: "t", type: .text)
        #expect(typed(note, "") == .text("") && typed(note, " a ") == .text(" a ") && typed(note, "NULL") == .null)
        let day = ColumnDefinition(name: "d", type: .date)
        #expect(typed(day, "2026-02-28") == .text("2026-02-28") && typed(day, "2026-02-30") == nil)
        #expect(typed(ColumnDefinition(name: "b", type: .blob), "abc") == nil)
    }
}
