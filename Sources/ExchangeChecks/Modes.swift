import Foundation

/// `--mode=email-activity`: active users on the report date, daily send/receive/read totals,
/// and per-user daily counts (see centreon-output.md §1 and §3).
public enum EmailActivityCheck {
    /// The report date (first row's `Report Refresh Date`), '' for an empty report. The caller
    /// fetches the daily report `getEmailActivityUserDetail(date=<it>)` only when it is not ''.
    public static func reportDate(of period: [EmailActivityRow]) -> String {
        period.first?.reportRefreshDate ?? ""
    }

    public static func evaluate(period: [EmailActivityRow], daily: [EmailActivityRow],
                                config: CheckConfiguration, timeZone: TimeZone) -> CheckResult {
        let reportDate = reportDate(of: period)
        var total = 0
        var active = 0
        var sums = (send: 0.0, receive: 0.0, read: 0.0)
        var users: [String: EmailActivityRow] = [:]
        for row in [period, daily].joined() {
            if let filter = config.instanceFilter, !filter.matches(row.userPrincipalName) { continue }
            // `Report Period != 1` (numeric): rows of the period report only count towards total.
            if PerlNumber.numify(row.reportPeriod) != 1 {
                total += 1
                continue
            }
            active += 1
            sums.send += row.sendCount
            sums.receive += row.receiveCount
            sums.read += row.readCount
            users[row.userPrincipalName] = row
        }

        let mode = CheckMode.emailActivity
        let groups = mode.groups
        let options = config.output
        var engine = CounterEngine()

        // Group 1: active users (+ perfdate, printed by the same counter).
        if !config.blocks(groups[0]) {
            let spec = groups[0].counters[0]
            if config.selects(spec) {
                if let p = CounterFormatting.perfdate(reportDate, timeZone: timeZone) { engine.addPerfdata(p) }
                let c = CounterFormatting.active(
                    noun: "users", unit: "users", oldLabel: "active_users", nlabel: "exchange.users.active.count",
                    active: active, total: total, reportDate: reportDate, config: config, counter: spec)
                engine.addGlobal(prefix: "", counters: [c])
            }
        }

        // Group 2: totals of the report date.
        if !config.blocks(groups[1]) {
            let values = [sums.send, sums.receive, sums.read]
            let texts = ["Send Count", "Receive Count", "Read Count"]
            let perfLabels = ["total_send_count", "total_receive_count", "total_read_count"]
            var counters: [EvaluatedCounter] = []
            for (i, spec) in groups[1].counters.enumerated() where config.selects(spec) {
                counters.append(count(spec, value: values[i], text: texts[i], perfLabel: perfLabels[i],
                                      instance: nil, multiple: false, config: config, options: options))
            }
            engine.addGlobal(prefix: "Total (active users) ", counters: counters)
        }

        // Group 3: per user.
        // With several users and no per-user counter selected the group prints nothing: skip it.
        if !config.blocks(groups[2]), users.count <= 1 || groups[2].counters.contains(where: config.selects) {
            let specs = groups[2].counters.filter(config.selects)
            let ids = users.keys.sorted(by: CounterFormatting.byteOrder)
            let multiple = ids.count > 1
            var instances: [EvaluatedInstance] = []
            for id in ids {
                guard let row = users[id] else { continue }
                var counters: [EvaluatedCounter] = []
                for spec in specs {
                    switch spec.label {
                    case "send-count":
                        counters.append(count(spec, value: row.sendCount, text: "Send Count", perfLabel: "send_count",
                                              instance: id, multiple: multiple, config: config, options: options))
                    case "receive-count":
                        counters.append(count(spec, value: row.receiveCount, text: "Receive Count", perfLabel: "receive_count",
                                              instance: id, multiple: multiple, config: config, options: options))
                    default:
                        counters.append(count(spec, value: row.readCount, text: "Read Count", perfLabel: "read_count",
                                              instance: id, multiple: multiple, config: config, options: options))
                    }
                }
                instances.append(EvaluatedInstance(prefix: "User '\(id)' ", counters: counters))
            }
            engine.addInstances(instances, anyCounterSelected: !specs.isEmpty, messageMultiple: "All email activity are ok")
            if !specs.isEmpty, ids.contains(where: CounterFormatting.looksConcealed) {
                engine.noteConcealed()
            }
        }
        var result = engine.result
        result.reportDate = reportDate
        return result
    }

    static func count(_ spec: CounterSpec, value: Double, text: String, perfLabel: String, instance: String?,
                      multiple: Bool, config: CheckConfiguration, options: OutputOptions) -> EvaluatedCounter {
        let t = config.thresholds(for: spec)
        let n = PerlNumber.integerPart(value)
        let metric = CounterFormatting.countMetric(
            oldLabel: perfLabel, nlabel: spec.nlabel, instance: instance, multiple: multiple,
            value: String(n), thresholds: t, options: options)
        return EvaluatedCounter(text: "\(text): \(n)", status: t.status(of: value), perfdata: [metric])
    }
}

