import Hummingbird
import KCCodec
import KCCrypto
import KCNetwork
import Logging
import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A small Arweave-compatible content server for local development (`node arweave-dev-server`):
/// `GET /{ArTxID}` answers the file of that name in `directory`; `POST /tx` stores the body
/// under the ArTxID formed from its SHA-256 and answers that id. Arweave's own ids are not
/// content hashes; here they are, so a devnet can make ids without Arweave.
public final class ContentServer: Sendable {
    let directory: String
    let host: String
    let requestedPort: Int
    let maxUploadBytes: Int
    private let server = BackgroundServer()

    public init(directory: String, host: String = "127.0.0.1", port: Int, maxUploadBytes: Int = 64 << 20) {
        self.directory = directory
        self.host = host
        requestedPort = port
        self.maxUploadBytes = maxUploadBytes
    }

    /// The id the dev server gives a payload: its SHA-256 as an ArTxID.
    public static func arTxID(for payload: [UInt8]) -> ArTxID { ArTxID(SHA256.hash(payload)) }

    /// Stores a payload in `directory` under its id, as the server's `POST /tx` does.
    @discardableResult
    public static func store(_ payload: [UInt8], in directory: String) throws -> ArTxID {
        let id = arTxID(for: payload)
        guard let file = fopen(directory + "/" + id.text, "wb") else { throw RPCStartError(message: "cannot write into \(directory)") }
        defer { fclose(file) }
        guard payload.isEmpty || fwrite(payload, 1, payload.count, file) == payload.count else {
            throw RPCStartError(message: "cannot write into \(directory)")
        }
        return id
    }

    static func read(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count == 0 { break }
            bytes += chunk[0..<count]
        }
        return bytes
    }

    @discardableResult
    public func start() throws -> Int {
        let router = Router()
        let directory = self.directory
        let maxUploadBytes = self.maxUploadBytes
        router.get("/:id") { _, context -> Response in
            let text = context.parameters.get("id") ?? ""
            guard let id = try? ArTxID(parsing: text) else {
                return Self.plain(.badRequest, "'\(text.prefix(80))' is not an ArTxID")
            }
            guard let payload = Self.read(directory + "/" + id.text) else { return Self.plain(.notFound, "no payload \(id.text)") }
            var buffer = ByteBuffer()
            buffer.writeBytes(payload)
            return Response(status: .ok, headers: [.contentType: "application/octet-stream"], body: .init(byteBuffer: buffer))
        }
        router.post("/tx") { request, _ -> Response in
            let body: ByteBuffer
            do { body = try await request.body.collect(upTo: maxUploadBytes) } catch {
                return Self.plain(.contentTooLarge, "a payload is at most \(maxUploadBytes) bytes")
            }
            let id = try Self.store(Array(body.readableBytesView), in: directory)
            return Self.plain(.ok, id.text)
        }
        let app = Application(router: router, configuration: .init(address: .hostname(host, port: requestedPort)),
                              onServerRunning: server.onServerRunning, logger: BackgroundServer.quietLogger("arweave-dev"))
        return try server.start(app, what: "serve payloads", host: host, port: requestedPort, setting: "--port")
    }

    public func stop() { server.stop() }

    static func plain(_ status: HTTPResponse.Status, _ text: String) -> Response {
        var buffer = ByteBuffer()
        buffer.writeString(text + "\n")
        return Response(status: status, headers: [.contentType: "text/plain"], body: .init(byteBuffer: buffer))
    }
}
