// swift-tools-version:6.1
import Foundation
import PackageDescription

// A path dependency is named after its folder, which is whatever the clone was called.
let rootPackage = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

// Benchmarks live in their own package so the main build and CI never compile the benchmark
// framework. Run them with Scripts/bench.sh.
let package = Package(
    name: "membria-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // The prepared blocks shared by the benchmark and the phase printer (outside Benchmarks/,
        // where the benchmark plugin would take every executable for a benchmark).
        .target(
            name: "BenchmarkFixtures",
            dependencies: [
                .product(name: "MembriaNodeKit", package: rootPackage),
            ],
            path: "Sources/BenchmarkFixtures"
        ),
        .executableTarget(
            name: "BlockPhases",
            dependencies: ["BenchmarkFixtures"],
            path: "Sources/BlockPhases"
        ),
        .executableTarget(
            name: "StageTurns",
            dependencies: [.product(name: "MembriaNodeKit", package: rootPackage)],
            path: "Sources/StageTurns"
        ),
        .executableTarget(
            name: "StateGrowth",
            dependencies: ["BenchmarkFixtures"],
            path: "Sources/StateGrowth"
        ),
        .executableTarget(
            name: "RuntimeBenchmarks",
            dependencies: [
                "BenchmarkFixtures",
                .product(name: "MembriaNodeKit", package: rootPackage),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/RuntimeBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
