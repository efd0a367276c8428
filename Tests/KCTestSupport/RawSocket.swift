#if canImport(Glibc)
import Glibc
#endif

public struct SocketFailure: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// A blocking TCP socket connected to `host:port` (IPv4, loopback in tests), with a receive
/// timeout; `source` binds the local end first (another loopback address, such as 127.0.0.2,
/// makes the connection come from a different client address).
public func connectLoopback(port: Int, host: String = "127.0.0.1", source: String? = nil,
                            receiveTimeoutMilliseconds: Int = 5_000) throws -> Int32 {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw SocketFailure(message: "socket() failed: errno \(errno)") }
    func address(_ text: String, port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr(text)
        return address
    }
    if let source {
        var local = address(source, port: 0)
        let bound = withUnsafePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else {
            close(descriptor)
            throw SocketFailure(message: "cannot bind to \(source): errno \(errno)")
        }
    }
    var remote = address(host, port: port)
    let status = withUnsafePointer(to: &remote) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard status == 0 else {
        close(descriptor)
        throw SocketFailure(message: "cannot connect to \(host):\(port): errno \(errno)")
    }
    var timeout = timeval(tv_sec: receiveTimeoutMilliseconds / 1_000, tv_usec: (receiveTimeoutMilliseconds % 1_000) * 1_000)
    setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    return descriptor
}

/// A blocking TCP client socket for tests that must control every byte and every pause (an
/// attacker's HTTP or P2P client): send raw bytes, read with a timeout, see the peer close.
public final class RawSocket {
    public let descriptor: Int32

    public init(port: Int, host: String = "127.0.0.1", source: String? = nil, receiveTimeoutMilliseconds: Int = 2_000) throws {
        descriptor = try connectLoopback(port: port, host: host, source: source, receiveTimeoutMilliseconds: receiveTimeoutMilliseconds)
    }

    deinit { close(descriptor) }

    /// Sends everything; false once the peer closed or the send failed.
    @discardableResult
    public func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { return false }
            offset += sent
        }
        return true
    }

    @discardableResult
    public func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    /// Up to `maximum` bytes; empty when the peer closed, nil on timeout or error.
    public func receive(maximum: Int = 65_536) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: maximum)
        let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, maximum, 0) }
        if count < 0 { return nil }
        return Array(buffer[0..<count])
    }

    /// Exactly `count` bytes, or nil if the peer closes or a read times out first.
    public func receive(exactly count: Int) -> [UInt8]? {
        var result: [UInt8] = []
        while result.count < count {
            guard let chunk = receive(maximum: count - result.count), !chunk.isEmpty else { return nil }
            result += chunk
        }
        return result
    }

    /// True when the peer closes (or resets) the connection within `milliseconds`; whatever
    /// it sends first is read and skipped.
    public func waitClosed(milliseconds: Int = 3_000) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 4_096)
        var left = milliseconds
        while left > 0 {
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let step = min(left, 100)
            left -= step
            guard poll(&poller, 1, Int32(step)) > 0 else { continue }
            let count = recv(descriptor, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if count == 0 || (count < 0 && errno != EAGAIN && errno != EWOULDBLOCK) { return true }
        }
        return false
    }

    /// Reads one HTTP/1.1 response (status line, headers, and a Content-Length body); nil on
    /// close or timeout.
    public func readHTTPResponse() -> (status: Int, head: String, body: [UInt8])? {
        var data: [UInt8] = []
        var headerEnd: Int? = nil
        while headerEnd == nil {
            guard let chunk = receive(maximum: 16_384), !chunk.isEmpty else { return nil }
            let searchFrom = max(0, data.count - 3)
            data += chunk
            if data.count >= 4 {
                for index in searchFrom...(data.count - 4)
                where data[index] == 13 && data[index + 1] == 10 && data[index + 2] == 13 && data[index + 3] == 10 {
                    headerEnd = index
                    break
                }
            }
        }
        let head = String(decoding: data[0..<headerEnd!], as: UTF8.self)
        let lines = head.split(separator: "\r\n")
        let parts = (lines.first ?? "").split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { return nil }
        var length = 0
        for line in lines.dropFirst() where line.lowercased().hasPrefix("content-length:") {
            length = Int(line.dropFirst("content-length:".count).filter { $0 != " " }) ?? 0
        }
        var body = Array(data[(headerEnd! + 4)...])
        while body.count < length {
            guard let chunk = receive(maximum: length - body.count), !chunk.isEmpty else { return nil }
            body += chunk
        }
        return (status, head, Array(body.prefix(length)))
    }
}

/// A listening TCP socket on 127.0.0.1:`port`, any free port when 0 (what holds a port in
/// busy-port tests): the descriptor (close it to free the port) and the port.
public func listenLoopback(port: Int = 0) throws -> (descriptor: Int32, port: Int) {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw SocketFailure(message: "socket() failed: errno \(errno)") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let status = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw -> Int32 in
            guard bind(descriptor, raw, length) == 0, listen(descriptor, 8) == 0 else { return -1 }
            return getsockname(descriptor, raw, &length)
        }
    }
    guard status == 0 else {
        close(descriptor)
        throw SocketFailure(message: "cannot listen on 127.0.0.1:\(port): errno \(errno)")
    }
    return (descriptor, Int(UInt16(bigEndian: address.sin_port)))
}
