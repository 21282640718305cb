import Foundation
import Protocol
import Redis

/// Rate limits, budgets and usage accounting in Redis. Admission is one Lua script (GCRA on Redis `TIME`), so
/// every ingress replica shares one exact limit per tenant.
public struct UsageStore: Sendable {
    public let redis: RedisClient
    /// How long usage and budget counters are kept.
    public static let usageRetentionSeconds = 400 * 86_400

    public init(redis: RedisClient) {
        self.redis = redis
    }

    /// What admission asks for.
    public struct Charge: Sendable {
        public var tenant: String
        public var rpm: Int
        public var tpm: Int
        /// Tokens to take from the tokens-per-minute bucket and the token budgets.
        public var tokens: Int
        public var costMicros: Int
        public var dailyTokens: Int?
        public var monthlyTokens: Int?
        public var monthlyCostMicros: Int?
        public var day: String
        public var month: String
        /// A response cache entry to read first: on a hit the request costs one request, no tokens and no money,
        /// and is accounted as a cache hit of the entry's model, in the same step.
        public var cacheKey: String?
        /// Plain commands to run in the same step when the request is admitted and the cache did not answer it.
        public var onAdmission: [RedisCommand]

        public init(tenant: String, rpm: Int, tpm: Int, tokens: Int, costMicros: Int, dailyTokens: Int?, monthlyTokens: Int?, monthlyCostMicros: Int?, day: String, month: String, cacheKey: String? = nil, onAdmission: [RedisCommand] = []) {
            precondition(onAdmission.allSatisfy { $0.script == nil }, "admission runs plain commands only")
            self.cacheKey = cacheKey
            self.onAdmission = onAdmission
            self.tenant = tenant
            self.rpm = rpm
            self.tpm = tpm
            self.tokens = tokens
            self.costMicros = costMicros
            self.dailyTokens = dailyTokens
            self.monthlyTokens = monthlyTokens
            self.monthlyCostMicros = monthlyCostMicros
            self.day = day
            self.month = month
        }
    }

    /// The outcome of admission, with the state of both buckets for the `x-ratelimit-*` headers.
    public struct Decision: Sendable, Hashable {
        public enum Verdict: String, Sendable, Hashable {
            case admitted = "ok"
            case requestsExceeded = "rate_requests"
            case tokensExceeded = "rate_tokens"
            /// The request alone asks for more tokens than the per-minute limit.
            case tooLarge = "too_large"
            case dailyTokensExhausted = "quota_daily"
            case monthlyTokensExhausted = "quota_monthly"
            case monthlyCostExhausted = "quota_cost"
        }

        public var verdict: Verdict
        public var requestLimit: Int
        public var requestsRemaining: Int
        /// Milliseconds until the requests bucket is full again.
        public var requestsResetMs: Int
        public var tokenLimit: Int
        public var tokensRemaining: Int
        public var tokensResetMs: Int
        /// Milliseconds until a rejected request could be admitted (rate limits only).
        public var retryAfterMs: Int
        /// The response cache entry, when `Charge.cacheKey` named one that exists.
        public var cached: [UInt8]? = nil
    }