/// `--mode=mailbox-usage`: active mailboxes, storage of active and inactive mailboxes, and per
/// active mailbox its quota status and item count (see centreon-output.md §1 and §3).
public enum MailboxUsageCheck {
    public static func evaluate(period: [MailboxUsageRow], config: CheckConfiguration, timeZone: TimeZone) -> CheckResult {
        let reportDate = period.first?.reportRefreshDate ?? ""
        var total = 0
        var active = 0
        var usedActive = 0.0
        var usedInactive = 0.0
        var mailboxes: [String: MailboxUsageRow] = [:]
        for row in period {
            if let filter = config.instanceFilter, !filter.matches(row.userPrincipalName) { continue }
            total += 1
            // Inactive mailboxes only add to the inactive usage; their quotas are never checked (quirk 4).
            guard row.lastActivityDate == reportDate else {
                usedInactive += row.storageUsedValue
                continue
            }
            active += 1
            usedActive += row.storageUsedValue
            mailboxes[row.userPrincipalName] = row
        }

        let groups = CheckMode.mailboxUsage.groups
        let options = config.output
        var engine = CounterEngine()

        if !config.blocks(groups[0]) {
            let spec = groups[0].counters[0]
            if config.selects(spec) {
                if let p = CounterFormatting.perfdate(reportDate, timeZone: timeZone) { engine.addPerfdata(p) }
                let c = CounterFormatting.active(
                    noun: "mailboxes", unit: "mailboxes", oldLabel: "active_mailboxes", nlabel: "exchange.mailboxes.active.count",
                    active: active, total: total, reportDate: reportDate, config: config, counter: spec)
                engine.addGlobal(prefix: "", counters: [c])
            }
        }

        if !config.blocks(groups[1]) {
            var counters: [EvaluatedCounter] = []
            for spec in groups[1].counters where config.selects(spec) {
                let isActive = spec.label == "total-usage-active"
                let value = isActive ? usedActive : usedInactive
                let t = config.thresholds(for: spec)
                let metric = CounterFormatting.countMetric(
                    oldLabel: isActive ? "total_usage_active" : "total_usage_inactive", nlabel: spec.nlabel,
                    instance: nil, multiple: false, value: String(PerlNumber.integerPart(value)), unit: "B",
                    thresholds: t, options: options)
                let text = "Usage (\(isActive ? "active" : "inactive") mailboxes): \(PerlNumber.humanBytes(value))"
                counters.append(EvaluatedCounter(text: text, status: t.status(of: value), perfdata: [metric]))
            }
            engine.addGlobal(prefix: "Total ", counters: counters)
        }

        if !config.blocks(groups[2]), mailboxes.count <= 1 || groups[2].counters.contains(where: config.selects) {
            let specs = groups[2].counters.filter(config.selects)
            let ids = mailboxes.keys.sorted(by: CounterFormatting.byteOrder)
            let multiple = ids.count > 1
            var instances: [EvaluatedInstance] = []
            for id in ids {
                guard let row = mailboxes[id] else { continue }
                var counters: [EvaluatedCounter] = []
                for spec in specs {
                    if spec.isStatusExpression {
                        counters.append(status(row, id: id, multiple: multiple, config: config))
                    } else {
                        let t = config.thresholds(for: spec)
                        let n = PerlNumber.integerPart(row.itemCount)
                        let metric = CounterFormatting.countMetric(
                            oldLabel: "items", nlabel: spec.nlabel, instance: id, multiple: multiple,
                            value: String(n), thresholds: t, options: options)
                        counters.append(EvaluatedCounter(text: "Items: \(n)", status: t.status(of: row.itemCount), perfdata: [metric]))
                    }
                }
                instances.append(EvaluatedInstance(prefix: "Mailbox '\(id)' ", counters: counters))
            }
            engine.addInstances(instances, anyCounterSelected: !specs.isEmpty, messageMultiple: "All mailboxes usage are ok")
            if !specs.isEmpty, ids.contains(where: CounterFormatting.looksConcealed) {
                engine.noteConcealed()
            }
        }
        var result = engine.result
        result.reportDate = reportDate
        return result
    }

    /// The `status` counter: quota texts, the status expressions, and the `used` metric
    /// (which never carries thresholds).
    static func status(_ row: MailboxUsageRow, id: String, multiple: Bool, config: CheckConfiguration) -> EvaluatedCounter {
        let used = row.storageUsed.isEmpty ? "0" : row.storageUsed
        func human(_ s: String) -> String { PerlNumber.humanBytes(PerlNumber.numify(s)) }
        let text = "Used: \(human(used)) Issue Warning Quota: \(human(row.issueWarningQuota)) "
            + "Prohibit Send Quota: \(human(row.prohibitSendQuota)) "
            + "Prohibit Send/Receive Quota: \(human(row.prohibitSendReceiveQuota))"
        let variables = [
            "used": used,
            "issue_warning_quota": row.issueWarningQuota,
            "prohibit_send_quota": row.prohibitSendQuota,
            "prohibit_send_receive_quota": row.prohibitSendReceiveQuota,
            "display": id,
        ]
        var status = CheckStatus.ok
        if let e = config.criticalStatus, e.evaluate(variables) {
            status = .critical
        } else if let e = config.warningStatus, e.evaluate(variables) {
            status = .warning
        } else if let e = config.unknownStatus, e.evaluate(variables) {
            status = .unknown
        }
        var label = "used"
        if config.output.useNewPerfdata {
            label = "\(id)#exchange.mailboxes.usage.bytes"
        } else if multiple {
            label += "_" + id
        }
        let metric = Perfdatum(label: label, value: used, unit: "B", min: "0", instance: id)
        return EvaluatedCounter(text: text, status: status, perfdata: [metric])
    }
}

extension CounterEngine {
    /// Concealed names: say so in the long output (exocheck addition; Centreon prints nothing).
    mutating func noteConcealed() {
        addLongLine(CounterFormatting.concealedNote)
    }
}
