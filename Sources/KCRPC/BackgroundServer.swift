import Hummingbird
import KCNetwork
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Runs a Hummingbird application on the RPC executor for callers that are not async (the
/// node's main thread, tests): `start` returns once the socket listens, `stop` returns once
/// the server has shut down gracefully (in-flight requests finish; after 5 s it is cancelled).
final class BackgroundServer: Sendable {
    private let task = Mutex<Task<Void, any Error>?>(nil)
    private let group = Mutex<ServiceGroup?>(nil)
    private let bound = Mutex<(port: Int?, failure: (any Error)?)>((nil, nil))

    static func quietLogger(_ label: String) -> Logger {
        var logger = Logger(label: label)
        logger.logLevel = .critical
        return logger
    }

    /// Records the bound port; pass it as the application's `onServerRunning`.
    var onServerRunning: @Sendable (any Channel) async -> Void {
        { [self] channel in self.bound.withLock { $0.port = channel.localAddress?.port } }
    }

    /// Serves `app` on `host`:`port` (chosen by `setting`, e.g. a key of config.toml) for `what`.
    /// An address that cannot be bound (a busy port, a foreign address) is reported at once,
    /// before the server starts, whatever the load; the server's own failure to bind (a port
    /// taken in between) is reported as soon as it comes.
    func start(_ app: some ApplicationProtocol & Sendable, what: String, host: String, port: Int, setting: String) throws -> Int {
        let address = "\(host):\(port)"
        do { try Self.probe(host: host, port: port) } catch {
            throw ListenFailure(error, what: what, address: address, setting: setting)
        }
        // No signal handling here: the node owns SIGINT and SIGTERM and calls `stop`.
        let services = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: Self.quietLogger("lifecycle")))
        group.withLock { $0 = services }
        let running = Task(executorPreference: RPCServer.executor) { [self] in
            do { try await services.run() } catch {
                self.bound.withLock { $0.failure = error }
                throw error
            }
        }
        task.withLock { $0 = running }
        for _ in 0..<6_000 {
            let state = bound.withLock { $0 }
            if let port = state.port { return port }
            if let failure = state.failure { throw ListenFailure(failure, what: what, address: address, setting: setting) }
            usleep(10_000)
        }
        throw RPCStartError(message: "cannot \(what) on \(address): the server did not start within 60 s")
    }

    /// Binds a socket of the address's family to `host`:`port` and closes it: throws the bind's
    /// error (an `IOError` with its errno). Port 0 (any free port) is not probed. Like the
    /// server's own socket it sets SO_REUSEADDR, so a port left in TIME_WAIT is not refused.
    static func probe(host: String, port: Int) throws {
        guard port != 0 else { return }
        let address = try SocketAddress.makeAddressResolvingHost(host, port: port)
        let family: CInt
        switch address {
        case .v4: family = AF_INET
        case .v6: family = AF_INET6
        case .unixDomainSocket: return
        }
        let socketType = CInt(SOCK_STREAM.rawValue)
        let descriptor = socket(family, socketType, 0)
        guard descriptor >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
        defer { close(descriptor) }
        var one: CInt = 1
        _ = setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size))
        let result = address.withSockAddr { pointer, length in bind(descriptor, pointer, socklen_t(length)) }
        guard result == 0 else { throw IOError(errnoCode: errno, reason: "bind") }
    }

    func stop() {
        guard let running = task.withLock({ $0 }), let services = group.withLock({ $0 }) else { return }
        let done = Mutex(false)
        Task(executorPreference: RPCServer.executor) {
            await services.triggerGracefulShutdown()
            _ = await running.result
            done.withLock { $0 = true }
        }
        for _ in 0..<500 where !done.withLock({ $0 }) { usleep(10_000) }
        if !done.withLock({ $0 }) { running.cancel() }
    }
}