    /// Reads the response cache entry (when asked), checks the budgets, then both rate limits, and charges all of
    /// them only when everything admits: one round trip.
    public func admit(_ charge: Charge) async throws(ResultStoreError) -> Decision {
        var keys = [
            RedisKeys.rateLimit(tenant: charge.tenant),
            RedisKeys.budget(tenant: charge.tenant, period: charge.day),
            RedisKeys.budget(tenant: charge.tenant, period: charge.month),
        ]
        if let cacheKey = charge.cacheKey {
            keys += [cacheKey, RedisKeys.usage(tenant: charge.tenant, day: charge.day), RedisKeys.usageTenants(day: charge.day)]
        }
        let reply = try await storeCall {
            try await redis.eval(
                Self.admitScript,
                keys: keys,
                arguments: [
                    RedisArgument(charge.rpm), RedisArgument(charge.tpm), RedisArgument(charge.tokens),
                    RedisArgument(charge.dailyTokens ?? 0), RedisArgument(charge.monthlyTokens ?? 0),
                    RedisArgument(charge.monthlyCostMicros ?? 0), RedisArgument(charge.costMicros),
                    RedisArgument(Self.usageRetentionSeconds), RedisArgument(charge.tenant),
                    RedisArgument(charge.onAdmission.count),
                ] + charge.onAdmission.flatMap { [RedisArgument($0.arguments.count)] + $0.arguments })
        }
        guard let parts = reply.array, parts.count >= 8, let verdict = parts[0].string.flatMap(Decision.Verdict.init(rawValue:)) else {
            throw ResultStoreError(code: .unexpected, message: "unexpected reply to admission")
        }
        func number(_ index: Int) -> Int { Int(parts[index].integer ?? 0) }
        return Decision(
            verdict: verdict,
            requestLimit: number(1), requestsRemaining: number(2), requestsResetMs: number(3),
            tokenLimit: number(4), tokensRemaining: number(5), tokensResetMs: number(6), retryAfterMs: number(7),
            cached: parts.count > 8 ? parts[8].bytes : nil)
    }

    /// What a finished (or cache-answered) request really used.
    public struct Settlement: Sendable {
        public var tenant: String
        public var tpm: Int
        /// Real tokens minus the tokens charged at admission; negative gives tokens back.
        public var tokenDelta: Int
        public var costDeltaMicros: Int
        public var day: String
        public var month: String
        /// `provider/model` that answered.
        public var model: String
        public var promptTokens: Int
        public var completionTokens: Int
        public var costMicros: Int
        public var cacheHit: Bool

        public init(tenant: String, tpm: Int, tokenDelta: Int, costDeltaMicros: Int, day: String, month: String, model: String, promptTokens: Int, completionTokens: Int, costMicros: Int, cacheHit: Bool) {
            self.tenant = tenant
            self.tpm = tpm
            self.tokenDelta = tokenDelta
            self.costDeltaMicros = costDeltaMicros
            self.day = day
            self.month = month
            self.model = model
            self.promptTokens = promptTokens
            self.completionTokens = completionTokens
            self.costMicros = costMicros
            self.cacheHit = cacheHit
        }
    }

    /// The command that reconciles the admission estimate with real usage (token bucket and budgets) and accounts
    /// the usage. Its reply is 0 when the job was already settled.
    /// - Parameters:
    ///   - jobID: settles a job at most once, however often it is redelivered.
    ///   - accountUsage: `false` corrects the bucket and budgets only (`releaseCommand`).
    public static func settleCommand(_ settlement: Settlement, jobID: String? = nil, accountUsage: Bool = true) -> RedisCommand {
        var keys = [
            RedisKeys.rateLimit(tenant: settlement.tenant),
            RedisKeys.budget(tenant: settlement.tenant, period: settlement.day),
            RedisKeys.budget(tenant: settlement.tenant, period: settlement.month),
            RedisKeys.usage(tenant: settlement.tenant, day: settlement.day),
            RedisKeys.usageTenants(day: settlement.day),
        ]
        if let jobID { keys.append(RedisKeys.jobSettled(jobID)) }
        return .eval(
            settleScript,
            keys: keys,
            arguments: [
                RedisArgument(settlement.tpm), RedisArgument(settlement.tokenDelta), RedisArgument(settlement.costDeltaMicros),
                RedisArgument(settlement.model), RedisArgument(settlement.promptTokens), RedisArgument(settlement.completionTokens),
                RedisArgument(settlement.costMicros), RedisArgument(settlement.cacheHit ? 1 : 0), RedisArgument(settlement.tenant),
                RedisArgument(usageRetentionSeconds), RedisArgument(accountUsage ? 1 : 0),
            ])
    }

