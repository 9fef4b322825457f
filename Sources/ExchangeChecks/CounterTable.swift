import Foundation

/// A mode as a table, the way the Centreon plugin declares its counters (`set_counters`): what
/// each counter prints, its perfdata label, unit and value, per group. One generic loop
/// (`CounterTable.evaluate`) turns a table and the mode's aggregated data into a `CheckResult`;
/// the modes only aggregate their report rows (`Modes.swift`). The counters' option names and
/// new-style labels stay in `CheckMode.groups` (what the option parser reads); a row names its
/// counter by `label`, and `CounterTableTests` checks that every counter has exactly one row.
struct CounterTable<Totals, Instance>: Sendable {
    /// The first group: the active counter (`Active <noun> on <date> : a/t (p%)` and `perfdate`).
    let mode: CheckMode
    let activeNoun: String
    let activeOldLabel: String
    let activeNlabel: String
    /// The second group: totals, printed after `totalsPrefix`.
    let totalsPrefix: String
    let totals: [CounterRow<Totals>]
    /// The third group: one line per instance after `instancePrefix(id)`; `allOK` when there
    /// are several and none is in trouble.
    let instancePrefix: @Sendable (String) -> String
    let instances: [CounterRow<Instance>]
    let allOK: String

    /// What the mode aggregated from its report rows.
    struct Data {
        var reportDate: String
        var active: Int
        var total: Int
        var totals: Totals
        /// How many instances there are (distinct ids).
        var instanceCount: Int
        /// Instances by id (user or mailbox principal name), built only when the instance group
        /// is evaluated: with several instances and no per-instance counter selected, no row is
        /// read.
        var instances: () -> [String: Instance]
    }

    /// The generic loop: Centreon's `run_global` for groups 1 and 2, `run_instances` for group 3,
    /// with `--filter-counters` and the group blocks applied as the plugin applies them.
    func evaluate(_ data: Data, config: CheckConfiguration, timeZone: TimeZone) -> CheckResult {
        // Every mode has these three groups, in this order (CheckMode.groups).
        let groups = mode.groups
        let (activeGroup, totalsGroup, instanceGroup) = (groups[0], groups[1], groups[2])
        var engine = CounterEngine()

        // Group 1: the active counter (and perfdate, printed by the same counter).
        if !config.blocks(activeGroup), let spec = activeGroup.counters.first {
            if config.selects(spec) {
                if let p = CounterFormatting.perfdate(data.reportDate, timeZone: timeZone) { engine.addPerfdata(p) }
                let c = CounterFormatting.active(
                    noun: activeNoun, unit: activeNoun, oldLabel: activeOldLabel, nlabel: activeNlabel,
                    active: data.active, total: data.total, reportDate: data.reportDate, config: config, counter: spec)
                engine.addGlobal(prefix: "", counters: [c])
            }
        }

        // Group 2: totals.
        if !config.blocks(totalsGroup) {
            var counters: [EvaluatedCounter] = []
            for spec in totalsGroup.counters where config.selects(spec) {
                guard let row = totals.first(where: { $0.label == spec.label }) else { continue }
                counters.append(row.evaluate(spec: spec, subject: data.totals, instance: nil, multiple: false, config: config))
            }
            engine.addGlobal(prefix: totalsPrefix, counters: counters)
        }

        // Group 3: per instance. With several instances and no per-instance counter selected the
        // group prints nothing: skip it.
        if !config.blocks(instanceGroup), data.instanceCount <= 1 || instanceGroup.counters.contains(where: config.selects) {
            let specs = instanceGroup.counters.filter(config.selects)
            let subjects = data.instances()
            let ids = subjects.keys.sorted(by: CounterFormatting.byteOrder)
            let multiple = ids.count > 1
            var evaluated: [EvaluatedInstance] = []
            for id in ids {
                guard let subject = subjects[id] else { continue }
                var counters: [EvaluatedCounter] = []
                for spec in specs {
                    guard let row = instances.first(where: { $0.label == spec.label }) else { continue }
                    counters.append(row.evaluate(spec: spec, subject: subject, instance: id, multiple: multiple, config: config))
                }
                evaluated.append(EvaluatedInstance(prefix: instancePrefix(id), counters: counters))
            }
            engine.addInstances(evaluated, anyCounterSelected: !specs.isEmpty, messageMultiple: allOK)
            // Concealed names: say so in the long output (exocheck addition; Centreon prints nothing).
            if !specs.isEmpty, ids.contains(where: CounterFormatting.looksConcealed) {
                engine.addLongLine(CounterFormatting.concealedNote)
            }
        }
        var result = engine.result
        result.reportDate = data.reportDate
        return result
    }
}

/// How one counter of a table is evaluated for its subject (the totals, or one instance).
enum CounterRow<Subject>: Sendable {
    /// A number: `<text>: <value>` (bytes: human-readable) and a metric `<perfLabel>`
    /// (`template => '%d'`, `min => 0`), judged by the counter's ranges on the unrounded value.
    case value(label: String, text: String, perfLabel: String, unit: CounterUnit, value: @Sendable (Subject) -> Double)
    /// A counter with rules of its own (the mailbox `status`, judged by status expressions).
    case custom(
        label: String,
        evaluate:
            @Sendable (
                _ subject: Subject, _ instance: String, _ multiple: Bool,
                _ config: CheckConfiguration
            ) -> EvaluatedCounter)

    /// The counter's `CounterSpec.label`.
    var label: String {
        switch self {
        case .value(let label, _, _, _, _), .custom(let label, _): return label
        }
    }

    func evaluate(
        spec: CounterSpec, subject: Subject, instance: String?, multiple: Bool,
        config: CheckConfiguration
    ) -> EvaluatedCounter {
        switch self {
        case .custom(_, let evaluate):
            return evaluate(subject, instance ?? "", multiple, config)
        case .value(_, let text, let perfLabel, let unit, let value):
            let t = config.thresholds(for: spec)
            let v = value(subject)
            let n = PerlNumber.integerPart(v)
            let metric = CounterFormatting.countMetric(
                oldLabel: perfLabel, nlabel: spec.nlabel, instance: instance, multiple: multiple,
                value: String(n), unit: unit.perfdataUnit, thresholds: t, options: config.output)
            let shown = unit == .bytes ? PerlNumber.humanBytes(v) : String(n)
            return EvaluatedCounter(text: "\(text): \(shown)", status: t.status(of: v), perfdata: [metric])
        }
    }
}

/// The unit of a value counter.
enum CounterUnit: Sendable, Equatable {
    /// A count: printed as an integer, no perfdata unit.
    case count
    /// Bytes: printed human-readable (`1.50 GB`), perfdata unit `B`.
    case bytes

    var perfdataUnit: String { self == .bytes ? "B" : "" }
}
