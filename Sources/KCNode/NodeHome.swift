import KCCodec
import KCCrypto
import KCStorage
import KCTypes

/// The layout of a node home directory:
///
///     HOME/config.toml          local settings (ports, peers, timeouts); commented
///     HOME/genesis.json         the chain's genesis, identical on every node
///     HOME/keys/account.json    account key: signs transactions
///     HOME/keys/validator.json  consensus key: signs proposals and votes
///     HOME/keys/node.json       P2P identity key (the node id)
///     HOME/data/                RocksDB: blocks, state, consensus WAL, signer state
public struct NodeHome: Sendable {
    public let path: String

    public init(path: String) {
        var trimmed = path
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        self.path = trimmed
    }

    public var configPath: String { path + "/config.toml" }
    public var genesisPath: String { path + "/genesis.json" }
    public var keysDirectory: String { path + "/keys" }
    public var dataDirectory: String { path + "/data" }
    public func keyPath(_ role: KeyRole) -> String { keysDirectory + "/\(role.rawValue).json" }

    public func loadKey(_ role: KeyRole, passphrase: KeyPassphrase = .none(hint: "give its passphrase (keys.passphrase_file in config.toml, or --passphrase-file)")) throws(KeyFileError) -> SigningKey {
        try KeyFile.read(path: keyPath(role), expecting: role, passphrase: passphrase)
    }

    /// `source`, except that a passphrase to be asked on the terminal is asked once here (if any
    /// key file of this home is encrypted) and then given to every key.
    public func keyPassphrase(_ source: KeyPassphrase) throws(KeyFileError) -> KeyPassphrase {
        guard case .prompt = source else { return source }
        for role in KeyRole.allCases where FileIO.exists(keyPath(role)) {
            if try KeyFile.isEncrypted(path: keyPath(role), role: role) {
                return .given(try KeyPassphrase.ask("Passphrase for the keys in \(keysDirectory): "))
            }
        }
        return source
    }

    /// A key's public half, without its passphrase.
    public func publicKey(_ role: KeyRole) throws(KeyFileError) -> PublicKey {
        try KeyFile.publicKey(path: keyPath(role), expecting: role)
    }

    public func loadGenesis() throws(NodeHomeError) -> Genesis {
        try NodeHome.loadGenesis(file: genesisPath)
    }

    public static func loadGenesis(file: String) throws(NodeHomeError) -> Genesis {
        let bytes: [UInt8]
        switch FileIO.read(path: file, limit: GenesisLoader.maximumFileBytes) {
        case .success(let contents): bytes = contents
        case .failure(let failure): throw .io("cannot read genesis file \(file): \(failure.reason)")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw .invalidGenesis(file: file, GenesisError(field: "", message: "file is not UTF-8 text"))
        }
        do {
            return try GenesisLoader.load(json: text)
        } catch {
            throw .invalidGenesis(file: file, error)
        }
    }
}

extension NodeHome {
    /// The chain store of a node that is not running, for the offline commands (reset,
    /// rollback, export, signer state): RocksDB's lock proves that no node runs on it.
    public func openStoppedStore() throws(NodeHomeError) -> RocksDBStore {
        do { return try RocksDBStore(path: dataDirectory + "/store") } catch {
            if case .locked = error { throw .io("the node at \(path) is running; stop it first (its store is locked)") }
            throw .io("cannot open the store in \(dataDirectory): \(error)")
        }
    }
}

public enum NodeHomeError: Error, Equatable, Sendable, CustomStringConvertible {
    case alreadyInitialized(path: String)
    case invalidGenesis(file: String, GenesisError)
    case key(KeyFileError)
    case io(String)
    case invalidOption(String)

    public var description: String {
        switch self {
        case .alreadyInitialized(let path):
            return "\(path) already holds a node home; pass --force to replace it (its keys and data will be deleted)"
        case .invalidGenesis(let file, let error):
            return "\(file): \(error.description)"
        case .key(let error):
            return error.description
        case .io(let message):
            return message
        case .invalidOption(let message):
            return message
        }
    }
}

/// Keys for the local devnet, derived from public, well-known seeds so that every developer's
/// devnet has the same genesis. They protect nothing: never use them on a real network.
public enum DevnetKeys {
    public static let chainIDPrefix = "membria-devnet"

    public static func key(_ role: KeyRole, index: Int) -> SigningKey {
        SigningKey(seed: Blake2b.hash256(Array("membria-devnet/\(role.rawValue)/\(index)".utf8)))
    }

    /// Funded user accounts of the devnet (not validators).
    public static func user(index: Int) -> SigningKey {
        SigningKey(seed: Blake2b.hash256(Array("membria-devnet/user/\(index)".utf8)))
    }
}

/// Ports and addresses a freshly initialised node uses.
public struct NodePorts: Sendable, Equatable {
    public var p2pPort: Int
    public var rpcPort: Int

    public init(p2pPort: Int, rpcPort: Int) {
        self.p2pPort = p2pPort
        self.rpcPort = rpcPort
    }

    public static let standard = NodePorts(p2pPort: 26656, rpcPort: 26657)

