import Hummingbird
import HummingbirdWebSocket
import KCCodec
import KCCrypto
import KCNode
import KCRuntime
import KCStorage
import KCTypes
import NIOCore

/// Every route of the API; specs/openapi.yaml lists the same ones (a test compares them).
public struct Routes: Sendable {
    let node: NodeHandle
    let settings: RPCSettings
    let checks: CallGate
    /// The genesis hash as `/status` shows it (hashing the genesis file's encoding per request
    /// was a tenth of that route's handler).
    let genesisHash: JSONValue

    init(node: NodeHandle, settings: RPCSettings) {
        self.node = node
        self.settings = settings
        checks = CallGate(limit: settings.maxConcurrentChecks)
        genesisHash = View.hex(node.genesis.hash)
    }

    /// Method and path of every route, in the form the OpenAPI file uses.
    public static let table: [(method: String, path: String)] = [
        ("GET", "/health"), ("GET", "/status"), ("GET", "/params"), ("GET", "/metrics"), ("HEAD", "/metrics"),
        ("GET", "/blocks/latest"), ("GET", "/blocks/{height}"),
        ("GET", "/txs/{hash}"), ("POST", "/txs"), ("POST", "/txs/check"),
        ("GET", "/accounts/{address}"), ("GET", "/validators"), ("GET", "/gateways"), ("GET", "/epochs"), ("GET", "/disputes/{id}"),
        ("GET", "/events"), ("GET", "/events/{id}"), ("GET", "/events/{id}/votes"), ("GET", "/events/{id}/parents"), ("GET", "/events/{id}/children"),
        ("GET", "/events/{id}/ancestors"), ("GET", "/events/{id}/descendants"), ("GET", "/events/{id}/proof"),
        ("GET", "/subscribe"),
    ]

    var queries: ChainQueries { ChainQueries(store: node.store, genesis: node.genesis) }

