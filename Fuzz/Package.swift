// swift-tools-version:6.1
// The libFuzzer binaries, one per fuzz target (the checks themselves are FerryFuzzTargets,
// in the root package). A package of its own because the fuzz build instruments and links
// with `-sanitize=fuzzer,address`, which the root package's binaries and tests must not get.
// Build and run them with scripts/fuzz.
import PackageDescription

let package = Package(
    name: "FerryFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "Ferry", path: "..")],
    targets: [
        .systemLibrary(name: "CLibFuzzer"),
        .target(name: "LibFuzzerDriver", dependencies: ["CLibFuzzer", .product(name: "FerryFuzzTargets", package: "Ferry")]),
    ]
        + ["changeset", "wire-json", "standard"].map { name in
            .executableTarget(
                name: "fuzz-\(name)",
                dependencies: ["LibFuzzerDriver", .product(name: "FerryFuzzTargets", package: "Ferry")]
            )
        },
    swiftLanguageModes: [.v6]
)
