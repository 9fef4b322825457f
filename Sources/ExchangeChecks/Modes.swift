import Foundation

/// `--mode=email-activity`: active users on the report date, daily send/receive/read totals,
/// and per-user daily counts (see centreon-output.md §1 and §3).
public enum EmailActivityCheck {
    /// The report date (first row's `Report Refresh Date`), '' for an empty report. The caller
    /// fetches the daily report `getEmailActivityUserDetail(date=<it>)` only when it is not ''.
    public static func reportDate(of period: [EmailActivityRow]) -> String {
        period.first?.reportRefreshDate ?? ""
    }

    /// Evaluates the mode from the period (D7) rows and the daily rows of the report date: rows
    /// whose Report Period is not 1 count towards the total; rows of period 1 are the active users,
    /// summed into the totals and shown per user. `--filter-user` applies to both lists;
    /// `timeZone` places the `perfdate` metric.
    public static func evaluate(
        period: [EmailActivityRow], daily: [EmailActivityRow],
        config: CheckConfiguration, timeZone: TimeZone
    ) -> CheckResult {
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

        let data = CounterTable<Totals, EmailActivityRow>.Data(
            reportDate: reportDate, active: active, total: total,
            totals: Totals(send: sums.send, receive: sums.receive, read: sums.read), instances: users)
        return table.evaluate(data, config: config, timeZone: timeZone)
    }

    /// The report date's totals of the active users.
    struct Totals: Sendable {
        var send: Double
        var receive: Double
        var read: Double
    }

    /// The mode's counters (the plugin's `set_counters` of `mode/emailactivity.pm`).
    static let table = CounterTable<Totals, EmailActivityRow>(
        mode: .emailActivity, activeNoun: "users", activeOldLabel: "active_users", activeNlabel: "exchange.users.active.count",
        totalsPrefix: "Total (active users) ",
        totals: [
            .value(label: "total-send-count", text: "Send Count", perfLabel: "total_send_count", unit: .count, value: { $0.send }),
            .value(label: "total-receive-count", text: "Receive Count", perfLabel: "total_receive_count", unit: .count, value: { $0.receive }),
            .value(label: "total-read-count", text: "Read Count", perfLabel: "total_read_count", unit: .count, value: { $0.read }),
        ],
        instancePrefix: { "User '\($0)' " },
        instances: [
            .value(label: "send-count", text: "Send Count", perfLabel: "send_count", unit: .count, value: { $0.sendCount }),
            .value(label: "receive-count", text: "Receive Count", perfLabel: "receive_count", unit: .count, value: { $0.receiveCount }),
            .value(label: "read-count", text: "Read Count", perfLabel: "read_count", unit: .count, value: { $0.readCount }),
        ],
        allOK: "All email activity are ok")
}

/// `--mode=mailbox-usage`: active mailboxes, storage of active and inactive mailboxes, and per
/// active mailbox its quota status and item count (see centreon-output.md §1 and §3).
public enum MailboxUsageCheck {
    /// Evaluates the mode from the D7 rows (after `--filter-mailbox`): every row counts towards the
    /// total; a mailbox is active when its Last Activity Date is the report date (the first row's
    /// Report Refresh Date). Active mailboxes get the status and item counters; inactive ones only
    /// add to the inactive usage. `timeZone` places the `perfdate` metric.
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

        let data = CounterTable<Totals, MailboxUsageRow>.Data(
            reportDate: reportDate, active: active, total: total,
            totals: Totals(usedActive: usedActive, usedInactive: usedInactive), instances: mailboxes)
        return table.evaluate(data, config: config, timeZone: timeZone)
    }

    /// Storage used by the active and by the inactive mailboxes.
    struct Totals: Sendable {
        var usedActive: Double
        var usedInactive: Double
    }

    /// The mode's counters (the plugin's `set_counters` of `mode/mailboxusage.pm`).
    static let table = CounterTable<Totals, MailboxUsageRow>(
        mode: .mailboxUsage, activeNoun: "mailboxes", activeOldLabel: "active_mailboxes", activeNlabel: "exchange.mailboxes.active.count",
        totalsPrefix: "Total ",
        totals: [
            .value(
                label: "total-usage-active", text: "Usage (active mailboxes)", perfLabel: "total_usage_active", unit: .bytes,
                value: { $0.usedActive }),
            .value(
                label: "total-usage-inactive", text: "Usage (inactive mailboxes)", perfLabel: "total_usage_inactive", unit: .bytes,
                value: { $0.usedInactive }),
        ],
        instancePrefix: { "Mailbox '\($0)' " },
        instances: [
            .custom(label: "status", evaluate: { row, id, multiple, config in MailboxUsageCheck.status(row, id: id, multiple: multiple, config: config) }),
            .value(label: "items", text: "Items", perfLabel: "items", unit: .count, value: { $0.itemCount }),
        ],
        allOK: "All mailboxes usage are ok")

    /// The `status` counter: quota texts, the status expressions, and the `used` metric
    /// (which never carries thresholds).
    static func status(_ row: MailboxUsageRow, id: String, multiple: Bool, config: CheckConfiguration) -> EvaluatedCounter {
        let used = row.storageUsed.isEmpty ? "0" : row.storageUsed
        func human(_ s: String) -> String { PerlNumber.humanBytes(PerlNumber.numify(s)) }
        let text =
            "Used: \(human(used)) Issue Warning Quota: \(human(row.issueWarningQuota)) "
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
