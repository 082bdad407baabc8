internal import CCurl
import Foundation
import Synchronization

/// An HTTP response: status, headers and the whole body.
public struct HTTPResponse: Sendable {
    /// The status code, e.g. 200. HTTP error statuses arrive here, not as errors.
    public var status: Int
    /// Header names lowercased; a header sent more than once has its values joined by ", ".
    public var headers: [String: String]
    /// The body as the peer sent it: never decompressed, whatever its Content-Encoding.
    public var body: [UInt8]

    public init(status: Int, headers: [String: String], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// A blocking HTTP client over libcurl that keeps its connection open between requests.
///
/// One libcurl easy handle, so one request at a time: a `send` waits for the one before it.
/// `send` blocks its thread for up to `totalTimeoutSeconds`; call it from a thread of its
/// own, not from the cooperative pool. Make one client per peer so the connection to it is
/// reused.
///
/// The client adds no Accept-Encoding and decodes no Content-Encoding: the caller
/// negotiates compression. It sends `Expect:` (empty) so a body goes out at once rather
/// than after a 100-continue round trip, unless the caller sets Expect itself; and when a
/// body has no Content-Type from the caller, it sends none rather than libcurl's form one.
/// Redirects are not followed.
///
///     let client = try HTTPClient(configuration: HTTPClientConfiguration())
///     let response = try client.send(method: "POST", url: "https://hub.example/v1/push",
///                                    headers: [("Content-Type", "application/octet-stream")], body: bytes)
public final class HTTPClient: Sendable {
    public let configuration: HTTPClientConfiguration
    private let easy: Mutex<EasyHandle>

    /// libcurl's version and backends, e.g. "libcurl/7.88.1 OpenSSL/3.0.15 zlib/1.2.13".
    public static var libcurlVersion: String { String(cString: ferry_curl_version()) }

    /// Validates `configuration` and opens a libcurl handle; no connection is made yet.
    public init(configuration: HTTPClientConfiguration = HTTPClientConfiguration()) throws(HTTPClientError) {
        try configuration.validate()
        guard LibcurlGlobal.initialized, let handle = EasyHandle() else {
            throw HTTPClientError(
                kind: .other, message: "could not initialise libcurl (\(Self.libcurlVersion)); check the libcurl installation",
                messageZh: "无法初始化 libcurl（\(Self.libcurlVersion)）；请检查 libcurl 的安装", isRetryable: false)
        }
        self.configuration = configuration
        self.easy = Mutex(handle)
    }

    /// Sends one request and waits for the whole response.
    ///
    /// - Parameters:
    ///   - method: `GET`, `POST`, `PUT`, `DELETE`, `HEAD`…; a body goes with any method but
    ///     GET and HEAD, as Content-Length bytes.
    ///   - url: An `http://` or `https://` URL.
    ///   - headers: Sent in order. An empty value sends no such header and drops libcurl's
    ///     own: `("Expect", "")`, `("Accept", "")`.
    ///   - body: The request body; for POST, PUT and PATCH an empty body is sent as
    ///     Content-Length: 0.
    ///   - resendsOnDeadConnection: libcurl sends a request again by itself, whole, on a fresh
    ///     connection when a reused one turns out dead before any answer. For a body the
    ///     caller resumes after a cut (it asks the peer what arrived) that silent second copy
    ///     is wasted bytes; with false the cut is reported instead.
    /// - Throws: `HTTPClientError` when no response arrived; never for an HTTP status.
    public func send(
        method: String, url: String, headers: [(String, String)] = [], body: [UInt8] = [], resendsOnDeadConnection: Bool = true
    ) throws(HTTPClientError) -> HTTPResponse {
        var request = try Request(method: method, url: url, headers: headers, body: body)
        request.rewindable = resendsOnDeadConnection
        let configuration = configuration
        return try easy.withLock { (easy: inout EasyHandle) throws(HTTPClientError) -> HTTPResponse in
            try easy.perform(request, configuration: configuration)
        }
    }
}

/// curl_global_init must run once before any handle, and is not safe to race.
private enum LibcurlGlobal {
    static let initialized: Bool = ferry_curl_global_init() == CURLE_OK
}

/// A request checked for what libcurl would send verbatim or cut short: line breaks and
/// NULs in the method, URL or headers.
private struct Request {
    var method: String
    var url: String
    var headerLines: [String]
    var body: [UInt8]
    var sendsBody: Bool
    /// Whether libcurl may send the body again by itself (see `HTTPClient.send`).
    var rewindable = true

    init(method: String, url: String, headers: [(String, String)], body: [UInt8]) throws(HTTPClientError) {
        guard !method.isEmpty, method.utf8.allSatisfy({ Self.isTokenByte($0) }) else {
            throw .invalidRequest("HTTP method \"\(method)\" is not a valid method name", zh: "HTTP 方法 \"\(method)\" 无效")
        }
        let lower = url.lowercased()
        guard lower.hasPrefix("http://") || lower.hasPrefix("https://"),
            !url.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7f })
        else {
            throw .invalidRequest(
                "\(url) is not an http:// or https:// URL; check the hub URL setting",
                zh: "\(url) 不是 http:// 或 https:// 地址；请检查中心服务器地址设置")
        }
        var lines: [String] = []
        var names: Set<String> = []
        for (name, value) in headers {
            guard !name.isEmpty, name.utf8.allSatisfy({ Self.isTokenByte($0) }),
                !value.utf8.contains(where: { $0 == 0x0d || $0 == 0x0a || $0 == 0 })
            else {
                throw .invalidRequest(
                    "header \"\(name)\" for \(url) has an invalid name or a line break in its value",
                    zh: "发往 \(url) 的请求头 \"\(name)\" 名称无效或值中含有换行符")
            }
            names.insert(name.lowercased())
            // "Name:" with no value tells libcurl to send no such header, its own included.
            lines.append("\(name):" + (value.isEmpty ? "" : " \(value)"))
        }
        let upper = method.uppercased()
        let sendsBody = !body.isEmpty ? upper != "GET" && upper != "HEAD" : ["POST", "PUT", "PATCH"].contains(upper)
        if !body.isEmpty && !sendsBody {
            throw .invalidRequest("a \(upper) request to \(url) cannot carry a body", zh: "发往 \(url) 的 \(upper) 请求不能带请求体")
        }
        if !names.contains("expect") { lines.append("Expect:") }
        if sendsBody && !names.contains("content-type") { lines.append("Content-Type:") }
        self.method = method
        self.url = url
        self.headerLines = lines
        self.body = body
        self.sendsBody = sendsBody
    }

