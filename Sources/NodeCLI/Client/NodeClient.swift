import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import KCTypes

/// A blocking JSON client for the node's RPC, for the CLI. Errors read as sentences: the
/// node's own `{code, message}` answer, or why the node could not be reached.
struct NodeClient {
    let base: String
    let timeoutSeconds: Double

    struct Failure: Error, CustomStringConvertible {
        let message: String
        /// The node's error code when it answered with one.
        let code: String?
        let status: Int?
        var description: String { message }
    }

    init(base: String, timeoutSeconds: Double = 60) {
        self.base = base.hasSuffix("/") ? String(base.dropLast()) : base
        self.timeoutSeconds = timeoutSeconds
    }

    func get(_ path: String) throws -> JSONValue {
        try send(method: "GET", path: path, body: nil)
    }

    /// Every page of a list answer (`next_cursor`), joined into one answer with the whole
    /// list under `list`. At most 1,000 pages, so a misbehaving node cannot loop it forever.
    func allPages(_ path: String, list: String) throws -> JSONValue {
        var items: [JSONValue] = []
        var first: JSONValue? = nil
        var cursor: String? = nil
        for _ in 0..<1_000 {
            let separator = path.contains("?") ? "&" : "?"
            let page = try get(path + separator + "limit=500" + (cursor.map { "&cursor=\($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0)" } ?? ""))
            if first == nil { first = page }
            items += page[list]?.arrayValue ?? []
            guard let next = page["next_cursor"]?.stringValue else { break }
            cursor = next
        }
        guard case .object(var members)? = first else { return first ?? .null }
        members.removeAll { $0.0 == list || $0.0 == "next_cursor" }
        members.append((list, .array(items)))
        return .object(members)
    }

    func post(_ path: String, _ body: JSONValue) throws -> JSONValue {
        try send(method: "POST", path: path, body: body.compact())
    }

    private func send(method: String, path: String, body: String?) throws -> JSONValue {
        guard let url = URL(string: base + path), url.scheme == "http" || url.scheme == "https" else {
            throw Failure(message: "--node \(base) is not an http:// or https:// URL", code: nil, status: nil)
        }
        var request = URLRequest(url: url)
        request.httpMethod = method
        request.timeoutInterval = timeoutSeconds
        if let body {
            request.httpBody = Data(body.utf8)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        final class Box: @unchecked Sendable { var result: (Data?, URLResponse?, Error?) = (nil, nil, nil) }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        URLSession.shared.dataTask(with: request) { data, response, error in
            box.result = (data, response, error)
            done.signal()
        }.resume()
        done.wait()
        let (data, response, error) = box.result
        if let error {
            throw Failure(message: "cannot reach node at \(base): \(Self.reason(error))", code: nil, status: nil)
        }
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        let text = String(decoding: data ?? Data(), as: UTF8.self)
        let json = try? StrictJSON.parse(text)
        guard (200..<300).contains(status) else {
            if let message = json?["message"]?.stringValue {
                throw Failure(message: message, code: json?["code"]?.stringValue, status: status)
            }
            throw Failure(message: "the node answered \(status) to \(method) \(path)", code: nil, status: status)
        }
        guard let json else { throw Failure(message: "the node's answer to \(path) is not JSON", code: nil, status: status) }
        return json
    }

    static func reason(_ error: Error) -> String {
        let nsError = error as NSError
        switch nsError.code {
        case NSURLErrorCannotConnectToHost: return "connection refused"
        case NSURLErrorTimedOut: return "timed out"
        case NSURLErrorCannotFindHost: return "unknown host"
        case NSURLErrorNetworkConnectionLost: return "the connection was lost"
        default: return nsError.localizedDescription
        }
    }
}
