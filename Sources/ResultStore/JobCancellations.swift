import Foundation
import Logging
import Protocol
import Redis
import Synchronization

/// Tells a worker's running jobs that they were cancelled, so that they abort their upstream call: a subscription to
/// `RedisKeys.jobCancellations`. A worker watches a job before it claims it: a cancellation before the claim makes
/// the claim fail (the job's status is `cancelled`), one after it is published while the job is watched, and one
/// published while the subscription was down is found by a status check of the watched jobs once it is back.
public final class JobCancellations: Sendable {
    /// A job being watched; end it with `end(_:)`.
    public struct Watch: Sendable, Hashable {
        public let id: String
        let token: UInt64
    }

    private struct State {
        /// Watchers per job id.
        var watched: [String: Set<UInt64>] = [:]
        /// What each watcher runs once its job is cancelled (`onCancel(_:_:)`).
        var actions: [UInt64: @Sendable () -> Void] = [:]
        /// Watched jobs that were cancelled.
        var cancelled: Set<String> = []
        var nextToken: UInt64 = 0
    }

    private let state = Mutex(State())
    private let store: ResultStore
    private let subscriber: RedisSubscriber

    public init(store: ResultStore, endpoint: RedisEndpointSettings, timeoutMs: Int, logger: Logger) {
        self.store = store
        subscriber = RedisSubscriber(endpoint: endpoint, channels: [RedisKeys.jobCancellations], timeoutMs: timeoutMs, logger: logger)
        subscriber.start(
            onMessage: { [weak self] _, payload in self?.cancelled(String(decoding: payload, as: UTF8.self)) },
            onSubscribed: { [weak self] in
                guard let self else { return }
                Task { await self.recheckWatched() }
            })
    }

    /// Starts watching job `id`; call before claiming it.
    public func watch(_ id: String) -> Watch {
        state.withLock { state in
            state.nextToken += 1
            state.watched[id, default: []].insert(state.nextToken)
            return Watch(id: id, token: state.nextToken)
        }
    }

    /// Stops watching; the watch's action (`onCancel(_:_:)`) no longer runs.
    public func end(_ watch: Watch) {
        state.withLock { state in
            state.watched[watch.id]?.remove(watch.token)
            if state.watched[watch.id]?.isEmpty == true {
                state.watched[watch.id] = nil
                state.cancelled.remove(watch.id)
            }
            state.actions[watch.token] = nil
        }
    }

    /// Runs `action` once when the watched job is cancelled: at once when it already was, else when the
    /// cancellation arrives, unless the watch ended first. A watch has one action; a second replaces the first.
    public func onCancel(_ watch: Watch, _ action: @escaping @Sendable () -> Void) {
        let now = state.withLock { state -> Bool in
            if state.cancelled.contains(watch.id) { return true }
            guard state.watched[watch.id]?.contains(watch.token) == true else { return false }
            state.actions[watch.token] = action
            return false
        }
        if now { action() }
    }

    /// Whether the watched job was cancelled while watched.
    public func isCancelled(_ watch: Watch) -> Bool {
        state.withLock { $0.cancelled.contains(watch.id) }
    }

    func cancelled(_ id: String) {
        let actions = state.withLock { state -> [@Sendable () -> Void] in
            guard let tokens = state.watched[id] else { return [] }
            state.cancelled.insert(id)
            return tokens.compactMap { state.actions.removeValue(forKey: $0) }
        }
        for action in actions { action() }
    }

    private func recheckWatched() async {
        let ids = state.withLock { Array($0.watched.keys) }
        for id in ids where (try? await store.status(id: id)) == .cancelled {
            cancelled(id)
        }
    }

    public func shutdown() {
        subscriber.shutdown()
    }
}
