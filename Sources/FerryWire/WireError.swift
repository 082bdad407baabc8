import FerryCore

/// The one JSON error shape every Ferry HTTP error has:
///
/// ```json
/// {"code": "out_of_scope", "message": "…", "message_zh": "…", "retryable": false}
/// ```
///
/// A refusal that says when to come back also carries `"retry_after": SECONDS`, which the
/// HTTP layer repeats as the `Retry-After` header.
///
/// This file is the only place wire codes meet domain errors.
public struct WireError: Codable, Sendable, Equatable, Error, CustomStringConvertible {
    public var code: WireErrorCode
    public var message: String
    public var messageZh: String
    public var retryable: Bool
    /// Seconds to wait before trying again, when the refusal knows (a throttled login); nil otherwise.
    public var retryAfterSeconds: Int?

    public init(_ code: WireErrorCode, _ message: String, zh: String? = nil, retryAfterSeconds: Int? = nil) {
        self.code = code
        self.message = message
        self.messageZh = zh ?? code.chineseSummary
        self.retryable = code.isRetryable
        self.retryAfterSeconds = retryAfterSeconds
    }

    public var httpStatus: Int { code.httpStatus }

    /// What was wrong with a JSON body, for its sender: the field and the problem, never
    /// a decoder's debug text.
    public static func describe(_ error: any Error) -> String {
        func path(_ c: DecodingError.Context) -> String { c.codingPath.map(\.stringValue).joined(separator: ".") }
        guard let e = error as? DecodingError else { return "the body is not valid" }
        switch e {
        case .keyNotFound(let k, let c): return "field '\((c.codingPath.map(\.stringValue) + [k.stringValue]).joined(separator: "."))' is missing"
        case .typeMismatch(_, let c), .valueNotFound(_, let c): return "field '\(path(c))' has the wrong type"
        case .dataCorrupted(let c): return c.codingPath.isEmpty ? "the body is not JSON" : "field '\(path(c))' is not valid"
        @unknown default: return "the body is not valid"
        }
    }
    public var description: String { "\(code.rawValue): \(message)" }

    enum CodingKeys: String, CodingKey {
        case code, message, retryable
        case messageZh = "message_zh"
        case retryAfterSeconds = "retry_after"
    }

    /// The wire form of a changeset that failed to decode or validate.
    public init(_ e: CoreError) {
        let code: WireErrorCode
        switch e.code {
        case .truncated: code = .truncated
        case .corrupted: code = .corrupted
        case .oversized: code = .tooLarge
        case .unsupportedFormat: code = .unsupportedFormat
        case .malformed: code = .malformed
        case .unknownTable, .unknownColumn: code = .unknownSchema
        case .wrongType, .notAllowed: code = .invalidValue
        case .outOfScope: code = .outOfScope
        case .notWritable: code = .notWritable
        case .standardMismatch: code = .standardMismatch
        case .invalidStandard: code = .malformed
        case .invalidNodeID: code = .malformed
        }
        self.init(code, e.message)
    }
}

/// Machine codes of `WireError`, with their HTTP status and whether a retry can succeed.
public enum WireErrorCode: String, Codable, Sendable, CaseIterable {
    case badRequest = "bad_request"
    case unknownNode = "unknown_node"
    case revoked
    case badSignature = "bad_signature"
    case staleRequest = "stale_request"
    case replayed
    case tokenInvalid = "token_invalid"
    case tokenExpired = "token_expired"
    case tokenUsed = "token_used"
    case truncated
    case corrupted
    case tooLarge = "too_large"
    case unsupportedFormat = "unsupported_format"
    case malformed
    case unknownSchema = "unknown_schema"
    case invalidValue = "invalid_value"
    case outOfScope = "out_of_scope"
    case notWritable = "not_writable"
    case standardMismatch = "standard_mismatch"
    case wrongOrigin = "wrong_origin"
    case overloaded
    /// Too many requests or failed logins from one address or for one account: wait for
    /// Retry-After (`retry_after`) seconds.
    case rateLimited = "rate_limited"
    case unavailable
    case notFound = "not_found"
    /// The path exists but not with this method (the response's Allow header lists those it has).
    case methodNotAllowed = "method_not_allowed"
    /// A supervisor's request without a valid login (dashboard and report API).
    case unauthenticated
    /// A supervisor asked about an org node outside the subtree their account covers.
    case forbidden
    case `internal`

