import FerryCore
import FerryHub
import FerryReports
import FerryWire
import Foundation
import HTTPTypes
import Hummingbird

/// The dashboard's pages (HTML for people; the JSON and CSV API is in `HubRoute`).
public enum DashboardRoute: String, CaseIterable, Sendable, NamedRoute {
    case root = "GET /"
    /// The login form; `?ticket=` redeems a one-time login link instead.
    case loginPage = "GET /login"
    case login = "POST /login"
    case logout = "POST /logout"
    case indicators = "GET /dashboard"
    case units = "GET /dashboard/units"
    case conflicts = "GET /dashboard/conflicts"
    case resolveConflict = "POST /dashboard/conflicts"
    case quarantine = "GET /dashboard/quarantine"
    case resolveQuarantine = "POST /dashboard/quarantine"
}

/// Serves the supervisor's view: the report API (JSON, or CSV with `format=csv`) and the
/// dashboard. Supervisors authenticate with an account (`ferry hub admin add`): the API
/// takes `Authorization: Bearer TOKEN` from `POST /v1/admin/login`, the dashboard a
/// session cookie (HttpOnly, SameSite=Strict, and Secure over TLS) and a CSRF token in
/// every form. Failed logins are throttled per account and per client address
/// (`LoginThrottle`: 429 with Retry-After), and at most two passwords are checked at once.
struct SupervisorHTTP: Sendable {
    let view: SupervisorView
    var hub: Hub { view.hub }
    /// Whether the hub itself serves TLS: every cookie is then `Secure`. A request that
    /// came through a TLS-terminating proxy (`X-Forwarded-Proto: https`) gets `Secure`
    /// cookies either way.
    let secureCookies: Bool
    static let cookie = "ferry_session"
    /// How long a login waits for one of the two password checks before `overloaded`.
    static let passwordCheckWaitSeconds = 3.0

    init(view: SupervisorView, secureCookies: Bool = false) {
        self.view = view
        self.secureCookies = secureCookies
    }

    // MARK: Plumbing

    struct Input: Sendable {
        var query: [String: String]
        var form: [String: String]
        var body: [UInt8]
        var bearer: String?
        var cookie: String?
        var lang: ReportLanguage
        /// The client's address (see `ClientAddress.resolve`).
        var client: String?
        /// Whether the browser reached the dashboard over TLS, so cookies must be `Secure`.
        var secure: Bool
    }

    static func fields(_ text: String) -> [String: String] {
        var c = URLComponents()
        c.percentEncodedQuery = text.replacingOccurrences(of: "+", with: "%20")
        var out: [String: String] = [:]
        for item in c.queryItems ?? [] where out[item.name] == nil { out[item.name] = item.value ?? "" }
        return out
    }