    /// The command that gives an admission's estimate back, for a request whose job will not run: the broker
    /// refused it, or an `Idempotency-Key` named a job that already existed. The token bucket and the budgets move
    /// back by the estimate; no usage is accounted.
    public static func releaseCommand(_ tenancy: JobTenancy) -> RedisCommand {
        let settlement = Settlement(
            tenant: tenancy.tenant, tpm: tenancy.tpm, tokenDelta: -tenancy.estimatedTokens, costDeltaMicros: -tenancy.estimatedCostMicros,
            day: tenancy.day, month: tenancy.month, model: "", promptTokens: 0, completionTokens: 0, costMicros: 0, cacheHit: false)
        return settleCommand(settlement, accountUsage: false)
    }

    /// One tenant's usage of one model on one day.
    public struct ModelUsage: Sendable, Hashable, Codable {
        public var model: String
        public var requests: Int
        public var promptTokens: Int
        public var completionTokens: Int
        public var costMicros: Int
        public var cacheHits: Int

        enum CodingKeys: String, CodingKey {
            case model, requests
            case promptTokens = "prompt_tokens"
            case completionTokens = "completion_tokens"
            case costMicros = "cost_micros"
            case cacheHits = "cache_hits"
        }
    }

    /// A tenant's usage on `day`, by model, and its budget spend on that day and month.
    public struct TenantUsage: Sendable, Hashable, Codable {
        public var tenant: String
        public var day: String
        public var models: [ModelUsage]
        public var dayTokens: Int
        public var monthTokens: Int
        public var monthCostMicros: Int

        enum CodingKeys: String, CodingKey {
            case tenant, day, models
            case dayTokens = "day_tokens"
            case monthTokens = "month_tokens"
            case monthCostMicros = "month_cost_micros"
        }
    }

    /// Usage on `day` of `tenants`, or of every tenant with usage that day.
    public func usage(day: String, month: String, tenants: [String]?) async throws(ResultStoreError) -> [TenantUsage] {
        let names: [String]
        if let tenants {
            names = tenants
        } else {
            names = try await storeCall { try await redis.command("SMEMBERS", RedisArgument(RedisKeys.usageTenants(day: day))) }
                .array?.compactMap(\.string).sorted() ?? []
        }
        var result: [TenantUsage] = []
        for tenant in names {
            let replies = try await storeCall {
                try await redis.pipeline([
                    ["HGETALL", RedisArgument(RedisKeys.usage(tenant: tenant, day: day))],
                    ["HGET", RedisArgument(RedisKeys.budget(tenant: tenant, period: day)), "tokens"],
                    ["HMGET", RedisArgument(RedisKeys.budget(tenant: tenant, period: month)), "tokens", "cost_micros"],
                ])
            }
            var models: [String: ModelUsage] = [:]
            let fields = replies[0].array ?? []
            var index = 0
            while index + 1 < fields.count {
                defer { index += 2 }
                guard let name = fields[index].string, let bar = name.lastIndex(of: "|") else { continue }
                let model = String(name[..<bar])
                let value = Int(fields[index + 1].integer ?? 0)
                var entry = models[model] ?? ModelUsage(model: model, requests: 0, promptTokens: 0, completionTokens: 0, costMicros: 0, cacheHits: 0)
                switch name[name.index(after: bar)...] {
                case "requests": entry.requests = value
                case "prompt_tokens": entry.promptTokens = value
                case "completion_tokens": entry.completionTokens = value
                case "cost_micros": entry.costMicros = value
                case "cache_hits": entry.cacheHits = value
                default: break
                }
                models[model] = entry
            }
            let month = replies[2].array ?? []
            result.append(TenantUsage(
                tenant: tenant, day: day, models: models.values.sorted { $0.model < $1.model },
                dayTokens: Int(replies[1].integer ?? 0),
                monthTokens: Int(month.first?.integer ?? 0),
                monthCostMicros: Int(month.count > 1 ? month[1].integer ?? 0 : 0)))
        }
        return result
    }

