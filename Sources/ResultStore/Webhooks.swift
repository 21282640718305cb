import Foundation
import Protocol
import Redis

/// The Lua scripts of webhook deliveries. Keys and arguments are documented per script.
enum WebhookScripts {
    /// KEYS: due set. ARGV: now ms, lease ms, limit.
    /// Returns the ids of due deliveries, each pushed `lease` into the future: a dispatcher that dies holding them
    /// lets them fall due again.
    static let claim: RedisScript = """
    local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
    for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), id) end
    return ids
    """

    /// KEYS: delivery hash, due set, dead set.
    /// ARGV: delivery id, attempt JSON, outcome (`retry`|`delivered`|`dead`|`disabled`), next due ms, now ms.
    /// Returns the number of attempts so far, or 0 when the delivery is no longer pending.
    static let attempt: RedisScript = """
    if redis.call('HGET', KEYS[1], 'state') ~= 'pending' then return 0 end
    local log = redis.call('HGET', KEYS[1], 'log')
    if log and log ~= '' then log = log .. ',' .. ARGV[2] else log = ARGV[2] end
    local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
    redis.call('HSET', KEYS[1], 'log', log)
    if ARGV[3] == 'retry' then
      redis.call('HSET', KEYS[1], 'next_at', ARGV[4])
      redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
    else
      redis.call('HSET', KEYS[1], 'state', ARGV[3])
      redis.call('HDEL', KEYS[1], 'next_at')
      redis.call('ZREM', KEYS[2], ARGV[1])
      if ARGV[3] == 'dead' then redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1]) end
    end
    return attempts
    """

    /// KEYS: delivery hash, due set, dead set. ARGV: delivery id, now ms, ttl seconds.
    /// Returns 1 when scheduled again, 0 when it is still pending, -1 when there is no such delivery.
    static let redeliver: RedisScript = """
    local state = redis.call('HGET', KEYS[1], 'state')
    if not state then return -1 end
    if state == 'pending' then return 0 end
    redis.call('HSET', KEYS[1], 'state', 'pending', 'attempts', '0', 'next_at', ARGV[2])
    redis.call('EXPIRE', KEYS[1], ARGV[3])
    redis.call('ZREM', KEYS[3], ARGV[1])
    redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
    return 1
    """
}

/// A delivery a dispatcher claimed: what to send, and how many attempts came before.
public struct ClaimedWebhook: Sendable {
    public var plan: WebhookDeliveryPlan
    public var previousAttempts: Int
}

/// What became of one delivery attempt.
public enum WebhookAttemptOutcome: String, Sendable {
    /// Try again at the given time.
    case retry
    case delivered
    /// Every attempt failed: dead-lettered, visible through the admin API.
    case dead
    /// The receiver answered 410 Gone.
    case disabled
}

extension ResultStore {
    /// The finish script's arguments for `deliveries`.
    static func webhookArguments(_ deliveries: [WebhookDeliveryPlan], dueAt now: Double, retention: Int) -> [RedisArgument] {
        var arguments: [RedisArgument] = [RedisArgument(Int(now * 1000)), RedisArgument(retention), RedisArgument(deliveries.count)]
        for plan in deliveries {
            arguments += [
                RedisArgument(plan.id), RedisArgument(plan.messageID), RedisArgument(plan.jobID), RedisArgument(plan.url),
                RedisArgument(plan.keyID ?? ""), RedisArgument(plan.registered ? "1" : "0"), RedisArgument(plan.body),
            ]
        }
        return arguments
    }

    private static let deliveryFields = ["id", "message_id", "job_id", "url", "key_id", "registered", "body", "state", "attempts", "log", "next_at"]

    private func deliveryFields(ids: [String]) async throws(ResultStoreError) -> [[String: [UInt8]]?] {
        guard !ids.isEmpty else { return [] }
        let replies = try await storeCall {
            try await redis.pipeline(ids.map { ["HMGET", RedisArgument(RedisKeys.webhookDelivery($0))] + Self.deliveryFields.map { RedisArgument($0) } })
        }
        return replies.map { reply in
            guard let values = reply.array, values.count == Self.deliveryFields.count, values[0].bytes != nil else { return nil }
            var fields: [String: [UInt8]] = [:]
            for (name, value) in zip(Self.deliveryFields, values) { if let bytes = value.bytes { fields[name] = bytes } }
            return fields
        }
    }

