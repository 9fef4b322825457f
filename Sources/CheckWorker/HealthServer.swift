import Foundation
import Hummingbird
import Logging
import NIOCore
import Prometheus

/// /metrics (Prometheus text), /healthz (live) and /readyz (group joined and Graph reachable).
public enum HealthServer {
    public static func application(listen: String, registry: PrometheusCollectorRegistry, health: WorkerHealth,
                                   logger: Logger, onPort: @escaping @Sendable (Int) -> Void) throws -> some ApplicationProtocol {
        let (host, port) = try parse(listen)
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            var buffer: [UInt8] = []
            registry.emit(into: &buffer)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: buffer)))
        }
        router.get("/healthz") { _, _ -> Response in
            Response(status: health.live ? .ok : .serviceUnavailable, body: ResponseBody(byteBuffer: ByteBuffer(string: health.details + "\n")))
        }
        router.get("/readyz") { _, _ -> Response in
            Response(status: health.ready ? .ok : .serviceUnavailable, body: ResponseBody(byteBuffer: ByteBuffer(string: health.details + "\n")))
        }
        return Application(router: router, configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "exocheck"),
                           onServerRunning: { channel in onPort(channel.localAddress?.port ?? port) }, logger: logger)
    }

    static func parse(_ listen: String) throws -> (String, Int) {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else {
            throw ConfigurationError("worker.listen must be host:port, got '\(listen)'")
        }
        return (String(listen[..<colon]), port)
    }
}
