import Hummingbird
import KCTypes
import NIOCore

/// An API error: the HTTP status and a JSON body `{"code": "...", "message": "..."}` whose
/// message names the problem (specs/openapi.yaml, "Error").
public struct RPCError: HTTPResponseError, Equatable, CustomStringConvertible {
    public let status: HTTPResponse.Status
    public let code: String
    public let message: String
    /// For 405: the methods the path does allow (the `Allow` header).
    public var allow: String? = nil

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    public static func badRequest(_ message: String) -> RPCError { RPCError(.badRequest, "bad_request", message) }
    public static func notFound(_ message: String) -> RPCError { RPCError(.notFound, "not_found", message) }

    public var description: String { "\(status.code) \(code): \(message)" }

    public var json: JSONValue { .object([("code", .string(code)), ("message", .string(message))]) }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = JSONResponse.make(json, status: status)
        if status == .tooManyRequests { response.headers[.retryAfter] = "1" }
        if let allow { response.headers[.allow] = allow }
        return response
    }
}

enum JSONResponse {
    static func make(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        let text = value.compact()
        var buffer = ByteBuffer()
        buffer.writeString(text)
        buffer.writeString("\n")
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: buffer))
    }
}