    func input(_ request: Request, _ context: HubRequestContext) async -> Input {
        var request = request
        let body = (try? await request.collectBody(upTo: 64 * 1024)).map { Array($0.readableBytesView) } ?? []
        let query = Self.fields(request.uri.query ?? "")
        let isForm = request.headers[.contentType]?.hasPrefix("application/x-www-form-urlencoded") ?? false
        let form = isForm ? Self.fields(String(decoding: body, as: UTF8.self)) : [:]
        let auth = request.headers[.authorization]
        let bearer = auth.flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)).trimmingCharacters(in: .whitespaces) : nil }
        let cookie = request.cookies[Self.cookie]?.value
        let lang = ReportLanguage(query["lang"] ?? form["lang"] ?? request.cookies["ferry_lang"]?.value ?? "zh")
        let client = ClientAddress.resolve(
            peer: context.peerAddress, forwardedFor: request.headers[values: Self.forwardedFor], trustedProxies: hub.settings.trustedProxies)
        let secure = Self.cookiesSecure(hubServesTLS: secureCookies, forwardedProto: request.headers[Self.forwardedProto])
        return Input(query: query, form: form, body: body, bearer: bearer, cookie: cookie, lang: lang, client: client, secure: secure)
    }

    /// Whether the browser reached the dashboard over TLS: the hub's own, or a proxy's that
    /// says so with `X-Forwarded-Proto: https`. The header is believed from anyone: it can
    /// only make a cookie stricter (a browser on plain HTTP then drops it, its own loss).
    static func cookiesSecure(hubServesTLS: Bool, forwardedProto: String?) -> Bool {
        hubServesTLS || forwardedProto?.split(separator: ",").first?.trimmingCharacters(in: .whitespaces).lowercased() == "https"
    }

    static let forwardedFor = HTTPField.Name("X-Forwarded-For")!
    static let forwardedProto = HTTPField.Name("X-Forwarded-Proto")!

    /// A dashboard cookie: HttpOnly, Secure when the browser came over TLS.
    static func dashboardCookie(_ name: String, _ value: String, maxAge: Int, sameSite: Cookie.SameSite, secure: Bool) -> Cookie {
        Cookie(name: name, value: value, maxAge: maxAge, path: "/", secure: secure, httpOnly: true, sameSite: sameSite)
    }

    /// Logs `name` in from `client`: refused at once (429) while the throttle holds the
    /// account or address back, before any password is hashed; then one of the process's
    /// two password checks, waited for at most `passwordCheckWaitSeconds` (503 after).
    func login(name: String, password: String, client: String?) async throws(WireError) -> (token: String, session: AdminSession) {
        let hub = self.hub
        let lifetime = hub.settings.adminSessionSeconds
        try await offload { Result { () throws(WireError) in try hub.registry.admitLogin(name: name, client: client, now: hub.now()) } }.get()
        guard await HubRegistry.passwordChecks.enter(waitingAtMost: Self.passwordCheckWaitSeconds) else {
            throw WireError(
                .overloaded, "the hub is checking other logins; try again in a few seconds", zh: "上级服务器正在处理其他登录，请几秒后再试", retryAfterSeconds: 5)
        }
        let result = await offload {
            Result { () throws(WireError) in
                try hub.registry.login(name: name, password: password, client: client, now: hub.now(), lifetimeSeconds: lifetime)
            }
        }
        HubRegistry.passwordChecks.leave()
        return try result.get()
    }

    static func securityHeaders(_ h: inout HTTPFields) {
        // Nothing is loaded from anywhere but the page itself; no scripts at all.
        h[HTTPField.Name("Content-Security-Policy")!] = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'"
        h[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        h[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        h[.cacheControl] = "no-store"
    }

    static func html(_ text: String, status: HTTPResponse.Status = .ok, lang: ReportLanguage? = nil, secure: Bool = false, retryAfter: Int? = nil) -> Response {
        var h = HTTPFields()
        h[.contentType] = "text/html; charset=utf-8"
        securityHeaders(&h)
        if let retryAfter { h[.retryAfter] = String(retryAfter) }
        var r = Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(string: text)))
        if let lang { r.setCookie(dashboardCookie("ferry_lang", lang.rawValue, maxAge: 365 * 86_400, sameSite: .lax, secure: secure)) }
        return r
    }

    static func redirect(_ location: String) -> Response {
        var h = HTTPFields()
        h[.location] = location
        securityHeaders(&h)
        return Response(status: .seeOther, headers: h)
    }

    static func json<T: Encodable>(_ v: T) -> Response {
        var h = HTTPFields()
        h[.contentType] = WireMediaType.json
        securityHeaders(&h)
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.sortedKeys]
        return Response(status: .ok, headers: h, body: .init(byteBuffer: ByteBuffer(bytes: (try? e.encode(v)) ?? Data("{}".utf8))))
    }

    static func csv(_ table: (header: [String], rows: [[String]]), name: String) -> Response {
        var h = HTTPFields()
        h[.contentType] = "text/csv; charset=utf-8"
        h[.contentDisposition] = "attachment; filename=\"\(name).csv\""
        securityHeaders(&h)
        return Response(status: .ok, headers: h, body: .init(byteBuffer: ByteBuffer(bytes: ReportFormat.csv(table.header, table.rows))))
    }

    static func failure(_ e: WireError, lang: ReportLanguage = .en) -> Response {
        var h = HTTPFields()
        h[.contentType] = WireMediaType.json
        securityHeaders(&h)
        if e.code == .unauthenticated { h[.wwwAuthenticate] = "Bearer realm=\"ferry-hub\"" }
        if let seconds = e.retryAfterSeconds { h[.retryAfter] = String(seconds) }
        return Response(status: .init(code: e.httpStatus), headers: h, body: .init(byteBuffer: ByteBuffer(bytes: (try? JSONEncoder().encode(e)) ?? Data())))
    }

    func session(_ input: Input, allowCookie: Bool) -> AdminSession? {
        let now = hub.now()
        if let t = input.bearer, let s = hub.registry.session(token: t, now: now) { return s }
        if allowCookie, let t = input.cookie, let s = hub.registry.session(token: t, now: now) { return s }
        return nil
    }

    // MARK: API

    func api(_ route: HubRoute, _ request: Request, _ context: HubRequestContext) async -> Response {
        let input = await input(request, context)
        let view = self.view
        if route == .adminLogin {
            struct Login: Decodable {
                var name: String
                var password: String
            }
            struct Token: Encodable {
                var token: String
                var expiresAt: UInt64
                var org: String
            }
            do throws(WireError) {
                let body: Login
                do { body = try JSONDecoder().decode(Login.self, from: Data(input.body)) } catch {
                    throw WireError(.badRequest, "send JSON {\"name\": …, \"password\": …}")
                }
                let (token, s) = try await login(name: body.name, password: body.password, client: input.client)
                return Self.json(Token(token: token, expiresAt: s.expiresAt, org: s.account.orgID))
            } catch { return Self.failure(error) }
        }
        // GETs accept the dashboard's cookie (for CSV links); changes need the bearer token.
        // The session lookup reads the registry: off the event loop, like every database read.
        let allowCookie = route.method == "GET"
        guard let session = await offload({ self.session(input, allowCookie: allowCookie) }) else {
            return Self.failure(WireError(.unauthenticated, "log in first: POST /v1/admin/login, then send Authorization: Bearer TOKEN"))
        }
        let root = session.account.orgID
        let q = input.query
        let csv = q["format"] == "csv"
        let l = input.lang
        return await offload {
            do throws(WireError) {
                switch route {
                case .reportIndicators:
                    let r = try view.report(org: q["org"], root: root, at: q["at"].flatMap { $0.isEmpty ? nil : $0 }, industry: q["industry"].flatMap { $0.isEmpty ? nil : $0 })
                    guard csv else { return Self.json(r) }
                    switch q["table"] {
                    case "children": return Self.csv(ReportTables.breakdown(r.children, r, l), name: "children-\(r.org.id)-\(r.at)")
                    case "industries": return Self.csv(ReportTables.breakdown(r.industries, r, l), name: "industries-\(r.org.id)-\(r.at)")
                    default: return Self.csv(ReportTables.indicators(r, l), name: "indicators-\(r.org.id)-\(r.at)")
                    }
                case .reportFreshness:
                    let f = try view.freshness(org: q["org"], root: root)
                    return csv ? Self.csv(ReportTables.freshness(f, l), name: "freshness-\(q["org"] ?? root)") : Self.json(f)
                case .reportConflicts:
                    let c = try view.conflicts(org: q["org"], root: root)
                    return csv ? Self.csv(ReportTables.conflicts(c, l), name: "conflicts-\(q["org"] ?? root)") : Self.json(c)
                case .reportQuarantine:
                    let c = try view.quarantine(org: q["org"], root: root)
                    return csv ? Self.csv(ReportTables.quarantine(c, l), name: "quarantine-\(q["org"] ?? root)") : Self.json(c)
                case .resolveConflict, .resolveQuarantine:
                    struct Decision: Decodable {
                        var id: Int64
                        var action: String
                        var value: String?
                    }
                    let d: Decision
                    do { d = try JSONDecoder().decode(Decision.self, from: Data(input.body)) } catch {
                        throw WireError(.badRequest, "send JSON {\"id\": N, \"action\": …, \"value\": …}")
                    }
                    try Self.decide(view, route == .resolveConflict, id: d.id, action: d.action, value: d.value, admin: session.account.name, root: root)
                    return Self.json(["status": "resolved"])
                default:
                    throw WireError(.notFound, "no such report route")
                }
            } catch { return Self.failure(error, lang: l) }
        }
    }

    static func decide(_ view: SupervisorView, _ conflict: Bool, id: Int64, action: String, value: String?, admin: String, root: String) throws(WireError) {
        if conflict {
            let resolution: ConflictResolution
            switch action {
            case "keep": resolution = .keep
            case "take_other": resolution = .takeOther
            case "edit":
                guard let value else { throw WireError(.badRequest, "action 'edit' needs a value", zh: "改为新值时须填写新值") }
                resolution = .edit(value)
            default: throw WireError(.badRequest, "action must be keep, take_other or edit")
            }
            try view.resolve(conflict: id, resolution, admin: admin, root: root)
        } else {
            switch action {
            case "discard": try view.settleQuarantine(id, correction: nil, admin: admin, root: root)
            case "correct":
                guard let value, !value.isEmpty else { throw WireError(.badRequest, "action 'correct' needs a value", zh: "更正入库时须填写更正值") }
                try view.settleQuarantine(id, correction: value, admin: admin, root: root)
            default: throw WireError(.badRequest, "action must be correct or discard")
            }
        }
    }

    // MARK: Dashboard

    func dashboard(_ route: DashboardRoute, _ request: Request, _ context: HubRequestContext) async -> Response {
        let input = await input(request, context)
        let view = self.view
        let hub = self.hub
        let l = input.lang
        let lifetime = hub.settings.adminSessionSeconds
        @Sendable func withSession(_ r: Response, token: String) -> Response {
            var r = r
            r.setCookie(Self.dashboardCookie(Self.cookie, token, maxAge: Int(lifetime), sameSite: .strict, secure: input.secure))
            return r
        }
        switch route {
        case .root:
            return Self.redirect("/dashboard")
        case .loginPage:
            if let ticket = input.query["ticket"] {
                return await offload {
                    do throws(WireError) {
                        let (token, _) = try hub.registry.redeem(ticket: ticket, client: input.client, now: hub.now(), lifetimeSeconds: lifetime)
                        // Only pages of the dashboard itself: a link must not send anyone elsewhere.
                        let next = input.query["next"].flatMap { $0.hasPrefix("/dashboard") && !$0.contains("//") ? $0 : nil }
                        return withSession(Self.redirect(next ?? "/dashboard"), token: token)
                    } catch { return Self.html(DashboardPage.login(lang: l, error: l.t(error.messageZh, error.message)), status: .unauthorized) }
                }
            }
            return Self.html(DashboardPage.login(lang: l, error: nil), lang: input.query["lang"] == nil ? nil : l, secure: input.secure)
        case .login:
            do throws(WireError) {
                let (token, _) = try await login(name: input.form["name"] ?? "", password: input.form["password"] ?? "", client: input.client)
                return withSession(Self.redirect("/dashboard"), token: token)
            } catch {
                switch error.code {
                case .rateLimited, .overloaded:
                    // Whoever is locked out may not read the page's language: both, Chinese first.
                    return Self.html(
                        DashboardPage.login(lang: l, error: error.messageZh, alsoEnglish: error.message),
                        status: .init(code: error.httpStatus), retryAfter: error.retryAfterSeconds)
                default:
                    return Self.html(DashboardPage.login(lang: l, error: l.t(error.messageZh, error.message)), status: .unauthorized)
                }
            }
        case .logout:
            await offload {
                if let s = self.session(input, allowCookie: true), input.form["csrf"] == s.csrfToken, let t = input.cookie { hub.registry.logout(token: t) }
            }
            var r = Self.redirect("/login")
            r.setCookie(Self.dashboardCookie(Self.cookie, "", maxAge: 0, sameSite: .strict, secure: input.secure))
            return r
        default: break
        }
        guard let session = await offload({ self.session(input, allowCookie: true) }) else { return Self.redirect("/login") }
        let root = session.account.orgID
        let org = input.query["org"] ?? input.form["org"] ?? root
        return await offload {
            let tree: OrgTree
            do { tree = try view.tree() } catch { return Self.html("<p>\(ReportFormat.html("\(error)"))</p>", status: .serviceUnavailable) }
            let chrome = DashboardPage.Chrome(lang: l, account: session.account, csrf: session.csrfToken, title: "Ferry", root: root, hubNode: hub.nodeID.rawValue)
            do throws(WireError) {
                switch route {
                case .indicators:
                    let at = input.query["at"].flatMap { $0.isEmpty ? nil : $0 }
                    let r = try view.report(org: org, root: root, at: at, industry: input.query["industry"].flatMap { $0.isEmpty ? nil : $0 })
                    var c = chrome
                    c.title = "\(r.org.name) · Ferry"
                    return Self.html(
                        DashboardPage.page(c, tree: tree, org: org, at: at, main: DashboardPage.indicators(r, chrome: c)),
                        lang: input.query["lang"] == nil ? nil : l, secure: input.secure)
                case .units:
                    let f = try view.freshness(org: org, root: root)
                    let (node, path) = Self.place(org, root, tree)
                    return Self.html(DashboardPage.page(chrome, tree: tree, org: org, at: nil, main: DashboardPage.units(f, org: node, path: path, silentAfterDays: view.silentAfterDays, chrome: chrome)))
                case .conflicts, .quarantine:
                    let (node, path) = Self.place(org, root, tree)
                    let main = route == .conflicts
                        ? DashboardPage.conflicts(try view.conflicts(org: org, root: root), org: node, path: path, chrome: chrome)
                        : DashboardPage.quarantine(try view.quarantine(org: org, root: root), org: node, path: path, chrome: chrome)
                    return Self.html(DashboardPage.page(chrome, tree: tree, org: org, at: nil, main: main))
                case .resolveConflict, .resolveQuarantine:
                    guard input.form["csrf"] == session.csrfToken else {
                        throw WireError(.forbidden, "the form is stale or came from another site; reload the page and try again", zh: "表单已过期或来自其他网站，请刷新页面后重试")
                    }
                    guard let id = input.form["id"].flatMap(Int64.init) else { throw WireError(.badRequest, "the form lacks the item id") }
                    let value = input.form["value"].flatMap { $0.isEmpty ? nil : $0 }
                    do throws(WireError) {
                        try Self.decide(view, route == .resolveConflict, id: id, action: input.form["action"] ?? "", value: value, admin: session.account.name, root: root)
                    } catch where error.code != .forbidden {
                        // Refused (a value the standard does not allow, a masked column): the
                        // same list again, the reason above it and the typed value kept.
                        let refused = DashboardPage.Refusal(id: id, value: value, message: l.t(error.messageZh, error.message))
                        let (node, path) = Self.place(org, root, tree)
                        let main = route == .resolveConflict
                            ? DashboardPage.conflicts(try view.conflicts(org: org, root: root), org: node, path: path, chrome: chrome, refused: refused)
                            : DashboardPage.quarantine(try view.quarantine(org: org, root: root), org: node, path: path, chrome: chrome, refused: refused)
                        return Self.html(DashboardPage.page(chrome, tree: tree, org: org, at: nil, main: main), status: .init(code: error.httpStatus))
                    }
                    return Self.redirect(route == .resolveConflict ? "/dashboard/conflicts?org=\(org)" : "/dashboard/quarantine?org=\(org)")
                default:
                    throw WireError(.notFound, "no such page")
                }
            } catch {
                let status: HTTPResponse.Status = .init(code: error.httpStatus)
                return Self.html(DashboardPage.error(l.t(error.messageZh, error.message), chrome: chrome, tree: tree, org: tree[org] == nil ? root : org), status: status)
            }
        }
    }

    static func place(_ org: String, _ root: String, _ tree: OrgTree) -> (OrgUnit, [OrgUnit]) {
        let path = Array(tree.path(to: org).reversed()).drop { $0.id != root }
        return (path.last ?? OrgUnit(id: org, name: org, parentID: nil, level: .unit), Array(path))
    }
}
