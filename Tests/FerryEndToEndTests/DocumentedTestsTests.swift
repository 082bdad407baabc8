import FerryTestSupport
import FerryTestTraits
import Foundation
import Testing

/// protocol/INVARIANTS.md and protocol/SECURITY.md prove each claim by naming a test; this
/// keeps the names true. A claim whose test was renamed or removed fails here.
@Suite("The documents name tests that exist", .offThePool)
struct DocumentedTestsTests {
    /// Every test type in Tests/ and the functions declared in the files that declare it.
    static func testTypes() throws -> [String: Set<String>] {
        var types: [String: Set<String>] = [:]
        let root = Repository.path("Tests")
        let files = FileManager.default.enumerator(atPath: root)?.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") } ?? []
        let typePattern = try Regex(#"^(?:@Suite[^\n]*\n)?(?:final )?(?:struct|class|enum) ([A-Z][A-Za-z0-9]*)"#).anchorsMatchLineEndings()
        let funcPattern = try Regex(#"func ([a-z][A-Za-z0-9]*)\("#)
        for file in files {
            let text = try String(contentsOfFile: "\(root)/\(file)", encoding: .utf8)
            let functions = Set(text.matches(of: funcPattern).map { String($0.output[1].substring ?? "") })
            for m in text.matches(of: typePattern) {
                types[String(m.output[1].substring ?? ""), default: []].formUnion(functions)
            }
        }
        return types
    }

    /// The test names a document cites: `Type`, `Type.function`, and `.function` after a
    /// `Type` in the same paragraph.
    static func citations(_ document: String) throws -> [(String, String?)] {
        let text = try String(contentsOfFile: Repository.path(document), encoding: .utf8)
        var out: [(String, String?)] = []
        for paragraph in text.components(separatedBy: "\n\n") {
            var last: String?
            for m in paragraph.matches(of: try Regex(#"`([A-Za-z.]+)`"#)) {
                let token = String(m.output[1].substring ?? "")
                if token.hasPrefix("."), let type = last, token.dropFirst().first?.isLowercase == true {
                    out.append((type, String(token.dropFirst())))
                    continue
                }
                let parts = token.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
                guard let type = parts.first, type.hasSuffix("Tests"), parts.count <= 2 else { continue }
                last = type
                out.append((type, parts.count == 2 ? parts[1] : nil))
            }
        }
        return out
    }

    @Test("every test that protocol/INVARIANTS.md and protocol/SECURITY.md name exists", arguments: ["protocol/INVARIANTS.md", "protocol/SECURITY.md"])
    func namedTestsExist(document: String) throws {
        let types = try Self.testTypes()
        let cited = try Self.citations(document)
        #expect(cited.count > 20, "\(document) names only \(cited.count) tests")
        for (type, function) in cited {
            guard let functions = types[type] else {
                Issue.record("\(document) names \(type), which is not a test type in Tests/")
                continue
            }
            if let function, !functions.contains(function) {
                Issue.record("\(document) names \(type).\(function), which \(type)'s files do not declare")
            }
        }
    }
}
