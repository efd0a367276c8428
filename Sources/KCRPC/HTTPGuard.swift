import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Limits of the HTTP server that protect the node from its clients (specs/openapi.yaml,
/// "Limits"): how many connections, how long a request may take to arrive, how long a quiet
/// connection stays open, how large a request line and head may be.
public struct HTTPLimits: Sendable, Equatable {
    /// Open connections in all, and from one IP address; more are answered 503 and closed.
    public var maxConnections = 1_024
    public var maxConnectionsPerAddress = 64
    /// From a request's first byte to its last (head and body), in milliseconds; beyond it
    /// the connection is closed (408 if nothing was answered yet).
    public var requestTimeoutMilliseconds: Int64 = 10_000
    /// A connection with no request in progress and nothing received for this long is closed.
    public var idleTimeoutMilliseconds: Int64 = 30_000
    /// Longest request line (method, target, version): longer is 414.
    public var maxRequestLineBytes = 8 << 10
    /// Largest head (request line and headers): larger is 431.
    public var maxHeadBytes = 32 << 10

    public init() {}
}

/// Open connections by client address, shared by every connection of one server.
final class ConnectionGate: Sendable {
    let limits: HTTPLimits
    private let counts = Mutex<(total: Int, byAddress: [String: Int])>((0, [:]))

    init(limits: HTTPLimits) { self.limits = limits }

    /// Takes a place for `address`; the reason when there is none.
    func open(_ address: String) -> String? {
        counts.withLock { counts in
            if counts.total >= limits.maxConnections { return "the server has \(limits.maxConnections) connections open" }
            if counts.byAddress[address, default: 0] >= limits.maxConnectionsPerAddress {
                return "\(limits.maxConnectionsPerAddress) connections from \(address) are open"
            }
            counts.total += 1
            counts.byAddress[address, default: 0] += 1
            return nil
        }
    }

    func close(_ address: String) {
        counts.withLock { counts in
            counts.total -= 1
            let left = counts.byAddress[address, default: 1] - 1
            counts.byAddress[address] = left > 0 ? left : nil
        }
    }

    var openConnections: Int { counts.withLock { $0.total } }
}

/// Wraps Hummingbird's HTTP/1 + WebSocket child channel with the guards: `HTTPFrontGuard` in
/// front of everything (connection limits, request and idle clocks, the request-line length),
/// and `HTTPRequestObserver` right after the HTTP decoder (request and response boundaries,
/// 414/431/400 for heads the decoder refuses).
struct GuardedHTTPChannel<Inner: ServerChildChannel>: ServerChildChannel {
    typealias Value = Inner.Value
    let inner: Inner
    let gate: ConnectionGate

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let exchange = ExchangeState()
        do {
            try channel.pipeline.syncOperations.addHandler(HTTPFrontGuard(gate: gate, exchange: exchange), position: .first)
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        return inner.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let decoder = try channel.pipeline.syncOperations.context(handlerType: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try channel.pipeline.syncOperations.addHandler(HTTPRequestObserver(exchange: exchange, limits: gate.limits),
                                                           position: .after(decoder.handler))
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

/// What the two guards of one connection know about its requests (used on its event loop only).
final class ExchangeState {
    /// When the request being received started (its first byte), nil between requests.
    var requestStartedAt: NIODeadline? = nil
    /// Requests received whose response has not ended.
    var inFlight = 0
    var lastActivity = NIODeadline.now()
    /// A WebSocket now: the HTTP clocks stop.
    var upgraded = false
    /// Whether a request line longer than the limit went by since the last decoded head.
    var longRequestLine = false
}

/// First handler of every HTTP connection, on raw bytes.
final class HTTPFrontGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let gate: ConnectionGate
    let exchange: ExchangeState
    var address: String? = nil
    var refused = false
    var clock: RepeatedTask? = nil
    /// The line being received: its length so far and whether it starts like a request line
    /// ("METHOD SP"); only its first bytes are kept.
    var lineBytes = 0
    var lineStart: [UInt8] = []

    init(gate: ConnectionGate, exchange: ExchangeState) {
        self.gate = gate
        self.exchange = exchange
    }

    func channelActive(context: ChannelHandlerContext) {
        let address = context.channel.remoteAddress?.ipAddress ?? "?"
        if let reason = gate.open(address) {
            refused = true
            let body = #"{"code":"unavailable","message":"\#(reason); try again later"}"#
            Self.writeRaw(context: context, status: "503 Service Unavailable", body: body, extra: "Retry-After: 1\r\n")
            context.close(promise: nil)
        } else {
            self.address = address
            let loop = context.eventLoop
            let contextBox = NIOLoopBound(context, eventLoop: loop)
            clock = loop.scheduleRepeatedTask(initialDelay: .milliseconds(500), delay: .milliseconds(500)) { [self] _ in
                check(context: contextBox.value)
            }
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        clock?.cancel()
        clock = nil
        if let address {
            gate.close(address)
            self.address = nil
        }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        clock?.cancel()
        if let address { gate.close(address) }
        address = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        let buffer = unwrapInboundIn(data)
        exchange.lastActivity = .now()
        if !exchange.upgraded {
            if exchange.requestStartedAt == nil { exchange.requestStartedAt = .now() }
            scanLines(buffer)
        }
        context.fireChannelRead(data)
    }

    /// Keeps the current line's length and first bytes, so that a head the decoder refuses
    /// can be told apart: a request line too long (414) or headers too large (431).
    func scanLines(_ buffer: ByteBuffer) {
        let limit = gate.limits.maxRequestLineBytes
        buffer.withUnsafeReadableBytes { bytes in
            guard let base = bytes.baseAddress else { return }
            var index = 0
            while index < bytes.count {
                // Jump to the next line break (memchr), noting the line's start and length.
                let rest = bytes.count - index
                let found = memchr(base + index, Int32(UInt8(ascii: "\n")), rest)
                let end = found.map { base.distance(to: UnsafeRawPointer($0)) } ?? bytes.count
                if lineStart.count < 16 {
                    let take = min(16 - lineStart.count, end - index)
                    lineStart.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[index..<(index + take)]))
                }
                let before = lineBytes
                lineBytes += end - index
                if before <= limit && lineBytes > limit && Self.looksLikeRequestLine(lineStart) {
                    exchange.longRequestLine = true
                }
                if found == nil { break }
                lineBytes = 0
                lineStart.removeAll(keepingCapacity: true)
                index = end + 1
            }
        }
    }

    /// "METHOD SP" with an upper-case token: a request line, not a header ("Name: value").
    static func looksLikeRequestLine(_ start: [UInt8]) -> Bool {
        guard let space = start.firstIndex(of: UInt8(ascii: " ")), space > 0 else { return false }
        return start[..<space].allSatisfy { (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) }
    }

    /// Every half second: a request that takes too long, or a connection quiet for too long,
    /// is closed.
    func check(context: ChannelHandlerContext) {
        guard !exchange.upgraded, context.channel.isActive else { return }
        let now = NIODeadline.now()
        let limits = gate.limits
        if let started = exchange.requestStartedAt, now - started > .milliseconds(limits.requestTimeoutMilliseconds) {
            if exchange.inFlight == 0 {
                let body = #"{"code":"request_timeout","message":"the request did not arrive within \#(limits.requestTimeoutMilliseconds) ms"}"#
                Self.writeRaw(context: context, status: "408 Request Timeout", body: body)
            }
            context.close(promise: nil)
        } else if exchange.requestStartedAt == nil && exchange.inFlight == 0
                    && now - exchange.lastActivity > .milliseconds(limits.idleTimeoutMilliseconds) {
            context.close(promise: nil)
        }
    }

    /// A whole response written as bytes, bypassing the HTTP encoder (this handler is in front
    /// of it): only when no other response is in progress on the connection.
    static func writeRaw(context: ChannelHandlerContext, status: String, body: String, extra: String = "") {
        let bytes = Array(body.utf8)
        let head = "HTTP/1.1 \(status)\r\nContent-Type: application/json\r\nContent-Length: \(bytes.count)\r\nConnection: close\r\n\(extra)\r\n"
        var buffer = context.channel.allocator.buffer(capacity: head.utf8.count + bytes.count)
        buffer.writeString(head)
        buffer.writeBytes(bytes)
        context.writeAndFlush(NIOAny(buffer), promise: nil)
    }
}

/// Right after the HTTP decoder: marks where requests and responses begin and end, and
/// answers heads the decoder refuses (414 request line, 431 headers, 400 otherwise) before the
/// decoder closes the connection. Once the connection is a WebSocket it passes everything on
/// untouched (it cannot leave the pipeline in the middle of the upgrade's write and flush of
/// the 101 response without losing the flush).
final class HTTPRequestObserver: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    let exchange: ExchangeState
    let limits: HTTPLimits
    var responding = false

    init(exchange: ExchangeState, limits: HTTPLimits) {
        self.exchange = exchange
        self.limits = limits
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if exchange.upgraded { return context.fireChannelRead(data) }
        switch unwrapInboundIn(data) {
        case .head:
            exchange.longRequestLine = false
        case .body:
            break
        case .end:
            exchange.requestStartedAt = nil
            exchange.inFlight += 1
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if exchange.upgraded { return context.write(data, promise: promise) }
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status == .switchingProtocols:
            exchange.upgraded = true
        case .head(let head) where head.status.code < 200:
            break
        case .head:
            responding = true
        case .body:
            break
        case .end:
            responding = false
            exchange.inFlight = max(0, exchange.inFlight - 1)
            exchange.lastActivity = .now()
        }
        context.write(data, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard !exchange.upgraded, let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        // The decoder closes the connection right after this returns: answer now, if no other
        // response is under way.
        if !responding {
            let status: HTTPResponseStatus
            let message: String
            if parserError == .headerOverflow && exchange.longRequestLine {
                status = .uriTooLong
                message = "the request line is longer than \(limits.maxRequestLineBytes) bytes; shorten the URL"
            } else if parserError == .headerOverflow {
                status = .requestHeaderFieldsTooLarge
                message = "the request head is larger than \(limits.maxHeadBytes) bytes (or one header than \(limits.maxRequestLineBytes))"
            } else {
                status = .badRequest
                message = "malformed HTTP request: \(parserError)"
            }
            let body = #"{"code":"\#(status == .badRequest ? "bad_request" : "too_large")","message":"\#(message)"}"#
            var buffer = context.channel.allocator.buffer(capacity: body.utf8.count)
            buffer.writeString(body)
            let headers = HTTPHeaders([("Content-Type", "application/json"), ("Content-Length", "\(buffer.readableBytes)"),
                                       ("Connection", "close")])
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
        context.fireErrorCaught(error)
    }
}
