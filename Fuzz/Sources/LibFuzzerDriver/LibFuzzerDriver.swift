import CLibFuzzer
import FerryFuzzTargets
import Foundation

/// Hands the process to libFuzzer with `testOneInput` as `target`'s entry point.
///
/// SwiftPM gives every executable its own `main` (and on Linux renames it), which wins over
/// the one in libFuzzer's runtime; so the executable's `main` starts libFuzzer's driver.
///
/// `--write-seeds DIR` instead writes the target's generated seeds into DIR and exits
/// (scripts/fuzz adds them to the corpus).
public func runLibFuzzer(_ target: FuzzTarget, _ testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> Never {
    let arguments = CommandLine.arguments
    if arguments.count == 3, arguments[1] == "--write-seeds" {
        do {
            for seed in target.seeds() {
                try Data(seed.bytes).write(to: URL(fileURLWithPath: arguments[2]).appendingPathComponent(seed.name))
            }
        } catch {
            FileHandle.standardError.write(Data("cannot write the seeds of \(target.rawValue): \(error)\n".utf8))
            exit(1)
        }
        exit(0)
    }
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    let status = withUnsafeMutablePointer(to: &argv) { p in
        p.withMemoryRebound(to: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?.self, capacity: 1) { argvp in
            LLVMFuzzerRunDriver(&argc, argvp, testOneInput)
        }
    }
    exit(status)
}