    private static func status(_ fields: [String: [UInt8]]) -> WebhookDeliveryStatus {
        func text(_ name: String) -> String { fields[name].map { String(decoding: $0, as: UTF8.self) } ?? "" }
        let attempts = (try? JSONDecoder().decode([WebhookAttempt].self, from: Data("[\(text("log"))]".utf8))) ?? []
        let state = text("state")
        return WebhookDeliveryStatus(
            id: text("id"), messageID: text("message_id"), jobID: text("job_id"), url: text("url"), state: state,
            nextAttemptAt: state == "pending" ? Double(text("next_at")).map { $0 / 1000 } : nil,
            attempts: attempts)
    }

    /// The deliveries with these ids, skipping any that expired.
    public func webhookDeliveries(ids: [String]) async throws(ResultStoreError) -> [WebhookDeliveryStatus] {
        try await deliveryFields(ids: ids).compactMap { $0.map(Self.status) }
    }

    /// Claims up to `limit` due deliveries for `leaseMs`.
    public func claimDueWebhooks(now: Double, leaseMs: Int, limit: Int) async throws(ResultStoreError) -> [ClaimedWebhook] {
        let reply = try await storeCall {
            try await redis.eval(WebhookScripts.claim, keys: [RedisKeys.webhooksDue], arguments: [
                RedisArgument(Int(now * 1000)), RedisArgument(leaseMs), RedisArgument(limit),
            ])
        }
        let ids = reply.array?.compactMap(\.string) ?? []
        var claimed: [ClaimedWebhook] = []
        var vanished: [String] = []
        for (id, fields) in zip(ids, try await deliveryFields(ids: ids)) {
            guard let fields, fields["state"].map({ String(decoding: $0, as: UTF8.self) }) == "pending" else {
                vanished.append(id)
                continue
            }
            func text(_ name: String) -> String { fields[name].map { String(decoding: $0, as: UTF8.self) } ?? "" }
            let keyID = text("key_id")
            claimed.append(ClaimedWebhook(
                plan: WebhookDeliveryPlan(
                    id: id, messageID: text("message_id"), jobID: text("job_id"), url: text("url"),
                    keyID: keyID.isEmpty ? nil : keyID, registered: text("registered") == "1", body: fields["body"] ?? []),
                previousAttempts: Int(text("attempts")) ?? 0))
        }
        if !vanished.isEmpty {
            // Expired or no longer pending: nothing to send.
            _ = try await storeCall { try await redis.command(["ZREM", RedisArgument(RedisKeys.webhooksDue)] + vanished.map { RedisArgument($0) }) }
        }
        return claimed
    }

    /// Appends an attempt to the delivery's log and schedules what follows.
    /// - Parameter nextAt: seconds since 1970 of the next attempt, for `.retry`.
    public func recordWebhookAttempt(id: String, attempt: WebhookAttempt, outcome: WebhookAttemptOutcome, nextAt: Double?, now: Double) async throws(ResultStoreError) {
        let json = (try? JSONEncoder().encode(attempt)).map { Array($0) } ?? Array("{}".utf8)
        _ = try await storeCall {
            try await redis.eval(WebhookScripts.attempt, keys: [RedisKeys.webhookDelivery(id), RedisKeys.webhooksDue, RedisKeys.webhooksDead], arguments: [
                RedisArgument(id), RedisArgument(json), RedisArgument(outcome.rawValue),
                RedisArgument(Int((nextAt ?? now) * 1000)), RedisArgument(Int(now * 1000)),
            ])
        }
    }

    /// Dead-lettered deliveries, the most recent first.
    public func deadWebhooks(limit: Int) async throws(ResultStoreError) -> [WebhookDeliveryStatus] {
        let ids = try await storeCall {
            try await redis.command("ZREVRANGE", RedisArgument(RedisKeys.webhooksDead), 0, RedisArgument(max(0, limit - 1)))
        }.array?.compactMap(\.string) ?? []
        return try await webhookDeliveries(ids: ids)
    }

