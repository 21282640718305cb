import Foundation
import Logging
import Protocol
import Redis
import Synchronization

/// Tells a worker's running jobs that they were cancelled, so that they abort their upstream call: a subscription to
/// `RedisKeys.jobCancellations`, plus a status check when a job starts listening (a cancellation published just
/// before is not missed) and after a lost subscription.
public final class JobCancellations: Sendable {
    private struct State {
        var waiters: [String: [UInt64: CheckedContinuation<Void, Never>]] = [:]
        /// Jobs cancelled before (or while) their waiter was installed.
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
            onReconnect: { [weak self] in
                guard let self else { return }
                Task { await self.recheckAll() }
            })
        self.subscriber.withLock { $0 = subscriber }
    }

    /// Returns once job `id` is cancelled; returns early when the calling task is cancelled.
    public func waitUntilCancelled(_ id: String) async {
        let token = state.withLock { state -> UInt64 in
            state.nextToken += 1
            return state.nextToken
        }
        Task { await self.recheck(id) }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.cancelled.contains(id) || Task.isCancelled { return true }
                    state.waiters[id, default: [:]][token] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let continuation = state.withLock { state -> CheckedContinuation<Void, Never>? in
                let value = state.waiters[id]?.removeValue(forKey: token)
                if state.waiters[id]?.isEmpty == true { state.waiters[id] = nil }
                return value
            }
            continuation?.resume()
        }
        state.withLock { state in
            state.waiters[id]?[token] = nil
            if state.waiters[id]?.isEmpty == true {
                state.waiters[id] = nil
                state.cancelled.remove(id)
            }
        }
    }

    func cancelled(_ id: String) {
        let continuations = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard let waiting = state.waiters.removeValue(forKey: id) else { return [] }
            state.cancelled.insert(id)
            return Array(waiting.values)
        }
        for continuation in continuations { continuation.resume() }
    }

    private func recheck(_ id: String) async {
        if (try? await store.status(id: id)) == .cancelled {
            state.withLock { _ = $0.cancelled.insert(id) }
            cancelled(id)
        }
    }

    private func recheckAll() async {
        let ids = state.withLock { Array($0.waiters.keys) }
        for id in ids { await recheck(id) }
    }

    public func shutdown() {
        let subscriber = self.subscriber.withLock { value in
            defer { value = nil }
            return value
        }
        subscriber?.shutdown()
    }
}
