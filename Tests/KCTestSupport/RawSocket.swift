#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A blocking TCP client socket for tests that must control every byte and every pause (an
/// attacker's HTTP or P2P client): connect, send raw bytes, read with a timeout.
public final class RawSocket {
    public let descriptor: Int32

    /// Connects to `host:port` (IPv4), or returns nil.
    public init?(host: String = "127.0.0.1", port: Int, receiveTimeoutMilliseconds: Int = 2_000) {
        #if canImport(Glibc)
        let socketType = Int32(SOCK_STREAM.rawValue)
        #else
        let socketType = SOCK_STREAM
        #endif
        let fd = socket(AF_INET, socketType, 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            close(fd)
            return nil
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            return nil
        }
        descriptor = fd
        var timeout = timeval(tv_sec: receiveTimeoutMilliseconds / 1_000, tv_usec: Int((receiveTimeoutMilliseconds % 1_000) * 1_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var noSignal: Int32 = 1
        _ = noSignal
        #if canImport(Darwin)
        setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &noSignal, socklen_t(MemoryLayout<Int32>.size))
        #endif
    }

    deinit { close(descriptor) }

    /// Sends everything; false once the peer closed or the send failed.
    @discardableResult
    public func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { buffer in
                #if canImport(Glibc)
                Glibc.send(descriptor, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL))
                #else
                Darwin.send(descriptor, buffer.baseAddress, buffer.count, 0)
                #endif
            }
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

    /// Reads until `bytes` have arrived, the peer closes, or a read times out.
    public func receive(exactly bytes: Int) -> [UInt8]? {
        var result: [UInt8] = []
        while result.count < bytes {
            guard let chunk = receive(maximum: bytes - result.count), !chunk.isEmpty else { return nil }
            result += chunk
        }
        return result
    }

    /// Whether the peer has closed the connection: a read returns end of stream (or an error
    /// such as a reset) within `withinMilliseconds`.
    public func peerClosed(withinMilliseconds: Int) -> Bool {
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(withinMilliseconds)) > 0 else { return false }
        var byte: UInt8 = 0
        let count = recv(descriptor, &byte, 1, Int32(MSG_PEEK))
        return count <= 0
    }

    /// Reads one HTTP/1.1 response (status line, headers, and a Content-Length body); nil on
    /// close or timeout.
    public func readHTTPResponse() -> (status: Int, headers: String, body: [UInt8])? {
        var data: [UInt8] = []
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        var headerEnd: Int? = nil
        while headerEnd == nil {
            guard let chunk = receive(maximum: 16_384), !chunk.isEmpty else { return nil }
            data += chunk
            if data.count >= 4 {
                for index in 0...(data.count - 4) where Array(data[index..<(index + 4)]) == separator {
                    headerEnd = index
                    break
                }
            }
        }
        let head = String(decoding: data[0..<headerEnd!], as: UTF8.self)
        let statusLine = head.split(separator: "\r\n", maxSplits: 1).first.map(String.init) ?? ""
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { return nil }
        var length = 0
        for line in head.split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
            length = Int(line.split(separator: ":", maxSplits: 1)[1].trimmingCharacters(in: " ")) ?? 0
        }
        var body = Array(data[(headerEnd! + 4)...])
        while body.count < length {
            guard let chunk = receive(maximum: length - body.count), !chunk.isEmpty else { return nil }
            body += chunk
        }
        return (status, head, Array(body.prefix(length)))
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var text = self
        while let first = text.first, set.contains(first) { text = text.dropFirst() }
        while let last = text.last, set.contains(last) { text = text.dropLast() }
        return String(text)
    }
}
