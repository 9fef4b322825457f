// libFuzzer target "arguments": the Centreon command-line parser. The input is split on NUL
// bytes into arguments (as in /proc/<pid>/cmdline), read by `CentreonArguments([String])`, then
// validated by `Invocation.parse` with and without the connection options required. A valid
// check configuration then has its status expressions evaluated and thresholds applied once.

let sampleVariables = ["used": "5000000000", "issue_warning_quota": "4000000000", "prohibit_send_quota": "",
                       "prohibit_send_receive_quota": "6000000000", "display": "patti.fernandez@contoso.com"]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)
    let arguments = input.split(separator: 0, omittingEmptySubsequences: false)
        .map { String(decoding: $0, as: UTF8.self) }
    guard let parsed = attempt({ try CentreonArguments(arguments) }) else { return 0 }
    for requireConnection in [false, true] {
        let invocation = Invocation.parse(parsed, requireConnection: requireConnection)
        guard case .check(let config, _) = invocation else { continue }
        underRegexBudget {
            for expression in [config.criticalStatus, config.warningStatus, config.unknownStatus] {
                if let expression { _ = attempt({ expression.evaluate(sampleVariables) }) }
            }
            for counter in config.mode.counters {
                _ = config.selects(counter)
                _ = config.thresholds(for: counter).status(of: 42)
            }
        }
    }
    return 0
}
