// Shared helpers for the libFuzzer harnesses. Each harness is compiled together with this
// file and Sources/ExchangeChecks/*.swift into one module named ExchangeChecks (see
// scripts/fuzz.sh and docs/fuzzing.md).

/// Runs `body`, turning a thrown error into nil. `body` may or may not throw: a non-throwing
/// closure converts silently, so a harness keeps compiling (without warnings) when a parser
/// API gains or loses `throws` while the parsers change.
@inline(never)
func attempt<T>(_ body: () throws -> T) -> T? {
    do {
        return try body()
    } catch {
        // Render the error: its `description` is code too (and must not trap).
        _ = String(describing: error)
        return nil
    }
}

/// The same for a failable API (`init?`), flattening the double optional.
@inline(never)
func attempt<T>(_ body: () throws -> T?) -> T? {
    do {
        return try body()
    } catch {
        _ = String(describing: error)
        return nil
    }
}

/// The fuzz input as text. Invalid UTF-8 is repaired with U+FFFD, as `String(decoding:)` does
/// for every caller in the product.
func fuzzText(_ data: UnsafePointer<UInt8>, _ size: Int) -> String {
    String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
}

/// The fuzz input as bytes.
func fuzzBytes(_ data: UnsafePointer<UInt8>, _ size: Int) -> [UInt8] {
    Array(UnsafeBufferPointer(start: data, count: size))
}

/// Runs `body` the way a check runs its evaluations: under one regular-expression time budget
/// for the whole fuzz input (when the sources have `RegexBudget`; scripts/fuzz.sh defines
/// FUZZ_REGEX_BUDGET then). Without a budget every match has its own fallback limit, and an
/// input with many catastrophic matches would trip libFuzzer's -timeout although a real check
/// stops at its deadline. Sources without `RegexBudget` match without any limit, so there a
/// catastrophic pattern is reported as a timeout.
func underRegexBudget<T>(_ body: () -> T) -> T {
#if FUZZ_REGEX_BUDGET
    return RegexBudget.$current.withValue(RegexBudget(limit: .seconds(1))) { body() }
#else
    return body()
#endif
}
