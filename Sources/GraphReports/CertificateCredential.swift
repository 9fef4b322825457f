import Crypto
import ExchangeChecks
import Foundation
import X509
import _CryptoExtras

/// Why a certificate credential cannot be made (names files, never shows key material).
public struct CredentialError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, naming the file concerned (never key material).
    public let description: String
    init(_ description: String) { self.description = description }
}

/// The certificate credential: a signed JWT client assertion, RS256 with `x5t` = base64url SHA-1
/// thumbprint of the DER certificate; `aud` = the token URL, `iss` = `sub` = client id, unique
/// `jti`, `nbf`/`iat` now, `exp` 10 minutes later. The Graph client owns every credential kind:
/// the worker's configuration and `run` only name the files.
public struct CertificateAssertion: Sendable {
    let privateKey: _RSA.Signing.PrivateKey
    let thumbprint: String
    let clientId: String
    /// When the certificate stops being valid (its notAfter): the credential's expiry; nil when
    /// the certificate's fields could not be read (the credential still works: only its DER
    /// bytes are needed, for the thumbprint).
    public let expiry: CredentialExpiry?

    /// The largest certificate or key file read (a PEM certificate chain is a few kilobytes).
    public static let maxFileBytes = 256 * 1024

    /// Reads the PEM certificate and RSA private key now (a bad file fails at start-up, not at
    /// the first token request).
    public init(certificatePEMPath: String, privateKeyPEMPath: String, clientId: String) throws(CredentialError) {
        let certName = CredentialFile.shown(certificatePEMPath)
        let keyName = CredentialFile.shown(privateKeyPEMPath)
        let certPEM: String
        switch CredentialFile.read(certificatePEMPath, maxBytes: Self.maxFileBytes) {
        case .success(let data): certPEM = String(decoding: data, as: UTF8.self)
        case .failure(let problem): throw CredentialError("the certificate file \(certName) \(problem.description)")
        }
        let keyPEM: String
        switch CredentialFile.read(privateKeyPEMPath, maxBytes: Self.maxFileBytes) {
        case .success(let data): keyPEM = String(decoding: data, as: UTF8.self)
        case .failure(let problem): throw CredentialError("the private key file \(keyName) \(problem.description)")
        }
        guard let der = Self.der(fromPEM: certPEM, label: "CERTIFICATE") else {
            throw CredentialError("\(certName) holds no PEM certificate")
        }
        // Its notAfter for expiry warnings only: a certificate this parser cannot read still
        // signs (Entra needs just its thumbprint), so that is no reason to refuse it.
        expiry = (try? Certificate(derEncoded: Array(der))).map { CredentialExpiry(notAfter: $0.notValidAfter, source: .certificate) }
        do {
            privateKey = try _RSA.Signing.PrivateKey(pemRepresentation: keyPEM)
        } catch {
            throw CredentialError("\(keyName) is not an RSA private key in PEM form")
        }
        thumbprint = Self.base64url(Data(Insecure.SHA1.hash(data: der)))
        self.clientId = clientId
    }

    /// The credential for `AppIdentity`: a fresh assertion for each token request.
    public var credential: ClientCredential {
        let assertion = self
        return .assertion(id: "certificate:" + thumbprint) { audience in try assertion.make(audience: audience) }
    }

    /// One signed assertion for `audience` (the token URL).
    public func make(audience: String, now: Date = Date()) throws -> String {
        let header = ["alg": "RS256", "typ": "JWT", "x5t": thumbprint]
        let iat = Int(now.timeIntervalSince1970)
        let claims: [String: Any] = [
            "aud": audience, "iss": clientId, "sub": clientId, "jti": UUID().uuidString,
            "nbf": iat, "iat": iat, "exp": iat + 600,
        ]
        let h = Self.base64url(try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
        let c = Self.base64url(try JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys]))
        let signature = try privateKey.signature(for: Data("\(h).\(c)".utf8), padding: .insecurePKCS1v1_5)
        return "\(h).\(c).\(Self.base64url(signature.rawRepresentation))"
    }

    static func der(fromPEM pem: String, label: String) -> Data? {
        // The END marker is looked for after the BEGIN marker (a file with them the other way
        // round is not a PEM block, and must not make an invalid range).
        guard let start = pem.range(of: "-----BEGIN \(label)-----"),
            let end = pem.range(of: "-----END \(label)-----", range: start.upperBound..<pem.endIndex)
        else { return nil }
        let body = pem[start.upperBound..<end.lowerBound].filter { !$0.isWhitespace }
        return Data(base64Encoded: String(body))
    }

    static func base64url(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
