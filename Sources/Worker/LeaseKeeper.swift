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
    /// The jobs held, by id.
    private let held = Mutex<[String: Hold]>([:])

    private struct Hold {
        /// The run's logger (its metadata names the job).
        var logger: Logger
        /// The run is storing its outcome, whose script deletes the lease: a renewal may find it gone.
        var finishing = false
    }

    init(store: ResultStore, workerID: String, leaseMs: Int, logger: Logger) {
        self.store = store
        self.workerID = workerID
        self.leaseMs = leaseMs
        self.logger = logger
    }

    /// Renews `id`'s lease from now on, until `release(_:)`.
    func hold(_ id: String, logger: Logger) {
        held.withLock { $0[id] = Hold(logger: logger) }
    }

    /// Marks `id`'s run as storing its outcome. Its lease is still renewed (the store may be retried through an
    /// outage), but a lease found gone or taken is then the finish's doing, or a duplicate the finish detects.
    func finishing(_ id: String) {
        held.withLock { $0[id]?.finishing = true }
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

    /// Renews every held lease once, and returns the jobs still running here whose lease was lost: taken by
    /// another worker, or lapsed (which lets another worker claim the job). Each is logged.
    @discardableResult
    func renewAll() async -> [String: ResultStore.LeaseRenewal] {
        let ids = held.withLock { Array($0.keys) }
        guard !ids.isEmpty else { return [:] }
        let renewals: [ResultStore.LeaseRenewal]
        do {
            renewals = try await store.renewLeases(ids: ids, worker: workerID, leaseMs: leaseMs)
        } catch {
            logger.warning("Job leases not renewed", metadata: ["jobs": "\(ids.count)", "error": "\(error)"])
            return [:]
        }
        var lost: [String: ResultStore.LeaseRenewal] = [:]
        for (id, renewal) in zip(ids, renewals) where renewal != .renewed {
            // A job that ended meanwhile released its lease itself; only a run still under way lost it.
            guard let hold = held.withLock({ $0[id] }), !hold.finishing else { continue }
            lost[id] = renewal
            switch renewal {
            case .heldElsewhere: hold.logger.warning("Job lease lost to another worker")
            case .lapsed: hold.logger.warning("Job lease lapsed before its renewal; another worker may claim the job")
            case .renewed: break
            }
        }
        return lost
    }
}
