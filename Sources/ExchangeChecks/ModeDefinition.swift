/// The two check modes and the counters each one has, as the Centreon plugin defines them.
public enum CheckMode: String, Sendable, Codable, CaseIterable {
    /// `email-activity`: emails sent, received and read per user (`getEmailActivityUserDetail`).
    case emailActivity = "email-activity"
    /// `mailbox-usage`: mailbox storage, quota status and item counts (`getMailboxUsageDetail`).
    case mailboxUsage = "mailbox-usage"

    /// The counter groups in evaluation order.
    public var groups: [CounterGroup] {
        switch self {
        case .emailActivity:
            return [
                CounterGroup(
                    name: "active", kind: .global,
                    counters: [
                        CounterSpec(label: "active-users", nlabel: nil, ignoresUnknown: true)
                    ]),
                CounterGroup(
                    name: "global", kind: .global,
                    counters: [
                        CounterSpec(label: "total-send-count", nlabel: "exchange.users.emails.sent.total.count"),
                        CounterSpec(label: "total-receive-count", nlabel: "exchange.users.emails.received.total.count"),
                        CounterSpec(label: "total-read-count", nlabel: "exchange.users.emails.read.total.count"),
                    ]),
                CounterGroup(
                    name: "users", kind: .instances,
                    counters: [
                        CounterSpec(label: "send-count", nlabel: "exchange.users.emails.sent.count"),
                        CounterSpec(label: "receive-count", nlabel: "exchange.users.emails.received.count"),
                        CounterSpec(label: "read-count", nlabel: "exchange.users.emails.read.count"),
                    ]),
            ]
        case .mailboxUsage:
            return [
                CounterGroup(
                    name: "active", kind: .global,
                    counters: [
                        CounterSpec(label: "active-mailboxes", nlabel: nil, ignoresUnknown: true)
                    ]),
                CounterGroup(
                    name: "global", kind: .global,
                    counters: [
                        CounterSpec(label: "total-usage-active", nlabel: "exchange.mailboxes.active.usage.total.bytes"),
                        CounterSpec(label: "total-usage-inactive", nlabel: "exchange.mailboxes.inactive.usage.total.bytes"),
                    ]),
                CounterGroup(
                    name: "mailboxes", kind: .instances,
                    counters: [
                        CounterSpec(label: "status", nlabel: nil, isStatusExpression: true),
                        CounterSpec(label: "items", nlabel: "exchange.mailboxes.items.count"),
                    ]),
            ]
        }
    }

    /// Every counter of the mode, in group order.
    public var counters: [CounterSpec] { groups.flatMap(\.counters) }

    /// The Graph report the mode reads.
    public var reportName: String {
        switch self {
        case .emailActivity: return "getEmailActivityUserDetail"
        case .mailboxUsage: return "getMailboxUsageDetail"
        }
    }

    /// The option filtering instances by UPN.
    public var instanceFilterOption: String {
        switch self {
        case .emailActivity: return "filter-user"
        case .mailboxUsage: return "filter-mailbox"
        }
    }
}

/// One group of a mode's counters: the active counter, the totals, or the per-instance counters.
public struct CounterGroup: Sendable {
    /// `global`: evaluated once for the whole report; `instances`: evaluated per user or mailbox.
    public enum Kind: Sendable { case global, instances }
    /// The group's name (`active`, `global`, `users`, `mailboxes`): what `--filter-counters-block`
    /// matches.
    public let name: String
    /// Global or per instance; per-instance counters' new-style threshold names start with
    /// `instance-`.
    public let kind: Kind
    /// The group's counters, in evaluation order.
    public let counters: [CounterSpec]
}

/// One counter of a mode: its labels and how its thresholds are read and judged.
public struct CounterSpec: Sendable, Equatable {
    /// Old-style label (`send-count`): what `--filter-counters` matches and the old option names.
    public let label: String
    /// New-style metric name (`exchange.users.emails.sent.count`), if the counter has one.
    public let nlabel: String?
    /// The `active-*` counters accept `--unknown-*` but never evaluate it (quirk 11).
    public var ignoresUnknown = false
    /// The mailbox `status` counter is judged by status expressions, not ranges.
    public var isStatusExpression = false

    /// Threshold option suffixes accepted for this counter (`send-count`, and with
    /// `--use-new-perfdata` also `instance-exchange-users-emails-sent-count`).
    func thresholdNames(inInstanceGroup: Bool, useNewPerfdata: Bool) -> [String] {
        guard useNewPerfdata, let nlabel else { return [label] }
        let dashed = nlabel.replacingOccurrences(of: ".", with: "-")
        return [label, (inInstanceGroup ? "instance-" : "") + dashed]
    }
}
