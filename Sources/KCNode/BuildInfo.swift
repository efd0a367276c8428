/// What this binary is: `node version`, the `membria_build_info` metric and the start-up log.
public enum BuildInfo {
    /// Semantic version of the node software (the wire protocol and state layout have their
    /// own versions in specs/).
    public static let version = "0.17.0"
    /// The git commit the binary was built from (GitCommit build plugin).
    public static let commit = GitCommit.id
    /// The compiler that built it.
    public static let swiftVersion: String = {
        #if compiler(>=6.4)
        return "6.4 or later"
        #elseif compiler(>=6.3)
        return "6.3"
        #elseif compiler(>=6.2)
        return "6.2"
        #elseif compiler(>=6.1)
        return "6.1"
        #else
        return "6.0"
        #endif
    }()
}
