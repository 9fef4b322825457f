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
    /// When the certificate stops being valid (its notAfter): the credential's expiry.
    public let expiry: CredentialExpiry

    /// The largest certificate or key file read (a PEM certificate chain is a few kilobytes).
    public static let maxFileBytes = 256 * 1024

    /// Reads the PEM certificate and RSA private key now (a bad file fails at start-up, not at
    /// the first token request).
    public init(certificatePEMPath: String, privateKeyPEMPath: String, clientId: String) throws(CredentialError) {
        guard let certPEM = Self.read(certificatePEMPath) else {
            throw CredentialError("cannot read certificate '\(certificatePEMPath)' (a readable PEM file of at most \(Self.maxFileBytes / 1024) KiB)")
        }
        guard let keyPEM = Self.read(privateKeyPEMPath) else {
            throw CredentialError("cannot read private key '\(privateKeyPEMPath)' (a readable PEM file of at most \(Self.maxFileBytes / 1024) KiB)")
        }
        guard let der = Self.der(fromPEM: certPEM, label: "CERTIFICATE") else {
            throw CredentialError("'\(certificatePEMPath)' holds no PEM certificate")
        }
        do {
            let certificate = try Certificate(derEncoded: Array(der))
            expiry = CredentialExpiry(notAfter: certificate.notValidAfter, source: .certificate)
        } catch {
            throw CredentialError("'\(certificatePEMPath)' holds a PEM block that is not an X.509 certificate")
        }
        do {
            privateKey = try _RSA.Signing.PrivateKey(pemRepresentation: keyPEM)
        } catch {
            throw CredentialError("'\(privateKeyPEMPath)' is not an RSA private key in PEM form")
        }
        thumbprint = Self.base64url(Data(Insecure.SHA1.hash(data: der)))
        self.clientId = clientId
    }

    /// The credential for `AppIdentity`: a fresh assertion for each token request.
    public var credential: ClientCredential {
        let assertion = self
        return .assertion { audience in try assertion.make(audience: audience) }
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

    /// The file's text, or nil when it cannot be read or is larger than `maxFileBytes` (a path
    /// such as /dev/zero must not make the worker read forever).
    static func read(_ path: String) -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        guard let data = try? handle.read(upToCount: maxFileBytes + 1), data.count <= maxFileBytes else { return nil }
        return String(decoding: data, as: UTF8.self)
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
