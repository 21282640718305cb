import Foundation
import Logging
import Protocol
import ResultStore

extension WorkerService {
    /// Writes the response cache and reconciles the caller's admission estimate with the real usage. Runs before
    /// the outcome is persisted (and the waiting replica notified), so a client that got its answer finds both
    /// done; the settlement marker makes a rerun of the job never account twice. Best effort: a Redis failure here
    /// is logged and does not fail the job.
    func settleTenancy(_ envelope: JobEnvelope, run: JobRunner.Run, logger: Logger) async {
        guard let tenancy = envelope.tenancy else { return }
        let redis = store.redis
        var usage = Usage(promptTokens: 0, completionTokens: 0)
        if case .completed(let completion) = run.outcome {
            usage = completion.usage ?? Usage(promptTokens: TokenEstimate.promptTokens(envelope.request), completionTokens: 0)
            if let key = tenancy.cacheKey, let ttl = tenancy.cacheTTL {
                let entry = CachedResponse(jobID: envelope.id, provider: run.provider, model: run.model, completion: completion, cachedAt: Date().timeIntervalSince1970)
                do {
                    try await ResponseCache(redis: redis).write(key: key, entry, ttl: ttl)
                } catch {
                    logger.warning("Response not cached", metadata: ["error": "\(error)"])
                }
            }
        }
        let cost = configuration.tenancy.prices.costMicros(
            provider: run.provider, model: run.model, promptTokens: usage.promptTokens, completionTokens: usage.completionTokens)
        let settlement = UsageStore.Settlement(
            tenant: tenancy.tenant, tpm: tenancy.tpm,
            tokenDelta: usage.promptTokens + usage.completionTokens - tenancy.estimatedTokens,
            costDeltaMicros: cost - tenancy.estimatedCostMicros,
            day: tenancy.day, month: tenancy.month, model: "\(run.provider)/\(run.model)",
            promptTokens: usage.promptTokens, completionTokens: usage.completionTokens, costMicros: cost, cacheHit: false)
        do {
            try await UsageStore(redis: redis).settle(settlement, jobID: envelope.id)
        } catch {
            logger.warning("Usage not reconciled", metadata: ["error": "\(error)", "tenant": "\(tenancy.tenant)"])
        }
    }
}
