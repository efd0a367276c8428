import Foundation
@testable import KCRPC
import KCTestSupport
import NIOCore
import Testing

/// The bind probe that names a busy RPC port before the server starts (a slow start under load
/// used to end in "did not start within 10 s" instead of the port and the setting to change).
struct BackgroundServerTests {
    private func errno(of body: () throws -> Void) -> CInt? {
        do { try body() } catch let error as IOError { return error.errnoCode } catch { return -1 }
        return nil
    }

    @Test func aHeldPortIsRefusedAndAFreedOneIsNot() throws {
        let holder = try listenLoopback()
        #expect(errno { try BackgroundServer.probe(host: "127.0.0.1", port: holder.port) } == EADDRINUSE)
        close(holder.descriptor)
        // Freed: the probe binds and lets go, so the server binds after it.
        #expect(errno { try BackgroundServer.probe(host: "127.0.0.1", port: holder.port) } == nil)
        let again = try listenLoopback(port: holder.port)
        close(again.descriptor)
    }

    @Test func anyPortAndAForeignAddress() {
        #expect(errno { try BackgroundServer.probe(host: "127.0.0.1", port: 0) } == nil)
        // TEST-NET-1 (RFC 5737) is no interface of this machine.
        #expect(errno { try BackgroundServer.probe(host: "192.0.2.1", port: 26657) } == EADDRNOTAVAIL)
    }

    /// Through a server that uses it (the payload server, whose setting is `--port`): the
    /// refusal names the address, the cause and the setting.
    @Test func aBusyPortIsNamedWithItsSetting() throws {
        let holder = try listenLoopback()
        defer { close(holder.descriptor) }
        let server = ContentServer(directory: NSTemporaryDirectory(), host: "127.0.0.1", port: holder.port)
        do {
            _ = try server.start()
            Issue.record("served on a busy port")
        } catch {
            #expect("\(error)".contains("cannot serve payloads on 127.0.0.1:\(holder.port): the port is already in use"), "\(error)")
            #expect("\(error)".contains("--port"))
        }
        server.stop()
    }
}
