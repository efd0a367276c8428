import Logging

/// Log levels, least to most severe: swift-log's (the names `log.level` and `--log-level` accept).
public typealias LogLevel = Logger.Level

extension Logger.Level {
    public var name: String { rawValue }

    public init?(name: String) { self.init(rawValue: name) }
}

/// The node's logging front: every component logs through one swift-log `Logger` whose
/// handler is `NodeLogHandler`, so the node's lines and the libraries' (Hummingbird's, once
/// `NodeLogHandler.bootstrap` ran) share one format and one level.
public struct NodeLogger: Sendable {
    public let logger: Logger

    public var minimum: LogLevel { logger.logLevel }

    public init(minimum: LogLevel = .info, format: LogFormat = .text, sink: @escaping @Sendable (String) -> Void) {
        logger = Logger(label: NodeLogHandler.nodeLabel) { label in
            NodeLogHandler(label: label, level: minimum, format: format, sink: sink)
        }
    }

    public init(logger: Logger) { self.logger = logger }

    /// A logger that drops everything (tests, tools).
    public static let silent = NodeLogger(minimum: .critical) { _ in }

    /// The same handler and level, with `module=name` on every line (for a library's logger).
    public func module(_ name: String) -> Logger {
        var child = logger
        child[metadataKey: "module"] = .string(name)
        return child
    }

    /// Fields are built only when the entry is written: a filtered entry costs nothing on
    /// the consensus thread.
    public func log(_ level: LogLevel, _ message: @autoclosure () -> String,
                    _ fields: @autoclosure () -> KeyValuePairs<String, String> = [:]) {
        guard level >= logger.logLevel else { return }
        var metadata = Logger.Metadata()
        for (key, value) in fields() { metadata[key] = .string(value) }
        logger.log(level: level, Logger.Message(stringLiteral: message()), metadata: metadata)
    }

    public func log(_ level: LogLevel, _ message: String, fields: [String: String]) {
        guard level >= logger.logLevel else { return }
        logger.log(level: level, Logger.Message(stringLiteral: message), metadata: fields.mapValues { .string($0) })
    }

    public func debug(_ message: @autoclosure () -> String, _ fields: @autoclosure () -> KeyValuePairs<String, String> = [:]) {
        log(.debug, message(), fields())
    }
    public func info(_ message: @autoclosure () -> String, _ fields: @autoclosure () -> KeyValuePairs<String, String> = [:]) {
        log(.info, message(), fields())
    }
    public func warning(_ message: @autoclosure () -> String, _ fields: @autoclosure () -> KeyValuePairs<String, String> = [:]) {
        log(.warning, message(), fields())
    }
    public func error(_ message: @autoclosure () -> String, _ fields: @autoclosure () -> KeyValuePairs<String, String> = [:]) {
        log(.error, message(), fields())
    }
}
