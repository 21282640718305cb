import Foundation
import Protocol
import Testing

@Suite("API keys, cache keys, token estimates and tenancy configuration", .timeLimit(.minutes(2)))
struct TenancyTests {
    /// A deterministic generator, so that generated keys can be checked without randomness in the assertions.
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    @Test("a generated key has the lgw_<id>_<secret> shape and parses back to itself")
    func keyRoundTrip() throws {
        var generator = SplitMix(state: 42)
        let key = APIKey.generate(using: &generator)
        #expect(key.id.count == 12)
        #expect(key.secret.count == 43)
        #expect(key.token == "lgw_\(key.id)_\(key.secret)")
        let parsed = try #require(APIKey(parsing: key.token))
        #expect(parsed == key)
        #expect(APIKey.isValidID(key.id))
        // Two keys from the system generator differ.
        #expect(APIKey.generate() != APIKey.generate())
    }

    @Test("malformed keys are rejected", arguments: [
        "", "lgw_", "lgw__", "sk-abc", "lgw_abc_def",
        "lgw_ABCDEFGHIJKL_0123456789012345678901234567890123456789012",   // uppercase id
        "lgw_abcdefghijkl_01234567890123456789012345678901234567890_2",   // underscore in the secret
        "lgw_abcdefghijkl_0123456789012345678901234567890123456789é1",    // non-ASCII in the secret
        "lgw-abcdefghijkl_0123456789012345678901234567890123456789012",   // wrong separator
        "LGW_abcdefghijkl_0123456789012345678901234567890123456789012",   // prefix case
        "lgw_abcdefghijkl_012345678901234567890123456789012345678901",    // secret too short (42)
        "lgw_abcdefghijkl_0123456789012345678901234567890123456789012_x", // extra part
        "xyz_abcdefghijkl_0123456789012345678901234567890123456789012",   // wrong prefix
        "lgw_abcdefghijkl_01234567890123456789012345678901234567890-2",   // '-' in the secret
    ])
    func malformed(_ text: String) {
        #expect(APIKey(parsing: text) == nil)
    }

    @Test("the stored hash is the SHA-256 of the secret and never contains it")
    func hashing() {
        #expect(APIKey.hash(secret: "abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let key = APIKey(id: "abcdefghijkl", secret: String(repeating: "Z", count: 43))
        #expect(key.secretHash.count == 64)
        #expect(!key.secretHash.contains(key.secret))
        #expect(APIKey.constantTimeEquals(key.secretHash, APIKey.hash(secret: key.secret)))
        #expect(!APIKey.constantTimeEquals(key.secretHash, APIKey.hash(secret: key.secret + "x")))
        #expect(!APIKey.constantTimeEquals("abc", "abcd"))
    }

    func job(_ messages: [ChatMessage], provider: String = "openai", model: String = "gpt-4o-mini", temperature: Double? = nil,
             maxTokens: Int? = nil, tools: [JSONValue]? = nil, fallbacks: [ModelRef] = []) -> NormalizedJob {
        NormalizedJob(provider: provider, request: ChatRequest(model: model, messages: messages, temperature: temperature, maxTokens: maxTokens, tools: tools), fallbacks: fallbacks)
    }

    @Test("the cache key covers every output-affecting field and nothing else")
    func cacheKey() {
        let base = job([.user("hello")])
        let digest = ResponseCacheKey.digest(base)
        #expect(digest.count == 64)
        // Same request, same key; `stream` does not change the answer.
        var streamed = base
        streamed.request.stream = true
        #expect(ResponseCacheKey.digest(streamed) == digest)
        #expect(ResponseCacheKey.digest(job([.user("hello")])) == digest)
        // Each output-affecting field changes it.
        let variants = [
            job([.user("hello!")]),
            job([.system("be brief"), .user("hello")]),
            job([.user("hello")], provider: "groq"),
            job([.user("hello")], model: "gpt-4o"),
            job([.user("hello")], temperature: 0.5),
            job([.user("hello")], maxTokens: 10),
            job([.user("hello")], tools: [.object(["type": .string("function")])]),
            job([.user("hello")], fallbacks: [ModelRef(provider: "anthropic", model: "claude")]),
        ]
        let digests = Set(variants.map(ResponseCacheKey.digest))
        #expect(digests.count == variants.count)
        #expect(!digests.contains(digest))
    }

    @Test("object key order inside pass-through JSON does not change the cache key")
    func canonicalObjects() {
        let a = JSONValue.object(["type": .string("function"), "function": .object(["name": .string("f"), "strict": .bool(true)])])
        let b = JSONValue.object(["function": .object(["strict": .bool(true), "name": .string("f")]), "type": .string("function")])
        #expect(ResponseCacheKey.digest(job([.user("x")], tools: [a])) == ResponseCacheKey.digest(job([.user("x")], tools: [b])))
        let bytes = String(decoding: ResponseCacheKey.canonicalBytes(job([.user("x")], tools: [a])), as: UTF8.self)
        #expect(bytes.contains(#""function":{"name":"f","strict":true},"type":"function""#))
    }

