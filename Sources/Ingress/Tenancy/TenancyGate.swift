import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import Protocol
import Redis
import ResultStore

/// Admission at the ingress: rate limits and budgets for every authenticated request, and the response cache for
/// requests that would enqueue a job.
public struct TenancyGate: Sendable {
    public let authenticator: Authenticator
    /// Rate limits, budgets and usage; its admission script also reads the response cache.
    let usage: UsageStore
    let configuration: TenancyConfiguration
    let events: Events
    let logger: Logger
    private let recentCacheKeys = RecentCacheKeys()

    /// What admission reports, for metrics.
    public struct Events: Sendable {
        /// A response cache lookup: `true` for a hit.
        public var cacheLookup: @Sendable (_ hit: Bool) -> Void
        /// A refusal: `true` for a spent budget, `false` for a rate limit.
        public var rejection: @Sendable (_ overBudget: Bool) -> Void

        public init(cacheLookup: @escaping @Sendable (Bool) -> Void = { _ in }, rejection: @escaping @Sendable (Bool) -> Void = { _ in }) {
            self.cacheLookup = cacheLookup
            self.rejection = rejection
        }
    }

    public init(authenticator: Authenticator, usage: UsageStore, configuration: TenancyConfiguration, events: Events = Events(), logger: Logger) {
        self.authenticator = authenticator
        self.usage = usage
        self.configuration = configuration
        self.events = events
        self.logger = logger
    }

    /// What admission decided for a request that would enqueue a job.
    public struct Admission: Sendable {
        /// A cached answer: return it at once and enqueue nothing.
        /// Otherwise `tenancy` is also kept for the request, and `JobService.submit` puts it into the envelope.
        public var cached: CachedResponse?
        /// What goes into the job's envelope.
        public var tenancy: JobTenancy?
        /// The commands given to `admit(_:recording:)` ran, in the admission's step (admitted, not from the cache).
        public var recorded = false
    }

    /// What admission will read and charge for a request that would enqueue a job, worked out before Redis is asked.
    public struct Plan: Sendable {
        let cacheKey: String?
        let readsCache: Bool
        /// The cache key was seen lately on this replica: a hit is likely, so the job is not recorded in advance.
        public let likelyHit: Bool
        let tokens: Int
        let costMicros: Int
        let period: (day: String, month: String)
        let now: Double
        /// The job's tenancy once admission charged it: what its envelope carries.
        public let tenancy: JobTenancy
    }

