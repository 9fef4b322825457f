import Crypto
import Foundation
import Hummingbird
import NIOCore

/// Routes and answers one request.
struct SimulatorHandler: Sendable {
    let state: SimulatorState
    let configuration: SimulatorConfiguration
    var key: SymmetricKey { SymmetricKey(data: Data(configuration.signingKey.utf8)) }

    func respond(_ request: Request) async throws -> Response {
        let rawPath = request.uri.path
        let path = rawPath.removingPercentEncoding ?? rawPath
        if path.hasPrefix("/_sim/") || path.hasPrefix("/_graphsim/") {
            return await admin(path, method: request.method)
        }
        if let tenant = Self.match(path, prefix: "/", suffix: "/oauth2/v2.0/token"), !tenant.contains("/") {
            await state.arrive("token", tenant: tenant.lowercased())
            let response: Response
            do {
                response = try await token(request, tenantName: tenant)
            } catch {
                // A body over its limit or a cancelled fault delay: the request still departs.
                await state.depart(status: 0)
                throw error
            }
            await state.depart(status: response.status.code)
            return response
        }
        if let rest = path.range(of: "^/(v1\\.0|beta)/reports/", options: .regularExpression).map({ String(path[$0.upperBound...]) }) {
            let response = await report(request, spec: rest.hasSuffix("/") ? String(rest.dropLast()) : rest)
            await state.depart(status: response.status.code)
            return response
        }
        if path.hasPrefix("/data/download/") {
            await state.arrive("download")
            if request.headers[.authorization] != nil { await state.downloadHadAuthorization() }
            let response = await download(request, opaque: String(path.dropFirst("/data/download/".count)))
            await state.depart(status: response.status.code)
            return response
        }
        await state.arrive("other")
        await state.depart(status: 404)
        return graphError(404)
    }

    static func match(_ path: String, prefix: String, suffix: String) -> String? {
        var p = path
        if p.hasSuffix("/") { p.removeLast() }
        guard p.hasPrefix(prefix), p.hasSuffix(suffix), p.count > prefix.count + suffix.count else { return nil }
        return String(p.dropFirst(prefix.count).dropLast(suffix.count))
    }

    // MARK: admin

    func admin(_ path: String, method: HTTPRequest.Method) async -> Response {
        let name = path.split(separator: "/").last.map(String.init) ?? ""
        switch name {
        case "health": return text(200, "ok")
        case "stats": return json(200, await state.stats)
        case "reset": return json(200, await state.reset())
        default: return text(404, "unknown admin endpoint")
        }
    }

    // MARK: token endpoint

