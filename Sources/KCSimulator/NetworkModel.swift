/// How simulated links behave: who is connected to whom, and how long a message takes.

/// Per-link latency.
public enum LinkModel: Sendable, Equatable, CustomStringConvertible {
    /// The fault families decide: one base latency and jitter per run, drawn from the seed
    /// (the default; what the safety sweeps use).
    case seeded
    /// Six regions (us-east, us-west, eu-west, ap-southeast, ap-northeast, sa-east); node i is
    /// in region i mod 6. One-way latency between regions from `LinkModel.regionMilliseconds`
    /// (5 ms within a region, 35 to 165 ms between), scaled per link by 90-110% once, plus
    /// jitter of up to 5% per message; a message is lost with probability 1/1,000 and then
    /// arrives a TCP retransmission later (200 ms or twice the latency, whichever is more).
    case wan
    /// Each link's one-way latency drawn once, uniformly in low...high ms; jitter and loss as
    /// for `wan`.
    case uniform(low: UInt64, high: UInt64)

    /// One-way milliseconds between the six regions.
    public static let regionMilliseconds: [[UInt64]] = [
        //  use  usw  euw  apse apne  sae
        [5, 35, 40, 110, 80, 60],   // us-east
        [35, 5, 70, 85, 55, 95],    // us-west
        [40, 70, 5, 90, 115, 100],  // eu-west
        [110, 85, 90, 5, 35, 165],  // ap-southeast
        [80, 55, 115, 35, 5, 130],  // ap-northeast
        [60, 95, 100, 165, 130, 5], // sa-east
    ]
    public static let regionNames = ["us-east", "us-west", "eu-west", "ap-southeast", "ap-northeast", "sa-east"]

    /// `seeded`, `wan`, or `uniform:LOW-HIGH` (milliseconds).
    public init?(_ text: String) {
        switch text {
        case "seeded": self = .seeded
        case "wan": self = .wan
        default:
            guard text.hasPrefix("uniform:") else { return nil }
            let bounds = text.dropFirst("uniform:".count).split(separator: "-")
            guard bounds.count == 2, let low = UInt64(bounds[0]), let high = UInt64(bounds[1]), low >= 1, low <= high,
                  high <= 10_000 else { return nil }
            self = .uniform(low: low, high: high)
        }
    }

    public var description: String {
        switch self {
        case .seeded: return "seeded"
        case .wan: return "wan"
        case .uniform(let low, let high): return "uniform:\(low)-\(high)"
        }
    }
}

/// Who is connected to whom: a full mesh, or each node dialling `outbound` others chosen by
/// the seed (links are two-way, so the average degree is about twice that), made connected.
struct Topology {
    let count: Int
    /// Each node's peers, ascending.
    let neighbours: [[Int]]
    private let adjacent: [Bool]

    init(count: Int, outbound: Int?, random: inout SimulationRandom) {
        self.count = count
        var adjacent = [Bool](repeating: false, count: count * count)
        func link(_ a: Int, _ b: Int) {
            adjacent[a * count + b] = true
            adjacent[b * count + a] = true
        }
        if let outbound, outbound < count - 1 {
            for node in 0..<count {
                // Dials `outbound` peers it is not linked to yet, drawn from those left.
                var candidates = (0..<count).filter { $0 != node && !adjacent[node * count + $0] }
                for _ in 0..<min(outbound, candidates.count) {
                    let peer = candidates.remove(at: random.int(0...(candidates.count - 1)))
                    link(node, peer)
                }
            }
            // Join any component left apart to node 0's (a seed node's job in a real network).
            var reached = [Bool](repeating: false, count: count)
            var stack = [0]
            reached[0] = true
            while let node = stack.popLast() {
                for peer in 0..<count where adjacent[node * count + peer] && !reached[peer] {
                    reached[peer] = true
                    stack.append(peer)
                }
            }
            for node in 0..<count where !reached[node] { link(0, node) }
        } else {
            for a in 0..<count { for b in 0..<count where a != b { adjacent[a * count + b] = true } }
        }
        self.adjacent = adjacent
        neighbours = (0..<count).map { node in (0..<count).filter { adjacent[node * count + $0] } }
    }

    func linked(_ a: Int, _ b: Int) -> Bool { adjacent[a * count + b] }

    var averageDegree: Double { Double(neighbours.reduce(0) { $0 + $1.count }) / Double(max(count, 1)) }
}

/// One-way latency of each link under a `LinkModel` other than `seeded`.
struct LinkLatency {
    let count: Int
    private let base: [UInt64]
    static let lossPerMille: UInt64 = 1

    init(model: LinkModel, count: Int, random: inout SimulationRandom) {
        self.count = count
        var base = [UInt64](repeating: 0, count: count * count)
        for a in 0..<count {
            for b in (a + 1)..<max(count, a + 1) {
                let latency: UInt64
                switch model {
                case .seeded:
                    latency = 0
                case .wan:
                    let regional = LinkModel.regionMilliseconds[a % 6][b % 6]
                    latency = max(1, regional * UInt64(random.int(90...110)) / 100)
                case .uniform(let low, let high):
                    latency = low + random.below(high - low + 1)
                }
                base[a * count + b] = latency
                base[b * count + a] = latency
            }
        }
        self.base = base
    }

    /// The delay of one message on the link: its latency, jitter, and now and then a
    /// retransmission. An outsider (a peer past the validators) sits where the validator of
    /// its index modulo the count does; beside that validator it is 1 ms away.
    func delay(from: Int, to: Int, random: inout SimulationRandom) -> UInt64 {
        let (a, b) = (from % count, to % count)
        let latency = a == b ? 1 : base[a * count + b]
        var delay = latency + random.below(latency / 20 + 1)
        if random.chance(perMille: Self.lossPerMille) { delay += max(200, 2 * latency) }
        return delay
    }
}
