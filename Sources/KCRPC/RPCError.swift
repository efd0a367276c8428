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
        var bytes = body(value)
        bytes.append(UInt8(ascii: "\n"))
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

extension JSONResponse {
    /// Block-time fields in milliseconds that get an RFC 3339 twin, named without `_ms`.
    static let instants: Set<String> = [
        "latest_block_time_ms", "committed_at_ms", "time_ms", "proposed_at_ms", "status_changed_at_ms", "attestation_ends_ms",
        "accepted_at_ms", "challenge_window_closes_ms", "votes_settle_ms", "opened_at_ms", "deadline_ms", "ended_at_ms",
        "completion_time_ms", "locked_until_ms", "jailed_until_ms",
    ]

    /// `value` in one line, each instant field followed by its RFC 3339 UTC text (null for null
    /// or 0): `"time_ms":1767225600000,"time":"2026-01-01T00:00:00.000Z"`. Durations keep ms only.
    static func body(_ value: JSONValue) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(512)
        value.writeCompact(into: &out) { name, field, out in
            guard name.utf8.last == UInt8(ascii: "s"), instants.contains(name) else { return }
            let text = field.numberText.flatMap { UInt64($0) }.flatMap { $0 > 0 ? UTCTime.rfc3339(milliseconds: $0) : nil }
            out.append(UInt8(ascii: ","))
            JSONValue.writeQuoted(String(name.dropLast(3)), into: &out)
            out.append(UInt8(ascii: ":"))
            if let text { JSONValue.writeQuoted(text, into: &out) } else { out.append(contentsOf: "null".utf8) }
        }
        return out
    }

    /// `body(value)` as text (WebSocket messages).
    static func text(_ value: JSONValue) -> String { String(decoding: body(value), as: UTF8.self) }
}