    func register(on router: Router<RPCRequestContext>) {
        router.get("/health") { _, _ in
            let (answer, healthy) = health()
            return JSONResponse.make(answer, status: healthy ? .ok : .serviceUnavailable)
        }
        router.get("/status") { _, _ in JSONResponse.make(try status()) }
        router.get("/params") { _, _ in JSONResponse.make(node.genesis.json["params"] ?? .null) }
        router.get("/metrics") { _, _ in
            var buffer = ByteBuffer()
            buffer.writeString(Metrics.render(node))
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"], body: .init(byteBuffer: buffer))
        }
        // Probes and load balancers ask with HEAD: the same headers, no body.
        router.head("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"])
        }
        router.get("/blocks/latest") { _, _ in
            let q = queries
            return JSONResponse.make(try q.blockJSON(try q.height))
        }
        router.get("/blocks/:height") { _, context in
            JSONResponse.make(try queries.blockJSON(try Parse.height(context.parameters.get("height"))))
        }
        router.get("/txs/:hash") { _, context in
            JSONResponse.make(try queries.transactionJSON(try Parse.hash(context.parameters.get("hash"), what: "transaction hash")))
        }
        router.post("/txs") { request, context in try await submit(request, context: context) }
        router.post("/txs/check") { request, _ in JSONResponse.make(try await check(request)) }
        router.get("/accounts/:address") { _, context in
            JSONResponse.make(try queries.accountJSON(try Parse.key(context.parameters.get("address"), what: "address")))
        }
        router.get("/validators") { request, _ in
            let (cursor, limit) = try Parse.page(request)
            return JSONResponse.make(try queries.validatorsJSON(cursor: cursor, limit: limit))
        }
        router.get("/gateways") { request, _ in
            let (cursor, limit) = try Parse.page(request)
            return JSONResponse.make(try queries.gatewaysJSON(cursor: cursor, limit: limit))
        }
        router.get("/epochs") { _, _ in JSONResponse.make(try queries.epochsJSON()) }
        router.get("/disputes/:id") { _, context in
            JSONResponse.make(try queries.disputeJSON(try Parse.hash(context.parameters.get("id"), what: "dispute id")))
        }
        router.get("/events") { request, _ in JSONResponse.make(try listEvents(request)) }
        router.get("/events/:id") { _, context in
            JSONResponse.make(try queries.eventJSON(try Parse.hash(context.parameters.get("id"), what: "event id")))
        }
        router.get("/events/:id/votes") { request, context in
            let id = try Parse.hash(context.parameters.get("id"), what: "event id")
            let (cursor, limit) = try Parse.page(request)
            let verdict = try request.uri.queryParameters["verdict"].map { text -> Verdict in
                guard let verdict = Verdict.allCases.first(where: { View.verdictName($0) == String(text) }) else {
                    throw RPCError.badRequest("verdict '\(text.prefix(40))' is not valid or invalid")
                }
                return verdict
            }
            return JSONResponse.make(try queries.eventVotesJSON(id, verdict: verdict, cursor: cursor, limit: limit))
        }
        router.get("/events/:id/parents") { _, context in
            JSONResponse.make(try queries.ancestors(try Parse.hash(context.parameters.get("id"), what: "event id"), depth: 1))
        }
        router.get("/events/:id/children") { request, context in
            let id = try Parse.hash(context.parameters.get("id"), what: "event id")
            let q = queries
            guard try q.event(id) != nil else { throw RPCError.notFound("no event \(id.hex)") }
            let (cursor, limit) = try Parse.page(request)
            return JSONResponse.make(try q.eventPage(prefix: EventIndexKey.childrenPrefix(id), cursor: cursor, limit: limit))
        }
        router.get("/events/:id/ancestors") { request, context in
            JSONResponse.make(try queries.ancestors(try Parse.hash(context.parameters.get("id"), what: "event id"),
                                                    depth: try Parse.depth(request)))
        }
        router.get("/events/:id/descendants") { request, context in
            JSONResponse.make(try queries.descendants(try Parse.hash(context.parameters.get("id"), what: "event id"),
                                                      depth: try Parse.depth(request)))
        }
        router.get("/events/:id/proof") { _, context in
            try await proof(try Parse.hash(context.parameters.get("id"), what: "event id"))
        }
        Subscriptions(node: node).register(on: router)
    }

    /// `ok`, or `unhealthy` with the reasons (`HealthCheck`); the second value is whether healthy.
    func health() -> (JSONValue, Bool) {
        let snapshot = node.monitor.snapshot
        let problems = settings.health.problems(snapshot, nowMilliseconds: NodeHandle.wallMilliseconds())
        return (.object([("status", .string(problems.isEmpty ? "ok" : "unhealthy")), ("height", View.number(snapshot.height)),
                         ("syncing", .bool(snapshot.syncing)), ("peers", View.number(snapshot.peers)),
                         ("latest_block_time_ms", View.number(snapshot.blockTimeMilliseconds)),
                         ("committed_at_ms", View.number(snapshot.committedAtMilliseconds)),
                         ("problems", .array(problems.map { .string($0) }))]), problems.isEmpty)
    }

    func status() throws -> JSONValue {
        let snapshot = node.monitor.snapshot
        return .object([
            ("chain_id", .string(node.genesis.chainID)), ("genesis_hash", genesisHash),
            ("node_id", snapshot.nodeID.map(View.key) ?? .null),
            ("height", View.number(snapshot.height)), ("earliest_block_height", View.number(snapshot.baseHeight)),
            ("latest_block_id", View.hex(snapshot.blockID)),
            ("latest_block_time_ms", View.number(snapshot.blockTimeMilliseconds)), ("state_root", View.hex(snapshot.stateRoot)),
            ("syncing", .bool(snapshot.syncing)), ("peers", View.number(snapshot.peers)), ("validator", .bool(snapshot.isValidator)),
            ("round", View.number(snapshot.round)),
            ("mempool", .object([("transactions", View.number(snapshot.mempoolTransactions)), ("bytes", View.number(snapshot.mempoolBytes)),
                                    ("queued", View.number(snapshot.mempoolQueued))])),
        ])
    }

    func listEvents(_ request: Request) throws -> JSONValue {
        let query = request.uri.queryParameters
        let (cursor, limit) = try Parse.page(request)
        let status = try query["status"].map { text -> EventStatus in
            guard let status = EventStatus.allCases.first(where: { $0.name == String(text) }) else {
                throw RPCError.badRequest("status '\(text)' is not one of \(EventStatus.allCases.map(\.name).joined(separator: ", "))")
            }
            return status
        }
        let kind = query["kind"].map(String.init)
        if let kind, kind.isEmpty || kind.utf8.count > 256 { throw RPCError.badRequest("kind must be 1 to 256 bytes") }
        let q = queries
        let author = try query["author"].map { try Parse.key(String($0), what: "author") }
        if let text = query["ar_tx_id"] {
            // The narrowest index first; author, status and kind filter it.
            let id: ArTxID
            do { id = try ArTxID(parsing: text) } catch { throw RPCError.badRequest("ar_tx_id: \(error)") }
            return try q.eventPage(prefix: EventIndexKey.arTxIDPrefix(id), cursor: cursor, limit: limit) { record in
                (author == nil || record.header.author == author) && (status == nil || record.status == status)
                    && (kind == nil || record.header.kind == kind)
            }
        }
        if let key = author {
            return try q.eventPage(prefix: EventIndexKey.authorPrefix(key), grouped: true, cursor: cursor, limit: limit) { record in
                (status == nil || record.status == status) && (kind == nil || record.header.kind == kind)
            }
        }
        if let kind {
            return try q.eventPage(prefix: EventIndexKey.kindPrefix(kind), grouped: true, cursor: cursor, limit: limit) { record in
                status == nil || record.status == status
            }
        }
        if let status {
            // Pending: the attestation queue; final statuses: grouped per block (ADR 0030).
            if status == .pending { return try q.pendingPage(cursor: cursor, limit: limit) }
            return try q.eventPage(prefix: NodeIndexKey.statusPrefix(status), grouped: NodeIndexKey.isGroupedPerBlock(status), cursor: cursor, limit: limit)
        }
        throw RPCError.badRequest("give one of author, ar_tx_id, kind or status")
    }

    func proof(_ id: Hash256) async throws -> Response {
        let key = StateKey.event(id)
        let answer = await node.proof(key)
        guard let value = answer.value else { throw RPCError.notFound("no event \(id.hex)") }
        let proof = answer.proof
        let terminal: JSONValue
        switch proof.terminal {
        case .empty: terminal = .object([("type", .string("empty"))])
        case .leaf(let path, let valueHash):
            terminal = .object([("type", .string("leaf")), ("path", View.hex(path)), ("value_hash", View.hex(valueHash))])
        }
        return JSONResponse.make(.object([
            ("event_id", View.hex(id)), ("height", View.number(answer.height)), ("state_root", View.hex(answer.root)),
            ("key", .string(Hex.encode(key.bytes))), ("path", View.hex(Blake2b.hash256(key.bytes))),
            ("value", .string(Hex.encode(value))), ("value_hash", View.hex(Blake2b.hash256(value))),
            ("proof", .object([("siblings", .array(proof.siblings.map(View.hex))), ("terminal", terminal),
                               ("encoded", .string(Hex.encode(proof.canonicalBytes)))])),
        ]))
    }

    /// The request's body, refused past `max_body_bytes` whether or not it announces its length.
    func collectBody(_ request: Request) async throws -> String {
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > settings.maxBodyBytes {
            throw RPCError(.contentTooLarge, "too_large", "the body of \(length) bytes is over the limit of \(settings.maxBodyBytes)")
        }
        do { return String(buffer: try await request.body.collect(upTo: settings.maxBodyBytes)) } catch {
            throw RPCError(.contentTooLarge, "too_large", "the body is over the limit of \(settings.maxBodyBytes) bytes")
        }
    }

    /// `POST /txs/check`: what an unsigned transaction would do if it were next in line,
    /// committing nothing: the receipt's code, name and message and the fee, or why a block
    /// holding it would be refused.
    func check(_ request: Request) async throws -> JSONValue {
        let bytes: [UInt8]
        do { bytes = try TransactionSubmission.unsignedBodyBytes(fromBody: try await collectBody(request)) } catch let problem as TransactionSubmission.Problem {
            throw RPCError.badRequest(problem.message)
        }
        let body: TransactionBody
        do { body = try TransactionBody.decode(exactly: bytes) } catch {
            throw RPCError.badRequest("\"body\" is not a canonical transaction body: \(error)")
        }
        guard body.chainID == node.genesis.chainID else {
            throw RPCError.badRequest("the body is for chain '\(body.chainID.prefix(64))', this node runs '\(node.genesis.chainID)'")
        }
        guard checks.enter() else {
            throw RPCError(.serviceUnavailable, "busy", "\(checks.limit) checks are already running on this node; retry in a moment")
        }
        defer { checks.leave() }
        let answer = await node.check(body)
        switch answer.result {
        case .success(let receipt):
            return .object([("height", View.number(answer.height)), ("would_succeed", .bool(receipt.succeeded)),
                            ("receipt", View.receipt(receipt))])
        case .failure(let refusal):
            return .object([("height", View.number(answer.height)), ("would_succeed", .bool(false)),
                            ("refused", .string(refusal.description))])
        }
    }

    func submit(_ request: Request, context: RPCRequestContext) async throws -> Response {
        let bytes: [UInt8]
        do { bytes = try TransactionSubmission.transactionBytes(fromBody: try await collectBody(request)) } catch let problem as TransactionSubmission.Problem {
            throw RPCError.badRequest(problem.message)
        }
        let query = request.uri.queryParameters
        let wait = try query["wait"].map { text -> Bool in
            guard text == "true" || text == "false" else { throw RPCError.badRequest("wait must be true or false") }
            return text == "true"
        } ?? false
        let timeout = try query["timeout_ms"].map { text -> UInt64 in
            guard let value = UInt64(text), (1...120_000).contains(value) else { throw RPCError.badRequest("timeout_ms must be 1 to 120000") }
            return value
        } ?? 30_000
        // Waiting looks the committed transaction up in the index: refused before anything is sent.
        if wait {
            try queries.requireIndexes("transaction", advice: "send without wait=true and follow the blocks, or send through a node that keeps the query indexes")
        }
        let submitted: Admission
        switch await node.submit(bytes) {
        case .success(let value): submitted = value
        case .failure(let rejection): throw Self.error(for: rejection)
        }
        let hash = submitted.hash
        guard wait else {
            return JSONResponse.make(.object([("hash", View.hex(hash)), ("status", .string(submitted.queued ? "queued" : "pending"))]),
                                     status: .accepted)
        }
        let deadline = RateLimiter.nowMicroseconds() + timeout * 1_000
        var seen = node.commits.height
        while true {
            if let committed = try? queries.transactionJSON(hash) {
                return JSONResponse.make(.object([("hash", View.hex(hash)), ("status", .string("committed")), ("transaction", committed)]))
            }
            let now = RateLimiter.nowMicroseconds()
            guard now < deadline else {
                throw RPCError(.gatewayTimeout, "timeout", "transaction \(hash.hex) was not committed within \(timeout) ms; it stays in the mempool and may still be committed (GET /txs/\(hash.hex) tells)")
            }
            seen = await node.commits.wait(beyond: seen, timeoutMilliseconds: (deadline - now) / 1_000 + 1)
        }
    }

    static func error(for rejection: MempoolRejection) -> RPCError {
        switch rejection {
        case .malformed: return RPCError(.badRequest, "malformed_transaction", rejection.description)
        case .invalid: return RPCError(.badRequest, "invalid_transaction", rejection.description)
        case .duplicate: return RPCError(.conflict, "duplicate", rejection.description)
        case .full: return RPCError(.serviceUnavailable, "mempool_full", rejection.description)
        case .nonce: return RPCError(.badRequest, "bad_nonce", rejection.description)
        case .nonceQueued: return RPCError(.conflict, "nonce_queued", rejection.description)
        case .stateful: return RPCError(.badRequest, "rejected", rejection.description)
        case .peerQuota: return RPCError(.tooManyRequests, "quota", rejection.description)
        }
    }
}

