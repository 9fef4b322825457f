import Foundation
import Hummingbird
import Logging
import NIOCore
import Prometheus

/// /metrics (Prometheus text), /healthz (live) and /readyz (group joined and Graph reachable).
public enum HealthServer {
    /// The HTTP application on `listen` (`worker.listen`, host:port; port 0 picks a free port):
    /// /metrics serves `registry` in Prometheus text format; /healthz and /readyz answer 200 or 503
    /// from `health.live` and `health.ready`, with `health.details` as the body. `onPort` receives the
    /// bound port once the server runs. Throws ConfigurationError when `listen` is not host:port.
    public static func application(
        listen: String, registry: PrometheusCollectorRegistry, health: WorkerHealth,
        logger: Logger, onPort: @escaping @Sendable (Int) -> Void
    ) throws -> some ApplicationProtocol {
        let (host, port) = try parse(listen)
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            var buffer: [UInt8] = []
            registry.emit(into: &buffer)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: buffer)))
        }
        router.get("/healthz") { _, _ -> Response in
            Response(status: health.live ? .ok : .serviceUnavailable, body: ResponseBody(byteBuffer: ByteBuffer(string: health.details + "\n")))
        }
        router.get("/readyz") { _, _ -> Response in
            Response(status: health.ready ? .ok : .serviceUnavailable, body: ResponseBody(byteBuffer: ByteBuffer(string: health.details + "\n")))
        }
        return Application(
            router: router, configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "exocheck"),
            onServerRunning: { channel in onPort(channel.localAddress?.port ?? port) }, logger: logger)
    }

    static func parse(_ listen: String) throws -> (String, Int) {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else {
            throw ConfigurationError("worker.listen must be host:port, got '\(listen)'")
        }
        return (String(listen[..<colon]), port)
    }
}
