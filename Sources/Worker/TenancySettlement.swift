import Foundation
import Logging
import Protocol
import Redis
import ResultStore

extension WorkerService {
    /// The commands that write the response cache and reconcile the caller's admission estimate with the real
    /// usage. They go in the round trip that persists the outcome, just before it, so a client that got its answer
    /// finds both done; the settlement marker makes a rerun of the job never account twice. Best effort: their
    /// failure is logged and does not fail the job.
    func tenancyCommands(_ envelope: JobEnvelope, run: JobRunner.Run) -> [RedisCommand] {
        guard let tenancy = envelope.tenancy else { return [] }
        var commands: [RedisCommand] = []
        var usage = Usage(promptTokens: 0, completionTokens: 0)
        if case .completed(let completion) = run.outcome {
            usage = completion.usage ?? Usage(promptTokens: TokenEstimate.promptTokens(envelope.request), completionTokens: 0)
            if let key = tenancy.cacheKey, let ttl = tenancy.cacheTTL {
                let entry = CachedResponse(jobID: envelope.id, provider: run.provider, model: run.model, completion: completion, cachedAt: Date().timeIntervalSince1970)
                if let write = ResponseCache.writeCommand(key: key, entry, ttl: ttl) { commands.append(write) }
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
        commands.append(UsageStore.settleCommand(settlement, jobID: envelope.id))
        return commands
    }
}