    public var httpStatus: Int {
        switch self {
        case .badRequest, .truncated, .corrupted, .unsupportedFormat, .malformed, .wrongOrigin: return 400
        case .unknownNode, .badSignature, .staleRequest, .replayed, .tokenInvalid, .tokenExpired, .tokenUsed: return 401
        case .revoked, .forbidden: return 403
        case .unauthenticated: return 401
        case .notFound: return 404
        case .methodNotAllowed: return 405
        case .rateLimited: return 429
        case .tooLarge: return 413
        case .unknownSchema, .invalidValue, .outOfScope, .notWritable, .standardMismatch: return 422
        case .overloaded, .unavailable: return 503
        case .internal: return 500
        }
    }

    /// Transport damage and load are worth retrying; everything else needs a person.
    public var isRetryable: Bool {
        switch self {
        case .truncated, .corrupted, .overloaded, .rateLimited, .unavailable, .internal, .staleRequest, .replayed: return true
        default: return false
        }
    }

    public var chineseSummary: String {
        switch self {
        case .badRequest: return "请求格式不对，上级无法处理；请确认本机 Ferry 与上级版本一致，必要时升级"
        case .unknownNode: return "本节点尚未在上级登记，请使用一次性令牌执行 ferry node init"
        case .revoked: return "本节点已被上级停用，请联系上级管理员"
        case .badSignature: return "请求签名与本节点的密钥不符，上级未接收；如反复出现，请联系上级管理员核对本节点的登记"
        case .staleRequest: return "请求时间与上级时钟相差过大，已按上级时间校正后重试"
        case .replayed: return "重复的请求已被拒绝"
        case .tokenInvalid: return "登记令牌无效，请向上级索取新的令牌"
        case .tokenExpired: return "登记令牌已过期，请向上级索取新的令牌"
        case .tokenUsed: return "登记令牌已被使用，请向上级索取新的令牌"
        case .truncated: return "数据传输中断，将重新发送"
        case .corrupted: return "数据在传输中损坏，将重新发送"
        case .tooLarge: return "一次发送的数据超过上级允许的大小；请在配置中调小 sync.batch_bytes，或请上级调大 max_body_bytes"
        case .unsupportedFormat: return "数据格式版本不受支持，请升级 Ferry"
        case .malformed: return "发送的数据结构不完整或无法解析，上级未接收；将自动重新生成并发送，如反复出现请升级 Ferry"
        case .unknownSchema: return "数据中有上级数据标准里没有的表或字段；请先升级到上级发布的数据标准（下次同步时自动进行）"
        case .invalidValue: return "有数据的取值不符合数据标准，上级未接收；请按 ferry status 列出的原因修改后自动重发"
        case .outOfScope: return "数据不属于本单位，已全部拒收"
        case .notWritable: return "这些数据由上级维护，本单位不能修改；请撤销本机的修改，或请上级处理"
        case .standardMismatch: return "数据标准版本不一致，请先升级"
        case .wrongOrigin: return "数据记录的来源节点与发送它的节点不符，上级未接收；请联系上级管理员"
        case .overloaded: return "上级服务器繁忙，稍后自动重试"
        case .unavailable: return "上级服务器暂不可用，稍后自动重试"
        case .notFound: return "上级没有这个地址；请核对上级服务器地址（hub_url）"
        case .methodNotAllowed: return "该地址不支持此请求方法"
        case .rateLimited: return "请求或登录失败次数过多，请稍后再试"
        case .unauthenticated: return "请先登录（用户名或密码错误，或登录已过期）"
        case .forbidden: return "该机构不在本账号的管辖范围内"
        case .internal: return "上级服务器内部错误，稍后自动重试"
        }
    }
}
