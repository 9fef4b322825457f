import CheckWorker
import ExchangeChecks
import Foundation
import GraphReports

/// `exocheck run <Centreon plugin arguments>`: one check in process, Nagios output and exit code.
///
/// Handled before ArgumentParser so that every Centreon argument (including `--help`, `--mode`
/// and unknown ones) reaches the Centreon-compatible parser untouched.
enum RunCommand {
    static func execute(_ arguments: [String]) async -> Int32 {
        let parsed: CentreonArguments
        do {
            parsed = try CentreonArguments(arguments)
        } catch {
            return emit(CheckResult.error(error.message), OutputOptions(), isError: true)
        }
        switch Invocation.parse(parsed, requireConnection: true) {
        case .failure(let error, let options):
            return emit(CheckResult.error(error.message, status: options.errorStatus), options, isError: true)
        case .help(let mode):
            SafeOutput.print(RunHelp.text(mode: mode))
            return 0
        case .listCounters(let mode, _):
            let labels = mode.counters.map(\.label).joined(separator: " ")
            SafeOutput.print("counter list: \(labels)  ")
            return 0
        case .check(let config, let connection):
            guard let connection else { return 3 }
            return await runCheck(config, connection)
        }
    }

    static func runCheck(_ config: CheckConfiguration, _ connection: ConnectionArguments) async -> Int32 {
        var proxy: HTTPClientProxy? = nil
        if let url = connection.proxyURL {
            do {
                proxy = try HTTPClientProxy(parsing: url)
            } catch {
                // The message never repeats the URL: it may hold the proxy's password.
                return emit(CheckResult.error(error.description, status: config.output.errorStatus), config.output, isError: true)
            }
        }
        let credential: ClientCredential
        let expiry: CredentialExpiry?
        switch connection.credential {
        case .secret(let secret):
            credential = .secret(secret)
            expiry = connection.secretExpires.map { CredentialExpiry(notAfter: $0, source: .secret) }
        case .certificate(let certificateFile, let privateKeyFile):
            do {
                let assertion = try CertificateAssertion(
                    certificatePEMPath: certificateFile, privateKeyPEMPath: privateKeyFile, clientId: connection.clientId)
                credential = assertion.credential
                expiry = assertion.expiry
            } catch {
                let result = CheckResult.error("Cannot use the certificate credential: \(error.description).", status: config.output.errorStatus)
                return emit(result, config.output, isError: true)
            }
        }
        // On stderr: stdout stays exactly the plugin's output.
        if let warning = expiry?.warning(now: Date(), warningDays: connection.expiryWarningDays) {
            SafeOutput.printError("exocheck: warning: \(warning)")
        }
        let transport = HTTPTransport.make(proxy: proxy)
        let app = AppIdentity(
            tenant: connection.tenant, clientId: connection.clientId, credential: credential,
            endpoints: GraphEndpoints(login: connection.loginEndpoint, graph: connection.graphEndpoint))
        let session = GraphSession(
            app: app, transport: transport, tokenCache: TokenCache(refreshMargin: DiskTokenStore.minimumRemaining),
            diskStore: DiskTokenStore(directory: connection.statefileDir ?? defaultStateDirectory()),
            requestTimeout: connection.timeout,
            warn: { message in SafeOutput.printError(message) })
        // The whole check ends within --time-budget (default 20 s, inside the usual 60 s
        // service check timeout).
        let deadline = ContinuousClock.now.advanced(by: connection.timeBudget)
        let outcome = await ExchangeCheckRunner.run(config, reports: session, deadline: deadline)
        await transport.shutdown()
        if let error = outcome.error, !error.details.isEmpty, !(config.output.verbose || config.output.debug) {
            // The first line keeps the plugin's wording; the explanation goes to stderr.
            SafeOutput.printError(error.details.joined(separator: "\n"))
        }
        return emit(outcome.result, config.output, isError: outcome.error != nil)
    }

