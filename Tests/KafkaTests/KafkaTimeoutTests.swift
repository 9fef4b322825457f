@testable import Kafka
import Testing

/// Durations given to librdkafka's `timeout_ms` arguments.
@Suite("Kafka timeouts in milliseconds")
struct KafkaTimeoutTests {
    @Test("sub-second timeouts keep their milliseconds (was: 500 ms became 0, a non-blocking call); huge ones are clamped, not trapped", arguments: [
        (Duration.milliseconds(500), Int32(500)),
        (.seconds(10), 10_000),
        (.microseconds(100), 1),
        (.zero, 0),
        (.seconds(-5), 0),
        (.seconds(3_000_000), Int32.max),
        (.seconds(Int64.max), Int32.max),
    ])
    func milliseconds(duration: Duration, expected: Int32) {
        #expect(duration.kafkaMilliseconds == expected)
    }
}
