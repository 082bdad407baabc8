import Foundation
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import Synchronization
import UnixSignals

/// Where the hub's TLS certificate and key are: PEM files (the certificate file may hold the
/// chain, leaf first). Set: the hub serves HTTPS; nil: plain HTTP.
public struct HubTLS: Sendable, Equatable {
    public var certificatePath: String
    public var keyPath: String

    public init(certificatePath: String, keyPath: String) {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
    }
}

/// Why the hub's certificate or key could not be used: which file, and what to check.
public struct HubTLSError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// The certificate and key new TLS handshakes use, replaced on reload while the hub runs:
/// every handshake asks for the current pair (swift-nio-ssl's per-handshake context
/// callback), so a new certificate takes effect for the next connection without a restart,
/// and connections already open keep theirs.
final class CertificateStore: Sendable {
    struct Loaded: Sendable {
        var chain: [NIOSSLCertificate]
        var key: NIOSSLPrivateKey
        /// The files' modification times and sizes when they were read.
        var stamp: [String]
    }

    let files: HubTLS
    let logger: Logger
    private let current: Mutex<Loaded>

    init(files: HubTLS, logger: Logger) throws(HubTLSError) {
        self.files = files
        self.logger = logger
        current = Mutex(try Self.load(files))
    }

    static func stamp(_ files: HubTLS) -> [String] {
        [files.certificatePath, files.keyPath].map { path in
            let a = try? FileManager.default.attributesOfItem(atPath: path)
            let date = (a?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            return "\(path) \(date) \((a?[.size] as? NSNumber)?.intValue ?? -1)"
        }
    }

    static func load(_ files: HubTLS) throws(HubTLSError) -> Loaded {
        let stamp = stamp(files)
        let chain: [NIOSSLCertificate]
        do { chain = try NIOSSLCertificate.fromPEMFile(files.certificatePath) } catch {
            throw HubTLSError(description: "cannot read the TLS certificate \(files.certificatePath) (\(error)); it must be a readable PEM file, leaf certificate first")
        }
        guard !chain.isEmpty else {
            throw HubTLSError(description: "the TLS certificate file \(files.certificatePath) holds no PEM certificate")
        }
        let key: NIOSSLPrivateKey
        do { key = try NIOSSLPrivateKey(file: files.keyPath, format: .pem) } catch {
            throw HubTLSError(description: "cannot read the TLS key \(files.keyPath) (\(error)); it must be a readable, unencrypted PEM private key")
        }
        // A pair that does not match fails every handshake; find out now, not from the nodes.
        do {
            var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
            configuration.minimumTLSVersion = .tlsv12
            _ = try NIOSSLContext(configuration: configuration)
        } catch {
            throw HubTLSError(description: "the key \(files.keyPath) does not belong to the certificate \(files.certificatePath) (\(error))")
        }
        return Loaded(chain: chain, key: key, stamp: stamp)
    }

    /// The server configuration: TLS 1.2 and up, with the current pair at every handshake.
    func configuration() -> TLSConfiguration {
        let loaded = current.withLock { $0 }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: loaded.chain.map { .certificate($0) }, privateKey: .privateKey(loaded.key))
        configuration.minimumTLSVersion = .tlsv12
        configuration.sslContextCallback = { [self] _, promise in
            let now = current.withLock { $0 }
            var override = NIOSSLContextConfigurationOverride()
            override.certificateChain = now.chain.map { .certificate($0) }
            override.privateKey = .privateKey(now.key)
            promise.succeed(override)
        }
        return configuration
    }

    /// Reads the files again if they changed since the last read (or always, `force`). A pair
    /// that cannot be used is logged and the one in use kept.
    @discardableResult
    func reload(force: Bool, reason: String) -> Bool {
        let seen = current.withLock { $0.stamp }
        guard force || Self.stamp(files) != seen else { return false }
        do {
            let loaded = try Self.load(files)
            current.withLock { $0 = loaded }
            logger.notice("tls certificate reloaded", metadata: ["reason": "\(reason)", "file": "\(files.certificatePath)"])
            return true
        } catch {
            // Do not retry the same broken files on every poll; try again when they change.
            current.withLock { $0.stamp = Self.stamp(files) }
            logger.error("tls certificate reload failed", metadata: ["reason": "\(reason)", "error": "\(error)"])
            return false
        }
    }
}

/// Reloads the hub's TLS certificate and key on SIGHUP, and when the files change (checked
/// every `interval`), without a restart.
struct CertificateReloader: Service {
    let store: CertificateStore
    let interval: Duration

    func run() async throws {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    for await _ in hangups { store.reload(force: true, reason: "sighup") }
                }
                group.addTask {
                    while (try? await Task.sleep(for: interval)) != nil { store.reload(force: false, reason: "files changed") }
                }
            }
        }
    }
}