    @Test("cache keys are namespaced: two tenants never share an entry unless both use the shared namespace")
    func namespaces() {
        let request = job([.user("hello")])
        let first = ResponseCacheKey.redisKey(request, namespace: "key:aaaaaaaaaaaa")
        let second = ResponseCacheKey.redisKey(request, namespace: "key:bbbbbbbbbbbb")
        #expect(first != second)
        #expect(first.hasPrefix(RedisKeys.prefix))
        #expect(ResponseCacheKey.redisKey(request, namespace: "shared") == ResponseCacheKey.redisKey(request, namespace: "shared"))
        let shared = APIKeyRecord(id: "aaaaaaaaaaaa", name: "a", limits: TenantLimits(), cacheNamespace: "shared", createdAt: 0).tenant
        let own = APIKeyRecord(id: "aaaaaaaaaaaa", name: "a", limits: TenantLimits(), createdAt: 0).tenant
        #expect(shared.cacheNamespace == "shared")
        #expect(own.cacheNamespace == "key:aaaaaaaaaaaa")
        #expect(own.id == "key:aaaaaaaaaaaa")
    }

    @Test("tokens are estimated as prompt characters / 4, rounded up, plus max_tokens or 256")
    func tokenEstimate() {
        let request = ChatRequest(model: "m", messages: [.system("abcd"), .user("abcdefghi")], maxTokens: 50)
        #expect(TokenEstimate.promptTokens(request) == 4)     // 13 characters
        #expect(TokenEstimate.completionTokens(request) == 50)
        #expect(TokenEstimate.total(request) == 54)
        let unbounded = ChatRequest(model: "m", messages: [.user("")])
        #expect(TokenEstimate.total(unbounded) == TokenEstimate.defaultCompletionTokens)
    }

    @Test("prices are per million tokens; provider/* covers a provider; unpriced models cost nothing")
    func prices() throws {
        let table = try #require(PriceTable(json: #"{"openai/gpt-4o-mini": {"prompt": 0.15, "completion": 0.6}, "anthropic/*": {"prompt": 3, "completion": 15}}"#))
        #expect(table.costMicros(provider: "openai", model: "gpt-4o-mini", promptTokens: 1000, completionTokens: 100) == 210)
        #expect(table.costMicros(provider: "anthropic", model: "claude-x", promptTokens: 10, completionTokens: 10) == 180)
        #expect(table.costMicros(provider: "groq", model: "llama", promptTokens: 1000, completionTokens: 1000) == 0)
        #expect(PriceTable(json: #"{"openai/x": {"prompt": -1, "completion": 0}}"#) == nil)
        #expect(PriceTable(json: "[]") == nil)
    }

    @Test("usage periods are UTC days and months")
    func periods() {
        #expect(UsagePeriod.dayAndMonth(0) == ("1970-01-01", "1970-01"))
        #expect(UsagePeriod.dayAndMonth(1_738_367_999) == ("2025-01-31", "2025-01"))
        #expect(UsagePeriod.dayAndMonth(1_738_368_000) == ("2025-02-01", "2025-02"))
        #expect(UsagePeriod.dayAndMonth(951_782_400) == ("2000-02-29", "2000-02"))
        #expect(UsagePeriod.dayAndMonth(4_107_542_399.9) == ("2100-02-28", "2100-02"))
        #expect(UsagePeriod.dayAndMonth(-1) == ("1969-12-31", "1969-12"))
        // Every day of 1968–2104 (leap years, century rules) agrees with Foundation's Gregorian calendar.
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        for day in stride(from: -731, through: 49_000, by: 1) {
            let seconds = Double(day) * 86_400 + 43_210.5
            let parts = calendar.dateComponents([.year, .month, .day], from: Date(timeIntervalSince1970: seconds))
            let expected = String(format: "%04d-%02d-%02d", parts.year!, parts.month!, parts.day!)
            #expect(UsagePeriod.dayAndMonth(seconds).day == expected, "day \(day)")
            #expect(UsagePeriod.dayAndMonth(seconds).month == String(expected.prefix(7)))
        }
    }

    @Test("tenancy settings: auth on by default, explicit off, validated values")
    func configuration() throws {
        let defaults = try GatewayConfiguration.load(environment: [:]).tenancy
        #expect(defaults.authEnabled)
        #expect(defaults.rateLimitOnRedisFailure == .closed)
        #expect(defaults.adminToken == nil)
        #expect(defaults.cacheTTL == 3600)
        let off = try GatewayConfiguration.load(environment: ["LLMGW_AUTH": "disabled", "LLMGW_RATE_LIMIT_ON_REDIS_FAILURE": "open"]).tenancy
        #expect(!off.authEnabled)
        #expect(off.rateLimitOnRedisFailure == .open)
        let bad: [[String: String]] = [
            ["LLMGW_AUTH": "off"],
            ["LLMGW_ADMIN_TOKEN": "short"],
            ["LLMGW_RATE_LIMIT_ON_REDIS_FAILURE": "maybe"],
            ["LLMGW_PRICES": "{"],
            ["LLMGW_JWT_HS256_SECRET": String(repeating: "s", count: 32)],
            ["LLMGW_JWT_HS256_SECRET": "too-short", "LLMGW_JWT_ISSUER": "i", "LLMGW_JWT_AUDIENCE": "a"],
            ["LLMGW_DEFAULT_RPM": "0"],
        ]
        for environment in bad {
            #expect(throws: ConfigurationError.self, "\(environment)") { try GatewayConfiguration.load(environment: environment) }
        }
    }
}
