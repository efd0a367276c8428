#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Minimal POSIX file helpers with explicit modes and fsync, for keys, config and genesis.
public enum FileIO {
    public struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        public let code: Int32
        public let reason: String
        public var description: String { reason }
    }

    public static func errorText(_ code: Int32) -> String { String(cString: strerror(code)) }

    /// Creates `path` (failing if it exists) with `mode`, writes `contents`, and syncs the file
    /// and its directory so the file survives a crash right after this returns.
    public static func writeNew(path: String, contents: [UInt8], mode: mode_t) -> Result<Void, Failure> {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard descriptor >= 0 else { return .failure(Failure(code: errno, reason: errorText(errno))) }
        defer { close(descriptor) }
        // The umask may have removed bits but never adds them; set the mode exactly anyway.
        _ = fchmod(descriptor, mode)
        var offset = 0
        while offset < contents.count {
            let written = contents[offset...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                return .failure(Failure(code: errno, reason: errorText(errno)))
            }
            offset += written
        }
        guard fsync(descriptor) == 0 else { return .failure(Failure(code: errno, reason: errorText(errno))) }
        syncDirectory(of: path)
        return .success(())
    }

    /// Replaces `path` atomically: writes a new file beside it (synced), then renames it over
    /// the old one and syncs the directory. A crash leaves either the old file or the new one.
    public static func replace(path: String, contents: [UInt8], mode: mode_t) -> Result<Void, Failure> {
        let temporary = path + ".new"
        _ = unlink(temporary)
        if case .failure(let failure) = writeNew(path: temporary, contents: contents, mode: mode) { return .failure(failure) }
        guard rename(temporary, path) == 0 else {
            let failure = Failure(code: errno, reason: errorText(errno))
            _ = unlink(temporary)
            return .failure(failure)
        }
        syncDirectory(of: path)
        return .success(())
    }

    /// Reads a whole file, refusing files larger than `limit` bytes.
    public static func read(path: String, limit: Int) -> Result<[UInt8], Failure> {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return .failure(Failure(code: errno, reason: errorText(errno))) }
        defer { close(descriptor) }
        var contents: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return .failure(Failure(code: errno, reason: errorText(errno)))
            }
            if count == 0 { break }
            contents.append(contentsOf: buffer[0..<count])
            if contents.count > limit {
                return .failure(Failure(code: EFBIG, reason: "file is larger than \(limit) bytes"))
            }
        }
        return .success(contents)
    }

    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    public static func isDirectory(_ path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFDIR
    }

    /// `mkdir -p` with `mode` for each directory it creates.
    public static func makeDirectories(_ path: String, mode: mode_t = 0o700) -> Result<Void, Failure> {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, mode) != 0 && errno != EEXIST {
                return .failure(Failure(code: errno, reason: "cannot create \(current): \(errorText(errno))"))
            }
        }
        return isDirectory(path) ? .success(()) : .failure(Failure(code: ENOTDIR, reason: "\(path) is not a directory"))
    }

    /// Removes a directory tree (used by `init --force`); only ever called on a node home.
    public static func removeTree(_ path: String) -> Result<Void, Failure> {
        guard let directory = opendir(path) else {
            if errno == ENOENT { return .success(()) }
            return .failure(Failure(code: errno, reason: errorText(errno)))
        }
        var entries: [(String, Bool)] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name == "." || name == ".." { continue }
            entries.append((name, entry.pointee.d_type == UInt8(DT_DIR)))
        }
        closedir(directory)
        for (name, isDirectoryEntry) in entries {
            let child = path + "/" + name
            if isDirectoryEntry {
                if case .failure(let failure) = removeTree(child) { return .failure(failure) }
            } else if unlink(child) != 0 {
                return .failure(Failure(code: errno, reason: "cannot remove \(child): \(errorText(errno))"))
            }
        }
        if rmdir(path) != 0 { return .failure(Failure(code: errno, reason: "cannot remove \(path): \(errorText(errno))")) }
        return .success(())
    }

    static func syncDirectory(of path: String) {
        let parent: String
        if let slash = path.lastIndex(of: "/") {
            parent = slash == path.startIndex ? "/" : String(path[..<slash])
        } else {
            parent = "."
        }
        let descriptor = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        _ = fsync(descriptor)
        close(descriptor)
    }
}
