import HTTPTypes

/// The gateway's own header names, checked and lower-cased once rather than on every response.
extension HTTPField.Name {
    static let gatewayJobID = Self("x-gateway-job-id")!
    static let idempotencyKey = Self("Idempotency-Key")!
    static let idempotentReplayed = Self("Idempotent-Replayed")!
    static let cache = Self("x-cache")!
    static let cacheTTL = Self("x-cache-ttl")!
    static let accelBuffering = Self("x-accel-buffering")!
    static let lastEventID = Self("last-event-id")!
    static let rateLimitLimitRequests = Self("x-ratelimit-limit-requests")!
    static let rateLimitRemainingRequests = Self("x-ratelimit-remaining-requests")!
    static let rateLimitResetRequests = Self("x-ratelimit-reset-requests")!
    static let rateLimitLimitTokens = Self("x-ratelimit-limit-tokens")!
    static let rateLimitRemainingTokens = Self("x-ratelimit-remaining-tokens")!
    static let rateLimitResetTokens = Self("x-ratelimit-reset-tokens")!
}
