import Foundation
import Protocol
import ResultStore

/// Where webhook signing secrets and a key's default endpoints come from.
public protocol WebhookSecrets: Sendable {
    /// The secret that signs the webhooks of jobs submitted with key `id`; `id == nil` is a job without a key.
    func secret(forKey id: String?) async throws -> WebhookSecret?
    /// The key's enabled default endpoints.
    func endpoints(forKey id: String) async throws -> [String]
    /// Disables a registered endpoint whose receiver answered 410 Gone.
    func disableEndpoint(url: String, forKey id: String) async throws
}

/// Secrets and endpoints from the API key records in Redis, with the configured fallback secret
/// (`LLMGW_WEBHOOK_SECRET`) for jobs submitted without a key.
public struct KeyStoreWebhookSecrets: WebhookSecrets {
    let keys: WebhookKeyStore
    let fallback: WebhookSecret?
    /// Keeps each key's endpoints between its jobs (one with a zero TTL reads them for every job).
    let endpointCache: WebhookEndpointCache

    public init(keys: WebhookKeyStore, fallback: WebhookSecret?, endpointCache: WebhookEndpointCache) {
        self.keys = keys
        self.fallback = fallback
        self.endpointCache = endpointCache
    }

    public func secret(forKey id: String?) async throws -> WebhookSecret? {
        guard let id else { return fallback }
        return try await keys.secret(forKey: id) ?? fallback
    }

    public func endpoints(forKey id: String) async throws -> [String] {
        try await endpointCache.endpoints(forKey: id)
    }

    public func disableEndpoint(url: String, forKey id: String) async throws {
        try await keys.disableEndpoint(url: url, forKey: id, now: Date().timeIntervalSince1970)
    }
}

/// Decides, when a job ends, which webhook deliveries it gets: its own `webhook` and its key's default endpoints,
/// each with the thin event body that every attempt will send.
public struct WebhookPlanner: Sendable {
    let secrets: any WebhookSecrets

    public init(secrets: any WebhookSecrets) {
        self.secrets = secrets
    }

    /// The enabled default endpoints of the key that submitted `envelope` (none without a key).
    /// - Throws: when they cannot be read (Redis unavailable); the caller retries, as for `finish`.
    public func registeredEndpoints(_ envelope: JobEnvelope) async throws -> [String] {
        guard let keyID = envelope.keyID else { return [] }
        return try await secrets.endpoints(forKey: keyID)
    }

    /// The deliveries for `envelope` ending with `outcome`: to its own `webhook`, and to `registered`, the key's
    /// endpoints (`registeredEndpoints(_:)`).
    public func plan(_ envelope: JobEnvelope, registered: [String], outcome: JobOutcome, provider: String, model: String, now: Double) -> [WebhookDeliveryPlan] {
        // Most jobs have no receiver: skip building (and measuring) an event that nobody gets.
        guard envelope.webhook != nil || !registered.isEmpty else { return [] }
        let event: WebhookEvent
        switch outcome {
        case .completed(let completion):
            event = .make(jobID: envelope.id, provider: provider, model: model, result: completion, error: nil, at: now)
        case .failed(let failure):
            event = .make(jobID: envelope.id, provider: provider, model: model, result: nil, error: failure, at: now)
        }
        return WebhookDeliveryPlan.plans(for: envelope, registered: registered, event: event)
    }
}