    func token(_ request: Request, tenantName: String) async throws -> Response {
        guard request.method == .post else { return aadError(405, "invalid_request", 900561, "The endpoint only accepts POST requests.") }
        guard let tenant = configuration.tenants.first(where: { $0.matches(tenantName) }) else {
            return aadError(
                400, "invalid_request", 90002,
                "Tenant '\(tenantName)' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.")
        }
        let faults = await state.applicable(tenant.faults, tenant: tenant.name, target: .token, report: nil, variant: nil)
        if let answer = try await applyFaults(faults, aad: true) { return answer }
        let body = try await request.body.collect(upTo: 1 << 20)
        let form = Self.parseForm(String(buffer: body))
        guard let grant = form["grant_type"], !grant.isEmpty else {
            return aadError(400, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
        }
        guard grant == "client_credentials" else {
            return aadError(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type '\(grant)'.")
        }
        guard let clientId = form["client_id"], !clientId.isEmpty else {
            return aadError(400, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
        }
        guard let client = tenant.clients.first(where: { $0.clientId.lowercased() == clientId.lowercased() }) else {
            return aadError(400, "unauthorized_client", 700016, "Application with identifier '\(clientId)' was not found in the directory '\(tenant.name)'.")
        }
        if form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", let assertion = form["client_assertion"] {
            let audience = "http://\(request.head.authority ?? "127.0.0.1")/\(tenantName)/oauth2/v2.0/token"
            if let federated = client.federated, FederatedCheck.issuer(of: assertion) == federated.issuer {
                if let problem = FederatedCheck.verify(assertion, identity: federated) {
                    return aadError(
                        400, "invalid_request", 700211, "No matching federated identity record found for presented assertion: \(problem).")
                }
            } else if let problem = CertificateCheck.verify(assertion, client: client, audience: audience) {
                return aadError(401, "invalid_client", 700027, "Client assertion failed signature validation or is malformed: \(problem).")
            }
        } else if let secret = form["client_secret"], !secret.isEmpty {
            guard secret == client.clientSecret, !client.clientSecret.isEmpty else {
                return aadError(
                    401, "invalid_client", 7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '\(client.clientId)'."
                )
            }
            if client.secretExpired {
                return aadError(401, "invalid_client", 7000222, "The provided client secret keys for app '\(client.clientId)' are expired.")
            }
        } else {
            return aadError(
                401, "invalid_client", 7000216, "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.")
        }
        guard let scope = form["scope"], !scope.isEmpty else {
            return aadError(400, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
        }
        guard !scope.contains(" "), scope.hasSuffix("/.default") else {
            return aadError(
                400, "invalid_scope", 1_002_012,
                "The provided value for scope \(scope) is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier."
            )
        }
        let exp = Int(Date().timeIntervalSince1970) + tenant.expiresIn
        let payload: [String: Any] = ["tid": tenant.tenantId, "appid": client.clientId, "roles": client.roles, "exp": exp]
        let token = sign(payload)
        await state.tokenIssued()
        return json(200, ["token_type": "Bearer", "expires_in": tenant.expiresIn, "ext_expires_in": tenant.expiresIn, "access_token": token] as [String: Any])
    }

    static func parseForm(_ body: String) -> [String: String] {
        var out: [String: String] = [:]
        for pair in body.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String {
                String(s).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(s)
            }
            out[decode(parts[0])] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return out
    }

    // MARK: report endpoint

    func report(_ request: Request, spec: String) async -> Response {
        // spec: name(period='D7') / name(date=2025-06-28)
        guard let open = spec.firstIndex(of: "("), spec.hasSuffix(")") else {
            await state.arrive("report")
            return graphError(400, message: "Invalid report request '\(spec)'.")
        }
        let name = String(spec[..<open])
        let parameter = String(spec[spec.index(after: open)..<spec.index(before: spec.endIndex)])
        let label = "\(name)(\(parameter))"
        let claims = verify(bearer: request.headers[.authorization])
        await state.arrive("report", tenant: claims.payload?["tid"] as? String, report: label)
        guard let payload = claims.payload else {
            var r = graphError(401, message: claims.error)
            r.headers[.wwwAuthenticate] = "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\""
            return r
        }
        guard let tid = payload["tid"] as? String, let tenant = configuration.tenants.first(where: { $0.tenantId == tid }) else {
            return graphError(401, message: "Access token validation failure. Invalid audience.")
        }
        var date: String? = nil
        var variant = FaultRule.Variant.period
        if parameter.hasPrefix("period=") {
            let p = parameter.dropFirst("period=".count).trimmingCharacters(in: CharacterSet(charactersIn: "'"))
            guard ["D7", "D30", "D90", "D180"].contains(p) else { return graphError(400, message: "Invalid period '\(p)'.") }
        } else if parameter.hasPrefix("date=") {
            let d = String(parameter.dropFirst("date=".count))
            guard d.range(of: "^[0-9]{4}-[0-9]{2}-[0-9]{2}$", options: .regularExpression) != nil else {
                return graphError(400, message: "Invalid date '\(d)'.")
            }
            date = d
            variant = .date
        } else {
            return graphError(400, message: "Invalid parameter '\(parameter)'.")
        }
        let faults = await state.applicable(tenant.faults, tenant: tenant.name, target: .report, report: name, variant: variant)
        do {
            if let answer = try await applyFaults(faults, aad: false) { return answer }
        } catch {
            return graphError(500)
        }
        let roles = payload["roles"] as? [String] ?? []
        guard roles.contains("Reports.Read.All") else {
            return graphError(
                403,
                message:
                    "Missing role permissions on the request. API requires one of 'Reports.Read.All'. Roles on the request '\(roles.joined(separator: ","))'.")
        }
        let malformed = faults.compactMap(\.malformed).last
        guard let body = await state.body(tenant: tenant, report: name, date: date, malformed: malformed) else {
            return graphError(400, message: "Report '\(label)' is not available.")
        }
        let etag = "\"" + String(Hashing.sha256Hex(body).prefix(32)) + "\""
        if let ifNoneMatch = request.headers[.ifNoneMatch], ifNoneMatch == etag {
            var r = Response(status: .notModified)
            r.headers[.eTag] = etag
            return r
        }
        guard tenant.redirect else { return csv(body, tenant: tenant, etag: etag) }
        let claimsForLink: [String: Any] = [
            "t": tenant.name, "r": name, "d": date ?? "", "m": malformed?.rawValue ?? "",
            "e": Date().timeIntervalSince1970 + configuration.downloadTTL,
        ]
        let host = request.head.authority ?? "127.0.0.1"
        var r = Response(status: .found, headers: [.contentType: "text/plain"])
        r.headers[.location] = "http://\(host)/data/download/\(sign(claimsForLink))"
        return r
    }

    func download(_ request: Request, opaque: String) async -> Response {
        let claims = verifySigned(opaque)
        guard let payload = claims.payload, let name = payload["t"] as? String, let report = payload["r"] as? String,
            let tenant = configuration.tenants.first(where: { $0.name == name })
        else { return text(404, "Not Found") }
        if let e = payload["e"] as? Double, e < Date().timeIntervalSince1970 { return text(403, "This download link has expired.") }
        let date = (payload["d"] as? String).flatMap { $0.isEmpty ? nil : $0 }
        let variant: FaultRule.Variant = date == nil ? .period : .date
        let faults = await state.applicable(tenant.faults, tenant: tenant.name, target: .download, report: report, variant: variant)
        do {
            if let answer = try await applyFaults(faults, aad: false) { return answer }
        } catch {
            return text(500, "error")
        }
        let malformed = (payload["m"] as? String).flatMap(MalformedKind.init(rawValue:)) ?? faults.compactMap(\.malformed).last
        guard let body = await state.body(tenant: tenant, report: report, date: date, malformed: malformed) else {
            return text(404, "Not Found")
        }
        let etag = "\"" + String(Hashing.sha256Hex(body).prefix(32)) + "\""
        if let ifNoneMatch = request.headers[.ifNoneMatch], ifNoneMatch == etag {
            var r = Response(status: .notModified)
            r.headers[.eTag] = etag
            return r
        }
        return csv(body, tenant: tenant, etag: etag, stall: faults.compactMap(\.stallBody).last)
    }

    func csv(_ body: [UInt8], tenant: SimulatedTenant, etag: String, stall: Double? = nil) -> Response {
        var r = Response(
            status: .ok, headers: [.contentType: tenant.csvContentType],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
        if let stall, stall > 0 {
            let half = body.count / 2
            r.body = ResponseBody(contentLength: body.count) { writer in
                try await writer.write(ByteBuffer(bytes: body[..<half]))
                try await Task.sleep(for: .milliseconds(Int64(min(stall, 3600) * 1000)))
                try await writer.write(ByteBuffer(bytes: body[half...]))
                try await writer.finish(nil)
            }
        }
        r.headers[.contentDisposition] = "attachment; filename=\"report.csv\""
        r.headers[.eTag] = etag
        return r
    }

    // MARK: faults

    /// Applies delays; returns an error answer when a rule sets a status.
    func applyFaults(_ faults: [FaultRule], aad: Bool) async throws -> Response? {
        let delay = faults.compactMap(\.delay).reduce(0, +)
        if delay > 0 { try await Task.sleep(for: .milliseconds(Int64(delay * 1000))) }
        guard let rule = faults.last(where: { $0.status != nil }), let status = rule.status else { return nil }
        var response: Response
        if let body = rule.body {
            response = Response(
                status: .init(code: status), headers: [.contentType: rule.contentType ?? "text/plain"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
        } else if aad {
            let defaults: [Int: (String, Int, String)] = [
                400: ("invalid_request", 900144, "The request is not valid."),
                401: ("invalid_client", 7000215, "Invalid client secret provided."),
                429: ("temporarily_unavailable", 50196, "The server terminated an operation because it encountered a client request loop."),
                500: ("server_error", 50000, "There was an error issuing a token or an issue with our sign-in service."),
                503: ("temporarily_unavailable", 90033, "A transient error has occurred. Please try again."),
            ]
            let d = defaults[status] ?? ("server_error", 50000, "Error.")
            response = aadError(status, rule.code ?? d.0, d.1, rule.message ?? d.2)
        } else {
            response = graphError(status, code: rule.code, message: rule.message)
        }
        if let ra = rule.retryAfter {
            response.headers[.retryAfter] = ra == ra.rounded() ? String(Int(ra)) : String(ra)
        }
        if let location = rule.location { response.headers[.location] = location }
        return response
    }

    // MARK: tokens and signed links

    func sign(_ payload: [String: Any]) -> String {
        let header = Self.base64url(Data(#"{"alg":"HS256","typ":"JWT"}"#.utf8))
        let body = Self.base64url((try? JSONSerialization.data(withJSONObject: payload, options: [.sortedKeys])) ?? Data())
        let mac = HMAC<SHA256>.authenticationCode(for: Data("\(header).\(body)".utf8), using: key)
        return "\(header).\(body).\(Self.base64url(Data(mac)))"
    }

    func verifySigned(_ token: String) -> (payload: [String: Any]?, error: String) {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let body = Self.unbase64url(String(parts[1])), let sig = Self.unbase64url(String(parts[2])) else {
            return (nil, "IDX14100: JWT is not well formed, there are no dots (.).")
        }
        guard HMAC<SHA256>.isValidAuthenticationCode(sig, authenticating: Data("\(parts[0]).\(parts[1])".utf8), using: key),
            let payload = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any]
        else { return (nil, "Access token validation failure.") }
        return (payload, "")
    }

    func verify(bearer header: String?) -> (payload: [String: Any]?, error: String) {
        guard let header, header.hasPrefix("Bearer "), header.count > 7 else { return (nil, "Access token is empty.") }
        let result = verifySigned(String(header.dropFirst(7)))
        guard let payload = result.payload else { return result }
        if let exp = payload["exp"] as? Double, exp < Date().timeIntervalSince1970 {
            return (nil, "Lifetime validation failed, the token is expired.")
        }
        return result
    }

    static func base64url(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func unbase64url(_ text: String) -> Data? {
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s)
    }

    // MARK: response helpers

    func graphError(_ status: Int, code: String? = nil, message: String? = nil) -> Response {
        let defaults: [Int: (String, String)] = [
            400: ("BadRequest", "Invalid request."),
            401: ("InvalidAuthenticationToken", "Access token validation failure."),
            403: ("Forbidden", "Missing role permissions on the request. API requires one of 'Reports.Read.All'. Roles on the request ''."),
            404: ("NotFound", "Resource not found."),
            429: ("TooManyRequests", "Too many requests. Please retry after the delay given in the Retry-After header."),
            500: ("InternalServerError", "An internal server error occurred while processing the request."),
            502: ("BadGateway", "Bad gateway."),
            503: ("ServiceUnavailable", "The service is temporarily unavailable. Please retry later."),
            504: ("GatewayTimeout", "The gateway timed out."),
        ]
        let d = defaults[status] ?? ("UnknownError", "Error.")
        let now = ISO8601DateFormatter().string(from: Date())
        let body: [String: Any] = [
            "error": [
                "code": code ?? d.0, "message": message ?? d.1,
                "innerError": ["date": now, "request-id": UUID().uuidString.lowercased(), "client-request-id": UUID().uuidString.lowercased()],
            ]
        ]
        return json(status, body)
    }

    func aadError(_ status: Int, _ error: String, _ code: Int, _ text: String) -> Response {
        let trace = UUID().uuidString.lowercased()
        let correlation = UUID().uuidString.lowercased()
        let now = ISO8601DateFormatter().string(from: Date())
        let body: [String: Any] = [
            "error": error,
            "error_description": "AADSTS\(code): \(text)\r\nTrace ID: \(trace)\r\nCorrelation ID: \(correlation)\r\nTimestamp: \(now)",
            "error_codes": [code], "timestamp": now, "trace_id": trace, "correlation_id": correlation,
            "error_uri": "https://login.microsoftonline.com/error?code=\(code)",
        ]
        return json(status, body)
    }

    func json(_ status: Int, _ object: Any) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return Response(
            status: .init(code: status), headers: [.contentType: "application/json; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    func json<T: Encodable>(_ status: Int, _ value: T) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(value)) ?? Data()
        return Response(
            status: .init(code: status), headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    func text(_ status: Int, _ body: String) -> Response {
        Response(
            status: .init(code: status), headers: [.contentType: "text/plain"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }
}
