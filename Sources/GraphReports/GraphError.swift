import ExchangeChecks

/// The errors of the Graph client are the core's `CheckError` (one error type from the Graph
/// client through the check runner to the result's `error.kind`).
public typealias GraphError = CheckError
