/// User names in text that leaves the check for places with other readers and retention (logs):
/// Exchange reports name users by their user principal name (`jane.doe@contoso.com`), and so do
/// error messages that quote a report cell or a request's filter.
///
/// Pure and linear in the text; used by the worker's log handler (`log.redactUserNames`, on by
/// default). Results keep what the plugin prints (with `--verbose` that includes user names and
/// display names): their readers are the monitoring engine's users.
public enum PersonalData {
    /// What replaces the local part of an address.
    public static let placeholder = "<user>"

    /// `text` with the local part of every e-mail-like address (`local@domain.tld`) replaced by
    /// `<user>`; the domain stays (it names the tenant, not a person).
    public static func redactUserNames(_ text: String) -> String {
        // Fast path: no '@' and no '%' (of a URL-encoded '@', `%40`), nothing to do.
        guard text.utf8.contains(where: { $0 == UInt8(ascii: "@") || $0 == UInt8(ascii: "%") }) else { return text }
        let scalars = Array(text.unicodeScalars)
        // The length of the separator at `i`: `@`, or `%40` in a URL or a URL-encoded id.
        func separator(_ i: Int) -> Int {
            if scalars[i] == "@" { return 1 }
            if scalars[i] == "%", i + 2 < scalars.count, scalars[i + 1] == "4", scalars[i + 2] == "0" { return 3 }
            return 0
        }
        var out = String.UnicodeScalarView()
        out.reserveCapacity(scalars.count)
        var copied = 0  // scalars[..<copied] are in `out`
        var previous = 0  // just after the last separator: a name never reaches back past it
        var i = 0
        while i < scalars.count {
            let width = separator(i)
            guard width > 0 else {
                i += 1
                continue
            }
            var start = i
            // Bounded by the previous separator: `%40` is made of name characters, and scanning
            // back to the last redaction each time would be quadratic on `%40%40%40…`.
            while start > max(copied, previous), isLocal(scalars[start - 1]) { start -= 1 }
            previous = i + width
            // A name starts with a letter or digit: a quote or bracket before it is the text's.
            while start < i, !isLetterOrDigit(scalars[start]) { start += 1 }
            var end = i + width
            var dots = 0
            while end < scalars.count, isDomain(scalars[end]) {
                if scalars[end] == "." { dots += 1 }
                end += 1
            }
            // Trailing dots, hyphens or backslashes end a sentence, not a domain.
            while end > i + width, scalars[end - 1] == "." || scalars[end - 1] == "-" || scalars[end - 1] == "\\" {
                if scalars[end - 1] == "." { dots -= 1 }
                end -= 1
            }
            if start < i, dots > 0, end > i + width {
                out.append(contentsOf: scalars[copied..<start])
                out.append(contentsOf: placeholder.unicodeScalars)
                out.append(contentsOf: scalars[i..<end])
                copied = end
            }
            i = end > i ? end : i + 1
        }
        out.append(contentsOf: scalars[copied...])
        return String(out)
    }

    /// Characters of a user principal name's local part (Microsoft allows letters, digits and
    /// `' . - _ ! # ^ ~`; letters of any script with combining marks here), `+` and `%` (mail
    /// aliases), and `\` (a name inside a regex: `jane\.doe@contoso\.com`). Not `=`, `/` or
    /// `:`, so that `--filter-user=jane@…` keeps its option name.
    static func isLocal(_ s: Unicode.Scalar) -> Bool {
        if isLetterOrDigit(s) { return true }
        return ".-_!#^~'+%\\".unicodeScalars.contains(s)
    }

    /// Characters of a domain: letters (any script, with combining marks), digits, `.`, `-`, and
    /// `\` (a regex's escaped dot).
    static func isDomain(_ s: Unicode.Scalar) -> Bool {
        isLetterOrDigit(s) || s == "." || s == "-" || s == "\\"
    }

    static func isLetterOrDigit(_ s: Unicode.Scalar) -> Bool {
        if s.properties.isAlphabetic || ("0"..."9").contains(s) { return true }
        switch s.properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark: return true
        default: return false
        }
    }
}
