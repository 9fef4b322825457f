import ExchangeChecks
import Foundation
import GraphSimulator
import Testing
import ExocheckTestSupport

/// The Centreon compatibility cases (a copy of the public conformance cases, kept in this
/// repository), run end to end: the `exocheck` binary, real HTTP on loopback, the project's own
/// Graph simulator. Each case names the rule it checks.
struct CentreonCase: Sendable, CustomTestStringConvertible {
    let id: String
    let description: String
    let args: [String]
    let env: [String: String]
    let group: String?
    let step: Int
    let exits: [Int32]
    let kind: String
    let text: String?
    let texts: [String]
    let tokenRequests: Int?

    var testDescription: String { "\(id): \(description)" }

    static let all: [CentreonCase] = {
        guard let url = Bundle.module.url(forResource: "Resources/centreon-cases", withExtension: "jsonl"),
              let text = try? String(contentsOf: url, encoding: .utf8)
        else { return [] }
        return text.split(separator: "\n").compactMap { line -> CentreonCase? in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let expect = o["expect"] as? [String: Any]
            else { return nil }
            let statefile = o["statefile"] as? [String: Any] ?? [:]
            return CentreonCase(
                id: o["id"] as? String ?? "?", description: o["description"] as? String ?? "",
                args: o["args"] as? [String] ?? [], env: o["env"] as? [String: String] ?? [:],
                group: statefile["dir"] as? String == "shared" ? statefile["group"] as? String : nil,
                step: statefile["step"] as? Int ?? 0,
                exits: (expect["exit"] as? [Int] ?? []).map(Int32.init), kind: expect["stdout"] as? String ?? "exact",
                text: expect["text"] as? String, texts: expect["texts"] as? [String] ?? [],
                tokenRequests: expect["token_requests"] as? Int)
        }
    }()

    static var independent: [CentreonCase] { all.filter { $0.group == nil } }
    static var groups: [String] { Array(Set(all.compactMap(\.group))).sorted() }

    func argv(endpoint: String, stateDir: String) -> [String] {
        ["run"] + args.map {
            $0.replacingOccurrences(of: "{LOGIN}", with: endpoint).replacingOccurrences(of: "{GRAPH}", with: endpoint)
                .replacingOccurrences(of: "{STATEDIR}", with: stateDir)
        }
    }

    /// nil when the output holds, else why not.
    func verdict(_ out: ExocheckBinary.Output, tokenRequests seen: Int) -> String? {
        if !exits.contains(out.exitCode) { return "exit \(out.exitCode), expected \(exits); stdout: \(out.stdout)" }
        switch kind {
        case "exact": if out.stdout != text { return "stdout differs:\n  got:  \(out.stdout.debugDescription)\n  want: \((text ?? "").debugDescription)" }
        case "prefix": if !out.stdout.hasPrefix(text ?? "") { return "stdout lacks prefix \(text ?? "")" }
        case "status-word": if !out.stdout.hasPrefix((text ?? "") + " ") { return "stdout does not start with \(text ?? ""): \(out.stdout)" }
        case "one-of":
            if !texts.contains(where: { out.stdout == $0 || ($0.hasSuffix(":") && out.stdout.hasPrefix($0 + " ")) }) {
                return "stdout matches none of the allowed answers: \(out.stdout)"
            }
        default: return "unknown expectation \(kind)"
        }
        if let tokenRequests, tokenRequests != seen { return "\(seen) token requests, expected \(tokenRequests)" }
        return nil
    }
}

@Suite("Centreon compatibility cases, end to end")
struct CentreonCaseTests {
    @Test("the case file is present") func present() {
        #expect(CentreonCase.all.count >= 60)
    }

    @Test("independent case", arguments: CentreonCase.independent)
    func independentCase(_ c: CentreonCase) async throws {
        let state = try TemporaryDirectory()
        defer { state.remove() }
        try await withSimulator { sim in
            let out = try await ExocheckBinary.run(c.argv(endpoint: sim.baseURL, stateDir: state.path), environment: c.env)
            let stats = await sim.stats()
            #expect(c.verdict(out, tokenRequests: stats.tokenRequests) == nil, "\(c.id)")
            #expect(stats.downloadsWithAuthorization == 0, "the bearer token reached the download URL")
        }
    }

