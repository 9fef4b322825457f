// swift-tools-version:6.1
import Foundation
import PackageDescription

// `EXOCHECK_PACKAGE_SUBSET=kafka` declares only the librdkafka layer and its tests. scripts/test.sh
// uses it for the AddressSanitizer pass, so that pass compiles what its tests run (CRdKafka, Kafka,
// KafkaTests) instead of the whole package with BoringSSL and NIO. The dependency list stays the
// same either way, so Package.resolved does not change; unused packages are resolved, not built.
let kafkaOnly = ProcessInfo.processInfo.environment["EXOCHECK_PACKAGE_SUBSET"] == "kafka"

let package = Package(
    name: "exocheck",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "exocheck", targets: ["exocheck"]),
        .library(name: "ExchangeChecks", targets: ["ExchangeChecks"]),
        .library(name: "GraphReports", targets: ["GraphReports"]),
        .library(name: "GraphSimulator", targets: ["GraphSimulator"]),
        .library(name: "Kafka", targets: ["Kafka"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        // Already resolved through async-http-client and Hummingbird; named for the submitter's
        // Unix-socket server (NIOPosix).
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.81.0"),
        // Already resolved and built through Hummingbird (swift-nio-ssl); named for reading a
        // client certificate's notAfter (credential expiry warnings).
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.19.4"),
        // Traces (OpenTelemetry): the instrumentation API for the worker's spans, and swift-otel's
        // OTLP/HTTP exporter for the executable only. Its default traits add OTLP/gRPC (grpc-swift),
        // which would lengthen every build; exocheck exports over HTTP only.
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.2"),
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPHTTP"]),
    ],
    targets: [
        // Pure check logic: CSV, ranges, status expressions, modes, rendering. No I/O.
        // It calls ICU's regex C API directly (ICUMatcher.swift): the toolchain's own ICU, the one
        // Foundation uses, whose module (_FoundationICU) does not link itself.
        .target(name: "ExchangeChecks", linkerSettings: [.linkedLibrary("_FoundationICU")]),
        // Microsoft identity + Graph reports over HTTP: tokens, token caches, report fetcher.
        .target(
            name: "GraphReports",
            dependencies: [
                "ExchangeChecks",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]
        ),
        // Loopback stand-in for login.microsoftonline.com + graph.microsoft.com reports.
        .target(
            name: "GraphSimulator",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [.copy("Fixtures")]
        ),
        // librdkafka (Debian: librdkafka-dev) and the shim for what Swift cannot call directly.
        .systemLibrary(
            name: "CRdKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        // A small safe Swift layer over librdkafka: producer, group consumer, mock cluster.
        .target(name: "Kafka", dependencies: ["CRdKafka"]),
        // The Kafka-driven pipeline: requests → checks → results, offsets, metrics, health.
        .target(
            name: "CheckWorker",
            dependencies: [
                "ExchangeChecks", "GraphReports", "Kafka",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]
        ),
        .executableTarget(
            name: "exocheck",
            dependencies: [
                "ExchangeChecks",
                "GraphReports",
                "GraphSimulator",
                "Kafka",
                "CheckWorker",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "OTel", package: "swift-otel"),
            ]
        ),
        // What the test targets share (binary locator, polling); Foundation only.
        .target(name: "ExocheckTestSupport", path: "Tests/Support"),
        .testTarget(name: "ExchangeChecksTests", dependencies: ["ExchangeChecks"]),
        .testTarget(name: "KafkaTests", dependencies: ["Kafka", "ExocheckTestSupport"], resources: [.copy("Resources")]),
        .testTarget(name: "CheckWorkerTests", dependencies: ["CheckWorker", "ExchangeChecks", "GraphReports", "GraphSimulator", "Kafka",
                                                            "ExocheckTestSupport",
                                                            // The loopback OTLP receiver of TracingTests.
                                                            .product(name: "Hummingbird", package: "hummingbird")]),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["ExchangeChecks", "GraphReports", "GraphSimulator", "ExocheckTestSupport"],
            resources: [.copy("Resources")]
        ),
    ],
    swiftLanguageModes: [.v6]
)

if kafkaOnly {
    let kept: Set<String> = ["CRdKafka", "Kafka", "KafkaTests", "ExocheckTestSupport"]
    package.targets = package.targets.filter { kept.contains($0.name) }
    package.products = package.products.filter { $0.name == "Kafka" }
}
