/// Why a check has no state of its own: the one closed set of error kinds, used by the errors
/// in memory (`GraphError.kind`, output option failures, refusals), by the `error.kind` field of
/// a result message, by the `exocheck-error-kind` header of dead-letter copies and by the
/// `kind` label of the dead-letter metric. `schemas/check-result.schema.json` lists the same
/// raw values (a test compares them).
///
/// Adding a kind is a compatible change of the wire: readers must accept kinds they do not
/// know (`CheckResultMessage.Failure.kind` is nil for them, the raw name is kept).
public enum CheckErrorKind: String, Sendable, Codable, CaseIterable, Equatable, Hashable {
    /// The request itself is wrong: not JSON, unknown or forbidden options, limits exceeded,
    /// output rewrite rules that produce too much. Dead-lettered.
    case invalidRequest = "invalid-request"
    /// The tenant is not configured for this worker, or the identity platform does not know it.
    case unknownTenant = "unknown-tenant"
    /// The credential was refused (wrong secret, expired certificate, no consent).
    case auth
    /// Authenticated, but not allowed to read the reports (Reports.Read.All missing).
    case permission
    /// Graph throttled the report call beyond the check's budget, or the tenant's call budget
    /// is spent.
    case throttled
    /// Graph or the login endpoint failed or could not be reached.
    case graph
    /// The check's time budget ran out (a request, a download, a regular expression).
    case timeout
    /// The request's deadline had passed before it could run. Not dead-lettered.
    case expired
    /// A report could not be read (malformed CSV, numbers a report cannot hold).
    case parse
    /// The record was in progress during two worker deaths: answered without running, and
    /// dead-lettered (docs/poison-records.md).
    case poison
    /// The result could not be published as it was; this smaller answer replaces it.
    case publish
}
