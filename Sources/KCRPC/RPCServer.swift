import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import KCCodec
import KCCrypto
import KCNetwork
import KCNode
import KCRuntime
import KCTypes
import Logging
import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The request context: remembers the client's address for rate limiting.
public struct RPCRequestContext: RequestContext, WebSocketRequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let webSocket: WebSocketHandlerReference<Self>
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        webSocket = .init()
        remoteAddress = source.channel.remoteAddress
    }

    /// Bodies are collected with the configured limit by the handlers themselves.
    public var maxUploadSize: Int { 64 << 20 }
}

/// Settings of the HTTP + WebSocket API, from config.toml `[rpc]`.
public struct RPCSettings: Sendable {
    public var host = "127.0.0.1"
    public var port = 26657
    public var maxBodyBytes = 1 << 20
    public var rateLimitPerSecond = 200
    public var limits = HTTPLimits()
    public var health = HealthCheck(maxBlockAgeMilliseconds: 60_000, needsPeers: false)
    /// `POST /txs/check` dry runs in flight at once, over all clients (beyond: 503 busy).
    public var maxConcurrentChecks = 4
    public init() {}
}

/// The node's HTTP + JSON and WebSocket API (specs/openapi.yaml), on Hummingbird. Reads run
/// on the server's threads over store snapshots; submissions and proofs go to the node's
/// thread through its `NodeHandle`.
public final class RPCServer: Sendable {
    let node: NodeHandle
    let settings: RPCSettings
    let log: NodeLogger
    let limiter: RateLimiter
    private let background = BackgroundServer()

    /// The RPC's own threads: requests are served even when the shared pool is busy.
    static let executor = ThreadTaskExecutor(threads: 2, name: "rpc")

    public init(node: NodeHandle, settings: RPCSettings, log: NodeLogger) {
        self.node = node
        self.settings = settings
        self.log = log
        limiter = RateLimiter(perSecond: settings.rateLimitPerSecond)
    }

    /// Starts serving; returns the bound port once the socket listens.
    @discardableResult
    public func start() throws -> Int {
        let router = Router(context: RPCRequestContext.self)
        router.add(middleware: ErrorMiddleware(limiter: limiter, metrics: node.metrics))
        Routes(node: node, settings: settings).register(on: router)
        let limits = settings.limits
        let gate = ConnectionGate(limits: limits)
        let webSocketResponder = router.buildResponder()
        let http1 = HTTP1Channel.Configuration(
            httpDecoderConfiguration: .init(maxHeaderFieldSize: limits.maxRequestLineBytes, maxHeaderListSize: limits.maxHeadBytes,
                                            maxHeaderFieldCount: 200))
        let server = HTTPServerBuilder { responder in
            GuardedHTTPChannel(inner: HTTP1WebSocketUpgradeChannel(responder: responder, webSocketResponder: webSocketResponder,
                                                                   configuration: .init(http1: http1)),
                               gate: gate)
        }
        let app = Application(
            router: router,
            server: server,
            configuration: .init(address: .hostname(settings.host, port: settings.port)),
            onServerRunning: background.onServerRunning,
            logger: log.module("rpc")
        )
        let port = try background.start(app, what: "serve the RPC", host: settings.host, port: settings.port, setting: "rpc.listen_address in config.toml")
        log.info("RPC listening", ["address": "\(settings.host):\(port)"])
        return port
    }

    /// Stops accepting requests and closes connections.
    public func stop() { background.stop() }
}