    /// Works out what admitting `job` reads and charges.
    /// - Parameter streaming: a streamed answer is never served from the cache (it is still written to it).
    /// - Throws: `GatewayError` 400 for a bad `x-cache-ttl`.
    public func plan(_ job: NormalizedJob, headers: HTTPFields, streaming: Bool = false) throws(GatewayError) -> Plan {
        guard let state = TenancyRequestState.current else { throw GatewayError.internalError }
        let tenant = state.tenant
        let directives = headers[.cacheControl].map { Set($0.lowercased().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }) } ?? []
        var ttl = configuration.cacheTTL
        if let raw = headers[.cacheTTL] {
            guard let requested = Int(raw.trimmingCharacters(in: .whitespaces)), requested >= 0 else {
                throw GatewayError.invalidRequest("'x-cache-ttl' must be a whole number of seconds.", param: "x-cache-ttl")
            }
            ttl = min(ttl, requested)
        }
        let cacheKey = configuration.cacheTTL > 0 ? ResponseCacheKey.redisKey(job, namespace: tenant.cacheNamespace) : nil
        let now = Date().timeIntervalSince1970
        let period = UsagePeriod.dayAndMonth(now)
        let promptTokens = TokenEstimate.promptTokens(job.request)
        let completionTokens = TokenEstimate.completionTokens(job.request)
        let tokens = promptTokens + completionTokens
        let cost = configuration.prices.costMicros(provider: job.provider, model: job.request.model, promptTokens: promptTokens, completionTokens: completionTokens)
        let stores = !directives.contains("no-store") && ttl > 0
        let readsCache = cacheKey != nil && !streaming && !directives.contains("no-cache")
        return Plan(
            cacheKey: cacheKey, readsCache: readsCache, likelyHit: readsCache && recentCacheKeys.checkAndInsert(cacheKey!),
            tokens: tokens, costMicros: cost, period: period, now: now,
            tenancy: JobTenancy(
                tenant: tenant.id, tpm: limits(tenant).tpm, estimatedTokens: tokens, estimatedCostMicros: cost,
                day: period.day, month: period.month, cacheKey: stores ? cacheKey : nil, cacheTTL: stores ? ttl : nil))
    }

    /// Admits a request that would enqueue `job`: reads the cache unless `Cache-Control: no-cache` and charges the
    /// rate limits and budgets, in one round trip (a cache hit costs one request and no tokens).
    /// - Throws: `GatewayError` 429 (`rate_limit_exceeded`, `insufficient_quota`) or 503 (Redis, when closed).
    public func admit(_ job: NormalizedJob, headers: HTTPFields, streaming: Bool = false) async throws(GatewayError) -> Admission {
        try await admit(plan(job, headers: headers, streaming: streaming))
    }

    /// Admits a planned request.
    /// - Parameter recording: plain commands that run in the same step when the request is admitted and not
    ///   answered from the cache (recording the job as queued saves the submission a round trip).
    public func admit(_ plan: Plan, recording: [RedisCommand] = []) async throws(GatewayError) -> Admission {
        guard let state = TenancyRequestState.current else { throw GatewayError.internalError }
        let decision = try await charge(
            state, tokens: plan.tokens, costMicros: plan.costMicros, period: plan.period, now: plan.now,
            cacheKey: plan.readsCache ? plan.cacheKey : nil, recording: recording)
        if plan.readsCache {
            let hit = decision?.cached.flatMap { try? IndexedJSONDecoder().decode(CachedResponse.self, from: $0) }
            events.cacheLookup(hit != nil)
            if let hit {
                state.setCache("HIT")
                return Admission(cached: hit, tenancy: nil)
            }
        }
        // Not charged: Redis failed under the `open` policy, or an entry that did not decode was charged as a hit
        // (the worker's settlement then charges the real usage).
        let charged = decision != nil && decision?.cached == nil
        state.setCache("MISS")
        var tenancy = plan.tenancy
        if !charged {
            tenancy.estimatedTokens = 0
            tenancy.estimatedCostMicros = 0
        }
        state.setJobTenancy(tenancy)
        return Admission(cached: nil, tenancy: tenancy, recorded: charged && !recording.isEmpty)
    }

    /// Admits a request that enqueues nothing (job lookups, model lists): one request, no tokens.
    func admitRequest() async throws(GatewayError) {
        guard let state = TenancyRequestState.current else { throw GatewayError.internalError }
        let now = Date().timeIntervalSince1970
        _ = try await charge(state, tokens: 0, costMicros: 0, period: UsagePeriod.dayAndMonth(now), now: now, cacheKey: nil, recording: [])
    }

    /// The tenant's limits with the configured defaults filled in.
    func limits(_ tenant: Tenant) -> (rpm: Int, tpm: Int) {
        (tenant.limits.rpm ?? configuration.defaultRPM, tenant.limits.tpm ?? configuration.defaultTPM)
    }

    /// Runs the admission script, which first reads the cache entry `cacheKey` when given, and runs `recording`
    /// when it admits a request that the cache did not answer. Returns `nil` when Redis failed and the policy is
    /// `open` (nothing was charged, no cache read, nothing recorded).
    private func charge(_ state: TenancyRequestState, tokens: Int, costMicros: Int, period: (day: String, month: String), now: Double, cacheKey: String?, recording: [RedisCommand]) async throws(GatewayError) -> UsageStore.Decision? {
        let tenant = state.tenant
        let (rpm, tpm) = limits(tenant)
        let decision: UsageStore.Decision
        do {
            decision = try await usage.admit(UsageStore.Charge(
                tenant: tenant.id, rpm: rpm, tpm: tpm, tokens: tokens, costMicros: costMicros,
                dailyTokens: tenant.limits.dailyTokens, monthlyTokens: tenant.limits.monthlyTokens,
                monthlyCostMicros: tenant.limits.monthlyCostUSD.map { Int(($0 * 1_000_000).rounded(.down)) },
                day: period.day, month: period.month, cacheKey: cacheKey, onAdmission: recording))
        } catch {
            switch configuration.rateLimitOnRedisFailure {
            case .closed:
                logger.warning("Rate limiter unavailable; refusing (LLMGW_RATE_LIMIT_ON_REDIS_FAILURE=closed)", metadata: ["error": "\(error)"])
                throw .unavailable("The rate limiter is unavailable; retry shortly.", code: "store_unavailable")
            case .open:
                logger.warning("Rate limiter unavailable; admitting (LLMGW_RATE_LIMIT_ON_REDIS_FAILURE=open)", metadata: ["error": "\(error)"])
                return nil
            }
        }
        state.setDecision(decision)
        switch decision.verdict {
        case .admitted:
            return decision
        case .requestsExceeded, .tokensExceeded, .tooLarge:
            events.rejection(false)
            let retryAfter = max(1, (decision.retryAfterMs + 999) / 1000)
            let message: String
            switch decision.verdict {
            case .requestsExceeded: message = "Rate limit reached for requests per minute: limit \(rpm). Retry after \(retryAfter) s."
            case .tooLarge: message = "The request's estimated \(tokens) tokens exceed the tokens-per-minute limit of \(tpm)."
            default: message = "Rate limit reached for tokens per minute: limit \(tpm), requested \(tokens). Retry after \(retryAfter) s."
            }
            throw GatewayError(status: 429, message: message, type: decision.verdict == .requestsExceeded ? "requests" : "tokens",
                               code: "rate_limit_exceeded", retryAfter: retryAfter)
        case .dailyTokensExhausted, .monthlyTokensExhausted, .monthlyCostExhausted:
            events.rejection(true)
            let which: String
            let next: Double
            switch decision.verdict {
            case .dailyTokensExhausted:
                which = "daily token budget (\(tenant.limits.dailyTokens ?? 0))"
                next = Self.startOfNextDay(after: now)
            case .monthlyTokensExhausted:
                which = "monthly token budget (\(tenant.limits.monthlyTokens ?? 0))"
                next = Self.startOfNextMonth(after: now)
            default:
                which = "monthly cost budget ($\(tenant.limits.monthlyCostUSD ?? 0))"
                next = Self.startOfNextMonth(after: now)
            }
            throw GatewayError(status: 429, message: "You exceeded your \(which). It renews at the start of the next UTC period.",
                               type: "insufficient_quota", code: "insufficient_quota", retryAfter: max(1, Int((next - now).rounded(.up))))
        }
    }

    static func startOfNextDay(after seconds: Double) -> Double {
        (seconds / 86_400).rounded(.down) * 86_400 + 86_400
    }

    static func startOfNextMonth(after seconds: Double) -> Double {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let date = Date(timeIntervalSince1970: seconds)
        let start = calendar.date(from: calendar.dateComponents([.year, .month], from: date)) ?? date
        return (calendar.date(byAdding: .month, value: 1, to: start) ?? date).timeIntervalSince1970
    }

    /// Whether the route admits in its handler, after it knows the job (and so the token estimate).
    static func admitsInHandler(_ request: Request) -> Bool {
        guard request.method == .post else { return false }
        return ["/gateway/jobs", "/gateway/query", "/v1/chat/completions"].contains(request.uri.path)
    }
}

