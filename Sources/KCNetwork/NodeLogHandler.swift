import Logging
import KCTypes

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How log lines are written (`log.format` in config.toml, `--log-format`).
public enum LogFormat: String, Sendable, CaseIterable {
    /// `2026-11-23T15:11:37.123Z info committed block=7fb9e4… height=3 txs=0`: time, level,
    /// message, then `key=value` fields in key order; a value with a space, quote, `=` or
    /// control character (and a message with a control character) is quoted with JSON
    /// escapes, so no field can forge a line.
    case text
    /// One JSON object per line: `time`, `level`, `msg`, then the fields as strings.
    case json
}

/// The swift-log handler that writes the node's lines: to `sink`, one finished line per
/// entry (the sink must be thread-safe). Metadata set on a logger (`module=rpc`) and the
/// entry's own fields are merged; the entry's win.
public struct NodeLogHandler: LogHandler {
    /// The label of the node's own loggers; any other label is written as `module=<label>`.
    public static let nodeLabel = "membria"

    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider? = nil
    public let label: String
    public let format: LogFormat
    let sink: @Sendable (String) -> Void

    public init(label: String, level: Logger.Level, format: LogFormat, sink: @escaping @Sendable (String) -> Void) {
        self.label = label
        self.logLevel = level
        self.format = format
        self.sink = sink
    }

    /// Makes every `Logger(label:)` in the process (the libraries' included) write through
    /// this handler. Once per process; later calls are ignored by swift-log's rules.
    public static func bootstrap(level: Logger.Level, format: LogFormat, sink: @escaping @Sendable (String) -> Void) {
        LoggingSystem.bootstrap { label in NodeLogHandler(label: label, level: level, format: format, sink: sink) }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if label != Self.nodeLabel && fields["module"] == nil { fields["module"] = .string(label) }
        if let provided = metadataProvider?.get() { fields.merge(provided) { _, new in new } }
        if let own = event.metadata { fields.merge(own) { _, new in new } }
        if let error = event.error { fields["error"] = .string("\(error)") }
        sink(Self.line(time: Self.now(), level: event.level, message: event.message.description, fields: fields, format: format))
    }

    /// One finished line (no newline). Fields are written in key order: swift-log's metadata
    /// has no order of its own, and a fixed one keeps lines comparable.
    public static func line(time: String, level: Logger.Level, message: String, fields: Logger.Metadata, format: LogFormat) -> String {
        let sorted = fields.sorted { $0.key < $1.key }
        switch format {
        case .text:
            let controls = message.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }
            var line = time + " " + level.rawValue + " " + (controls ? JSONValue.quote(message) : message)
            for (key, value) in sorted { line += " " + textValue(key) + "=" + textValue("\(value)") }
            return line
        case .json:
            var line = "{\"time\":" + JSONValue.quote(time) + ",\"level\":" + JSONValue.quote(level.rawValue)
                + ",\"msg\":" + JSONValue.quote(message)
            for (key, value) in sorted {
                // A field may not replace the line's own members.
                let name = ["time", "level", "msg"].contains(key) ? "field_" + key : key
                line += "," + JSONValue.quote(name) + ":" + JSONValue.quote("\(value)")
            }
            return line + "}"
        }
    }

    /// Plain when it cannot be misread, JSON-quoted otherwise (peers' words reach the log:
    /// a reason with a newline must not start a line of its own).
    static func textValue(_ text: String) -> String {
        let plain = !text.isEmpty && text.unicodeScalars.allSatisfy { scalar in
            scalar.value > 0x20 && scalar.value != 0x7F && scalar != "\"" && scalar != "=" && scalar != "\\"
        }
        return plain ? text : JSONValue.quote(text)
    }

    static func now() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let milliseconds = UInt64(max(0, now.tv_sec)) * 1_000 + UInt64(max(0, now.tv_nsec)) / 1_000_000
        return UTCTime.rfc3339(milliseconds: milliseconds)
    }
}
