import Foundation
import Logging
import Protocol
import Redis
import Synchronization

/// The enabled webhook endpoints of API keys, as a worker needs them for every job a key submitted: read from the
/// key's hash once, then kept for `ttl`. `WebhookKeyStore.setEndpoints` announces every change on
/// `RedisKeys.webhookEndpointChanges`, which drops that key's entry here at once; a re-established subscription
/// (announcements may have been missed meanwhile) drops them all.
public final class WebhookEndpointCache: Sendable {
    private struct Entry {
        var urls: [String]
        var expires: ContinuousClock.Instant
    }

    private struct State {
        var entries: [String: Entry] = [:]
        /// Bumped by every drop, so that a read that raced with a change is not cached.
        var generation: UInt64 = 0
        /// How often the subscription was (re-)established.
        var subscriptions = 0
    }

    /// Beyond this many entries, expired ones are pruned when a key is added.
    private static let pruneAbove = 4_096

    private let keys: WebhookKeyStore
    private let ttl: Duration
    private let state = Mutex(State())
    private let subscriber: RedisSubscriber?

    /// - Parameter ttl: how long a key's endpoints are kept; zero reads them for every job.
    public init(keys: WebhookKeyStore, ttl: Duration, endpoint: RedisEndpointSettings, timeoutMs: Int, logger: Logger) {
        self.keys = keys
        self.ttl = ttl
        guard ttl > .zero else {
            subscriber = nil
            return
        }
        subscriber = RedisSubscriber(endpoint: endpoint, channels: [RedisKeys.webhookEndpointChanges], timeoutMs: timeoutMs, logger: logger)
        subscriber?.start(
            onMessage: { [weak self] _, payload in self?.drop(String(decoding: payload, as: UTF8.self)) },
            onSubscribed: { [weak self] in
                self?.drop(nil)
                self?.state.withLock { $0.subscriptions += 1 }
            })
    }

    /// The key's enabled endpoints.
    /// - Throws: `ResultStoreError` when they are not cached and Redis cannot be read.
    public func endpoints(forKey id: String) async throws(ResultStoreError) -> [String] {
        let now = ContinuousClock.now
        let (cached, generation) = state.withLock { state -> ([String]?, UInt64) in
            guard let entry = state.entries[id], entry.expires > now else { return (nil, state.generation) }
            return (entry.urls, state.generation)
        }
        if let cached { return cached }
        let urls = try await keys.endpoints(forKey: id).filter { $0.disabledAt == nil }.map(\.url)
        if ttl > .zero {
            state.withLock { state in
                guard state.generation == generation else { return }
                if state.entries.count >= Self.pruneAbove { state.entries = state.entries.filter { $0.value.expires > now } }
                state.entries[id] = Entry(urls: urls, expires: now + ttl)
            }
        }
        return urls
    }

    /// How often the change subscription was established (announcements are heard from the first time on).
    var subscriptions: Int { state.withLock { $0.subscriptions } }

    /// Drops the entry of key `id`, or every entry.
    func drop(_ id: String?) {
        state.withLock { state in
            if let id { state.entries[id] = nil } else { state.entries.removeAll() }
            state.generation += 1
        }
    }

    public func shutdown() {
        subscriber?.shutdown()
    }
}