    /// RFC 9110 token characters, which method and header names are made of.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}

/// One libcurl easy handle and its error buffer, owned by the client's mutex.
///
/// libcurl keeps its connection cache in the handle, so reusing it across requests reuses
/// the connection; curl_easy_reset before each request clears options but keeps the cache.
private final class EasyHandle {
    let raw: UnsafeMutableRawPointer
    let errorBuffer: UnsafeMutablePointer<CChar>

    init?() {
        guard let raw = curl_easy_init() else { return nil }
        self.raw = raw
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
    }

    deinit {
        curl_easy_cleanup(raw)
        errorBuffer.deallocate()
    }

    func perform(_ request: Request, configuration: HTTPClientConfiguration) throws(HTTPClientError) -> HTTPResponse {
        curl_easy_reset(raw)
        errorBuffer[0] = 0

        var headerList: UnsafeMutablePointer<curl_slist>? = nil
        defer { curl_slist_free_all(headerList) }
        for line in request.headerLines {
            guard let appended = curl_slist_append(headerList, line) else {
                throw setupFailure(CURLE_OUT_OF_MEMORY, option: "HTTPHEADER", url: request.url)
            }
            headerList = appended
        }

        var failedOption: (CURLcode, String)?
        func set(_ option: String, _ code: CURLcode) {
            if code != CURLE_OK && failedOption == nil { failedOption = (code, option) }
        }
        set("NOSIGNAL", ferry_curl_setopt_long(raw, CURLOPT_NOSIGNAL, 1))  // no SIGALRM: we run on many threads
        set("URL", ferry_curl_setopt_string(raw, CURLOPT_URL, request.url))
        set("CONNECTTIMEOUT", ferry_curl_setopt_long(raw, CURLOPT_CONNECTTIMEOUT, configuration.connectTimeoutSeconds))
        set("TIMEOUT", ferry_curl_setopt_long(raw, CURLOPT_TIMEOUT, configuration.totalTimeoutSeconds))
        set("LOW_SPEED_LIMIT", ferry_curl_setopt_long(raw, CURLOPT_LOW_SPEED_LIMIT, configuration.lowSpeedLimitBytesPerSecond))
        set("LOW_SPEED_TIME", ferry_curl_setopt_long(raw, CURLOPT_LOW_SPEED_TIME, configuration.lowSpeedTimeSeconds))
        // Keepalive probes keep an idle reused connection alive through NAT on weak links.
        set("TCP_KEEPALIVE", ferry_curl_setopt_long(raw, CURLOPT_TCP_KEEPALIVE, 1))
        // The caller negotiates compression and decodes the body itself.
        set("HTTP_CONTENT_DECODING", ferry_curl_setopt_long(raw, CURLOPT_HTTP_CONTENT_DECODING, 0))
        set("USERAGENT", ferry_curl_setopt_string(raw, CURLOPT_USERAGENT, configuration.userAgent))
        if let proxy = configuration.proxy { set("PROXY", ferry_curl_setopt_string(raw, CURLOPT_PROXY, proxy)) }
        if let caFile = configuration.caFile { set("CAINFO", ferry_curl_setopt_string(raw, CURLOPT_CAINFO, caFile)) }
        if let key = configuration.pinnedPublicKey { set("PINNEDPUBLICKEY", ferry_curl_setopt_string(raw, CURLOPT_PINNEDPUBLICKEY, key)) }
        if !configuration.verifyTLS {
            set("SSL_VERIFYPEER", ferry_curl_setopt_long(raw, CURLOPT_SSL_VERIFYPEER, 0))
            set("SSL_VERIFYHOST", ferry_curl_setopt_long(raw, CURLOPT_SSL_VERIFYHOST, 0))
        }
        set("ERRORBUFFER", ferry_curl_setopt_ptr(raw, CURLOPT_ERRORBUFFER, errorBuffer))
        set("HTTPHEADER", ferry_curl_setopt_slist(raw, CURLOPT_HTTPHEADER, headerList))

        let sink = ResponseSink()
        let sinkPointer = Unmanaged.passUnretained(sink).toOpaque()
        set("WRITEFUNCTION", ferry_curl_setopt_write_function(raw) { data, size, count, userdata in
            ResponseSink.from(userdata).takeBody(data, size * count)
        })
        set("WRITEDATA", ferry_curl_setopt_ptr(raw, CURLOPT_WRITEDATA, sinkPointer))
        set("HEADERFUNCTION", ferry_curl_setopt_header_function(raw) { data, size, count, userdata in
            ResponseSink.from(userdata).takeHeaderLine(data, size * count)
        })
        set("HEADERDATA", ferry_curl_setopt_ptr(raw, CURLOPT_HEADERDATA, sinkPointer))

        let method = request.method.uppercased()
        if method == "GET" {
            set("HTTPGET", ferry_curl_setopt_long(raw, CURLOPT_HTTPGET, 1))
        } else if method == "HEAD" {
            set("NOBODY", ferry_curl_setopt_long(raw, CURLOPT_NOBODY, 1))
        } else if method != "POST" {
            set("CUSTOMREQUEST", ferry_curl_setopt_string(raw, CURLOPT_CUSTOMREQUEST, request.method))
        }

        let reader = BodyReader(request.body)
        let code: CURLcode = request.body.withUnsafeBytes { bytes in
            if request.sendsBody && !request.rewindable && !bytes.isEmpty {
                // A read callback without a seek callback: libcurl cannot rewind the body, so
                // a dead reused connection fails the request (CURLE_SEND_FAIL_REWIND) instead
                // of sending it all again unasked.
                set("POST", ferry_curl_setopt_long(raw, CURLOPT_POST, 1))
                if method != "POST" { set("CUSTOMREQUEST", ferry_curl_setopt_string(raw, CURLOPT_CUSTOMREQUEST, request.method)) }
                set("POSTFIELDSIZE_LARGE", ferry_curl_setopt_off_t(raw, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(bytes.count)))
                set("READFUNCTION", ferry_curl_setopt_read_function(raw) { data, size, count, userdata in
                    Unmanaged<BodyReader>.fromOpaque(userdata!).takeUnretainedValue().read(into: data, size * count)
                })
                set("READDATA", ferry_curl_setopt_ptr(raw, CURLOPT_READDATA, Unmanaged.passUnretained(reader).toOpaque()))
            } else if request.sendsBody {
                set("POSTFIELDSIZE_LARGE", ferry_curl_setopt_off_t(raw, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(bytes.count)))
                if let base = bytes.baseAddress, bytes.count > 0 {
                    // Not copied: the bytes stay valid until curl_easy_perform returns, and
                    // the next request's curl_easy_reset forgets the pointer.
                    set("POSTFIELDS", ferry_curl_setopt_ptr(raw, CURLOPT_POSTFIELDS, base))
                } else {
                    set("COPYPOSTFIELDS", ferry_curl_setopt_string(raw, CURLOPT_COPYPOSTFIELDS, ""))
                }
            }
            if failedOption != nil { return CURLE_OK }
            return withExtendedLifetime((sink, reader)) { curl_easy_perform(raw) }
        }
        if let (optionCode, option) = failedOption {
            throw setupFailure(optionCode, option: option, url: request.url)
        }
        guard code == CURLE_OK else {
            throw HTTPClientError(failure(code), url: request.url, configuration: configuration)
        }
        var status = 0
        _ = ferry_curl_getinfo_long(raw, CURLINFO_RESPONSE_CODE, &status)
        return HTTPResponse(status: status, headers: sink.headers, body: sink.body)
    }

