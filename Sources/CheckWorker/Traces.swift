import ExchangeChecks
import GraphReports
import Kafka
import Tracing

/// Trace context in and out of Kafka records (W3C `traceparent` only; docs/tracing.md).
///
/// A request's headers are hostile: only a `traceparent` of the W3C shape
/// (`CheckRequestDecoder.isTraceparent`) ever reaches the tracer's propagator. Anything else, and
/// every `tracestate` or `baggage` header, is ignored, so the worker's span starts a new trace and
/// the value is never echoed.
enum RequestTrace {
    /// The header of the W3C trace context.
    static let header = "traceparent"

    /// Reads the last well-formed `traceparent` of a request record; nothing else.
    struct Extractor: Tracing.Extractor {
        func extract(key: String, from carrier: [KafkaHeader]) -> String? {
            guard key == RequestTrace.header else { return nil }
            return RequestTrace.wellFormed(carrier)
        }
    }

    /// Writes a `traceparent` into a result's headers; it keeps only a well-formed one (a tracer
    /// could propagate other keys: they are dropped).
    struct Injector: Tracing.Injector {
        func inject(_ value: String, forKey key: String, into carrier: inout [KafkaHeader]) {
            guard key == RequestTrace.header, CheckRequestDecoder.isTraceparent(Array(value.utf8)) else { return }
            carrier.removeAll { $0.name == RequestTrace.header }
            carrier.append(KafkaHeader(RequestTrace.header, value))
        }
    }

    /// The request's `traceparent` when it is well-formed (the last one wins, as everywhere).
    static func wellFormed(_ headers: [KafkaHeader]) -> String? {
        guard let value = headers.last(where: { $0.name == header })?.value, CheckRequestDecoder.isTraceparent(value) else { return nil }
        return String(decoding: value, as: UTF8.self)
    }

    /// The context a request's `consume` span continues: its well-formed `traceparent`, else a
    /// new trace.
    static func context(of headers: [KafkaHeader]) -> ServiceContext {
        var context = ServiceContext.topLevel
        InstrumentationSystem.instrument.extract(headers, into: &context, using: Extractor())
        return context
    }

    /// The `traceparent` a result carries: with tracing on, the worker's current span (so that a
    /// consumer of the result continues the trace); with tracing off, the request's own when it is
    /// well-formed; otherwise none.
    static func resultTraceparent(request headers: [KafkaHeader]) -> String? {
        var injected: [KafkaHeader] = []
        if let context = ServiceContext.current {
            InstrumentationSystem.instrument.inject(context, into: &injected, using: Injector())
        }
        if let value = injected.last?.value { return String(decoding: value, as: UTF8.self) }
        return wellFormed(headers)
    }
}

/// An executor whose every evaluation is a span named `name` (`evaluate`, `parse`), a child of
/// the calling task's span.
struct TracedExecutor<Base: EvaluationExecutor>: EvaluationExecutor {
    let base: Base
    let name: String

    func evaluate<T: Sendable>(deadline: ContinuousClock.Instant, _ work: @escaping @Sendable () -> T) async throws(CheckError) -> T {
        try await TraceSpan.run(name) { _ throws(CheckError) in try await base.evaluate(deadline: deadline, work) }
    }
}
