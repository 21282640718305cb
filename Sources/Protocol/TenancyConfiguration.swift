/// Authentication, limits, budgets and the response cache. Defaults are documented in the README's "Tenancy".
public struct TenancyConfiguration: Sendable {
    /// What the rate limiter does when Redis cannot be reached.
    public enum FailurePolicy: String, Sendable {
        /// Refuse with 503 (the default): limits are never exceeded.
        case closed
        /// Admit without limits and log a warning: availability over limits.
        case open
    }

    /// `LLMGW_AUTH`: `enabled` (the default) or `disabled`. Disabled, every caller is the tenant `anonymous`.
    public var authEnabled = true
    /// `LLMGW_ADMIN_TOKEN`: the bearer token of `/admin/*`; unset, the admin API answers 403.
    public var adminToken: String?
    /// `LLMGW_KEY_CACHE_SECONDS`: how long a replica reuses an API key lookup, and a worker a key's webhook
    /// endpoints, 5. Revocations and endpoint changes are pushed to every replica over pub/sub, so they apply at
    /// once regardless.
    public var keyCacheSeconds: Double = 5
    /// `LLMGW_DEFAULT_RPM` / `LLMGW_DEFAULT_TPM`: limits of keys and tokens that set none, 600 and 200000.
    public var defaultRPM = 600
    public var defaultTPM = 200_000
    /// `LLMGW_RATE_LIMIT_ON_REDIS_FAILURE`: `closed` (the default) or `open`.
    public var rateLimitOnRedisFailure = FailurePolicy.closed
    /// `LLMGW_CACHE_TTL_SECONDS`: lifetime of response cache entries, 3600; `0` turns the cache off.
    public var cacheTTL = 3_600
    /// `LLMGW_PRICES`: per-model prices for cost accounting and cost budgets.
    public var prices = PriceTable()
    /// `LLMGW_JWT_HS256_SECRET`: the shared secret of HS256 tokens.
    public var jwtHS256Secret: String?
    /// `LLMGW_JWT_PUBLIC_KEYS_FILE`: a PEM file of RSA (RS256) and P-256 (ES256) public keys.
    public var jwtPublicKeysFile: String?
    /// `LLMGW_JWT_ISSUER` / `LLMGW_JWT_AUDIENCE`: required `iss` and `aud` of tokens; both needed when JWT is on.
    public var jwtIssuer: String?
    public var jwtAudience: String?
    /// `LLMGW_JWT_TENANT_CLAIM`: the claim naming the tenant, `sub`.
    public var jwtTenantClaim = "sub"

    public init() {}

    /// Whether any JWT key is configured.
    public var jwtEnabled: Bool { jwtHS256Secret != nil || jwtPublicKeysFile != nil }

    static func load(_ reader: EnvironmentReader) throws(ConfigurationError) -> TenancyConfiguration {
        var tenancy = TenancyConfiguration()
        if let auth = reader.string("LLMGW_AUTH") {
            switch auth.lowercased() {
            case "enabled": tenancy.authEnabled = true
            case "disabled": tenancy.authEnabled = false
            default: throw ConfigurationError(variable: "LLMGW_AUTH", message: "expected enabled or disabled, got '\(auth)'")
            }
        }
        if let token = reader.string("LLMGW_ADMIN_TOKEN") {
            guard token.count >= 16 else {
                throw ConfigurationError(variable: "LLMGW_ADMIN_TOKEN", message: "must be at least 16 characters")
            }
            tenancy.adminToken = token
        }
        if let raw = reader.string("LLMGW_KEY_CACHE_SECONDS") {
            guard let value = Double(raw), value >= 0, value <= 60 else {
                throw ConfigurationError(variable: "LLMGW_KEY_CACHE_SECONDS", message: "expected 0...60 seconds, got '\(raw)'")
            }
            tenancy.keyCacheSeconds = value
        }
        tenancy.defaultRPM = try reader.integer("LLMGW_DEFAULT_RPM", in: 1...100_000_000) ?? tenancy.defaultRPM
        tenancy.defaultTPM = try reader.integer("LLMGW_DEFAULT_TPM", in: 1...1_000_000_000_000) ?? tenancy.defaultTPM
        if let raw = reader.string("LLMGW_RATE_LIMIT_ON_REDIS_FAILURE") {
            guard let policy = FailurePolicy(rawValue: raw.lowercased()) else {
                throw ConfigurationError(variable: "LLMGW_RATE_LIMIT_ON_REDIS_FAILURE", message: "expected closed or open, got '\(raw)'")
            }
            tenancy.rateLimitOnRedisFailure = policy
        }
        tenancy.cacheTTL = try reader.integer("LLMGW_CACHE_TTL_SECONDS", in: 0...(30 * 86_400)) ?? tenancy.cacheTTL
        if let raw = reader.string("LLMGW_PRICES") {
            guard let table = PriceTable(json: raw) else {
                throw ConfigurationError(variable: "LLMGW_PRICES", message: #"expected {"provider/model": {"prompt": dollars per 1M tokens, "completion": …}}"#)
            }
            tenancy.prices = table
        }
        tenancy.jwtHS256Secret = reader.string("LLMGW_JWT_HS256_SECRET")
        if let secret = tenancy.jwtHS256Secret, secret.utf8.count < 32 {
            throw ConfigurationError(variable: "LLMGW_JWT_HS256_SECRET", message: "must be at least 32 bytes")
        }
        tenancy.jwtPublicKeysFile = reader.string("LLMGW_JWT_PUBLIC_KEYS_FILE")
        tenancy.jwtIssuer = reader.string("LLMGW_JWT_ISSUER")
        tenancy.jwtAudience = reader.string("LLMGW_JWT_AUDIENCE")
        if let claim = reader.string("LLMGW_JWT_TENANT_CLAIM") { tenancy.jwtTenantClaim = claim }
        if tenancy.jwtEnabled {
            guard tenancy.jwtIssuer != nil else {
                throw ConfigurationError(variable: "LLMGW_JWT_ISSUER", message: "required when a JWT key is configured")
            }
            guard tenancy.jwtAudience != nil else {
                throw ConfigurationError(variable: "LLMGW_JWT_AUDIENCE", message: "required when a JWT key is configured")
            }
        }
        return tenancy
    }
}
