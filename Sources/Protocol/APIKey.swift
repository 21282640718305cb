import Crypto

/// A gateway API key as clients send it: `lgw_<public id>_<secret>`. The public id names the key's record in Redis;
/// the secret is never stored, only its SHA-256 (`secretHash`).
public struct APIKey: Sendable, Hashable {
    public static let prefix = "lgw"
    /// Characters of the public id: lowercase letters and digits, 12 of them.
    public static let idLength = 12
    /// Characters of the secret: base62, 43 of them, which carries 256 bits (43 × log2 62 ≈ 256.03).
    public static let secretLength = 43

    static let idAlphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
    static let secretAlphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

    public var id: String
    public var secret: String

    public init(id: String, secret: String) {
        self.id = id
        self.secret = secret
    }

    /// A new key from the system's secure random number generator.
    public static func generate() -> APIKey {
        var generator = SystemRandomNumberGenerator()
        return generate(using: &generator)
    }

    public static func generate<G: RandomNumberGenerator>(using generator: inout G) -> APIKey {
        // `randomElement(using:)` draws uniformly, so every character carries log2(alphabet) bits.
        let id = String((0..<idLength).map { _ in idAlphabet.randomElement(using: &generator)! })
        let secret = String((0..<secretLength).map { _ in secretAlphabet.randomElement(using: &generator)! })
        return APIKey(id: id, secret: secret)
    }

    /// Parses `lgw_<id>_<secret>`; `nil` for anything else. Checks ASCII bytes: it runs on every request.
    public init?(parsing text: some StringProtocol) {
        let bytes = Array(text.utf8)
        let idStart = Self.prefix.utf8.count + 1
        let secretStart = idStart + Self.idLength + 1
        guard bytes.count == secretStart + Self.secretLength,
              bytes.starts(with: Self.prefix.utf8), bytes[idStart - 1] == UInt8(ascii: "_"), bytes[secretStart - 1] == UInt8(ascii: "_"),
              bytes[idStart..<secretStart - 1].allSatisfy(Self.isIDByte),
              bytes[secretStart...].allSatisfy(Self.isSecretByte)
        else { return nil }
        self.init(id: String(decoding: bytes[idStart..<secretStart - 1], as: UTF8.self), secret: String(decoding: bytes[secretStart...], as: UTF8.self))
    }

    /// Whether `id` has the shape of a public id (used to reject junk before touching Redis).
    public static func isValidID(_ id: some StringProtocol) -> Bool {
        id.utf8.count == idLength && id.utf8.allSatisfy(isIDByte)
    }

    /// A byte of `idAlphabet`.
    static func isIDByte(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    /// A byte of `secretAlphabet`.
    static func isSecretByte(_ byte: UInt8) -> Bool {
        isIDByte(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
    }

    /// The text a client sends. Shown once, at creation.
    public var token: String { "\(Self.prefix)_\(id)_\(secret)" }

    /// The lowercase hex SHA-256 of the secret: the only trace of the secret that is stored.
    public var secretHash: String { Self.hash(secret: secret) }

    public static func hash(secret: String) -> String {
        SHA256.hash(data: Array(secret.utf8)).hexString
    }

    /// Compares two byte strings in time that depends only on their lengths.
    public static func constantTimeEquals(_ lhs: some StringProtocol, _ rhs: some StringProtocol) -> Bool {
        let a = Array(lhs.utf8)
        let b = Array(rhs.utf8)
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}

/// What a key or a JWT allows. `nil` limits take the configured defaults; `nil` budgets are unlimited.
public struct TenantLimits: Sendable, Hashable, Codable {
    /// Requests per minute.
    public var rpm: Int?
    /// Tokens per minute (estimated at admission, reconciled on completion).
    public var tpm: Int?
    /// Tokens per UTC day.
    public var dailyTokens: Int?
    /// Tokens per UTC calendar month.
    public var monthlyTokens: Int?
    /// US dollars per UTC calendar month, priced with `LLMGW_PRICES`.
    public var monthlyCostUSD: Double?

    public init(rpm: Int? = nil, tpm: Int? = nil, dailyTokens: Int? = nil, monthlyTokens: Int? = nil, monthlyCostUSD: Double? = nil) {
        self.rpm = rpm
        self.tpm = tpm
        self.dailyTokens = dailyTokens
        self.monthlyTokens = monthlyTokens
        self.monthlyCostUSD = monthlyCostUSD
    }

    enum CodingKeys: String, CodingKey {
        case rpm, tpm
        case dailyTokens = "daily_tokens"
        case monthlyTokens = "monthly_tokens"
        case monthlyCostUSD = "monthly_cost_usd"
    }
}

/// An API key's metadata as stored in Redis and listed by `keys list` / `GET /admin/keys`. Holds no secret.
public struct APIKeyRecord: Sendable, Hashable, Codable {
    public var id: String
    public var object = "gateway.api_key"
    public var name: String
    public var limits: TenantLimits
    /// `key` (the default: this key's own cache namespace) or `shared` (one namespace for every key that opts in).
    public var cacheNamespace: String
    /// Seconds since 1970.
    public var createdAt: Double
    public var revokedAt: Double?

    public init(id: String, name: String, limits: TenantLimits, cacheNamespace: String = "key", createdAt: Double, revokedAt: Double? = nil) {
        self.id = id
        self.name = name
        self.limits = limits
        self.cacheNamespace = cacheNamespace
        self.createdAt = createdAt
        self.revokedAt = revokedAt
    }

    enum CodingKeys: String, CodingKey {
        case id, object, name, limits
        case cacheNamespace = "cache_namespace"
        case createdAt = "created_at"
        case revokedAt = "revoked_at"
    }

    /// The tenant this key authenticates as.
    public var tenant: Tenant {
        Tenant(id: "key:\(id)", keyID: id, limits: limits, cacheNamespace: cacheNamespace == "shared" ? "shared" : "key:\(id)")
    }
}

/// Who is calling, after authentication: the unit that limits, budgets, usage and the cache namespace apply to.
public struct Tenant: Sendable, Hashable {
    /// `key:<public id>`, `jwt:<subject>`, or `anonymous` when auth is disabled.
    public var id: String
    /// The API key's public id, when the caller used a key.
    public var keyID: String?
    public var limits: TenantLimits
    public var cacheNamespace: String

    public init(id: String, keyID: String? = nil, limits: TenantLimits, cacheNamespace: String) {
        self.id = id
        self.keyID = keyID
        self.limits = limits
        self.cacheNamespace = cacheNamespace
    }

    /// Every caller when authentication is disabled.
    public static let anonymous = Tenant(id: "anonymous", limits: TenantLimits(), cacheNamespace: "anonymous")
}

extension Sequence where Element == UInt8 {
    /// Lowercase hexadecimal.
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
