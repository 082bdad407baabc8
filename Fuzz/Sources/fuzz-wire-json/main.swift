import FerryFuzzTargets
import LibFuzzerDriver

// libFuzzer's runtime references this symbol (from its own main, which SwiftPM's replaces),
// so it must exist under this name although the driver is handed the function directly.
@_cdecl("LLVMFuzzerTestOneInput")
func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTarget.wireJSON.runOrTrap(data, size)
    return 0
}

runLibFuzzer(.wireJSON, testOneInput)
