import FerryTestSupport
import FerryTestTraits
import Foundation
import Testing

/// The hub never holds a whole changeset or a whole pull: a unit far larger than the
/// memory either side is allowed to grow by passes through in bounded batches.
@Suite("Streaming: bounded memory for a huge unit", .serialized, .tags(.slow), .offThePool)
struct StreamingTests {
    static func peakKiB(_ pid: Int32) -> Int { peakResidentKiB(of: pid) ?? 0 }

    /// Runs `ferry args` to the end, sampling its peak memory while it lives.
    static func runSampled(_ args: [String]) throws -> (status: Int32, peakKiB: Int, stderr: String) {
        let p = try ChildProcess(FerryBinary.path, args)
        let peak = p.waitSamplingPeak()
        return (p.process.terminationStatus, peak, p.stderr)
    }

    @Test("96 MB of one unit's rows go up and come down again while hub and node each grow by less than 64 MiB")
    func hugeUnitStreams() throws {
        let p = try Province(units: ["u-big"])
        defer { p.shutdown() }
        let rows = 24_000
        let noteChars = 4_000
        let fill = try SQLiteShell.run(
            p.unitDB("u-big"),
            """
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < \(rows))
            INSERT INTO member (id, unit_id, name, status, join_date, phone, note)
            SELECT 'big' || i, 'u-big', '党员' || i, 'full', '2020-05-04', '13912345678', hex(randomblob(\(noteChars / 2))) FROM n;
            """)
        #expect(fill.status == 0, "\(fill.error)")
        let volumeMiB = (rows * noteChars) >> 20
        let hubPid = p.hub.process.processIdentifier
        let hubStart = Self.peakKiB(hubPid)

        let up = try Self.runSampled(["sync", "--dir", p.nodeDir("u-big"), "--lang", "en"])
        #expect(up.status == 0, "\(up.stderr)")
        #expect(try p.query(p.hubDB, "SELECT count(*), sum(length(note)) FROM member WHERE unit_id = 'u-big';") == [["\(rows)", "\(rows * noteChars)"]])
        let hubAfterPush = Self.peakKiB(hubPid)
        #expect((hubAfterPush - hubStart) >> 10 < 64, "hub grew from \(hubStart >> 10) to \(hubAfterPush >> 10) MiB receiving \(volumeMiB) MiB")

        // A second node of the same unit pulls all of it.
        let token = try p.ferry(["hub", "token", "--dir", p.hubDir, "--unit", "u-big"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let second = p.dir.file("node-second")
        try p.ferry(["node", "init", "--dir", second, "--hub", p.url, "--token", token, "--lang", "en"])
        let baseline = try Self.runSampled(["status", "--dir", second, "--lang", "en"]).peakKiB
        let down = try Self.runSampled(["sync", "--dir", second, "--lang", "en"])
        #expect(down.status == 0, "\(down.stderr)")
        #expect(try p.query("\(second)/unit.db", "SELECT count(*), sum(length(note)) FROM member;") == [["\(rows)", "\(rows * noteChars)"]])
        let hubAfterPull = Self.peakKiB(hubPid)
        #expect((hubAfterPull - hubStart) >> 10 < 64, "hub grew from \(hubStart >> 10) to \(hubAfterPull >> 10) MiB serving \(volumeMiB) MiB")
        print("streaming: \(volumeMiB) MiB each way; hub peak \(hubStart >> 10) → \(hubAfterPush >> 10) (push) → \(hubAfterPull >> 10) MiB (pull); pulling node peak \(down.peakKiB >> 10) MiB vs \(baseline >> 10) MiB for ferry status")
        #expect((down.peakKiB - baseline) >> 10 < 64, "the pulling node peaked at \(down.peakKiB >> 10) MiB (\(baseline >> 10) MiB for ferry status) pulling \(volumeMiB) MiB")
    }
}