    /// Schedules a delivery that is not pending (dead, disabled or delivered) again, with a fresh attempt budget.
    /// - Returns: `true` when scheduled, `false` when it is still pending, `nil` for an unknown id.
    public func redeliverWebhook(id: String, now: Double, retention: Int) async throws(ResultStoreError) -> Bool? {
        let reply = try await storeCall {
            try await redis.eval(WebhookScripts.redeliver, keys: [RedisKeys.webhookDelivery(id), RedisKeys.webhooksDue, RedisKeys.webhooksDead], arguments: [
                RedisArgument(id), RedisArgument(Int(now * 1000)), RedisArgument(max(retention, resultTTL)),
            ])
        }
        switch reply.integer {
        case 1: return true
        case 0: return false
        default: return nil
        }
    }
}

/// A key's webhook signing secret and default endpoints, kept in the key's hash (`RedisKeys.apiKey`) as the fields
/// `webhook_secret` (`whsec_…`) and `webhook_endpoints` (`[WebhookEndpoint]` JSON). The signing secret must be
/// stored as it is (HMAC needs it), unlike the API key's own secret.
public struct WebhookKeyStore: Sendable {
    public let redis: RedisClient

    public init(redis: RedisClient) {
        self.redis = redis
    }

    /// The key's signing secret, or `nil` when the key has none (or does not exist).
    public func secret(forKey id: String) async throws(ResultStoreError) -> WebhookSecret? {
        let reply = try await storeCall { try await redis.command("HGET", RedisArgument(RedisKeys.apiKey(id)), "webhook_secret") }
        return reply.string.flatMap(WebhookSecret.init(parsing:))
    }

    /// Stores a new secret for an existing key and returns it; `nil` when the key does not exist.
    public func rotateSecret(forKey id: String) async throws(ResultStoreError) -> WebhookSecret? {
        let secret = WebhookSecret.generate()
        let reply = try await storeCall {
            try await redis.eval("""
            if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
            redis.call('HSET', KEYS[1], 'webhook_secret', ARGV[1])
            return 1
            """, keys: [RedisKeys.apiKey(id)], arguments: [RedisArgument(secret.text)])
        }
        return reply.integer == 1 ? secret : nil
    }

    /// The key's registered endpoints, disabled ones included.
    public func endpoints(forKey id: String) async throws(ResultStoreError) -> [WebhookEndpoint] {
        let reply = try await storeCall { try await redis.command("HGET", RedisArgument(RedisKeys.apiKey(id)), "webhook_endpoints") }
        guard let bytes = reply.bytes else { return [] }
        return (try? JSONDecoder().decode([WebhookEndpoint].self, from: Data(bytes))) ?? []
    }

    /// Replaces the key's endpoints, and announces the change to the workers' caches (`WebhookEndpointCache`);
    /// `false` when the key does not exist.
    public func setEndpoints(_ endpoints: [WebhookEndpoint], forKey id: String) async throws(ResultStoreError) -> Bool {
        let json = (try? JSONEncoder().encode(endpoints)).map { Array($0) } ?? Array("[]".utf8)
        let reply = try await storeCall {
            try await redis.eval("""
            if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
            redis.call('HSET', KEYS[1], 'webhook_endpoints', ARGV[1])
            redis.call('PUBLISH', ARGV[2], ARGV[3])
            return 1
            """, keys: [RedisKeys.apiKey(id)], arguments: [
                RedisArgument(json), RedisArgument(RedisKeys.webhookEndpointChanges), RedisArgument(id),
            ])
        }
        return reply.integer == 1
    }

    /// Marks the endpoint with `url` disabled (its receiver answered 410 Gone).
    public func disableEndpoint(url: String, forKey id: String, now: Double) async throws(ResultStoreError) {
        var endpoints = try await endpoints(forKey: id)
        guard let index = endpoints.firstIndex(where: { $0.url == url && $0.disabledAt == nil }) else { return }
        endpoints[index].disabledAt = now
        _ = try await setEndpoints(endpoints, forKey: id)
    }
}
