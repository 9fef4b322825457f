// libFuzzer target "threshold": the Nagios/Centreon range parser `ThresholdRange(String)`,
// then every use of a parsed range (perfdata text, percent scaling, alert checks).

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = fuzzText(data, size)
    guard let range = attempt({ ThresholdRange(text) }) else { return 0 }
    _ = range.perfdataText
    for total in [0.0, 1, 12, 1e300, -5] { _ = range.perfdataText(percentOf: total) }
    for value in [0.0, -1, 1, 10, 10.5, 1e15, -1e300, .infinity, -.infinity, .nan] {
        _ = range.alerts(value, valueHasDecimalPoint: false)
        _ = range.alerts(value, valueHasDecimalPoint: true)
    }
    let thresholds = CounterThresholds(warning: range, critical: range, unknown: range)
    for value in [0.0, 1, 1e16, 123.456] { _ = thresholds.status(of: value) }
    return 0
}
