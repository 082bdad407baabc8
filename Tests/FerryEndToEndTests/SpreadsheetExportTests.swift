import FerryHubServer
import FerryReports
import FerryTestSupport
import FerryTestTraits
import Foundation
import Testing

/// Cells of an RFC 4180 CSV document (CRLF rows, double-quoted fields), BOM dropped.
func csvCells(_ bytes: Data) -> [[String]] {
    var text = String(decoding: bytes, as: UTF8.self)
    if text.hasPrefix("\u{FEFF}") { text.removeFirst() }
    var rows: [[String]] = []
    var row: [String] = []
    var cell = ""
    var quoted = false
    var i = text.unicodeScalars.startIndex
    let s = text.unicodeScalars
    while i < s.endIndex {
        let c = s[i]
        if quoted {
            if c == "\"" {
                let next = s.index(after: i)
                if next < s.endIndex && s[next] == "\"" {
                    cell.unicodeScalars.append("\"")
                    i = next
                } else {
                    quoted = false
                }
            } else {
                cell.unicodeScalars.append(c)
            }
        } else if c == "\"" && cell.isEmpty {
            quoted = true
        } else if c == "," {
            row.append(cell)
            cell = ""
        } else if c == "\r" && s.index(after: i) < s.endIndex && s[s.index(after: i)] == "\n" {
            row.append(cell)
            rows.append(row)
            row = []
            cell = ""
            i = s.index(after: i)
        } else {
            cell.unicodeScalars.append(c)
        }
        i = s.index(after: i)
    }
    if !cell.isEmpty || !row.isEmpty { rows.append(row + [cell]) }
    return rows
}

/// The cells a spreadsheet would read as a formula: starting with = + - @, tab or CR, and
/// not a plain number.
func formulaCells(_ rows: [[String]]) -> [String] {
    rows.flatMap { $0 }.filter { cell in
        guard let first = cell.unicodeScalars.first, ["=", "+", "-", "@", "\t", "\r"].contains(first) else { return false }
        return Double(cell) == nil || cell.contains(where: { $0.isLetter })
    }
}

@Suite("Spreadsheet exports", .offThePool)
struct SpreadsheetExportTests {
    @Test("a CSV cell starting with = + - @, tab or carriage return gets a leading quote; plain numbers and ordinary text are kept")
    func formulaCellsAreNeutralised() {
        let bytes = ReportFormat.csv(
            ["=name", "value"],
            [["=HYPERLINK(\"http://x\",\"y\")", "+1", "-1+2", "@SUM(A1)", "\tx", "\rx", "-3", "-0.5", "12", "王芳", "a=b", "'=kept"]])
        let rows = csvCells(Data(bytes))
        #expect(rows[0] == ["'=name", "value"])
        #expect(rows[1] == ["'=HYPERLINK(\"http://x\",\"y\")", "+1", "'-1+2", "'@SUM(A1)", "'\tx", "'\rx", "-3", "-0.5", "12", "王芳", "a=b", "'=kept"])
        #expect(formulaCells(rows).isEmpty, "\(formulaCells(rows))")
    }

    @Test("ferry report --csv writes a unit's formula-like conflict and quarantine values as text")
    func reportCSVNeutralisesUnitValues() throws {
        let fixture = try UnitWrittenText()
        defer { fixture.remove() }
        for view in ["conflicts", "quarantine"] {
            let r = try runCommand(FerryBinary.path, ["report", "--dir", fixture.hubDir, "--view", view, "--csv", "--lang", "en"])
            #expect(r.status == 0, "\(r.stderr)")
            let rows = csvCells(Data(r.stdout.utf8))
            #expect(rows.count >= 2, "\(view): \(r.stdout)")
            #expect(formulaCells(rows).isEmpty, "\(view) exports live formulas: \(formulaCells(rows))")
            let unitValue = view == "conflicts" ? "'" + UnitWrittenText.hostileName : "'" + UnitWrittenText.hostileStatus
            #expect(rows.flatMap { $0 }.contains(unitValue), "\(view): the value is kept, as text: \(rows)")
        }
    }
}
