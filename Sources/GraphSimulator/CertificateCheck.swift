import Crypto
import Foundation
import _CryptoExtras

/// Checks a JWT client assertion as the identity platform does: RS256, `x5t` = SHA-1 thumbprint
/// of the registered certificate, signature by its key, `aud` = the token URL, `iss` = `sub` =
/// client id, unexpired.
enum CertificateCheck {
    /// nil when the assertion is acceptable, else what is wrong.
    static func verify(_ jwt: String, client: SimulatedClient, audience: String, now: Date = Date()) -> String? {
        guard let certificatePEM = client.certificatePEM, let publicKeyPEM = client.publicKeyPEM else {
            return "no certificate is registered for this application"
        }
        guard let token = SignedJWT(jwt) else { return "not a JWT" }
        let (header, claims) = (token.header, token.claims)
        guard header["alg"] as? String == "RS256" else { return "alg must be RS256" }
        guard let der = der(certificatePEM), header["x5t"] as? String == SimulatorHandler.base64url(Data(Insecure.SHA1.hash(data: der))) else {
            return "x5t does not match the registered certificate"
        }
        guard token.isSigned(byPEM: publicKeyPEM) else { return "invalid signature" }
        guard claims["aud"] as? String == audience else { return "aud must be \(audience)" }
        guard claims["iss"] as? String == client.clientId, claims["sub"] as? String == client.clientId else { return "iss and sub must be the client id" }
        guard let exp = claims["exp"] as? Double, exp > now.timeIntervalSince1970 else { return "expired" }
        if let nbf = claims["nbf"] as? Double, nbf > now.timeIntervalSince1970 + 300 { return "not yet valid" }
        guard claims["jti"] is String else { return "jti missing" }
        return nil
    }

    static func der(_ pem: String) -> Data? {
        guard let start = pem.range(of: "-----BEGIN CERTIFICATE-----"),
            let end = pem.range(of: "-----END CERTIFICATE-----", range: start.upperBound..<pem.endIndex)
        else { return nil }
        return Data(base64Encoded: String(pem[start.upperBound..<end.lowerBound].filter { !$0.isWhitespace }))
    }
}

/// Checks a federated client assertion (workload identity) as Entra ID does against a federated
/// identity credential: RS256 signed by the issuer's key, `iss`, `sub` and `aud` as registered,
/// unexpired. Its answer names the claim that is wrong, never the token.
enum FederatedCheck {
    /// The assertion's `iss`, when it is a readable JWT (to pick the check).
    static func issuer(of jwt: String) -> String? {
        SignedJWT(jwt)?.claims["iss"] as? String
    }

    /// nil when the assertion is acceptable, else what is wrong.
    static func verify(_ jwt: String, identity: FederatedIdentity, now: Date = Date()) -> String? {
        guard let token = SignedJWT(jwt) else { return "not a JWT" }
        let claims = token.claims
        guard token.header["alg"] as? String == "RS256" else { return "alg must be RS256" }
        guard token.isSigned(byPEM: identity.publicKeyPEM) else { return "invalid signature for the federated credential's issuer" }
        guard claims["iss"] as? String == identity.issuer else { return "iss does not match the federated credential" }
        guard claims["sub"] as? String == identity.subject else { return "sub does not match the federated credential" }
        let audiences = (claims["aud"] as? [String]) ?? (claims["aud"] as? String).map { [$0] } ?? []
        guard audiences.contains(identity.audience) else { return "aud must contain \(identity.audience)" }
        guard let exp = claims["exp"] as? Double, exp > now.timeIntervalSince1970 else { return "expired" }
        return nil
    }
}

/// A compact JWS as the identity platform reads it: header and claims decoded, the signing input
/// and the signature kept for `isSigned(byPEM:)`.
struct SignedJWT {
    let header: [String: Any]
    let claims: [String: Any]
    let signingInput: Data
    let signature: Data

    /// nil when `jwt` is not three base64url parts with JSON objects for header and claims.
    init?(_ jwt: String) {
        let parts = jwt.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3,
            let headerData = SimulatorHandler.unbase64url(parts[0]), let payloadData = SimulatorHandler.unbase64url(parts[1]),
            let signature = SimulatorHandler.unbase64url(parts[2]),
            let header = (try? JSONSerialization.jsonObject(with: headerData)) as? [String: Any],
            let claims = (try? JSONSerialization.jsonObject(with: payloadData)) as? [String: Any]
        else { return nil }
        self.header = header
        self.claims = claims
        self.signingInput = Data("\(parts[0]).\(parts[1])".utf8)
        self.signature = signature
    }

    /// Whether the RS256 signature verifies with this RSA public key (PEM).
    func isSigned(byPEM publicKeyPEM: String) -> Bool {
        guard let key = try? _RSA.Signing.PublicKey(pemRepresentation: publicKeyPEM) else { return false }
        return key.isValidSignature(_RSA.Signing.RSASignature(rawRepresentation: signature), for: signingInput, padding: .insecurePKCS1v1_5)
    }
}
