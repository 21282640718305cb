import Crypto
import Foundation
import Protocol
import _CryptoExtras

/// Verifies bearer JWTs (HS256 with a shared secret; RS256 and ES256 with configured public keys) and maps their
/// claims to a tenant. Any other algorithm, `none` included, is refused.
/// Marked `@unchecked Sendable` because its keys are immutable values that swift-crypto does not mark `Sendable`.
public struct JWTVerifier: @unchecked Sendable {
    let hmacKey: SymmetricKey?
    let rsaKeys: [_RSA.Signing.PublicKey]
    let ecKeys: [P256.Signing.PublicKey]
    let issuer: String
    let audience: String
    let tenantClaim: String
    /// Tolerated clock skew for `exp` and `nbf`, in seconds.
    let leeway: Double = 5

    /// - Throws: `ConfigurationError` naming `LLMGW_JWT_PUBLIC_KEYS_FILE` when the file cannot be read or holds a
    ///   key that is neither RSA nor P-256.
    public init?(configuration: TenancyConfiguration) throws(ConfigurationError) {
        guard configuration.jwtEnabled, let issuer = configuration.jwtIssuer, let audience = configuration.jwtAudience else { return nil }
        hmacKey = configuration.jwtHS256Secret.map { SymmetricKey(data: Array($0.utf8)) }
        var rsa: [_RSA.Signing.PublicKey] = []
        var ec: [P256.Signing.PublicKey] = []
        if let path = configuration.jwtPublicKeysFile {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ConfigurationError(variable: "LLMGW_JWT_PUBLIC_KEYS_FILE", message: "cannot read '\(path)'")
            }
            for block in Self.pemBlocks(text) {
                if let key = try? P256.Signing.PublicKey(pemRepresentation: block) {
                    ec.append(key)
                } else if let key = try? _RSA.Signing.PublicKey(pemRepresentation: block) {
                    rsa.append(key)
                } else {
                    throw ConfigurationError(variable: "LLMGW_JWT_PUBLIC_KEYS_FILE", message: "a PEM block is neither an RSA nor a P-256 public key")
                }
            }
            guard !rsa.isEmpty || !ec.isEmpty else {
                throw ConfigurationError(variable: "LLMGW_JWT_PUBLIC_KEYS_FILE", message: "no PEM public key in '\(path)'")
            }
        }
        rsaKeys = rsa
        ecKeys = ec
        self.issuer = issuer
        self.audience = audience
        tenantClaim = configuration.jwtTenantClaim
    }

    /// Whether `token` has the shape of a JWT (three base64url parts), as opposed to an API key.
    public static func looksLikeJWT(_ token: some StringProtocol) -> Bool {
        token.split(separator: ".", omittingEmptySubsequences: false).count == 3 && !token.hasPrefix(APIKey.prefix + "_")
    }

    /// Why a token was refused; logged at debug level, never shown to the client (every refusal is the same 401).
    public enum Rejection: String, Error, Sendable {
        case malformed, algorithm, signature, expired, notYetValid, issuer, audience, tenant
    }

    /// The tenant a valid token names.
    public func verify(_ token: String, now: Double) throws(Rejection) -> Tenant {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3,
              let headerBytes = Self.base64URLDecode(parts[0]),
              let payloadBytes = Self.base64URLDecode(parts[1]),
              let signature = Self.base64URLDecode(parts[2]),
              let header = try? JSONDecoder().decode([String: JSONValue].self, from: Data(headerBytes)),
              let claims = try? JSONDecoder().decode([String: JSONValue].self, from: Data(payloadBytes))
        else { throw .malformed }
        let signed = Array(token.utf8.prefix(parts[0].utf8.count + 1 + parts[1].utf8.count))
        switch header["alg"]?.stringValue {
        case "HS256":
            guard let hmacKey else { throw .algorithm }
            guard HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: signed, using: hmacKey) else { throw .signature }
        case "ES256":
            guard !ecKeys.isEmpty else { throw .algorithm }
            guard let value = try? P256.Signing.ECDSASignature(rawRepresentation: signature),
                  ecKeys.contains(where: { $0.isValidSignature(value, for: signed) })
            else { throw .signature }
        case "RS256":
            guard !rsaKeys.isEmpty else { throw .algorithm }
            let value = _RSA.Signing.RSASignature(rawRepresentation: signature)
            guard rsaKeys.contains(where: { $0.isValidSignature(value, for: signed, padding: .insecurePKCS1v1_5) }) else { throw .signature }
        default:
            throw .algorithm
        }
        guard let expiry = claims["exp"]?.numberValue else { throw .expired }
        guard now <= expiry + leeway else { throw .expired }
        if let notBefore = claims["nbf"]?.numberValue, now + leeway < notBefore { throw .notYetValid }
        guard claims["iss"]?.stringValue == issuer else { throw .issuer }
        let audiences: [String]
        switch claims["aud"] {
        case .string(let value): audiences = [value]
        case .array(let values): audiences = values.compactMap(\.stringValue)
        default: audiences = []
        }
        guard audiences.contains(audience) else { throw .audience }
        guard let subject = claims[tenantClaim]?.stringValue, !subject.isEmpty else { throw .tenant }
        let limits = TenantLimits(
            rpm: claims["rpm"]?.numberValue.map { Int($0) },
            tpm: claims["tpm"]?.numberValue.map { Int($0) },
            dailyTokens: claims["daily_tokens"]?.numberValue.map { Int($0) },
            monthlyTokens: claims["monthly_tokens"]?.numberValue.map { Int($0) },
            monthlyCostUSD: claims["monthly_cost_usd"]?.numberValue)
        let id = "jwt:\(subject)"
        let shared = claims["cache_namespace"]?.stringValue == "shared"
        return Tenant(id: id, limits: limits, cacheNamespace: shared ? "shared" : id)
    }

    static func pemBlocks(_ text: String) -> [String] {
        var blocks: [String] = []
        var current: [Substring]?
        for line in text.split(whereSeparator: \.isNewline) {
            if line.hasPrefix("-----BEGIN ") { current = [line] } else if current != nil { current!.append(line) }
            if line.hasPrefix("-----END "), let lines = current {
                blocks.append(lines.joined(separator: "\n"))
                current = nil
            }
        }
        return blocks
    }

    static func base64URLDecode(_ text: some StringProtocol) -> [UInt8]? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        guard !base64.contains("=") else { return nil }
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64).map { Array($0) }
    }
}

extension JSONValue {
    var numberValue: Double? {
        switch self {
        case .int(let value): return Double(value)
        case .double(let value): return value
        default: return nil
        }
    }
}
