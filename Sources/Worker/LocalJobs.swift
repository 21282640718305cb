import NIOConcurrencyHelpers

/// The jobs this worker runs, by id, whether their record or a `DispatchHint` started them, so that a job runs
/// here once: a hint for a job whose record runs is ignored, and a record whose job a hint started waits for that
/// run instead of starting another. Jobs that a hint ran to their end are remembered (a bounded number) until
/// their record arrives, which then needs no Redis round trip.
final class LocalJobs: Sendable {
    /// What to do with a record that just arrived.
    enum Arrival: Sendable {
        /// Nothing here runs its job: run it.
        case run
        /// A hint ran its job, which ended (`true`: its outcome is stored) or was interrupted (`false`).
        case ranFromHint(Bool)
    }

    private enum Entry {
        case record(count: Int)
        case hint(waiters: [CheckedContinuation<Arrival, Never>])
    }

    private struct State {
        var running: [String: Entry] = [:]
        /// Jobs a hint finished whose record has not arrived.
        var finishedEarly: Set<String> = []
        /// The ids put in `finishedEarly`, as a ring: the oldest is forgotten when a new one needs its place.
        var finishedRing: [String] = []
        var ringNext = 0
    }

    private let state = NIOLockedValueBox(State())
    private let rememberedLimit: Int

    /// - Parameter rememberedLimit: how many hint-finished jobs to remember until their record arrives.
    init(rememberedLimit: Int = 4_096) {
        self.rememberedLimit = max(1, rememberedLimit)
    }

    /// The jobs running now.
    var count: Int { state.withLockedValue { $0.running.count } }

    /// Takes job `id` for a hint run, unless it runs here already or a hint already finished it.
    func beginHint(_ id: String) -> Bool {
        state.withLockedValue { state in
            guard state.running[id] == nil, !state.finishedEarly.contains(id) else { return false }
            state.running[id] = .hint(waiters: [])
            return true
        }
    }

    /// Ends a hint run; a record waiting for it learns whether the job's outcome was stored.
    func endHint(_ id: String, finished: Bool) {
        let waiters: [CheckedContinuation<Arrival, Never>] = state.withLockedValue { state in
            guard case .hint(let waiters) = state.running.removeValue(forKey: id) else { return [] }
            if finished, waiters.isEmpty {
                state.finishedEarly.insert(id)
                if state.finishedRing.count < rememberedLimit {
                    state.finishedRing.append(id)
                } else {
                    state.finishedEarly.remove(state.finishedRing[state.ringNext])
                    state.finishedRing[state.ringNext] = id
                    state.ringNext = (state.ringNext + 1) % rememberedLimit
                }
            }
            return waiters
        }
        for waiter in waiters { waiter.resume(returning: .ranFromHint(finished)) }
    }

    /// Called for each record of a job: returns at once unless a hint run of the job is under way, which it waits
    /// for. After `.run`, call `endRecord(_:)` when the record's processing ends.
    func recordArrived(_ id: String) async -> Arrival {
        await withCheckedContinuation { (continuation: CheckedContinuation<Arrival, Never>) in
            let now: Arrival? = state.withLockedValue { state in
                if state.finishedEarly.remove(id) != nil { return .ranFromHint(true) }
                switch state.running[id] {
                case .hint(var waiters):
                    waiters.append(continuation)
                    state.running[id] = .hint(waiters: waiters)
                    return nil
                case .record(let count):
                    state.running[id] = .record(count: count + 1)
                    return .run
                case nil:
                    state.running[id] = .record(count: 1)
                    return .run
                }
            }
            if let now { continuation.resume(returning: now) }
        }
    }

    /// Ends the processing of a record that `recordArrived` answered with `.run`.
    func endRecord(_ id: String) {
        state.withLockedValue { state in
            guard case .record(let count) = state.running[id] else { return }
            state.running[id] = count > 1 ? .record(count: count - 1) : nil
        }
    }
}
