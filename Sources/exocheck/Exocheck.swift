import ArgumentParser
import CheckWorker
import Foundation

/// Entry point. `exocheck run …` takes a Centreon plugin argument list verbatim, so it is
/// dispatched before ArgumentParser sees it; every other command goes through ArgumentParser.
@main
enum Main {
    static func main() async {
        // First: a closed stdout/stderr or a reader that went away (`exocheck run … | head -c 5`)
        // must not kill the process; see SafeOutput.
        SafeOutput.prepareProcess()
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "run" {
            exit(await RunCommand.execute(Array(arguments.dropFirst())))
        }
        if arguments.first == "submit" {
            exit(await SubmitCommand.execute(Array(arguments.dropFirst())))
        }
        await Exocheck.main()
    }
}

struct Exocheck: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exocheck",
        abstract: "Microsoft 365 Exchange Online checks (Centreon-compatible) for monitoring platforms.",
        subcommands: [
            RunStub.self, SubmitStub.self, SubmitterCommand.self, ResultsCommand.self, DLQCommand.self, WorkerCommand.self, DemoCommand.self,
            DevBrokerCommand.self,
            SimulateGraphCommand.self,
            BenchCommand.self,
        ]
    )
}

/// Only here so that `exocheck --help` lists `run`; `main` handles `run` itself.
struct RunStub: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run one check with the Centreon plugin's arguments; Nagios output and exit code.",
        discussion: "See 'exocheck run --help' for the options (the Centreon plugin's)."
    )
    @Argument(parsing: .captureForPassthrough) var arguments: [String] = []
}

/// Only here so that `exocheck --help` lists `submit`; `main` handles `submit` itself.
struct SubmitStub: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit",
        abstract: "Send a check request to the workers; with --wait, print and exit like 'exocheck run'.",
        discussion: "See 'exocheck submit --help'."
    )
    @Argument(parsing: .captureForPassthrough) var arguments: [String] = []
}