/// The tenant of the request being handled and what admission decided, for the response headers.
final class TenancyRequestState: Sendable {
    @TaskLocal static var current: TenancyRequestState?

    let tenant: Tenant
    private let state = NIOLockedValueBox<(decision: UsageStore.Decision?, cache: String?, job: JobTenancy?)>((nil, nil, nil))

    init(tenant: Tenant) {
        self.tenant = tenant
    }

    func setDecision(_ decision: UsageStore.Decision) {
        state.withLockedValue { $0.decision = decision }
    }

    func setCache(_ status: String) {
        state.withLockedValue { $0.cache = status }
    }

    func setJobTenancy(_ tenancy: JobTenancy) {
        state.withLockedValue { $0.job = tenancy }
    }

    /// What the current request was charged at admission, for its job's envelope.
    static var jobTenancy: JobTenancy? {
        current?.state.withLockedValue { $0.job }
    }

    /// Adds `x-ratelimit-*` (when a limit was checked) and `x-cache` (when the cache was considered).
    func apply(to headers: inout HTTPFields) {
        let (decision, cache) = state.withLockedValue { ($0.decision, $0.cache) }
        if let decision {
            headers[.rateLimitLimitRequests] = String(decision.requestLimit)
            headers[.rateLimitRemainingRequests] = String(decision.requestsRemaining)
            headers[.rateLimitResetRequests] = Self.duration(milliseconds: decision.requestsResetMs)
            headers[.rateLimitLimitTokens] = String(decision.tokenLimit)
            headers[.rateLimitRemainingTokens] = String(decision.tokensRemaining)
            headers[.rateLimitResetTokens] = Self.duration(milliseconds: decision.tokensResetMs)
        }
        if let cache { headers[.cache] = cache }
    }

    /// `0s`, `0.25s`, `12s`: the time until the bucket is full again, as OpenAI writes it.
    static func duration(milliseconds: Int) -> String {
        DecimalText.seconds(milliseconds: max(0, milliseconds)) + "s"
    }
}

/// Authenticates `/gateway/*` and `/v1/*`, admits requests that enqueue nothing, and adds the rate-limit and
/// cache headers to every response of an authenticated request.
struct TenancyMiddleware<Context: RequestContext>: RouterMiddleware {
    let gate: TenancyGate

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        guard path.hasPrefix("/gateway/") || path.hasPrefix("/v1/") else { return try await next(request, context) }
        let tenant: Tenant
        do {
            tenant = try await gate.authenticator.authenticate(request.headers)
        } catch {
            return HTTPSupport.error(error)
        }
        let state = TenancyRequestState(tenant: tenant)
        var response: Response
        do {
            response = try await TenancyRequestState.$current.withValue(state) {
                if !TenancyGate.admitsInHandler(request) { try await gate.admitRequest() }
                return try await next(request, context)
            }
        } catch let error as GatewayError {
            response = HTTPSupport.error(error)
        }
        state.apply(to: &response.headers)
        return response
    }
}
