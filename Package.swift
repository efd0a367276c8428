// swift-tools-version:6.1
import PackageDescription

// Layering (arrows point down only):
//   NodeCLI (executable `node`)
//     -> KCNode (node wiring: home directory, config, key files)
//       -> KCNetwork (P2P: authenticated, encrypted TCP with SwiftNIO)
//       -> KCConsensus (Tendermint core: pure state machine)
//       -> KCRuntime (the knowledge-chain rules: pure block execution, state trie)
//       -> KCStorage (key-value store: RocksDB and in-memory)
//       -> KCTypes (amounts, accounts, chain parameters, genesis)
//         -> KCCrypto (Ed25519, BLAKE2b-256, SHA-256, ArTxID)
//           -> KCCodec (canonical binary encoding)
// Later layers (runtime, consensus, network, RPC) slot in between KCTypes/KCStorage and KCNode.
let package = Package(
    name: "membria-node",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "node", targets: ["NodeCLI"]),
        // For the benchmark package in Benchmarks/ and other tools built on the node's layers.
        .library(name: "MembriaNodeKit", targets: ["KCCodec", "KCCrypto", "KCTypes", "KCStorage", "KCRuntime", "KCConsensus", "KCSimulator", "KCNetwork", "KCNode"]),
        // The fuzz targets: run by the libFuzzer binary in Fuzz/ and replayed over the corpora by the tests.
        .library(name: "MembriaFuzzTargets", targets: ["KCFuzzTargets"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.81.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.20.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.6.0"),
    ],
    targets: [
        .systemLibrary(name: "CSodium", pkgConfig: "libsodium",
                       providers: [.apt(["libsodium-dev"])]),
        .systemLibrary(name: "CRocksDB", pkgConfig: "rocksdb",
                       providers: [.apt(["librocksdb-dev"])]),
        .target(name: "KCCodec"),
        .target(name: "KCCrypto", dependencies: ["KCCodec", "CSodium"]),
        .target(name: "KCTypes", dependencies: ["KCCodec", "KCCrypto"]),
        .target(name: "KCStorage", dependencies: ["CRocksDB", "KCCodec"]),
        .target(name: "KCRuntime", dependencies: ["KCTypes", "KCCrypto", "KCCodec"]),
        .target(name: "KCConsensus", dependencies: ["KCTypes", "KCCrypto", "KCCodec"]),
        .target(name: "KCSimulator", dependencies: ["KCConsensus", "KCRuntime", "KCNode", "KCStorage", "KCTypes", "KCCrypto", "KCCodec"]),
        .target(name: "KCNetwork", dependencies: [
            "KCConsensus", "KCTypes", "KCCrypto", "KCCodec",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "KCNode", dependencies: ["KCConsensus", "KCRuntime", "KCTypes", "KCCrypto", "KCStorage", "KCNetwork",
                                              .product(name: "Prometheus", package: "swift-prometheus"),
                                              .product(name: "DequeModule", package: "swift-collections")],
                plugins: ["GitCommit"]),
        .plugin(name: "GitCommit", capability: .buildTool()),
        .target(name: "KCFuzzTargets", dependencies: [
            "KCNode", "KCNetwork", "KCConsensus", "KCRuntime", "KCTypes", "KCCrypto", "KCCodec",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
        .target(name: "KCAttester", dependencies: ["KCNode", "KCNetwork", "KCRuntime", "KCStorage", "KCTypes", "KCCrypto", "KCCodec"]),
        .target(name: "KCRPC", dependencies: [
            "KCNode", "KCConsensus", "KCRuntime", "KCTypes", "KCCrypto", "KCStorage", "KCNetwork", "KCCodec",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .executableTarget(name: "NodeCLI", dependencies: [
            "KCNode", "KCNetwork", "KCRPC", "KCAttester", "KCSimulator", "KCRuntime", "KCTypes", "KCCrypto", "KCStorage",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        .testTarget(name: "KCCodecTests", dependencies: ["KCCodec", "KCTestSupport"]),
        .testTarget(name: "KCCryptoTests", dependencies: ["KCCrypto"]),
        .testTarget(name: "KCTypesTests", dependencies: ["KCTypes"]),
        .target(name: "KCTestSupport", dependencies: ["KCNode", "KCNetwork", "KCTypes", "KCCrypto", "KCCodec"], path: "Tests/KCTestSupport"),
        .testTarget(name: "KCStorageTests", dependencies: ["KCStorage", "KCTestSupport"]),
        .testTarget(name: "KCConsensusTests", dependencies: ["KCConsensus", "KCTypes", "KCCrypto", "KCTestSupport"]),
        .testTarget(name: "KCSimulatorTests", dependencies: ["KCSimulator"]),
        .testTarget(name: "KCRuntimeTests", dependencies: ["KCRuntime", "KCTypes", "KCCrypto", "KCStorage", "KCNode", "KCTestSupport"]),
        .testTarget(name: "KCNetworkTests", dependencies: ["KCNetwork", "KCConsensus", "KCTypes", "KCCrypto", "KCCodec", "KCTestSupport",
                                                         .product(name: "Logging", package: "swift-log"),
                                                         .product(name: "NIOCore", package: "swift-nio"),
                                                         .product(name: "NIOPosix", package: "swift-nio")]),
        .testTarget(name: "KCNodeTests", dependencies: ["KCNode", "KCNetwork", "KCConsensus", "KCRuntime", "KCStorage", "KCTypes", "KCCrypto", "KCCodec", "KCTestSupport"]),
        .testTarget(name: "KCRPCTests", dependencies: ["KCRPC", "KCAttester", "KCNode", "KCNetwork", "KCRuntime", "KCConsensus", "KCStorage", "KCTypes", "KCCrypto", "KCCodec", "KCTestSupport"]),
        .testTarget(name: "KCFuzzTargetsTests", dependencies: ["KCFuzzTargets", "KCTestSupport"]),
        .testTarget(name: "NodeCLITests", dependencies: ["KCNode", "KCNetwork", "KCConsensus", "KCRuntime", "KCTypes", "KCCrypto", "KCStorage", "KCTestSupport"],
                    exclude: ["Snapshots"]),
    ],
    swiftLanguageModes: [.v6]
)
