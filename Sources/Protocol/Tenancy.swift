import Crypto
import Foundation

/// What the ingress charged a job at admission, carried in the envelope so that the worker can reconcile the
/// estimate with the real usage and write the response cache, for synchronous and asynchronous jobs alike.
public struct JobTenancy: Sendable, Hashable, Codable {
    /// `Tenant.id`.
    public var tenant: String
    /// The tenant's tokens-per-minute limit at admission; the worker moves the token bucket by the difference.
    public var tpm: Int
    /// Tokens charged at admission (`TokenEstimate`).
    public var estimatedTokens: Int
    /// Cost charged at admission, in millionths of a US dollar.
    public var estimatedCostMicros: Int
    /// The UTC day (`2025-01-31`) and month (`2025-01`) whose budgets were charged.
    public var day: String
    public var month: String
    /// The response cache entry to write on success; absent with `Cache-Control: no-store` or the cache off.
    public var cacheKey: String?
    /// Seconds the cache entry lives.
    public var cacheTTL: Int?

    public init(tenant: String, tpm: Int, estimatedTokens: Int, estimatedCostMicros: Int, day: String, month: String, cacheKey: String?, cacheTTL: Int?) {
        self.tenant = tenant
        self.tpm = tpm
        self.estimatedTokens = estimatedTokens
        self.estimatedCostMicros = estimatedCostMicros
        self.day = day
        self.month = month
        self.cacheKey = cacheKey
        self.cacheTTL = cacheTTL
    }

    enum CodingKeys: String, CodingKey {
        case tenant, tpm, day, month
        case estimatedTokens = "estimated_tokens"
        case estimatedCostMicros = "estimated_cost_micros"
        case cacheKey = "cache_key"
        case cacheTTL = "cache_ttl"
    }
}

/// The token estimate charged at admission: prompt characters / 4, rounded up, plus `max_tokens` (or
/// `defaultCompletionTokens` when the request sets none). Reconciled with the provider's usage on completion.
public enum TokenEstimate {
    public static let defaultCompletionTokens = 256

    /// Characters of every message's text and tool-call arguments.
    public static func promptTokens(_ request: ChatRequest) -> Int {
        var characters = 0
        for message in request.messages {
            characters += message.content?.text?.count ?? 0
            for call in message.toolCalls ?? [] { characters += call.function.arguments.count }
        }
        return (characters + 3) / 4
    }

    public static func completionTokens(_ request: ChatRequest) -> Int {
        request.maxTokens ?? defaultCompletionTokens
    }

    public static func total(_ request: ChatRequest) -> Int {
        promptTokens(request) + completionTokens(request)
    }
}

/// The exact-match response cache key: SHA-256 over the canonical request (provider, model, messages and every
/// parameter that changes the output), prefixed by the tenant's namespace so tenants never share entries unless
/// they opt into the shared namespace.
public enum ResponseCacheKey {
    private struct Canonical: Encodable {
        var provider: String
        var request: ChatRequest
        var fallbacks: [String]
    }

    private static let encoder = StreamingJSONEncoder()

    /// The canonical bytes that are hashed: the request's JSON with `stream` dropped (it does not change the
    /// answer). Its members come in the order of their declaration and pass-through objects in the order of their
    /// keys (`JSONValue`), so equal requests give equal bytes in every process.
    public static func canonicalBytes(_ job: NormalizedJob) -> [UInt8] {
        var request = job.request
        request.stream = nil
        let canonical = Canonical(provider: job.provider, request: request, fallbacks: job.fallbacks.map(\.description))
        return (try? encoder.encode(canonical)) ?? []
    }

    /// The hex digest of the canonical request.
    public static func digest(_ job: NormalizedJob) -> String {
        SHA256.hash(data: canonicalBytes(job)).hexString
    }

    /// The Redis key of the entry for `job` in `namespace`.
    public static func redisKey(_ job: NormalizedJob, namespace: String) -> String {
        RedisKeys.responseCache(namespace: namespace, digest: digest(job))
    }
}

/// A cached successful completion, as stored under `RedisKeys.responseCache`.
public struct CachedResponse: Sendable, Codable {
    /// The job that produced the answer.
    public var jobID: String
    public var provider: String
    public var model: String
    public var completion: ChatCompletion
    /// Seconds since 1970 when the entry was written.
    public var cachedAt: Double

    public init(jobID: String, provider: String, model: String, completion: ChatCompletion, cachedAt: Double) {
        self.jobID = jobID
        self.provider = provider
        self.model = model
        self.completion = completion
        self.cachedAt = cachedAt
    }

    enum CodingKeys: String, CodingKey {
        case provider, model, completion
        case jobID = "job_id"
        case cachedAt = "cached_at"
    }
}

/// Prices per million tokens by `provider/model`, from `LLMGW_PRICES`:
/// `{"openai/gpt-4o-mini": {"prompt": 0.15, "completion": 0.6}}`. A `provider/*` entry covers every model of a
/// provider. Models without a price cost nothing.
public struct PriceTable: Sendable, Hashable {
    public struct Price: Sendable, Hashable, Codable {
        /// US dollars per million prompt tokens.
        public var prompt: Double
        /// US dollars per million completion tokens.
        public var completion: Double

        public init(prompt: Double, completion: Double) {
            self.prompt = prompt
            self.completion = completion
        }
    }

    public var prices: [String: Price]

    public init(prices: [String: Price] = [:]) {
        self.prices = prices
    }

    /// Parses the JSON object of `LLMGW_PRICES`.
    public init?(json: String) {
        guard let prices = try? JSONDecoder().decode([String: Price].self, from: Data(json.utf8)),
              prices.values.allSatisfy({ $0.prompt >= 0 && $0.completion >= 0 && $0.prompt.isFinite && $0.completion.isFinite })
        else { return nil }
        self.prices = prices
    }

    public func price(provider: String, model: String) -> Price? {
        prices["\(provider)/\(model)"] ?? prices["\(provider)/*"]
    }

    /// The cost in millionths of a US dollar, rounded up.
    public func costMicros(provider: String, model: String, promptTokens: Int, completionTokens: Int) -> Int {
        guard let price = price(provider: provider, model: model) else { return 0 }
        // Dollars per million tokens is exactly micro-dollars per token.
        return Int((price.prompt * Double(promptTokens) + price.completion * Double(completionTokens)).rounded(.up))
    }
}

/// The UTC day and month that budgets and usage are accounted in.
public enum UsagePeriod {
    /// `2025-01-31` and `2025-01` for `seconds` since 1970.
    /// Computed with integer arithmetic (the proleptic Gregorian calendar, days counted from 1970-01-01): every
    /// admitted request needs it, and `Calendar` was 2 % of the ingress's CPU.
    public static func dayAndMonth(_ seconds: Double) -> (day: String, month: String) {
        let date = civilDate(daysSince1970: Int((seconds / 86_400).rounded(.down)))
        let month = "\(padded(date.year, 4))-\(padded(date.month, 2))"
        return ("\(month)-\(padded(date.day, 2))", month)
    }

    /// Year, month (1–12) and day (1–31) of a day number (Howard Hinnant's `civil_from_days`).
    static func civilDate(daysSince1970 days: Int) -> (year: Int, month: Int, day: Int) {
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    private static func padded(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }
}