    static func emit(_ result: CheckResult, _ options: OutputOptions, isError: Bool) -> Int32 {
        let rendered = OutputRenderer.render(result, options: options, isError: isError)
        SafeOutput.print(rendered.text)
        return rendered.exitCode
    }

    static func defaultStateDirectory() -> String {
        let env = ProcessInfo.processInfo.environment
        if let dir = env["EXOCHECK_STATE_DIR"], !dir.isEmpty { return dir }
        if let xdg = env["XDG_CACHE_HOME"], !xdg.isEmpty { return xdg + "/exocheck" }
        return (env["HOME"] ?? "/tmp") + "/.cache/exocheck"
    }
}

enum RunHelp {
    static func text(mode: CheckMode?) -> String {
        var s = """
            USAGE: exocheck run --mode=<email-activity|mailbox-usage> --tenant=<tenant> --client-id=<id> --client-secret=<secret> [options]

            Runs one Microsoft 365 Exchange Online check and prints a Nagios line with perfdata, exactly
            as the Centreon plugin cloud::microsoft::office365::exchange::plugin (custom mode graphapi)
            does for the same arguments. Exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.

            Connection:
              --tenant=NAME               tenant id (GUID) or domain (contoso.onmicrosoft.com)
              --client-id=ID              application (client) id of the app registration
              --client-secret=SECRET      the secret's value (needs Reports.Read.All, application, admin consent)
              --certificate-file=PEM      instead of --client-secret: the app's certificate (exocheck only)
              --private-key-file=PEM      with --certificate-file: its RSA private key, unencrypted PEM (exocheck only)
              --secret-expires=DATE       when the client secret expires (2027-06-30; exocheck only)
              --expiry-warning-days=N     warn on stderr from N days before the secret or certificate expires
                                          (default 30, 0 = never; exocheck only; stdout stays the plugin's)
              --login-endpoint=URL        default https://login.microsoftonline.com
              --graph-endpoint=URL        default https://graph.microsoft.com
              --timeout=SECONDS           per HTTP request (default 10)
              --time-budget=SECONDS       whole check incl. retries on 429/503/5xx (default 20; exocheck only)
              --statefile-dir=DIR         token cache directory (default $XDG_CACHE_HOME/exocheck or ~/.cache/exocheck)
              --proxyurl=URL              HTTP proxy, http://host:port or http://user:password@host:port

            Mode options:
              --filter-user=REGEX         (email-activity) users whose UPN matches
              --filter-mailbox=REGEX      (mailbox-usage) mailboxes whose UPN matches
              --filter-counters=REGEX     counters shown and checked (default 'active|total'; '' = all)
              --filter-counters-block=RE  drop whole groups (active, global, users/mailboxes)
              --units=%|count             unit of the active-* thresholds (default %)
              --warning-<counter>=RANGE, --critical-<counter>=RANGE, --unknown-<counter>=RANGE
                  email-activity: active-users, total-send-count, total-receive-count, total-read-count,
                                  send-count, receive-count, read-count
                  mailbox-usage:  active-mailboxes, total-usage-active, total-usage-inactive, items
                  RANGE: 10, 10:, ~:10, 10:20, @10:20, 1.5, 200GB (1024^n), 1Mb (1000^n)
              --warning-status=EXPR, --critical-status=EXPR, --unknown-status=EXPR   (mailbox-usage)
                  default warning '%{used} > %{issue_warning_quota}', critical '%{used} > %{prohibit_send_quota}'
                  variables %{used} %{issue_warning_quota} %{prohibit_send_quota} %{prohibit_send_receive_quota} %{display}

            Output options:
              --verbose  --use-new-perfdata  --output-ignore-perfdata  --output-ignore-label
              --filter-perfdata=REGEX  --filter-uom=REGEX  --range-perfdata=0|1|2
              --change-exit=FROM=TO  --change-short-output=PATTERN~REPLACEMENT~FLAGS  --opt-exit=STATUS
              --list-counters  --debug
            """
        if let mode {
            s += "\n\nCounters of \(mode.rawValue): " + mode.counters.map(\.label).joined(separator: ", ")
        }
        return s
    }
}