    /// KEYS: rate-limit hash, day budget hash, month budget hash; optionally the response cache entry, the usage
    /// hash of the day and the usage tenants of the day.
    /// ARGV: rpm, tpm, tokens, daily token budget (0: none), monthly token budget (0: none),
    /// monthly cost budget in micro-dollars (0: none), estimated cost in micro-dollars, budget TTL seconds, tenant,
    /// the number of commands to run on admission, then per command its argument count and arguments.
    /// Those commands (recording the job, `Charge.onAdmission`) run only when the request is admitted and not a
    /// cache hit; their keys are not declared, which a single Redis allows (the gateway does not use Redis Cluster).
    /// A cache hit is charged one request and nothing else, and once admitted it is accounted (requests and
    /// cache_hits of the entry's `provider/model`, as `settleScript` does).
    /// GCRA per bucket: each unit advances the theoretical arrival time (TAT) by 60000/limit ms, and a request is
    /// admitted while TAT − now stays within one period, which allows a burst of one full minute's limit.
    /// Returns {verdict, rpm, requests left, requests reset ms, tpm, tokens left, tokens reset ms, retry after ms,
    /// cache entry or false}.
    static let admitScript: RedisScript = """
    local time = redis.call('TIME')
    local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
    local period = 60000
    local rpm = tonumber(ARGV[1])
    local tpm = tonumber(ARGV[2])
    local tokens = tonumber(ARGV[3])
    local cost = tonumber(ARGV[7])
    local cached = false
    if KEYS[4] then cached = redis.call('GET', KEYS[4]) end
    if cached then
      tokens = 0
      cost = 0
    end
    local req_step = period / rpm
    local tok_step = period / tpm
    local state = redis.call('HMGET', KEYS[1], 'req', 'tok')
    local req_tat = math.max(tonumber(state[1] or '0') or 0, now)
    local tok_tat = math.max(tonumber(state[2] or '0') or 0, now)
    local function left(tat, step, limit)
      local n = math.floor((period - (tat - now)) / step)
      if n < 0 then n = 0 end
      if n > limit then n = limit end
      return n
    end
    local function reply(verdict, rt, tt, retry)
      return {verdict, rpm, left(rt, req_step, rpm), math.ceil(rt - now), tpm, left(tt, tok_step, tpm), math.ceil(tt - now), math.ceil(retry), cached}
    end
    local daily = tonumber(ARGV[4])
    local monthly = tonumber(ARGV[5])
    local monthly_cost = tonumber(ARGV[6])
    if daily > 0 and tonumber(redis.call('HGET', KEYS[2], 'tokens') or '0') >= daily then
      return reply('quota_daily', req_tat, tok_tat, 0)
    end
    local month = redis.call('HMGET', KEYS[3], 'tokens', 'cost_micros')
    if monthly > 0 and tonumber(month[1] or '0') >= monthly then
      return reply('quota_monthly', req_tat, tok_tat, 0)
    end
    if monthly_cost > 0 and tonumber(month[2] or '0') >= monthly_cost then
      return reply('quota_cost', req_tat, tok_tat, 0)
    end
    local new_req = req_tat + req_step
    if new_req - now > period then
      return reply('rate_requests', req_tat, tok_tat, new_req - period - now)
    end
    if tokens > tpm then
      return reply('too_large', req_tat, tok_tat, period)
    end
    local new_tok = tok_tat + tokens * tok_step
    if new_tok - now > period then
      return reply('rate_tokens', req_tat, tok_tat, new_tok - period - now)
    end
    redis.call('HSET', KEYS[1], 'req', tostring(new_req), 'tok', tostring(new_tok))
    redis.call('PEXPIRE', KEYS[1], math.ceil(math.max(new_req, new_tok) - now) + period)
    if tokens > 0 then
      redis.call('HINCRBY', KEYS[2], 'tokens', tokens)
      redis.call('HINCRBY', KEYS[3], 'tokens', tokens)
      redis.call('EXPIRE', KEYS[2], ARGV[8])
      redis.call('EXPIRE', KEYS[3], ARGV[8])
    end
    if cost > 0 then
      redis.call('HINCRBY', KEYS[3], 'cost_micros', cost)
      redis.call('EXPIRE', KEYS[3], ARGV[8])
    end
    if not cached then
      local at = 11
      for _ = 1, tonumber(ARGV[10] or '0') do
        local count = tonumber(ARGV[at])
        redis.call(unpack(ARGV, at + 1, at + count))
        at = at + count + 1
      end
    end
    if cached then
      local ok, entry = pcall(cjson.decode, cached)
      if ok and type(entry) == 'table' and type(entry.provider) == 'string' and type(entry.model) == 'string' then
        local model = entry.provider .. '/' .. entry.model
        redis.call('HINCRBY', KEYS[5], model .. '|requests', 1)
        redis.call('HINCRBY', KEYS[5], model .. '|cache_hits', 1)
        redis.call('EXPIRE', KEYS[5], ARGV[8])
        redis.call('SADD', KEYS[6], ARGV[9])
        redis.call('EXPIRE', KEYS[6], ARGV[8])
      end
    end
    return reply('ok', new_req, new_tok, 0)
    """