    /// The devnet port scheme: node i listens on 26656 + 10 i (P2P) and 26657 + 10 i (RPC).
    public static func devnet(index: Int) -> NodePorts {
        NodePorts(p2pPort: 26656 + 10 * index, rpcPort: 26657 + 10 * index)
    }
}

public struct InitOptions: Sendable {
    public var home: NodeHome
    public var moniker: String
    /// A genesis file to copy; nil makes a one-validator local chain with this node's keys.
    public var genesisFile: String?
    /// Use the well-known devnet keys of validator `devnetIndex` (devnet chains only).
    public var devnetIndex: Int?
    public var ports: NodePorts
    /// P2P peers written into config.toml, as `nodeid@host:port`.
    public var persistentPeers: [String]
    public var force: Bool
    /// Seal the key files under this passphrase (nil: plain key files).
    public var passphrase: String? = nil
    /// Where config.toml points the node for that passphrase (`keys.passphrase_file`).
    public var passphraseFile: String? = nil

    public init(home: NodeHome, moniker: String, genesisFile: String? = nil, devnetIndex: Int? = nil,
                ports: NodePorts = .standard, persistentPeers: [String] = [], force: Bool = false) {
        self.home = home
        self.moniker = moniker
        self.genesisFile = genesisFile
        self.devnetIndex = devnetIndex
        self.ports = ports
        self.persistentPeers = persistentPeers
        self.force = force
    }
}

public struct InitResult: Sendable {
    public let accountAddress: PublicKey
    public let consensusKey: PublicKey
    public let nodeID: PublicKey
    public let chainID: String
    public let genesisHash: Hash256
}

public enum NodeInitializer {
    /// Creates a node home. Everything is checked before the first file is written, so a
    /// refused init leaves nothing behind.
    public static func initialize(_ options: InitOptions) throws(NodeHomeError) -> InitResult {
        let home = options.home
        guard !options.moniker.isEmpty, options.moniker.utf8.count <= 64 else {
            throw .invalidOption("the moniker must be 1 to 64 bytes long")
        }
        if FileIO.exists(home.configPath) || FileIO.exists(home.keysDirectory) || FileIO.exists(home.genesisPath) {
            guard options.force else { throw .alreadyInitialized(path: home.path) }
            if case .failure(let failure) = FileIO.removeTree(home.path) {
                throw .io("cannot clear \(home.path): \(failure.reason)")
            }
        }

        let keys: [KeyRole: SigningKey]
        if let index = options.devnetIndex {
            guard index >= 0 && index < 100 else { throw .invalidOption("--devnet-index must be between 0 and 99") }
            keys = Dictionary(uniqueKeysWithValues: KeyRole.allCases.map { ($0, DevnetKeys.key($0, index: index)) })
        } else {
            keys = Dictionary(uniqueKeysWithValues: KeyRole.allCases.map { ($0, SigningKey.generate()) })
        }

        // Decide the genesis before writing anything.
        let genesisText: String
        let genesis: Genesis
        if let file = options.genesisFile {
            genesis = try NodeHome.loadGenesis(file: file)
            if options.devnetIndex != nil && !genesis.chainID.hasPrefix(DevnetKeys.chainIDPrefix) {
                throw .invalidOption("--devnet-index uses public, insecure keys and is only allowed for chain ids starting with \(DevnetKeys.chainIDPrefix) (this genesis is \(genesis.chainID))")
            }
            switch FileIO.read(path: file, limit: GenesisLoader.maximumFileBytes) {
            case .success(let bytes): genesisText = String(decoding: bytes, as: UTF8.self)
            case .failure(let failure): throw .io("cannot read genesis file \(file): \(failure.reason)")
            }
        } else {
            genesis = LocalGenesis.make(moniker: options.moniker, account: keys[.account]!.publicKey,
                                        consensusKey: keys[.validator]!.publicKey, nodeID: keys[.node]!.publicKey)
            genesisText = genesis.json.rendered() + "\n"
        }

        if case .failure(let failure) = FileIO.makeDirectories(home.keysDirectory, mode: 0o700) {
            throw .io(failure.reason)
        }
        for role in KeyRole.allCases {
            do { try KeyFile.write(keys[role]!, role: role, to: home.keyPath(role), passphrase: options.passphrase) } catch { throw .key(error) }
        }
        if case .failure(let failure) = FileIO.writeNew(path: home.genesisPath, contents: Array(genesisText.utf8), mode: 0o644) {
            throw .io("cannot write \(home.genesisPath): \(failure.reason)")
        }
        let config = ConfigTemplate.render(moniker: options.moniker, ports: options.ports, persistentPeers: options.persistentPeers,
                                           passphraseFile: options.passphraseFile)
        if case .failure(let failure) = FileIO.writeNew(path: home.configPath, contents: Array(config.utf8), mode: 0o644) {
            throw .io("cannot write \(home.configPath): \(failure.reason)")
        }
        return InitResult(accountAddress: keys[.account]!.publicKey, consensusKey: keys[.validator]!.publicKey,
                          nodeID: keys[.node]!.publicKey, chainID: genesis.chainID, genesisHash: genesis.hash)
    }
}