    private func failure(_ code: CURLcode) -> TransferFailure {
        var osErrno = 0
        var totalMicros: curl_off_t = 0
        var pretransferMicros: curl_off_t = 0
        _ = ferry_curl_getinfo_long(raw, CURLINFO_OS_ERRNO, &osErrno)
        _ = ferry_curl_getinfo_off_t(raw, CURLINFO_TOTAL_TIME_T, &totalMicros)
        _ = ferry_curl_getinfo_off_t(raw, CURLINFO_PRETRANSFER_TIME_T, &pretransferMicros)
        let buffered = String(cString: errorBuffer)
        return TransferFailure(
            code: code, osErrno: Int32(truncatingIfNeeded: osErrno), elapsedSeconds: Double(totalMicros) / 1_000_000,
            requestStarted: pretransferMicros > 0,
            detail: buffered.isEmpty ? String(cString: curl_easy_strerror(code)) : buffered)
    }

    private func setupFailure(_ code: CURLcode, option: String, url: String) -> HTTPClientError {
        let detail = String(cString: curl_easy_strerror(code))
        return HTTPClientError(
            kind: .other,
            message: "libcurl refused option CURLOPT_\(option) for \(url) (\(detail)); check the HTTP client settings and the libcurl version (\(HTTPClient.libcurlVersion))",
            messageZh: "libcurl 不接受发往 \(url) 的请求选项 CURLOPT_\(option)（\(detail)）；请检查 HTTP 客户端设置和 libcurl 版本",
            curlCode: Int(code.rawValue), detail: detail, isRetryable: false)
    }
}

/// Hands a request body to libcurl's read callback, once, front to back.
private final class BodyReader {
    let body: [UInt8]
    var offset = 0
    init(_ body: [UInt8]) { self.body = body }

