import Foundation
import Logging
import NIOConcurrencyHelpers
import Protocol
import Redis
import ResultStore

/// Requests of this ingress replica that wait for their job to finish. Workers publish finished jobs on this
/// replica's channel (`JobNotification`: the id, and the finished record), which wakes the waiters without polling. After a lost subscription every waited-for job is
/// checked once in Redis, so a notification published while disconnected is not missed.
public final class JobWaiters: Sendable {
    /// A place in line for one job, taken before the job is enqueued so that a fast worker cannot finish unheard.
    public struct Registration: Sendable, Hashable {
        let id: String
        let token: UInt64
    }

    /// How a wait ended.
    public enum Outcome: Sendable {
        /// The job ended; with its record when the notification carried it.
        case finished(JobRecord?)
        /// The timeout passed, the client went away, or the registration was cancelled.
        case notFinished
    }

    private enum Entry {
        case registered
        case finishedEarly(JobRecord?)
        case waiting(CheckedContinuation<Outcome, Never>)
    }

    private struct State {
        var entries: [String: [UInt64: Entry]] = [:]
        var nextToken: UInt64 = 0
    }

    /// This replica's id; workers publish on `RedisKeys.notifyChannel(instance:)` of it.
    public let instanceID: String
    private let state = NIOLockedValueBox(State())
    private let store: ResultStore
    private let subscriber: RedisSubscriber

    public init(instanceID: String, store: ResultStore, endpoint: RedisEndpointSettings, timeoutMs: Int, logger: Logger) {
        self.instanceID = instanceID
        self.store = store
        subscriber = RedisSubscriber(
            endpoint: endpoint, channels: [RedisKeys.notifyChannel(instance: instanceID)], timeoutMs: timeoutMs, logger: logger)
        subscriber.start(
            onMessage: { [weak self] _, payload in
                let notification = JobNotification.parse(payload)
                self?.finished(notification.id, record: notification.record)
            },
            onSubscribed: { [weak self] in
                guard let self else { return }
                Task { await self.recheckAll() }
            }
        )
    }

    /// The number of requests registered or waiting.
    public var count: Int { state.withLockedValue { $0.entries.values.reduce(0) { $0 + $1.count } } }

    /// Starts listening for job `id`.
    public func register(_ id: String) -> Registration {
        state.withLockedValue { state in
            state.nextToken += 1
            state.entries[id, default: [:]][state.nextToken] = .registered
            return Registration(id: id, token: state.nextToken)
        }
    }

    /// Stops listening; used when the enqueue failed.
    public func cancel(_ registration: Registration) {
        resolve(registration, with: .notFinished)
    }

    /// Waits until the job finishes, the timeout passes, or the task is cancelled (the client went away).
    public func wait(for registration: Registration, timeout: Duration) async -> Outcome {
        await withTaskGroup(of: Outcome?.self) { group in
            group.addTask { await self.waitUntilResolved(registration) }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            var outcome = Outcome.notFinished
            while let result = await group.next() {
                guard let result else {
                    // The timer fired (or was cancelled): release the waiter, which then answers `notFinished`.
                    resolve(registration, with: .notFinished)
                    continue
                }
                outcome = result
                group.cancelAll()
                break
            }
            return outcome
        }
    }

    private func waitUntilResolved(_ registration: Registration) async -> Outcome {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
                let early: Outcome? = state.withLockedValue { state in
                    switch state.entries[registration.id]?[registration.token] {
                    case .registered:
                        state.entries[registration.id]![registration.token] = .waiting(continuation)
                        return nil
                    case .finishedEarly(let record):
                        remove(registration, from: &state)
                        return .finished(record)
                    case .waiting, nil:
                        return .notFinished
                    }
                }
                if let early { continuation.resume(returning: early) }
            }
        } onCancel: {
            resolve(registration, with: .notFinished)
        }
    }

    /// Wakes everyone waiting for job `id`.
    func finished(_ id: String, record: JobRecord?) {
        let continuations = state.withLockedValue { state -> [CheckedContinuation<Outcome, Never>] in
            guard let entries = state.entries[id] else { return [] }
            var continuations: [CheckedContinuation<Outcome, Never>] = []
            var remaining: [UInt64: Entry] = [:]
            for (token, entry) in entries {
                switch entry {
                case .waiting(let continuation): continuations.append(continuation)
                case .registered, .finishedEarly: remaining[token] = .finishedEarly(record)
                }
            }
            state.entries[id] = remaining.isEmpty ? nil : remaining
            return continuations
        }
        for continuation in continuations { continuation.resume(returning: .finished(record)) }
    }

    private func resolve(_ registration: Registration, with outcome: Outcome) {
        let continuation = state.withLockedValue { state -> CheckedContinuation<Outcome, Never>? in
            let entry = state.entries[registration.id]?[registration.token]
            remove(registration, from: &state)
            if case .waiting(let continuation) = entry { return continuation }
            return nil
        }
        continuation?.resume(returning: outcome)
    }

    private func remove(_ registration: Registration, from state: inout State) {
        state.entries[registration.id]?[registration.token] = nil
        if state.entries[registration.id]?.isEmpty == true { state.entries[registration.id] = nil }
    }

    private func recheckAll() async {
        let ids = state.withLockedValue { Array($0.entries.keys) }
        for id in ids {
            if let record = try? await store.record(id: id), record.status.isFinal {
                finished(id, record: record)
            }
        }
    }

    public func shutdown() {
        subscriber.shutdown()
    }
}
