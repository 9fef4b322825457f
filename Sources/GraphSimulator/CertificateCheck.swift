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
        let parts = jwt.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3,
            let headerData = SimulatorHandler.unbase64url(parts[0]), let payloadData = SimulatorHandler.unbase64url(parts[1]),
            let signature = SimulatorHandler.unbase64url(parts[2]),
            let header = (try? JSONSerialization.jsonObject(with: headerData)) as? [String: Any],
            let claims = (try? JSONSerialization.jsonObject(with: payloadData)) as? [String: Any]
        else { return "not a JWT" }
        guard header["alg"] as? String == "RS256" else { return "alg must be RS256" }
        guard let der = der(certificatePEM), header["x5t"] as? String == SimulatorHandler.base64url(Data(Insecure.SHA1.hash(data: der))) else {
            return "x5t does not match the registered certificate"
        }
        guard let key = try? _RSA.Signing.PublicKey(pemRepresentation: publicKeyPEM),
            key.isValidSignature(
                _RSA.Signing.RSASignature(rawRepresentation: signature), for: Data("\(parts[0]).\(parts[1])".utf8), padding: .insecurePKCS1v1_5)
        else { return "invalid signature" }
        guard claims["aud"] as? String == audience else { return "aud must be \(audience)" }
        guard claims["iss"] as? String == client.clientId, claims["sub"] as? String == client.clientId else { return "iss and sub must be the client id" }
        guard let exp = claims["exp"] as? Double, exp > now.timeIntervalSince1970 else { return "expired" }
        if let nbf = claims["nbf"] as? Double, nbf > now.timeIntervalSince1970 + 300 { return "not yet valid" }
        guard claims["jti"] is String else { return "jti missing" }
        return nil
    }

    static func der(_ pem: String) -> Data? {
        guard let start = pem.range(of: "-----BEGIN CERTIFICATE-----"), let end = pem.range(of: "-----END CERTIFICATE-----") else { return nil }
        return Data(base64Encoded: String(pem[start.upperBound..<end.lowerBound].filter { !$0.isWhitespace }))
    }
}