    func read(into buffer: UnsafeMutablePointer<CChar>?, _ capacity: Int) -> Int {
        guard let buffer, capacity > 0 else { return 0 }
        let n = min(capacity, body.count - offset)
        guard n > 0 else { return 0 }
        body.withUnsafeBytes { src in
            UnsafeMutableRawPointer(buffer).copyMemory(from: src.baseAddress! + offset, byteCount: n)
        }
        offset += n
        return n
    }
}

/// Collects a response from libcurl's callbacks; passed to them as an unretained pointer.
private final class ResponseSink {
    var headers: [String: String] = [:]
    var body: [UInt8] = []
    private var lastHeaderName: String?

    static func from(_ userdata: UnsafeMutableRawPointer?) -> ResponseSink {
        Unmanaged<ResponseSink>.fromOpaque(userdata!).takeUnretainedValue()
    }

    func takeBody(_ data: UnsafeMutablePointer<CChar>?, _ count: Int) -> Int {
        if let data, count > 0 { body.append(contentsOf: UnsafeRawBufferPointer(start: data, count: count)) }
        return count
    }

    /// Takes one header line, CRLF included. A status line starts a new response (after a
    /// 100 Continue or a proxy's CONNECT reply), so only the last response's headers stay.
    func takeHeaderLine(_ data: UnsafeMutablePointer<CChar>?, _ count: Int) -> Int {
        guard let data, count > 0 else { return count }
        let line = String(decoding: UnsafeRawBufferPointer(start: data, count: count), as: UTF8.self)
        if line.hasPrefix("HTTP/") {
            headers = [:]
            lastHeaderName = nil
        } else if line.first == " " || line.first == "\t" {
            // An obsolete folded continuation of the previous header's value.
            if let name = lastHeaderName {
                headers[name, default: ""] += " " + line.trimmingCharacters(in: .whitespacesAndNewlines)
            }
        } else if let colon = line.firstIndex(of: ":") {
            let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
            if let existing = headers[name] { headers[name] = existing + ", " + value } else { headers[name] = value }
            lastHeaderName = name
        }
        return count
    }
}
