import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A listening socket that could not be opened, said so that an operator can act: which
/// address, why in words, and which setting to change.
public struct ListenFailure: Error, CustomStringConvertible {
    public let description: String

    /// `what` names the service ("listen for peers"), `address` is HOST:PORT and `setting`
    /// what chooses it ("p2p.listen_address in config.toml").
    public init(_ error: any Error, what: String, address: String, setting: String) {
        let reason: String
        switch (error as? IOError)?.errnoCode {
        case EADDRINUSE?:
            reason = "the port is already in use (another node, or another program, listens on it; `ss -ltnp` names it)"
        case EACCES?:
            reason = "permission denied (ports below 1024 need privileges)"
        case EADDRNOTAVAIL?:
            reason = "no network interface of this machine has that address"
        default:
            reason = "\(error)"
        }
        description = "cannot \(what) on \(address): \(reason). Free the port or choose another with \(setting)."
    }
}
