import KCTypes
import KCNetwork
import Logging
import Synchronization
import Testing

/// The node's log format, through the public logger and the swift-log handler that
/// libraries write through.
struct NodeLogHandlerTests {
    final class Lines: Sendable {
        let lines = Mutex<[String]>([])
        func append(_ line: String) { lines.withLock { $0.append(line) } }
        var all: [String] { lines.withLock { $0 } }
    }

    @Test func textLinesCarryTimeLevelMessageAndSortedFields() throws {
        let out = Lines()
        let log = NodeLogger(minimum: .info, format: .text, sink: out.append)
        log.info("committed", ["height": "3", "block": "7fb9", "txs": "0"])
        let line = try #require(out.all.first)
        let parts = line.split(separator: " ")
        #expect(parts.count == 6)
        // 2026-11-23T15:11:37.123Z
        #expect(parts[0].count == 24 && parts[0].hasSuffix("Z") && parts[0].dropFirst(10).first == "T")
        #expect(parts.dropFirst().joined(separator: " ") == "info committed block=7fb9 height=3 txs=0")
    }

    @Test func entriesBelowTheLevelAreDroppedAndTheirFieldsNeverBuilt() {
        let out = Lines()
        let log = NodeLogger(minimum: .warning, format: .text, sink: out.append)
        let built = Mutex(0)
        func field() -> String { built.withLock { $0 += 1 }; return "x" }
        log.info("quiet", ["k": field()])
        log.debug("quieter")
        log.warning("loud", ["k": field()])
        #expect(out.all.count == 1)
        #expect(out.all.first?.contains(" warning loud k=x") == true)
        #expect(built.withLock { $0 } == 1)
    }

    /// A peer's words reach the log as field values (ban reasons): a newline, a quote or a
    /// `key=` inside one must not start a line or a field of its own.
    @Test func aHostileFieldCannotForgeALineOrAField() throws {
        let out = Lines()
        let log = NodeLogger(minimum: .info, format: .text, sink: out.append)
        log.warning("banning peer", ["reason": "bad\n2026-01-01T00:00:00.000Z error forged height=1", "peer": "ab"])
        let line = try #require(out.all.first)
        #expect(!line.contains("\n"))
        #expect(line.hasSuffix(#" warning banning peer peer=ab reason="bad\n2026-01-01T00:00:00.000Z error forged height=1""#))
        log.info("x", ["k": "a=b"])
        #expect(out.all.last?.hasSuffix(#" info x k="a=b""#) == true)
    }

    @Test func jsonLinesAreObjectsWithTheFieldsAsStrings() throws {
        let out = Lines()
        let log = NodeLogger(minimum: .info, format: .json, sink: out.append)
        log.warning("round failed", ["height": "9", "msg": "a field named like a member", "note": "quote \" and\nnewline"])
        let line = try #require(out.all.first)
        let value = try StrictJSON.parse(line)
        #expect(value["level"] == .string("warning"))
        #expect(value["msg"] == .string("round failed"))
        #expect(value["height"] == .string("9"))
        #expect(value["field_msg"] == .string("a field named like a member"))
        #expect(value["note"] == .string("quote \" and\nnewline"))
        guard case .string(let time) = value["time"] else { Issue.record("no time in \(line)"); return }
        #expect(time.count == 24 && time.hasSuffix("Z"))
    }

    /// What a library (Hummingbird) logs through a logger made by the handler: same format,
    /// same level, its label as `module`, its metadata kept.
    @Test func aLibraryLoggerWritesTheNodeFormat() throws {
        let out = Lines()
        var library = Logger(label: "hummingbird") { label in
            NodeLogHandler(label: label, level: .info, format: .text, sink: out.append)
        }
        library[metadataKey: "request_id"] = "7"
        library.debug("dropped")
        library.info("Server started", metadata: ["address": "127.0.0.1:1"])
        #expect(out.all.count == 1)
        #expect(out.all.first?.hasSuffix(" info Server started address=127.0.0.1:1 module=hummingbird request_id=7") == true)
        let node = NodeLogger(minimum: .info, format: .text, sink: out.append)
        node.module("rpc").notice("listening")
        #expect(out.all.last?.hasSuffix(" notice listening module=rpc") == true)
    }
}
