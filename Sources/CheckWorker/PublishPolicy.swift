import ExchangeChecks
import Kafka

/// What the worker does after a failed send of one record: the retry rule of publishing, in one
/// place (docs/result-size.md, "Publishing failures").
///
/// - too large for a record: the caller sends something smaller (a cut result, a fallback, a
///   dead-letter stub);
/// - permanent (`KafkaError.isPermanent`: fatal, configuration, unknown topic or partition,
///   authorization): give up at once; the worker stops, so nothing is committed after it;
/// - retriable (broker down, timeouts, leader moves): retry with exponential backoff, without
///   limit (the broker may come back; the check holds its slot and its offset meanwhile);
/// - anything else: retry `maxOtherTries` times, then give up as permanent.
public struct PublishPolicy: Sendable, Equatable {
    /// What to do after one failed send.
    public enum Decision: Sendable, Equatable {
        case retry(after: Duration)
        case tooLarge
        case fail
    }

    /// Tries of an error that is neither retriable nor known to be permanent.
    public static let maxOtherTries = RetryPolicy.publishUnknownErrorTries

    static let tooLargeCodes: Set<Int32> = [KafkaError.messageTooLarge, 18, 87]

    /// The backoff (RetryPolicy.publish: 0.5 s doubling to 5 s, no limit of its own).
    var tries: Retry
    var otherFailures = 0

    /// The policy for sending one record, starting with no failures; `retry` gives the backoff
    /// (default RetryPolicy.publish: 0.5 s doubling to 5 s, no limit of its own).
    public init(retry: RetryPolicy = .publish) {
        tries = retry.start()
    }

    /// The decision for the send that just failed with `error`: `tooLarge` for a record too large for
    /// the client or the broker, `fail` for a permanent error or the `maxOtherTries`-th unclassified
    /// one, else `retry` after the next backoff (`fail` if the backoff gives up).
    public mutating func next(after error: KafkaError) -> Decision {
        // Too large for the client or the broker (MSG_SIZE_TOO_LARGE, RECORD_LIST_TOO_LARGE), or a
        // record the broker will not take as it is (INVALID_RECORD): send something smaller.
        if Self.tooLargeCodes.contains(error.code) { return .tooLarge }
        if error.isPermanent { return .fail }
        if !error.isRetriable {
            otherFailures += 1
            if otherFailures >= Self.maxOtherTries { return .fail }
        }
        switch tries.next() {
        case .retry(let wait): return .retry(after: wait)
        case .giveUp: return .fail
        }
    }
}
