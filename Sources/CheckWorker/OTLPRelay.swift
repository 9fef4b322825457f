import GraphReports
import Hummingbird
import Logging
import NIOCore

/// The only part of a worker that talks to the OpenTelemetry collector (docs/tracing.md).
///
/// swift-otel's exporter posts its batches to this relay on 127.0.0.1; the relay sends them on
/// to the collector with the operator's headers, and hands back the collector's status and body
/// with a `Retry-After` it has checked. The collector's answer is input like any other: swift-otel
/// 1.6.0 turns any whole number in `Retry-After` into a sleep, and a large one stopped the worker
/// (a Swift overflow trap, `TracingTests/badCollector`). The relay also keeps the collector's
/// credentials (`OTEL_EXPORTER_OTLP_HEADERS`) out of swift-otel, whose diagnostics log the
/// variables they apply.
public enum OTLPRelay {
    /// Largest batch accepted from the exporter (its batches are at most
    /// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` spans of a few hundred bytes).
    public static let maxRequestBytes = 16 * 1024 * 1024
    /// Largest collector answer handed back (an OTLP answer is a few bytes of partial-success).
    public static let maxAnswerBytes = 64 * 1024
    /// The longest wait a collector may ask for, in seconds.
    public static let maxRetryAfterSeconds = 60

    /// The `Retry-After` handed to the exporter: whole seconds (at most 10 digits) clamped to
    /// `maxRetryAfterSeconds`; anything else (an HTTP date, a sign, garbage) is dropped, which
    /// makes the exporter use its own backoff.
    public static func retryAfter(_ value: String?) -> String? {
        guard let value, !value.isEmpty, value.utf8.count <= 10, value.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let n = Int(value) else {
            return nil
        }
        return String(min(n, maxRetryAfterSeconds))
    }

    /// A `Content-Type` without its parameters, lower-case.
    static func mediaType(_ contentType: String) -> String {
        String(contentType.prefix { $0 != ";" }).lowercased()
    }

    /// The content types the exporter sends (http/protobuf, http/json).
    static let contentTypes: Set<String> = ["application/x-protobuf", "application/json"]

    /// The relay on 127.0.0.1 (a free port, given to `onPort` once it listens): POST /v1/traces
    /// is sent to `exporter.collector` with `exporter.headers`, within `exporter.timeout`; a
    /// collector that cannot be reached is answered 503 (the exporter retries with its backoff and
    /// then drops the batch), and logged.
    public static func application(
        exporter: TraceExportSettings.Exporter, transport: HTTPTransport, logger: Logger, onPort: @escaping @Sendable (Int) -> Void
    ) -> some ApplicationProtocol {
        let router = Router()
        let headers = exporter.headers.map { ($0.name, $0.value) }
        router.post("/v1/traces") { request, _ -> Response in
            let type = request.headers[.contentType].map(mediaType) ?? ""
            guard contentTypes.contains(type) else { return Response(status: .unsupportedMediaType) }
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: maxRequestBytes)
            } catch {
                return Response(status: .contentTooLarge)
            }
            let answer = await transport.post(
                exporter.collector, headers: headers + [("Content-Type", type)], body: Array(body.readableBytesView),
                timeout: exporter.timeout, maxAnswerBytes: maxAnswerBytes)
            switch answer {
            case .success(let a):
                var fields: HTTPFields = [:]
                if let t = a.contentType, contentTypes.contains(mediaType(t)) { fields[.contentType] = t }
                if let wait = retryAfter(a.retryAfter) { fields[.retryAfter] = wait }
                if a.status >= 400 { logger.warning("the OpenTelemetry collector refused a batch of spans", metadata: ["http.status": "\(a.status)"]) }
                let status = (100...599).contains(a.status) ? HTTPResponse.Status(code: a.status) : .badGateway
                return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: a.body)))
            case .failure(let failure):
                logger.warning("the OpenTelemetry collector could not be reached: \(failure.reason)")
                return Response(status: .serviceUnavailable)
            }
        }
        return Application(
            router: router, configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0), serverName: "exocheck-otlp-relay"),
            onServerRunning: { channel in onPort(channel.localAddress?.port ?? 0) }, logger: logger)
    }
}
