import ExchangeChecks
import Foundation
import Testing

/// Credential expiry (issue 12 item 3): when a warning is due and what it says, configured dates,
/// and `run`'s exocheck-only credential options.
@Suite("Credential expiry and run's credential options")
struct CredentialExpiryTests {
    static let now = Date(timeIntervalSince1970: 1_796_083_200)  // 2026-12-01T00:00:00Z
    static let day = 86_400.0

    @Test("no warning while more than the window remains; a warning from the window's first second; warnings off with 0 days")
    func window() {
        let e = CredentialExpiry(notAfter: Self.now.addingTimeInterval(30 * Self.day), source: .secret)
        #expect(e.warning(now: Self.now, warningDays: 29) == nil)
        #expect(e.warning(now: Self.now.addingTimeInterval(-1), warningDays: 30) == nil)
        #expect(e.warning(now: Self.now, warningDays: 30) != nil)
        #expect(e.warning(now: Self.now, warningDays: 0) == nil)
        #expect(e.warning(now: Self.now.addingTimeInterval(40 * Self.day), warningDays: 0) == nil, "0 days: no warning even once expired")
    }

    @Test("the warning names the credential kind, the tenant when given, the time left and the date; never a secret")
    func wording() {
        let cert = CredentialExpiry(notAfter: Self.now.addingTimeInterval(12 * Self.day), source: .certificate)
        #expect(cert.warning(now: Self.now, warningDays: 30, tenant: "contoso")
            == "The client certificate of tenant 'contoso' expires in 12 days (2026-12-13): replace it before then.")
        let secret = CredentialExpiry(notAfter: Self.now.addingTimeInterval(5 * 3_600), source: .secret)
        #expect(secret.warning(now: Self.now, warningDays: 1) == "The client secret expires in 5 h (2026-12-01): replace it before then.")
    }

    @Test("an expired credential: how long ago, and that token requests fail")
    func expired() {
        let e = CredentialExpiry(notAfter: Self.now.addingTimeInterval(-3 * Self.day), source: .secret)
        #expect(e.warning(now: Self.now, warningDays: 30, tenant: "t")
            == "The client secret of tenant 't' expired 3 days ago (2026-11-28): token requests fail until it is replaced.")
        #expect(e.timestamp == Self.now.timeIntervalSince1970 - 3 * Self.day)
        // Beyond what a duration is described up to, only the date is stated (was: a capped, false count).
        let ancient = CredentialExpiry(notAfter: Date(timeIntervalSince1970: -2_208_988_800), source: .certificate)
        #expect(ancient.warning(now: Self.now, warningDays: 30) == "The client certificate expired on 1900-01-01: token requests fail until it is replaced.")
    }

    @Test("configured expiry: a date is 00:00 UTC of that day, an RFC 3339 date-time is exact; anything else is refused")
    func parseDate() {
        #expect(CredentialExpiry.parseDate("2027-06-30") == Date(timeIntervalSince1970: 1_814_313_600))
        #expect(CredentialExpiry.parseDate("2027-06-30T12:00:00Z") == Date(timeIntervalSince1970: 1_814_356_800))
        #expect(CredentialExpiry.parseDate("2027-06-30T12:00:00.000Z") == Date(timeIntervalSince1970: 1_814_356_800))
        #expect(CredentialExpiry.parseDate("2027-06-30T14:00:00+02:00") == Date(timeIntervalSince1970: 1_814_356_800))
        for bad in ["", "tomorrow", "2027-13-01", "2027-06-31x", "30/06/2027", String(repeating: "9", count: 100_000), "2027-06-30T25:00:00Z", "2027-02-30", "2027-02-28T12:61:00Z",
                    "2027-02-30T00:00:00Z", "2027-13-01T00:00:00Z", "2027-06-30T12:00:00+25:00", "2027-06-30T12:00:00+02:61", "2027-6-5", "2027-06-30X12:00:00Z"] {
            #expect(CredentialExpiry.parseDate(bad) == nil, "\(bad.prefix(20))")
        }
    }

    static func connection(_ extra: [String]) throws(ArgumentError) -> ConnectionArguments {
        try ConnectionArguments(CentreonArguments(["--tenant=t", "--client-id=c"] + extra))
    }

    @Test("run: --certificate-file with --private-key-file instead of --client-secret; exactly one credential; the plugin's message when none")
    func certificateOptions() throws {
        #expect(try Self.connection(["--client-secret=s"]).credential == .secret("s"))
        #expect(try Self.connection(["--certificate-file=a.crt", "--private-key-file=a.key"]).credential
            == .certificate(certificateFile: "a.crt", privateKeyFile: "a.key"))
        func refusal(_ extra: [String]) -> String? {
            do { _ = try Self.connection(extra); return nil } catch { return error.message }
        }
        #expect(refusal([]) == "Need to specify --client-secret option.")
        #expect(refusal(["--certificate-file=a.crt"])?.contains("--certificate-file needs --private-key-file") == true)
        #expect(refusal(["--private-key-file=a.key"])?.contains("--private-key-file needs --certificate-file") == true)
        let both = refusal(["--client-secret=hunter2", "--certificate-file=a.crt", "--private-key-file=a.key"])
        #expect(both?.contains("not both") == true)
        #expect(both?.contains("hunter2") == false)
    }

    @Test("run: --secret-expires only with a secret, a date it can read (refusals do not echo the value in redacted form); --expiry-warning-days 0…3650")
    func expiryOptions() throws {
        let c = try Self.connection(["--client-secret=s", "--secret-expires=2027-06-30", "--expiry-warning-days=7"])
        #expect(c.secretExpires == Date(timeIntervalSince1970: 1_814_313_600))
        #expect(c.expiryWarningDays == 7)
        #expect(try Self.connection(["--client-secret=s"]).expiryWarningDays == CredentialExpiry.defaultWarningDays)
        #expect(try Self.connection(["--client-secret=s", "--expiry-warning-days=0"]).expiryWarningDays == 0)
        func refusal(_ extra: [String]) -> ArgumentError? {
            do { _ = try Self.connection(extra); return nil } catch { return error }
        }
        #expect(refusal(["--certificate-file=a", "--private-key-file=b", "--secret-expires=2027-06-30"])?.message.contains("--client-secret only") == true)
        let badDate = refusal(["--client-secret=s", "--secret-expires=soon-ish"])
        #expect(badDate?.message.contains("Wrong --secret-expires value") == true)
        #expect(badDate?.redacted.contains("soon-ish") == false)
        for bad in ["-1", "3651", "x", "1e3", "+5", " 5", String(repeating: "9", count: 40)] {
            #expect(refusal(["--client-secret=s", "--expiry-warning-days=\(bad)"])?.redacted.contains("--expiry-warning-days") == true, "\(bad)")
        }
    }

    @Test("a request may carry none of the new options: the credential options are connection options, the warning window is the worker's")
    func requestsRefuseThem() {
        for name in ["certificate-file", "private-key-file", "secret-expires", "expiry-warning-days"] {
            #expect(OptionTable.entry(name) != nil, "\(name) is in the option table")
            #expect(OptionTable.requestRefusal(name) != nil, "\(name)")
        }
    }
}
