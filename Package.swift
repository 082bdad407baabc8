// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Ferry",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "ferry", targets: ["ferry"]),
        .library(name: "FerryCore", targets: ["FerryCore"]),
        .library(name: "FerryStore", targets: ["FerryStore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // The pure core: clocks, values, changesets and their codec, merge rules, the
        // standard's model and validation. No I/O, no wall clock, no dependencies.
        .target(name: "FerryCore"),
        // Reads a standard from its TOML file into the core model.
        .target(
            name: "FerryStandardFile",
            dependencies: ["FerryCore", .product(name: "TOMLKit", package: "TOMLKit")]
        ),
        // The replica store over SQLite (GRDB): schema, capture triggers, stamping,
        // extraction, apply/merge, conflict log.
        .target(
            name: "FerryStore",
            dependencies: [
                "FerryCore", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ]
        ),
        // Shared by test targets and the bench: temporary databases, the sqlite3 shell,
        // seeded randomness, the vector loader.
        .target(
            name: "FerryTestSupport",
            dependencies: ["FerryCore", "FerryStore", "FerryStandardFile"]
        ),
        .executableTarget(
            name: "ferry",
            dependencies: [
                "FerryCore", "FerryStore", "FerryStandardFile",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "FerryBench",
            dependencies: [
                "FerryCore", "FerryStore", "FerryStandardFile", "FerryTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "FerryCoreTests",
            dependencies: ["FerryCore", "FerryStandardFile", "FerryTestSupport"],
            resources: []
        ),
        .testTarget(
            name: "FerryStoreTests",
            dependencies: [
                "FerryCore", "FerryStore", "FerryStandardFile", "FerryTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