public struct RPCStartError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// Turns every error into a JSON body with the right status, answers 404 as JSON, enforces
/// the per-client rate limit (429), and times every request for the metrics.
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = RPCRequestContext
    let limiter: RateLimiter
    let metrics: NodeMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        defer {
            // Labels from bounded sets only: a route template or "unmatched", a known method or "other".
            let method = ["GET", "POST", "HEAD"].contains(request.method.rawValue) ? request.method.rawValue : "other"
            let route = context.endpointPath.flatMap { $0 == "NotFound" ? nil : $0 } ?? "unmatched"
            metrics.requestDuration(route: route, method: method).record(ContinuousClock.now - started)
        }
        let client = context.remoteAddress?.ipAddress ?? "unknown"
        guard limiter.allow(client) else {
            throw RPCError(.tooManyRequests, "rate_limited", "more than \(limiter.perSecond) requests per second from \(client); slow down")
        }
        do {
            return try await next(request, context)
        } catch let error as RPCError {
            throw error
        } catch let error as HTTPError {
            switch error.status {
            case .notFound:
                let path = request.uri.path
                var methods: [String] = []
                for route in Routes.table where Self.matches(template: route.path, path: path) && !methods.contains(route.method) {
                    methods.append(route.method)
                }
                if !methods.isEmpty {
                    var error = RPCError(.methodNotAllowed, "method_not_allowed",
                                         "\(request.method.rawValue) is not allowed on \(path); use \(methods.joined(separator: " or "))")
                    error.allow = methods.joined(separator: ", ")
                    throw error
                }
                throw RPCError.notFound("no route \(request.method.rawValue) \(path)")
            case .contentTooLarge: throw RPCError(.contentTooLarge, "too_large", "the request body is over the limit")
            case .methodNotAllowed: throw RPCError(.methodNotAllowed, "method_not_allowed", "\(request.method.rawValue) is not allowed on \(request.uri.path)")
            default: throw RPCError(error.status, "bad_request", error.body ?? "the request was refused")
            }
        }
    }
}

extension ErrorMiddleware {
    /// Whether `path` fits a route template such as `/events/{id}/children`.
    static func matches(template: String, path: String) -> Bool {
        let want = template.split(separator: "/"), have = path.split(separator: "/")
        guard want.count == have.count else { return false }
        return zip(want, have).allSatisfy { $0.hasPrefix("{") || $0 == $1 }
    }
}

/// A token bucket per client address: `perSecond` requests a second, bursts up to the same.
/// Tokens are counted in millionths, so the arithmetic stays in integers. The clock is read
/// inside the lock: a time read outside it could be older than a bucket's, as requests race.
final class RateLimiter: Sendable {
    let perSecond: Int
    private let buckets: Mutex<TokenBuckets>

    init(perSecond: Int) {
        self.perSecond = perSecond
        buckets = Mutex(TokenBuckets(perSecond: perSecond))
    }

    static func nowMicroseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000 + UInt64(time.tv_nsec) / 1_000
    }

    func allow(_ client: String) -> Bool {
        buckets.withLock { $0.allow(client, nowMicroseconds: Self.nowMicroseconds()) }
    }
}

/// The token buckets themselves, with time as an input: no clock, no lock, no trap whatever
/// order the times come in (a time older than a bucket's refills nothing).
struct TokenBuckets: Sendable {
    let perSecond: Int
    /// Beyond this many clients, buckets that are full again are forgotten (a full bucket is
    /// what a new client gets anyway); if none is, all are.
    let maxClients: Int
    private var buckets: [String: (microTokens: UInt64, at: UInt64)] = [:]

    init(perSecond: Int, maxClients: Int = 10_000) {
        precondition(perSecond > 0 && maxClients > 0)
        self.perSecond = perSecond
        self.maxClients = maxClients
    }

    var clients: Int { buckets.count }

    mutating func allow(_ client: String, nowMicroseconds now: UInt64) -> Bool {
        let full = UInt64(perSecond) * 1_000_000
        if buckets.count >= maxClients && buckets[client] == nil { forgetFull(now: now) }
        var bucket = buckets[client] ?? (full, now)
        // At most 10 s of refill counts, so the product below stays far from overflow.
        let elapsed = now > bucket.at ? min(now - bucket.at, 10_000_000) : 0
        bucket.microTokens = min(full, bucket.microTokens + elapsed * UInt64(perSecond))
        bucket.at = max(bucket.at, now)
        let allowed = bucket.microTokens >= 1_000_000
        if allowed { bucket.microTokens -= 1_000_000 }
        buckets[client] = bucket
        return allowed
    }

    private mutating func forgetFull(now: UInt64) {
        let full = UInt64(perSecond) * 1_000_000
        buckets = buckets.filter { _, bucket in
            let elapsed = now > bucket.at ? min(now - bucket.at, 10_000_000) : 0
            return bucket.microTokens + elapsed * UInt64(perSecond) < full
        }
        if buckets.count >= maxClients { buckets.removeAll(keepingCapacity: true) }
    }
}
