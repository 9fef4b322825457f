// libFuzzer target "expression": the status-expression lexer, parser and evaluator
// (`StatusExpression`, the language of --warning-status / --critical-status / --unknown-status).
// A parsed expression is evaluated against a few variable sets: typical mailbox values, empty
// quotas, and hostile numbers (Int64 edges, exponents, inf/nan, non-numeric text).

let variableSets: [[String: String]] = [
    [:],
    ["used": "107374182401", "issue_warning_quota": "105226698752", "prohibit_send_quota": "106300440576",
     "prohibit_send_receive_quota": "107374182400", "display": "megan.bowen@contoso.com"],
    ["used": "0", "issue_warning_quota": "", "prohibit_send_quota": "",
     "prohibit_send_receive_quota": "", "display": ""],
    ["used": "-9223372036854775808", "issue_warning_quota": "-1", "prohibit_send_quota": "9223372036854775807",
     "prohibit_send_receive_quota": "1e400", "display": "NaN", "a": "-1e19", "b": "inf", "x": "12abc"],
]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let source = fuzzText(data, size)
    guard let expression = attempt({ try StatusExpression(source) }) else { return 0 }
    _ = expression.variableNames
    underRegexBudget {
        for variables in variableSets {
            _ = attempt({ expression.evaluate(variables) })
        }
    }
    return 0
}
