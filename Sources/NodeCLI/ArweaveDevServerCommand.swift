import ArgumentParser
import KCRPC

#if canImport(Glibc)
import Glibc
#endif

struct ArweaveDevServerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "arweave-dev-server",
        abstract: "Serve payloads like an Arweave gateway, for local development.",
        discussion: """
        GET /{ArTxID} answers the file named by that ArTxID in --dir; POST /tx stores the \
        request body under the ArTxID made from its SHA-256 and answers that id. Point a \
        node's arweave.gateway at it. Runs until SIGINT or SIGTERM.
        """)

    @Option(name: .long, help: ArgumentHelp("Folder of payload files named by their ArTxID.", valueName: "dir"))
    var dir: String

    @Option(name: .long, help: "Port to listen on (127.0.0.1).")
    var port: Int = 1984

    @Option(name: .long, help: "Address to bind.")
    var host: String = "127.0.0.1"

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
    }

    func run() throws {
        installStopHandlers()
        try runReportingErrors {
            var info = stat()
            guard stat(dir, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
                throw OperatorError("--dir \(dir) is not a folder")
            }
            let server = ContentServer(directory: dir, host: host, port: port)
            let bound = try server.start()
            print("serving \(dir) on http://\(host):\(bound)")
            flushStandardOutput()
            while !stopRequested { usleep(100_000) }
            server.stop()
        }
    }
}
