import KCCodec
import KCCrypto

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The consensus write-ahead log: an append-only file of records
///
///     u32 little-endian payload length | 8 bytes: first 8 bytes of BLAKE2b-256(payload) | payload
///
/// Opening it reads every record; at the first record that is torn (the file ends inside it),
/// oversized or fails its checksum, the file is cut back to the end of the last good record and
/// the cut is reported: a crash at any byte leaves a log that opens by itself, never one that
/// needs a person to repair it. See specs/storage.md, "Consensus WAL".
public final class ConsensusWAL {
    public static let headerBytes = 12
    public static let maxRecordBytes = 16 << 20

    public let path: String
    private var descriptor: Int32
    /// Records found when the file was opened, oldest first.
    public let recovered: [[UInt8]]
    /// Bytes cut from a damaged tail when the file was opened (0 if none).
    public let truncatedBytes: Int
    public private(set) var sizeBytes: Int

    public struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    public init(path: String) throws(Failure) {
        self.path = path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Failure(message: "cannot open WAL \(path): \(FileIO.errorText(errno))") }
        descriptor = fd
        let contents: [UInt8]
        switch FileIO.read(path: path, limit: Int.max) {
        case .success(let bytes): contents = bytes
        case .failure(let failure):
            close(fd)
            throw Failure(message: "cannot read WAL \(path): \(failure.reason)")
        }
        let (records, goodLength) = ConsensusWAL.parse(contents)
        recovered = records
        truncatedBytes = contents.count - goodLength
        sizeBytes = goodLength
        if truncatedBytes > 0 {
            guard ftruncate(fd, off_t(goodLength)) == 0, fsync(fd) == 0 else {
                close(fd)
                throw Failure(message: "cannot cut the damaged tail of WAL \(path): \(FileIO.errorText(errno))")
            }
        }
        guard lseek(fd, off_t(goodLength), SEEK_SET) >= 0 else {
            close(fd)
            throw Failure(message: "cannot seek in WAL \(path): \(FileIO.errorText(errno))")
        }
    }

    deinit { close(descriptor) }

    /// Splits a log into its good records and the length of the good prefix.
    public static func parse(_ bytes: [UInt8]) -> (records: [[UInt8]], goodLength: Int) {
        var records: [[UInt8]] = []
        var offset = 0
        while bytes.count - offset >= headerBytes {
            var length = 0
            for index in 0..<4 { length |= Int(bytes[offset + index]) << (8 * index) }
            guard length <= maxRecordBytes, bytes.count - offset - headerBytes >= length else { break }
            let payload = Array(bytes[(offset + headerBytes)..<(offset + headerBytes + length)])
            let checksum = Array(Blake2b.hash256(payload).bytes.prefix(8))
            guard Array(bytes[(offset + 4)..<(offset + 12)]) == checksum else { break }
            records.append(payload)
            offset += headerBytes + length
        }
        return (records, offset)
    }

    public static func frame(_ payload: [UInt8]) -> [UInt8] {
        precondition(payload.count <= maxRecordBytes, "WAL record too large")
        var bytes: [UInt8] = []
        bytes.reserveCapacity(headerBytes + payload.count)
        withUnsafeBytes(of: UInt32(payload.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: Blake2b.hash256(payload).bytes.prefix(8))
        bytes.append(contentsOf: payload)
        return bytes
    }

    /// Appends one record. With `sync` it is durable when this returns (own votes, before they
    /// are sent); without, a crash may lose it, and recovery then cuts it cleanly.
    public func append(_ payload: [UInt8], sync: Bool) throws(Failure) {
        let framed = ConsensusWAL.frame(payload)
        var offset = 0
        while offset < framed.count {
            let written = framed[offset...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                throw Failure(message: "cannot append to WAL \(path): \(FileIO.errorText(errno))")
            }
            offset += written
        }
        sizeBytes += framed.count
        if sync && fsync(descriptor) != 0 {
            throw Failure(message: "cannot sync WAL \(path): \(FileIO.errorText(errno))")
        }
    }

    /// Empties the log (a new height starts; the decided block is already in the store).
    /// Not synced by itself: the next synced append carries the cut to disk with it, and until
    /// then a power cut can at worst bring back the old records.
    public func reset() throws(Failure) {
        guard ftruncate(descriptor, 0) == 0, lseek(descriptor, 0, SEEK_SET) >= 0 else {
            throw Failure(message: "cannot reset WAL \(path): \(FileIO.errorText(errno))")
        }
        sizeBytes = 0
    }
}