/// Parsing of path and query values, each failure a 400 that names the value.
enum Parse {
    static func hash(_ text: String?, what: String) throws -> Hash256 {
        guard let text, text.count == 64, let value = Hash256(hex: text) else {
            throw RPCError.badRequest("\(what) '\((text ?? "").prefix(80))' is not 64 hex characters")
        }
        return value
    }

    static func key(_ text: String?, what: String) throws -> PublicKey {
        guard let text, text.count == 64, let value = PublicKey(hex: text) else {
            throw RPCError.badRequest("\(what) '\((text ?? "").prefix(80))' is not a 64-character hex key")
        }
        return value
    }

    static func height(_ text: String?) throws -> UInt64 {
        guard let text, let value = UInt64(text) else { throw RPCError.badRequest("height '\((text ?? "").prefix(40))' is not a whole number") }
        return value
    }

    static func page(_ request: Request) throws -> (cursor: String?, limit: Int) {
        let query = request.uri.queryParameters
        let limit = try query["limit"].map { text -> Int in
            guard let value = Int(text), (1...ChainQueries.maxLimit).contains(value) else {
                throw RPCError.badRequest("limit must be 1 to \(ChainQueries.maxLimit)")
            }
            return value
        } ?? ChainQueries.defaultLimit
        return (query["cursor"].map(String.init), limit)
    }

    static func depth(_ request: Request) throws -> Int {
        try request.uri.queryParameters["depth"].map { text -> Int in
            guard let value = Int(text), (1...ChainQueries.maxDepth).contains(value) else {
                throw RPCError.badRequest("depth must be 1 to \(ChainQueries.maxDepth)")
            }
            return value
        } ?? 4
    }
}
