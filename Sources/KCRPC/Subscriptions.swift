import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import KCNode
import KCRuntime
import KCTypes
import NIOCore

/// WebSocket `GET /subscribe?from_height=H&topics=blocks,events` (specs/openapi.yaml,
/// "Subscriptions"). For each height from H on, in order, the server sends one text message
/// per event status change (`type: "event"`, with its index in the height), then one
/// `type: "block"` message that closes the height. A client that remembers the last height
/// whose block message it received and reconnects with `from_height` one above it gets every
/// change exactly once, in order. Without `from_height` it starts at the next commit.
struct Subscriptions: Sendable {
    let node: NodeHandle

    struct Request: Sendable {
        var from: UInt64?
        var blocks = true
        var events = true
    }

    static func parse(_ query: FlatDictionary<Substring, Substring>) throws -> Request {
        var request = Request()
        if let text = query["from_height"] {
            guard let value = UInt64(text), value >= 1 else {
                throw RPCError.badRequest("from_height '\(text.prefix(40))' is not a height (a whole number from 1)")
            }
            request.from = value
        }
        if let text = query["topics"] {
            let topics = text.split(separator: ",").map(String.init)
            for topic in topics where topic != "blocks" && topic != "events" {
                throw RPCError.badRequest("topic '\(topic.prefix(40))' is not one of blocks, events")
            }
            guard !topics.isEmpty else { throw RPCError.badRequest("topics is empty") }
            request.blocks = topics.contains("blocks")
            request.events = topics.contains("events")
        }
        return request
    }

    func register(on router: Router<RPCRequestContext>) {
        router.ws("/subscribe") { request, _ in
            _ = try Self.parse(request.uri.queryParameters)
            guard request.headers[.upgrade]?.lowercased() == "websocket" else {
                throw RPCError(.upgradeRequired, "upgrade_required", "/subscribe is a WebSocket: connect with Upgrade: websocket")
            }
            return .upgrade([:])
        } onUpgrade: { inbound, outbound, context in
            let subscription = try Self.parse(context.request.uri.queryParameters)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    // The client's side: when it closes, the subscription ends.
                    for try await _ in inbound {}
                }
                group.addTask { try await stream(subscription, to: outbound) }
                try await group.next()
                group.cancelAll()
            }
        }
    }

    func stream(_ subscription: Request, to outbound: WebSocketOutboundWriter) async throws {
        var next = subscription.from ?? node.commits.height + 1
        while !Task.isCancelled {
            let top = node.commits.height
            while next <= top && !Task.isCancelled {
                for message in try messages(height: next, subscription) { try await outbound.write(.text(message)) }
                next += 1
            }
            _ = await node.commits.wait(beyond: top, timeoutMilliseconds: 5_000)
        }
    }

    func messages(height: UInt64, _ subscription: Request) throws -> [String] {
        let queries = ChainQueries(store: node.store, genesis: node.genesis)
        guard let block = try queries.block(height) else { return [] }
        var messages: [String] = []
        if subscription.events {
            for (index, change) in (try queries.results(height)?.eventChanges ?? []).enumerated() {
                messages.append(JSONValue.object([
                    ("type", .string("event")), ("height", View.number(height)), ("index", View.number(index)),
                    ("event_id", View.hex(change.eventID)), ("from", change.from.map { .string($0.name) } ?? .null),
                    ("to", .string(change.to.name)),
                ]).compact())
            }
        }
        if subscription.blocks || subscription.events {
            messages.append(JSONResponse.text(.object([
                ("type", .string("block")), ("height", View.number(height)), ("id", View.hex(block.id)),
                ("time_ms", View.number(block.header.timeMilliseconds)), ("transactions", View.number(block.transactions.count)),
            ])))
        }
        return messages
    }
}
