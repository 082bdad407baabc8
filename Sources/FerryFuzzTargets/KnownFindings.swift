/// A crash the fuzzer found that is recorded as a fixture and not yet fixed.
///
/// While it is open, campaigns step over the inputs that `reproduces` picks out, so that a
/// run looks for new crashes instead of stopping at this one in its first seconds (and the
/// test command's short campaign does not fail on a crash someone already owns). The
/// fixture's replay test still runs it unscreened and is marked as a known issue; once the
/// crash is fixed that test fails for want of the issue, which is the cue to delete the
/// entry here.
public struct KnownFinding: Sendable {
    public let target: FuzzTarget
    /// The file under Tests/Fixtures/fuzz/<target>/ that reproduces it.
    public let fixture: String
    public let summary: String
    /// A superset of the inputs that reach the crash: stepping over a few more costs the
    /// campaign a little coverage, missing one stops it.
    let reproduces: @Sendable ([UInt8]) -> Bool
}

extension KnownFinding {
    /// None open: both TOML++ aborts are refused before TOMLKit parses (TOMLPrecheck in
    /// FerryStandardFile); their fixtures stay, replayed as ordinary inputs.
    public static let open: [KnownFinding] = []
}
