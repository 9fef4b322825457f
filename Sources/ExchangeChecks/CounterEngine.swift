import Foundation

/// One counter after evaluation: its text, status and metrics.
struct EvaluatedCounter {
    var text: String
    var status: CheckStatus
    var perfdata: [Perfdatum]
}

/// One instance (user or mailbox) of the per-instance group.
struct EvaluatedInstance {
    var prefix: String
    var counters: [EvaluatedCounter]
}

/// Composes messages, long output and perfdata exactly as Centreon's counter template does
/// (`run_global` for groups 1–2, `run_instances` for the per-instance group).
struct CounterEngine {
    private(set) var result = CheckResult()

    /// Groups of kind `.global`: one message per group. All OK → the prefix and every text;
    /// otherwise the worst status with the prefix and the non-OK texts only.
    mutating func addGlobal(prefix: String, counters: [EvaluatedCounter]) {
        var all: [String] = []
        var problems: [String] = []
        for c in counters {
            all.append(c.text)
            if c.status != .ok { problems.append(c.text) }
            result.perfdata.append(contentsOf: c.perfdata)
        }
        let status = CheckStatus.worst(counters.map(\.status))
        if status != .ok {
            result.add(status, prefix + problems.joined(separator: ", "))
        } else if !all.isEmpty {
            result.add(.ok, prefix + all.joined(separator: ", "))
        }
    }

    /// The per-instance group. `anyCounterSelected` is whether `--filter-counters` let at least
    /// one per-instance counter through (it decides the "All … ok" message).
    mutating func addInstances(_ instances: [EvaluatedInstance], anyCounterSelected: Bool, messageMultiple: String) {
        let multiple = instances.count > 1
        for instance in instances {
            var all: [String] = []
            var problems: [String] = []
            for c in instance.counters {
                all.append(c.text)
                if c.status != .ok { problems.append(c.text) }
                result.perfdata.append(contentsOf: c.perfdata)
            }
            let long = all.joined(separator: ", ")
            if !long.isEmpty { result.longOutput.append(instance.prefix + long) }
            let status = CheckStatus.worst(instance.counters.map(\.status))
            if status != .ok { result.add(status, instance.prefix + problems.joined(separator: ", ")) }
            // Exactly one instance: its full line is an OK message, even when empty (quirk 2).
            if !multiple { result.add(.ok, instance.prefix + long) }
        }
        if multiple, anyCounterSelected { result.add(.ok, messageMultiple) }
    }

    mutating func addPerfdata(_ p: Perfdatum) { result.perfdata.append(p) }

    mutating func addLongLine(_ line: String) { result.longOutput.append(line) }
}

/// Helpers shared by the two modes.
enum CounterFormatting {
    /// `'perfdate'` = epoch of 12:00:00 local time on the report date, when it is YYYY-MM-DD.
    static func perfdate(_ reportDate: String, timeZone: TimeZone) -> Perfdatum? {
        let parts = reportDate.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
            parts.allSatisfy({ $0.allSatisfy { $0.isASCII && $0.isNumber } }),
            let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2])
        else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        // Perl's timelocal normalises nothing: an impossible date (month 13) is an error there;
        // here it yields no perfdate.
        guard (1...12).contains(m), (1...31).contains(d),
            let date = calendar.date(from: DateComponents(year: y, month: m, day: d, hour: 12)),
            calendar.component(.day, from: date) == d
        else { return nil }
        return Perfdatum(label: "perfdate", value: String(Int64(date.timeIntervalSince1970.rounded(.down))))
    }

    /// The metric of a plain counter (`template => '%d'`, `min => 0`).
    static func countMetric(
        oldLabel: String, nlabel: String?, instance: String?, multiple: Bool,
        value: String, unit: String = "", thresholds: CounterThresholds,
        options: OutputOptions
    ) -> Perfdatum {
        var label = oldLabel
        if options.useNewPerfdata, let nlabel {
            label = instance.map { "\($0)#\(nlabel)" } ?? nlabel
        } else if let instance, multiple {
            label += "_" + instance
        }
        return Perfdatum(
            label: label, value: value, unit: unit,
            warning: thresholds.warning?.perfdataText ?? "",
            critical: thresholds.critical?.perfdataText ?? "",
            min: "0", instance: instance)
    }

    /// Texts and metric of the `active-users` / `active-mailboxes` counter.
    static func active(
        noun: String, unit: String, oldLabel: String, nlabel: String, active: Int, total: Int,
        reportDate: String, config: CheckConfiguration, counter: CounterSpec
    ) -> EvaluatedCounter {
        let prct = total != 0 ? Double(active) * 100 / Double(total) : 0
        let text = "Active \(noun) on \(reportDate) : \(active)/\(total) (\(PerlNumber.fixed2(prct))%)"
        let t = config.thresholds(for: counter)
        // The active counters ignore --unknown-* (quirk 11) and compare the unrounded percentage.
        let value = config.unitsPercent ? prct : Double(active)
        let status = t.status(of: value, useUnknown: !counter.ignoresUnknown)
        func field(_ r: ThresholdRange?) -> String {
            guard let r else { return "" }
            return config.unitsPercent ? r.perfdataText(percentOf: Double(total)) : r.perfdataText
        }
        let metric = Perfdatum(
            label: config.output.useNewPerfdata ? nlabel : oldLabel, value: String(active), unit: unit,
            warning: field(t.warning), critical: field(t.critical), min: "0", max: String(total))
        return EvaluatedCounter(text: text, status: status, perfdata: [metric])
    }

    /// 32 hexadecimal digits: what Graph shows instead of a UPN when names are concealed.
    static func looksConcealed(_ upn: String) -> Bool {
        upn.utf8.count == 32 && upn.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) || ($0 >= 65 && $0 <= 70) }
    }

    static let concealedNote =
        "Note: user names are concealed (32-digit hashes) by the tenant's report privacy setting; filters by user see the hashes. To show names: Microsoft 365 admin center > Settings > Org settings > Reports."

    /// Instances sorted as Perl's `sort keys` does: by the UTF-8 bytes.
    static func byteOrder(_ a: String, _ b: String) -> Bool { UTF8Bytes.precedes(a, b) }
}