    /// KEYS: rate-limit hash, day budget hash, month budget hash, usage hash of the day, usage tenants of the day,
    /// and optionally the job's settled marker (set once; a second settlement of the job returns 0 and changes nothing).
    /// ARGV: tpm, token delta, cost delta micro-dollars, model, prompt tokens, completion tokens, cost micro-dollars,
    /// cache hit (0|1), tenant, TTL seconds, account usage (1|0: a release corrects the bucket and budgets only).
    /// Moves the tokens bucket by the delta (never below now: unused tokens are given back, overuse becomes debt),
    /// corrects the budgets and adds the usage.
    static let settleScript: RedisScript = """
    if KEYS[6] and not redis.call('SET', KEYS[6], '1', 'NX', 'EX', 604800) then return 0 end
    local time = redis.call('TIME')
    local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
    local tpm = tonumber(ARGV[1])
    local delta = tonumber(ARGV[2])
    if delta ~= 0 and tpm > 0 then
      local tat = math.max(tonumber(redis.call('HGET', KEYS[1], 'tok') or '0') or 0, now)
      tat = math.max(tat + delta * 60000 / tpm, now)
      redis.call('HSET', KEYS[1], 'tok', tostring(tat))
      local want = math.ceil(tat - now) + 60000
      if redis.call('PTTL', KEYS[1]) < want then redis.call('PEXPIRE', KEYS[1], want) end
    end
    if delta ~= 0 then
      redis.call('HINCRBY', KEYS[2], 'tokens', delta)
      redis.call('HINCRBY', KEYS[3], 'tokens', delta)
      redis.call('EXPIRE', KEYS[2], ARGV[10])
      redis.call('EXPIRE', KEYS[3], ARGV[10])
    end
    if tonumber(ARGV[3]) ~= 0 then
      redis.call('HINCRBY', KEYS[3], 'cost_micros', ARGV[3])
      redis.call('EXPIRE', KEYS[3], ARGV[10])
    end
    if ARGV[11] == '0' then return 1 end
    local model = ARGV[4]
    redis.call('HINCRBY', KEYS[4], model .. '|requests', 1)
    redis.call('HINCRBY', KEYS[4], model .. '|prompt_tokens', ARGV[5])
    redis.call('HINCRBY', KEYS[4], model .. '|completion_tokens', ARGV[6])
    redis.call('HINCRBY', KEYS[4], model .. '|cost_micros', ARGV[7])
    redis.call('HINCRBY', KEYS[4], model .. '|cache_hits', ARGV[8])
    redis.call('EXPIRE', KEYS[4], ARGV[10])
    redis.call('SADD', KEYS[5], ARGV[9])
    redis.call('EXPIRE', KEYS[5], ARGV[10])
    return 1
    """
}
