import FerryHubServer
import FerryTestSupport
import FerryTestTraits
import FerryWire
import Foundation
import Testing

@Suite("HTTP API specification", .offThePool)
struct RouteSpecTests {
    /// `METHOD /path` for every operation under `paths:` in protocol/openapi.yaml.
    static func specifiedRoutes() throws -> Set<String> {
        let text = try String(contentsOfFile: Repository.path("protocol/openapi.yaml"), encoding: .utf8)
        var routes = Set<String>()
        var inPaths = false
        var path: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("paths:") { inPaths = true; continue }
            guard inPaths else { continue }
            if !line.hasPrefix(" ") && !line.isEmpty { break }
            if line.hasPrefix("  /") { path = String(line.dropFirst(2).dropLast()) }
            for m in ["get", "post", "put", "delete", "patch"] where line == "    \(m):" {
                routes.insert("\(m.uppercased()) \(path!)")
            }
        }
        return routes
    }

    @Test("every route the hub serves is in openapi.yaml and vice versa")
    func routesMatchSpec() throws {
        #expect(Set(HubRoute.allCases.map(\.rawValue)) == (try Self.specifiedRoutes()))
    }

    @Test("every wire error code is in the spec's enum")
    func errorCodesMatchSpec() throws {
        let text = try String(contentsOfFile: Repository.path("protocol/openapi.yaml"), encoding: .utf8)
        for code in WireErrorCode.allCases { #expect(text.contains(code.rawValue), "\(code.rawValue)") }
    }
}
