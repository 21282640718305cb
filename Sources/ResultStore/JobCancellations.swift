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
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        /// Watched jobs that were cancelled.
        var cancelled: Set<String> = []
        var nextToken: UInt64 = 0
    }

    private let state = Mutex(State())
    private let store: ResultStore
    private let subscriber = Mutex<RedisSubscriber?>(nil)

    public init(store: ResultStore, endpoint: RedisEndpointSettings, timeoutMs: Int, logger: Logger) {
        self.store = store
        let subscriber = RedisSubscriber(
            endpoint: endpoint,
            channels: [RedisKeys.jobCancellations],
            timeoutMs: timeoutMs,
            logger: logger,
            onMessage: { [weak self] _, payload in self?.cancelled(String(decoding: payload, as: UTF8.self)) },
            onSubscribed: { [weak self] in
                guard let self else { return }
                Task { await self.recheckWatched() }
            })
        self.subscriber.withLock { $0 = subscriber }
    }

    /// Starts watching job `id`; call before claiming it.
    public func watch(_ id: String) -> Watch {
        state.withLock { state in
            state.nextToken += 1
            state.watched[id, default: []].insert(state.nextToken)
            return Watch(id: id, token: state.nextToken)
        }
    }

    /// Stops watching.
    public func end(_ watch: Watch) {
        let continuation = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.watched[watch.id]?.remove(watch.token)
            if state.watched[watch.id]?.isEmpty == true {
                state.watched[watch.id] = nil
                state.cancelled.remove(watch.id)
            }
            return state.waiters.removeValue(forKey: watch.token)
        }
        continuation?.resume()
    }

    /// Returns once the watched job is cancelled; returns early when the calling task is cancelled.
    public func waitUntilCancelled(_ watch: Watch) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.cancelled.contains(watch.id) || Task.isCancelled { return true }
                    state.waiters[watch.token] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let continuation = state.withLock { $0.waiters.removeValue(forKey: watch.token) }
            continuation?.resume()
        }
    }

    func cancelled(_ id: String) {
        let continuations = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard let tokens = state.watched[id] else { return [] }
            state.cancelled.insert(id)
            return tokens.compactMap { state.waiters.removeValue(forKey: $0) }
        }
        for continuation in continuations { continuation.resume() }
    }

    private func recheckWatched() async {
        let ids = state.withLock { Array($0.watched.keys) }
        for id in ids where (try? await store.status(id: id)) == .cancelled {
            cancelled(id)
        }
    }

    public func shutdown() {
        let subscriber = self.subscriber.withLock { value in
            defer { value = nil }
            return value
        }
        subscriber?.shutdown()
    }
}
