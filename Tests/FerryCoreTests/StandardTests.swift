import FerryCore
import FerryStandardFile
import FerryTestSupport
import Testing

@Suite("Standard files")
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

@Suite("Changeset validation")
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
