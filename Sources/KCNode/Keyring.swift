import KCCrypto

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Named account keys kept outside any node home, for gateway operators and users who sign
/// from their own machine (`node keys add|import|export|list`; transaction commands take
/// `--key NAME`). Each key is a key file (`KeyFile`, account role) `NAME.json`, mode 0600, in
/// a 0700 directory: `MEMBRIA_KEYRING`, else `~/.membria/keyring`.
public struct Keyring: Sendable {
    public struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    public struct Entry: Sendable, Equatable {
        public let name: String
        public let address: PublicKey
        public let encrypted: Bool
    }

    public let directory: String

    public init(directory: String) { self.directory = directory }

    /// `MEMBRIA_KEYRING`, else `$HOME/.membria/keyring`.
    public static func defaultDirectory() -> String {
        if let set = getenv("MEMBRIA_KEYRING"), let text = String(validatingCString: set), !text.isEmpty { return text }
        let home = getenv("HOME").flatMap { String(validatingCString: $0) } ?? "."
        return home + "/.membria/keyring"
    }

    /// Letters, digits, `.`, `_` and `-`, 1 to 64 of them, not starting with a dot: a name is
    /// a file name and nothing else.
    public static func isValidName(_ name: String) -> Bool {
        guard (1...64).contains(name.utf8.count), !name.hasPrefix(".") else { return false }
        return name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
            || $0 == "." || $0 == "_" || $0 == "-" }
    }

    public func path(_ name: String) throws(Failure) -> String {
        guard Self.isValidName(name) else {
            throw Failure(message: "'\(name)' is not a key name: use 1 to 64 letters, digits, '.', '_' or '-', not starting with '.'")
        }
        return directory + "/" + name + ".json"
    }

    /// A new random account key named `name`, sealed under `passphrase` when given.
    public func add(_ name: String, passphrase: String?) throws(Failure) -> PublicKey {
        let target = try prepare(name)
        let key = SigningKey.generate()
        do { try KeyFile.write(key, role: .account, to: target, passphrase: passphrase) } catch {
            throw Failure(message: "cannot write \(target): \(error)")
        }
        return key.publicKey
    }

    /// Copies an account key file (plain or encrypted, checked first) in under `name`.
    public func importFile(_ name: String, from source: String) throws(Failure) -> PublicKey {
        let address: PublicKey
        do { address = try KeyFile.publicKey(path: source, expecting: .account) } catch {
            throw Failure(message: "\(source) is not an account key file: \(error)")
        }
        guard case .success(let bytes) = FileIO.read(path: source, limit: 1 << 16) else { throw Failure(message: "cannot read \(source)") }
        let target = try prepare(name)
        if case .failure(let failure) = FileIO.writeNew(path: target, contents: bytes, mode: 0o600) {
            throw Failure(message: "cannot write \(target): \(failure.reason)")
        }
        return address
    }

    /// The key file's text, as stored (its seed sealed if it was added or imported encrypted).
    public func export(_ name: String) throws(Failure) -> (text: String, encrypted: Bool) {
        let source = try existing(name)
        guard case .success(let bytes) = FileIO.read(path: source, limit: 1 << 16) else { throw Failure(message: "cannot read \(source)") }
        let encrypted = (try? KeyFile.isEncrypted(path: source, role: .account)) ?? false
        return (String(decoding: bytes, as: UTF8.self), encrypted)
    }

    /// Every key, by name. Files that are not account keys are skipped.
    public func list() -> [Entry] {
        guard let handle = opendir(directory) else { return [] }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let file = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard file.hasSuffix(".json") else { continue }
            let name = String(file.dropLast(5))
            if Self.isValidName(name) { names.append(name) }
        }
        return names.sorted().compactMap { name in
            let path = directory + "/" + name + ".json"
            guard let address = try? KeyFile.publicKey(path: path, expecting: .account) else { return nil }
            return Entry(name: name, address: address, encrypted: (try? KeyFile.isEncrypted(path: path, role: .account)) ?? false)
        }
    }

    /// The path of an existing key, or a failure that lists what there is.
    public func existing(_ name: String) throws(Failure) -> String {
        let target = try path(name)
        guard FileIO.exists(target) else {
            let known = list().map(\.name)
            throw Failure(message: "no key named '\(name)' in \(directory)" + (known.isEmpty ? " (it is empty: `node keys add NAME`)" : "; it has: \(known.joined(separator: ", "))"))
        }
        return target
    }

    private func prepare(_ name: String) throws(Failure) -> String {
        let target = try path(name)
        if case .failure(let failure) = FileIO.makeDirectories(directory, mode: 0o700) {
            throw Failure(message: "cannot create the keyring \(directory): \(failure.reason)")
        }
        guard !FileIO.exists(target) else { throw Failure(message: "a key named '\(name)' already exists in \(directory); keys are never overwritten") }
        return target
    }
}
