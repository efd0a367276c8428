import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A minimal WebSocket client over a blocking socket, enough to subscribe and read text
/// messages; closing the socket without a close frame is the "forced disconnect".
public final class WebSocketClient {
    let descriptor: Int32
    private var buffer: [UInt8] = []

    public init(port: Int, path: String) throws {
        descriptor = try connectLoopback(port: port, receiveTimeoutMilliseconds: 30_000)
        let request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        _ = Array(request.utf8).withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        // The response head ends with an empty line.
        while true {
            if let end = find([13, 10, 13, 10]) {
                let head = String(decoding: buffer[0..<end], as: UTF8.self)
                buffer.removeFirst(end + 4)
                guard head.hasPrefix("HTTP/1.1 101") else { throw Failure(message: "no upgrade: \(head.prefix(200))") }
                break
            }
            guard fill() else { throw Failure(message: "closed during the upgrade") }
        }
    }

    public struct Failure: Error { public let message: String }

    deinit { close(descriptor) }

    private func find(_ pattern: [UInt8]) -> Int? {
        guard buffer.count >= pattern.count else { return nil }
        for start in 0...(buffer.count - pattern.count) where Array(buffer[start..<(start + pattern.count)]) == pattern { return start }
        return nil
    }

    private func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65_536)
        let got = recv(descriptor, &chunk, chunk.count, 0)
        guard got > 0 else { return false }
        buffer += chunk[0..<got]
        return true
    }

    private func take(_ count: Int) -> [UInt8]? {
        while buffer.count < count { guard fill() else { return nil } }
        let bytes = Array(buffer[0..<count])
        buffer.removeFirst(count)
        return bytes
    }

    /// False once the server has closed the connection (data still waiting counts as open).
    public var isOpen: Bool {
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, 0) > 0 else { return true }
        var byte: UInt8 = 0
        return recv(descriptor, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) > 0
    }

    /// The next text message, or nil when the connection ends or the read times out.
    public func next() -> String? {
        while true {
            guard let head = take(2) else { return nil }
            let opcode = head[0] & 0x0F
            var length = Int(head[1] & 0x7F)
            if length == 126 {
                guard let ext = take(2) else { return nil }
                length = Int(ext[0]) << 8 | Int(ext[1])
            } else if length == 127 {
                guard let ext = take(8) else { return nil }
                length = ext.reduce(0) { $0 << 8 | Int($1) }
            }
            guard let payload = take(length) else { return nil }
            switch opcode {
            case 0x1: return String(decoding: payload, as: UTF8.self)
            case 0x8: return nil
            default: continue  // pings, binary: not used by the server
            }
        }
    }
}

