import KCCodec

/// The body of `POST /transactions` (specs/openapi.yaml): `{"tx": "HEX"}`, the signed
/// transaction's canonical bytes in hex. Parsed here, apart from the HTTP server, so the RPC and
/// the fuzz harness run the same code on outside bytes.
public enum TransactionSubmission {
    public struct Problem: Error, Equatable, Sendable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// The transaction bytes in `body`, or the problem in one sentence.
    public static func transactionBytes(fromBody body: String) throws(Problem) -> [UInt8] {
        try hexField("tx", "the signed transaction", fromBody: body)
    }

    /// The unsigned transaction body of a `POST /txs/check` request (`{"body": "HEX"}`).
    public static func unsignedBodyBytes(fromBody body: String) throws(Problem) -> [UInt8] {
        try hexField("body", "the canonical transaction body (unsigned)", fromBody: body)
    }

    static func hexField(_ name: String, _ what: String, fromBody body: String) throws(Problem) -> [UInt8] {
        let json: JSONValue
        do { json = try StrictJSON.parse(body) } catch { throw Problem(message: "the body is not JSON: \(error)") }
        guard case .object = json else { throw Problem(message: "the body must be a JSON object {\"\(name)\": \"HEX\"}") }
        guard let hex = json[name]?.stringValue else { throw Problem(message: "the body needs \"\(name)\": \(what) in hex") }
        guard let bytes = Hex.decode(hex) else { throw Problem(message: "\"\(name)\" is not hex") }
        return bytes
    }
}
