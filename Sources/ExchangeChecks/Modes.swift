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
        evaluate(period: EmailActivityTable(rows: period), daily: EmailActivityTable(rows: daily), config: config, timeZone: timeZone)
    }

    /// `evaluate(period:daily:config:timeZone:)` on parsed tables.
    public static func evaluate(
        period: EmailActivityTable, daily: EmailActivityTable, config: CheckConfiguration, timeZone: TimeZone
    ) -> CheckResult {
        let a = aggregate(period: period, daily: daily, filter: config.instanceFilter)
        return evaluate(a, period: period, daily: daily, config: config, timeZone: timeZone)
    }

    /// Sums the rows that pass `filter` (the part of an evaluation that reads every row; the
    /// worker memoises it per snapshots and filter).
    public static func aggregate(period: EmailActivityTable, daily: EmailActivityTable, filter: FilterRegex?) -> EmailActivityAggregate {
        var total = 0
        var active = 0
        var sums = (send: 0.0, receive: 0.0, read: 0.0)
        // Last occurrence wins, as in the plugin's hash of users.
        // Keyed by bytes (UTF8Key), as Perl's hash keys are: canonically equal names are two users.
        var users: [UTF8Key: UInt32] = [:]
        // Sized once: growing by doubling rehashed every name again (4 % of a 100,000-user evaluation).
        users.reserveCapacity(filter == nil ? max(period.count, daily.count) : 0)
        for (tableIndex, table) in [period, daily].enumerated() {
            let keep = filter?.matchMask(table.user)
            for i in 0..<table.count {
                if let keep, !keep[i] { continue }
                // `Report Period != 1` (numeric): rows of the period report only count towards total.
                guard table.isActive(i) else {
                    total += 1
                    continue
                }
                active += 1
                sums.send += table.send[i]
                sums.receive += table.receive[i]
                sums.read += table.read[i]
                users[UTF8Key(table.user[i])] = EmailActivityAggregate.ref(daily: tableIndex == 1, row: i)
            }
        }
        return EmailActivityAggregate(
            active: active, total: total, totals: Totals(send: sums.send, receive: sums.receive, read: sums.read),
            instances: Array(users.values))
    }

    /// The counters of `aggregate` (computed from `period` and `daily` for this check's filter).
    public static func evaluate(
        _ aggregate: EmailActivityAggregate, period: EmailActivityTable, daily: EmailActivityTable,
        config: CheckConfiguration, timeZone: TimeZone
    ) -> CheckResult {
        let data = CounterTable<Totals, EmailActivityRow>.Data(
            reportDate: period.reportDate, active: aggregate.active, total: aggregate.total,
            totals: aggregate.totals, instanceCount: aggregate.instances.count,
            instances: {
                var users: [String: EmailActivityRow] = [:]
                for ref in aggregate.instances {
                    let (isDaily, i) = EmailActivityAggregate.unpack(ref)
                    let row = isDaily ? daily.row(i) : period.row(i)
                    users[row.userPrincipalName] = row
                }
                return users
            })
        return table.evaluate(data, config: config, timeZone: timeZone)
    }

    /// The report date's totals of the active users.
    public struct Totals: Sendable {
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
        evaluate(period: MailboxUsageTable(rows: period), config: config, timeZone: timeZone)
    }

    /// `evaluate(period:config:timeZone:)` on a parsed table.
    public static func evaluate(period: MailboxUsageTable, config: CheckConfiguration, timeZone: TimeZone) -> CheckResult {
        evaluate(aggregate(period: period, filter: config.instanceFilter), period: period, config: config, timeZone: timeZone)
    }

    /// Sums the rows that pass `filter` (the part of an evaluation that reads every row; the
    /// worker memoises it per snapshot and filter).
    public static func aggregate(period: MailboxUsageTable, filter: FilterRegex?) -> MailboxUsageAggregate {
        let reportDate = period.reportDate
        // Per distinct Last Activity Date: is it the report date?
        let activeCode = period.lastActivity.values.map { $0 == reportDate }
        var total = 0
        var active = 0
        var usedActive = 0.0
        var usedInactive = 0.0
        var mailboxes: [UTF8Key: UInt32] = [:]  // by bytes, as for email-activity's users
        let keep = filter?.matchMask(period.user)
        // Sized once (as above): to the rows the filter keeps.
        mailboxes.reserveCapacity(keep.map { $0.reduce(0) { $0 + ($1 ? 1 : 0) } } ?? period.count)
        for i in 0..<period.count {
            if let keep, !keep[i] { continue }
            total += 1
            // Inactive mailboxes only add to the inactive usage; their quotas are never checked (quirk 4).
            guard activeCode[period.lastActivity.code(i)] else {
                usedInactive += period.storageUsedValue[i]
                continue
            }
            active += 1
            usedActive += period.storageUsedValue[i]
            mailboxes[UTF8Key(period.user[i])] = UInt32(truncatingIfNeeded: i)
        }
        return MailboxUsageAggregate(
            active: active, total: total, totals: Totals(usedActive: usedActive, usedInactive: usedInactive), instances: Array(mailboxes.values))
    }

    /// The counters of `aggregate` (computed from `period` for this check's filter).
    public static func evaluate(
        _ aggregate: MailboxUsageAggregate, period: MailboxUsageTable, config: CheckConfiguration, timeZone: TimeZone
    ) -> CheckResult {
        let data = CounterTable<Totals, MailboxUsageRow>.Data(
            reportDate: period.reportDate, active: aggregate.active, total: aggregate.total,
            totals: aggregate.totals, instanceCount: aggregate.instances.count,
            instances: {
                var mailboxes: [String: MailboxUsageRow] = [:]
                for i in aggregate.instances {
                    let row = period.row(Int(i))
                    mailboxes[row.userPrincipalName] = row
                }
                return mailboxes
            })
        return table.evaluate(data, config: config, timeZone: timeZone)
    }

    /// Storage used by the active and by the inactive mailboxes.
    public struct Totals: Sendable {
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

/// What a mode read from its report(s) for one instance filter: the counts, the totals of the
/// active instances and which rows are the instances shown. Immutable; the worker memoises it per
/// (snapshots, filter), so another check shape with the same filter reads no row again.
public final class ModeAggregate<Totals: Sendable>: Sendable {
    let active: Int
    let total: Int
    let totals: Totals
    /// Per instance shown: its row (email-activity marks the daily report's rows by the top bit).
    let instances: [UInt32]

    init(active: Int, total: Int, totals: Totals, instances: [UInt32]) {
        self.active = active
        self.total = total
        self.totals = totals
        self.instances = instances
    }

    /// Bytes held, roughly (what it counts in a cache's byte budget).
    public var bytes: Int { 96 + instances.count * 4 }
}

/// email-activity's aggregate: over the period and the daily report.
public typealias EmailActivityAggregate = ModeAggregate<EmailActivityCheck.Totals>
/// mailbox-usage's aggregate: over the period report.
public typealias MailboxUsageAggregate = ModeAggregate<MailboxUsageCheck.Totals>

extension ModeAggregate where Totals == EmailActivityCheck.Totals {
    static func ref(daily: Bool, row: Int) -> UInt32 {
        UInt32(truncatingIfNeeded: row) | (daily ? 0x8000_0000 : 0)
    }

    static func unpack(_ ref: UInt32) -> (daily: Bool, row: Int) {
        (ref & 0x8000_0000 != 0, Int(ref & 0x7FFF_FFFF))
    }
}
