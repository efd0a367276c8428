import Foundation
import KCTestSupport
import Testing

func networkNamespacesAvailable() -> Bool {
    getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip")
}

/// Network partitions made with network namespaces: each node in its own namespace, joined to
/// a bridge by a veth pair; a partition takes the root-side ends of some pairs down (this
/// kernel has no netem, so links are cut rather than degraded). Runs only as root with `ip`.
@Suite(.serialized, .enabled(if: networkNamespacesAvailable(), "needs root and iproute2 (ip netns)"))
struct PartitionTests {
    /// Namespaces, veths and a bridge, named after this process so runs cannot collide; all
    /// removed by `tearDown`.
    final class Fabric {
        let tag: String
        let subnet: Int
        let count: Int

        init(count: Int) throws {
            self.count = count
            tag = "kc\(getpid() % 100_000)"
            subnet = 100 + Int(getpid() % 100)
            tearDown()
            try ip(["link", "add", bridge, "type", "bridge"])
            try ip(["addr", "add", "10.88.\(subnet).254/24", "dev", bridge])
            try ip(["link", "set", bridge, "up"])
            // Where Docker runs, the FORWARD chain drops by default and bridged frames pass
            // through it (br_netfilter): let this bridge's own traffic through, for the test.
            if let iptables = Self.iptables {
                try run(iptables, ["-I", "FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"])
            }
            for index in 0..<count {
                try ip(["netns", "add", namespace(index)])
                try ip(["link", "add", veth(index), "type", "veth", "peer", "name", "\(veth(index))p"])
                try ip(["link", "set", "\(veth(index))p", "netns", namespace(index)])
                try ip(["link", "set", veth(index), "master", bridge])
                try ip(["link", "set", veth(index), "up"])
                try ip(["netns", "exec", namespace(index), "ip", "link", "set", "lo", "up"])
                try ip(["netns", "exec", namespace(index), "ip", "addr", "add", "\(host(index))/24", "dev", "\(veth(index))p"])
                try ip(["netns", "exec", namespace(index), "ip", "link", "set", "\(veth(index))p", "up"])
            }
        }

        var bridge: String { "\(tag)br" }
        func namespace(_ index: Int) -> String { "\(tag)n\(index)" }
        func veth(_ index: Int) -> String { "\(tag)v\(index)" }
        func host(_ index: Int) -> String { "10.88.\(subnet).\(index + 1)" }
        func launcher(_ index: Int) -> [String] { ["/usr/sbin/ip", "netns", "exec", namespace(index)] }

        func cut(_ indices: [Int]) throws { for index in indices { try ip(["link", "set", veth(index), "down"]) } }
        func heal(_ indices: [Int]) throws { for index in indices { try ip(["link", "set", veth(index), "up"]) } }

        func tearDown() {
            for index in 0..<count {
                _ = try? ip(["link", "del", veth(index)], check: false)
                _ = try? ip(["netns", "del", namespace(index)], check: false)
            }
            _ = try? ip(["link", "del", bridge], check: false)
            if let iptables = Self.iptables {
                // Every copy of the rule (a run that died before its tear-down left one).
                while (try? run(iptables, ["-D", "FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"], check: false)) == 0 {}
            }
        }

        static let iptables = ["/usr/sbin/iptables", "/sbin/iptables"].first { FileManager.default.isExecutableFile(atPath: $0) }

        struct Failure: Error, CustomStringConvertible {
            let description: String
        }

        @discardableResult
        func ip(_ arguments: [String], check: Bool = true) throws -> Int32 {
            try run("/usr/sbin/ip", arguments, check: check)
        }

        @discardableResult
        func run(_ program: String, _ arguments: [String], check: Bool = true) throws -> Int32 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: program)
            process.arguments = arguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            if check && process.terminationStatus != 0 {
                throw Failure(description: "\(program) \(arguments.joined(separator: " ")) failed with \(process.terminationStatus)")
            }
            return process.terminationStatus
        }
    }

    /// Highest height among `indices` now, then again after `seconds`.
    static func progress(_ network: TestNetwork, _ indices: [Int], seconds: UInt32) -> (before: UInt64, after: UInt64) {
        let before = indices.map { network.height($0) }.max() ?? 0
        sleep(seconds)
        return (before, indices.map { network.height($0) }.max() ?? 0)
    }

    /// 1|4: the four (80 % of the power) go on, the lone node stands still and catches up after
    /// healing. 2|3: neither side holds more than 2/3, so nothing is committed anywhere; after
    /// healing the chain resumes. No fork at any point: every store agrees block by block.
    @Test func partitionsStallTheMinorityAndHealWithoutForks() throws {
        let fabric = try Fabric(count: 5)
        defer { fabric.tearDown() }
        let network = try TestNetwork(validators: 5, commitMilliseconds: 100, hosts: (0..<5).map(fabric.host))
        defer { network.stopAll(); network.remove() }
        network.launchers = (0..<5).map(fabric.launcher)
        for index in 0..<5 { try network.start(index) }
        #expect(network.waitHeight(3, seconds: 60), "\(network.describe())")

        try fabric.cut([0])
        sleep(1)
        let lone = Self.progress(network, [0], seconds: 4)
        let rest = Self.progress(network, [1, 2, 3, 4], seconds: 0)
        #expect(lone.after <= lone.before + 1, "the isolated node committed alone: \(lone)")
        #expect(rest.after >= lone.after + 3, "the four did not go on: \(rest) vs \(lone)")
        try fabric.heal([0])
        #expect(network.waitHeight(network.height(1) + 2, seconds: 60), "no catch-up after healing: \(network.describe())")

        try fabric.cut([0, 1])
        sleep(1)
        let minority = Self.progress(network, [0, 1], seconds: 4)
        let majority = Self.progress(network, [2, 3, 4], seconds: 0)
        let top = max(minority.after, majority.after)
        sleep(3)
        #expect((0..<5).map { network.height($0) }.max()! <= top + 1, "a side without 2/3 committed")
        try fabric.heal([0, 1])
        #expect(network.waitHeight(top + 3, seconds: 90), "no recovery after healing: \(network.describe())")
        network.stopAll()
        _ = try network.checkStoresAgree()
    }
}
