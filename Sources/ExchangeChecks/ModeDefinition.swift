/// The two check modes and the counters each one has, as the Centreon plugin defines them.
public enum CheckMode: String, Sendable, Codable, CaseIterable {
    case emailActivity = "email-activity"
    case mailboxUsage = "mailbox-usage"

    /// The counter groups in evaluation order.
    public var groups: [CounterGroup] {
        switch self {
        case .emailActivity:
            return [
                CounterGroup(name: "active", kind: .global, counters: [
                    CounterSpec(label: "active-users", nlabel: nil, ignoresUnknown: true),
                ]),
                CounterGroup(name: "global", kind: .global, counters: [
                    CounterSpec(label: "total-send-count", nlabel: "exchange.users.emails.sent.total.count"),
                    CounterSpec(label: "total-receive-count", nlabel: "exchange.users.emails.received.total.count"),
                    CounterSpec(label: "total-read-count", nlabel: "exchange.users.emails.read.total.count"),
                ]),
                CounterGroup(name: "users", kind: .instances, counters: [
                    CounterSpec(label: "send-count", nlabel: "exchange.users.emails.sent.count"),
                    CounterSpec(label: "receive-count", nlabel: "exchange.users.emails.received.count"),
                    CounterSpec(label: "read-count", nlabel: "exchange.users.emails.read.count"),
                ]),
            ]
        case .mailboxUsage:
            return [
                CounterGroup(name: "active", kind: .global, counters: [
                    CounterSpec(label: "active-mailboxes", nlabel: nil, ignoresUnknown: true),
                ]),
                CounterGroup(name: "global", kind: .global, counters: [
                    CounterSpec(label: "total-usage-active", nlabel: "exchange.mailboxes.active.usage.total.bytes"),
                    CounterSpec(label: "total-usage-inactive", nlabel: "exchange.mailboxes.inactive.usage.total.bytes"),
                ]),
                CounterGroup(name: "mailboxes", kind: .instances, counters: [
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

public struct CounterGroup: Sendable {
    public enum Kind: Sendable { case global, instances }
    public let name: String
    public let kind: Kind
    public let counters: [CounterSpec]
}

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