    @Test("token cache steps sharing a state directory", arguments: CentreonCase.groups)
    func sharedStateGroup(_ group: String) async throws {
        let state = try TemporaryDirectory()
        defer { state.remove() }
        let steps = CentreonCase.all.filter { $0.group == group }.sorted { $0.step < $1.step }
        try await withSimulator { sim in
            // Steps not in the public file (e.g. step 1 of a group) are re-created from the
            // group's first step's arguments with the standard secret.
            if steps.first?.step ?? 1 > 1, let first = steps.first {
                let args = first.args.map {
                    $0.hasPrefix("--client-secret=") ? "--client-secret=\(SimulatorConfiguration.defaultClientSecret)" : $0
                }
                let seed = CentreonCase(id: "\(group)-seed", description: "", args: args, env: first.env, group: group, step: 1,
                                        exits: [0], kind: "status-word", text: "OK:", texts: [], tokenRequests: nil)
                _ = try await ExocheckBinary.run(seed.argv(endpoint: sim.baseURL, stateDir: state.path), environment: seed.env)
            }
            for c in steps {
                await sim.reset()
                let out = try await ExocheckBinary.run(c.argv(endpoint: sim.baseURL, stateDir: state.path), environment: c.env)
                let stats = await sim.stats()
                #expect(c.verdict(out, tokenRequests: stats.tokenRequests) == nil, "\(c.id)")
            }
        }
    }
}

/// `submit` on the Centreon cases: the request a command line becomes (CheckSpec), with values
/// after a space as pollers write them, is the check `run` reads from the same command line.
@Suite("submit's request equals run's check on the Centreon cases")
struct SubmitSpecCaseTests {
    /// `--name=value` → `--name value` where Getopt can read it back that way (not for flags,
    /// empty values or values that start with '-', which the plugin cannot take after a space either).
    static func spaced(_ args: [String]) -> [String] {
        args.flatMap { arg -> [String] in
            guard arg.hasPrefix("--"), let eq = arg.firstIndex(of: "=") else { return [arg] }
            let value = String(arg[arg.index(after: eq)...])
            if value.isEmpty || value.hasPrefix("-") { return [arg] }
            return [String(arg[..<eq]), value]
        }
    }

    /// What decides a check's output, comparable.
    static func fingerprint(_ c: CheckConfiguration) -> String {
        [
            c.mode.rawValue, "\(c.unitsPercent)", c.instanceFilter?.pattern ?? "-", c.filterCounters?.pattern ?? "-",
            c.filterCountersBlock?.pattern ?? "-", c.thresholds.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","),
            "\(c.warningStatus.map { "\($0)" } ?? "-")", "\(c.criticalStatus.map { "\($0)" } ?? "-")", "\(c.unknownStatus.map { "\($0)" } ?? "-")",
        ].joined(separator: "|")
    }

    @Test("every case's check: the spaced and the '=' command lines give the same request options, and the worker's CheckSpec of them is run's configuration (or both refuse)",
          arguments: CentreonCase.all)
    func sameCheck(_ c: CentreonCase) throws {
        let args = c.argv(endpoint: "https://graph.example", stateDir: "/tmp/x").dropFirst().map { $0 }
        guard let original = try? CentreonArguments(args), let spacedArgs = try? CentreonArguments(Self.spaced(args)) else { return }
        // Options a request cannot carry (credentials, --timeout, state files, …) are submit's to
        // refuse with its own message, not part of the check.
        func checkPart(_ a: CentreonArguments) -> CentreonArguments {
            CentreonArguments(options: a.entries.filter { entry in
                switch OptionTable.use(of: entry.name) {
                case .connection?: return false
                case .commandLineOnly?: return ["mode", "help", "list-counters", "plugin", "custommode"].contains(entry.name)
                default: return true
                }
            })
        }
        let requestable = checkPart(original)
        let requestableSpaced = checkPart(spacedArgs)
        let fromLine = Result { try CheckSpec(commandLine: requestable) }
        let fromSpaced = Result { try CheckSpec(commandLine: requestableSpaced) }
        switch (fromLine, fromSpaced) {
        case (.success(let a), .success(let b)):
            #expect(a.requestOptions == b.requestOptions)
            // The worker's side: the request's mode field and options.
            let worker = try CheckSpec(mode: a.mode, options: CentreonArguments(a.requestOptions))
            guard case .check(let run, _) = Invocation.parse(original, requireConnection: false) else {
                Issue.record("run refuses what the worker accepts: \(args)")
                return
            }
            #expect(Self.fingerprint(worker.configuration) == Self.fingerprint(run))
            #expect(worker.configuration.output == run.output)
        case (.failure, .failure):
            // Both refuse; run refuses too (or stops before a check: --help, --list-counters).
            if case .check = Invocation.parse(original, requireConnection: false) { Issue.record("run accepts what submit refuses: \(args)") }
        default:
            Issue.record("the spaced and the '=' forms disagree: \(fromLine) vs \(fromSpaced)")
        }
    }
}
