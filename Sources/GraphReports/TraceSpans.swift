import ExchangeChecks
import Tracing

/// The worker's OpenTelemetry spans: their names and the attributes they carry, decided here once
/// (docs/tracing.md). Spans go to whatever tracer the process bootstrapped
/// (`InstrumentationSystem`); without one (the default, and `exocheck run`) they cost a no-op.
///
/// A span never carries report data, user names, check output or any value of a request other
/// than its validated id, tenant, mode and the outcome's closed-set words.
public enum TraceSpan {
    /// One request record, from the moment a worker starts on it until its result is acknowledged
    /// (kind consumer); its parent is the request's `traceparent` when that is well-formed.
    public static let consume = "consume"
    /// A token for the tenant's app: from the caches, or requested from the identity platform.
    public static let token = "token"
    /// One report: from the report cache or downloaded (child: `token`, `parse`).
    public static let fetch = "fetch"
    /// Parsing a downloaded report into its snapshot (on the evaluation pool).
    public static let parse = "parse"
    /// Evaluating the check or rendering its output (on the evaluation pool).
    public static let evaluate = "evaluate"
    /// Producing the result (and a dead-letter copy) until the broker acknowledged it (kind producer).
    public static let publish = "publish"

    /// Attribute names (OpenTelemetry semantic conventions where one exists, else `exocheck.*`).
    public enum Attribute {
        /// `kafka`.
        public static let messagingSystem = "messaging.system"
        /// `process` (consume) or `send` (publish).
        public static let messagingOperation = "messaging.operation.type"
        /// The topic read (consume) or written (publish).
        public static let destination = "messaging.destination.name"
        /// The request record's partition.
        public static let partition = "messaging.destination.partition.id"
        /// The request record's offset.
        public static let offset = "messaging.kafka.offset"
        /// The request's id (user names redacted, as in logs).
        public static let requestId = "exocheck.request.id"
        /// The tenant's configured name.
        public static let tenant = "exocheck.tenant"
        /// `email-activity` or `mailbox-usage`.
        public static let mode = "exocheck.mode"
        /// The result's status (OK, WARNING, CRITICAL, UNKNOWN).
        public static let status = "exocheck.status"
        /// The result's or the step's error kind (CheckErrorKind).
        public static let errorKind = "exocheck.error.kind"
        /// Times this worker process received the record.
        public static let attempt = "exocheck.attempt"
        /// The Graph report's function name.
        public static let report = "exocheck.report"
        /// How the report was had: hit, stale, revalidated or miss.
        public static let reportOrigin = "exocheck.report.origin"
        /// Token requests sent to the identity platform (0: from a cache).
        public static let tokenRequests = "exocheck.token.requests"
    }

    /// Runs `body` in a span named `name`, a child of the calling task's span (the span is not
    /// made current: `token`, `parse` and `evaluate` have no children). A thrown error marks it
    /// failed with its kind.
    public static func run<T>(_ name: String, _ body: (any Span) async throws(CheckError) -> T) async throws(CheckError) -> T {
        let span = InstrumentationSystem.tracer.startSpan(name, context: ServiceContext.current ?? .topLevel)
        defer { span.end() }
        do throws(CheckError) {
            return try await body(span)
        } catch {
            fail(span, kind: error.kind)
            throw error
        }
    }

    /// The messaging attributes of a Kafka span: `operation` (`process`, `send`) on `topic`.
    public static func messaging(_ span: any Span, operation: String, topic: String) {
        // Spans that record nothing (tracing off) are not given attributes: that was per-check work.
        guard span.isRecording else { return }
        span.attributes[Attribute.messagingSystem] = "kafka"
        span.attributes[Attribute.messagingOperation] = operation
        span.attributes[Attribute.destination] = topic
    }

    /// Marks `span` failed with an error kind (a closed set: never a message, which may name a user).
    public static func fail(_ span: any Span, kind: CheckErrorKind) {
        guard span.isRecording else { return }
        span.attributes[Attribute.errorKind] = kind.rawValue
        span.setStatus(SpanStatus(code: .error, message: kind.rawValue))
    }
}
