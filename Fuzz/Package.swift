// swift-tools-version:6.1
import Foundation
import PackageDescription

// A path dependency is named after its folder, which is whatever the clone was called.
let rootPackage = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

// libFuzzer harnesses for every decoder of outside bytes, in their own package so that the
// main build and CI never compile them with the fuzzer. Built and run by Scripts/fuzz.sh
// (`-Xswiftc -sanitize=fuzzer,address`, linked with lld; `main.swift` runs libFuzzer's driver).
let package = Package(
    name: "membria-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
    ],
    targets: [
        .executableTarget(
            name: "MembriaFuzz",
            dependencies: [
                .product(name: "MembriaFuzzTargets", package: rootPackage),
            ],
            path: "Sources/MembriaFuzz"
        ),
    ],
    swiftLanguageModes: [.v6]
)
