// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Ferry",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ferry", targets: ["ferry"]),
        .library(name: "FerryCore", targets: ["FerryCore"]),
        .library(name: "FerryStore", targets: ["FerryStore"]),
        // For the libFuzzer package in Fuzz/, which cannot depend on targets directly.
        .library(name: "FerryFuzzTargets", targets: ["FerryFuzzTargets"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // Hummingbird's own dependencies, named for the hub's connection guard and TLS.
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.34.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.2"),
    ],
    targets: [
        // The pure core: clocks, values, changesets and their codec, merge rules, the
        // standard's model and validation, retry policy. No I/O, no wall clock, no dependencies.
        .target(name: "FerryCore"),
        // The HTTP protocol's messages, error shape and request-signing bytes. Pure.
        .target(name: "FerryWire", dependencies: ["FerryCore"]),
        // Reads a standard from its TOML file into the core model; ships the default standard.
        .target(
            name: "FerryStandardFile",
            dependencies: ["FerryCore", .product(name: "TOMLKit", package: "TOMLKit")],
            resources: [.copy("Resources/party-building.toml")]
        ),
        // The replica store over SQLite (GRDB): schema, capture triggers, stamping,
        // extraction, apply/merge, conflict log.
        .target(
            name: "FerryStore",
            dependencies: [
                "FerryCore", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Keys, signatures and token digests (swift-crypto).
        .target(
            name: "FerryTrust",
            dependencies: [
                "FerryWire", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]
        ),
        // gzip over the system zlib.
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
        .target(name: "FerryCompression", dependencies: ["CZlib"]),
        // libcurl, with typed shims for its variadic calls, and a small blocking client.
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .target(name: "FerryHTTPClient", dependencies: ["FerryCore", "CCurl"]),
        // The hub's logic: registry, enrolment, authentication, push/pull. No HTTP.
        .target(
            name: "FerryHub",
            dependencies: [
                "FerryCore", "FerryStore", "FerryStandardFile", "FerryTrust", "FerryWire", "FerryConfig",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // The supervisor's words and tables, for the terminal, CSV and the dashboard alike:
        // labels in Chinese and English, number and time formats, terminal escaping, CSV.
        .target(name: "FerryReports", dependencies: ["FerryCore", "FerryHub"]),
        // The hub over HTTP (Hummingbird 2), with TLS of its own (HummingbirdTLS: the only
        // module that pulls in NIOSSL) and the connection guard (NIO channel handlers).
        .target(
            name: "FerryHubServer",
            dependencies: [
                "FerryCore", "FerryHub", "FerryReports", "FerryWire", "FerryTrust", "FerryCompression",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        // A unit's node: the sync exchange, its HTTP connection to the hub, the daemon loop.
        .target(
            name: "FerryNode",
            dependencies: [
                "FerryCore", "FerryStore", "FerryStandardFile", "FerryTrust", "FerryWire", "FerryCompression",
                "FerryHTTPClient", "FerryConfig",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // sd_notify (readiness, watchdog, status) spoken directly, and the watchdog Service.
        .target(
            name: "FerrySystemd",
            dependencies: [
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"), .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The node's and the hub's config files: defaults, loading, validation, example files.
        .target(name: "FerryConfig", dependencies: ["FerryCore", "FerryWire", .product(name: "TOMLKit", package: "TOMLKit")]),
        // A seeded sample province (org tree, reference data, years of unit records) as SQL
        // statements, for the demo, end-to-end tests and benchmarks. Pure: opens no database.
        .target(name: "FerrySample", dependencies: ["FerryCore"]),
        // A hub directory filled with the sample province, as if its units had synced: for
        // trying the dashboard, its browser test and the roll-up benchmark.
        .target(name: "FerryDemo", dependencies: ["FerryCore", "FerryHub", "FerrySample", "FerryStore", "FerryTrust"]),
        // Shared by test targets and the bench: temporary databases, the sqlite3 shell,
        // seeded randomness, the vector loader.
        .target(
            name: "FerryTestSupport",
            dependencies: ["FerryCore", "FerryStore", "FerryStandardFile"]
        ),
        // The test targets' own traits (`.offThePool`: every test runs on threads of its own,
        // leaving the cooperative pool to the code under test), apart from FerryTestSupport
        // so the benches do not link Testing.
        .target(name: "FerryTestTraits", dependencies: ["FerryTestSupport"]),
        // The fuzz targets' checks over the untrusted-input parsers (changesets, JSON bodies,
        // standard files), shared by the libFuzzer binaries in Fuzz/ and the fixture replay test.
        .target(name: "FerryFuzzTargets", dependencies: ["FerryCore", "FerryWire", "FerryStandardFile"]),
        .executableTarget(
            name: "ferry",
            dependencies: [
                "FerryCore", "FerryStore", "FerryStandardFile", "FerryHub", "FerryHubServer", "FerryNode", "FerryReports",
                "FerryWire", "FerryTrust", "FerryHTTPClient", "FerryConfig", "FerrySystemd", "FerryDemo", "FerrySample",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "FerryBench",
            dependencies: [
                "FerryCore", "FerryStore", "FerryStandardFile", "FerryTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .executableTarget(
            name: "FerryNetBench",
            dependencies: [
                "FerryCore", "FerryStore", "FerryHub", "FerryHubServer", "FerryNode", "FerryTestSupport", "FerryTrust",
                "FerryWire", "FerrySample", "FerryStandardFile", "FerryDemo", .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "FerryCoreTests",
            dependencies: [
                "FerryCore", "FerryStandardFile", "FerryTestSupport", "FerryTestTraits", "FerryWire", "FerryConfig", "FerrySystemd", "FerryFuzzTargets",
            ]
        ),
        .testTarget(
            name: "FerryStoreTests",
            dependencies: [
                "FerryCore", "FerryStore", "FerryStandardFile", "FerryTestSupport", "FerryTestTraits", "FerrySample",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "FerryEndToEndTests",
            dependencies: [
                "FerryCore", "FerryStore", "FerryStandardFile", "FerryTestSupport", "FerryTestTraits", "FerryHub", "FerryNode",
                "FerryWire", "FerryTrust", "FerryHubServer", "FerryReports", "FerryDemo", "FerrySample", "FerryConfig", "FerryCompression", "FerryHTTPClient",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
