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

    /// Serves `app` on `address` (HOST:PORT, chosen by `setting` in config.toml) for `what`.
    func start(_ app: some ApplicationProtocol & Sendable, what: String, address: String, setting: String) throws -> Int {
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
        for _ in 0..<1_000 {
            let state = bound.withLock { $0 }
            if let port = state.port { return port }
            if let failure = state.failure { throw ListenFailure(failure, what: what, address: address, setting: setting) }
            usleep(10_000)
        }
        throw RPCStartError(message: "cannot \(what) on \(address): the server did not start within 10 s")
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
