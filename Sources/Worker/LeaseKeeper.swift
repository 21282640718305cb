import Logging
import ResultStore
import Synchronization

/// Keeps the leases of the jobs running in this worker: every third of the lease, one round trip renews all of
/// them, instead of a timer and a task per job. A job's lease lives while its job is held here; once released
/// (the job ended, or its run was abandoned), it is no longer renewed and expires unless the finish deleted it.
final class LeaseKeeper: Sendable {
    private let store: ResultStore
    private let workerID: String
    let leaseMs: Int
    private let logger: Logger
    /// The jobs held, by id, with the logger of each run (its metadata names the job).
    private let held = Mutex<[String: Logger]>([:])

    init(store: ResultStore, workerID: String, leaseMs: Int, logger: Logger) {
        self.store = store
        self.workerID = workerID
        self.leaseMs = leaseMs
        self.logger = logger
    }

    /// Renews `id`'s lease from now on, until `release(_:)`.
    func hold(_ id: String, logger: Logger) {
        held.withLock { $0[id] = logger }
    }

    func release(_ id: String) {
        held.withLock { _ = $0.removeValue(forKey: id) }
    }

    /// The jobs held now.
    var count: Int { held.withLock { $0.count } }

    /// Renews the held leases every third of the lease until cancelled.
    func run() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(Int64(leaseMs / 3)))
            if Task.isCancelled { return }
            await renewAll()
        }
    }

    /// Renews every held lease once.
    func renewAll() async {
        let jobs = held.withLock { $0 }
        guard !jobs.isEmpty else { return }
        let ids = Array(jobs.keys)
        do {
            let renewed = try await store.renewLeases(ids: ids, worker: workerID, leaseMs: leaseMs)
            for (id, isRenewed) in zip(ids, renewed) where !isRenewed {
                // A job that ended meanwhile released its lease itself: only a job still held here lost it.
                guard held.withLock({ $0[id] != nil }) else { continue }
                (jobs[id] ?? logger).warning("Job lease lost to another worker")
            }
        } catch {
            logger.warning("Job leases not renewed", metadata: ["jobs": "\(ids.count)", "error": "\(error)"])
        }
    }
}
