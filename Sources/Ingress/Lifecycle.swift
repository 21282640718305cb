import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Protocol
import ResultStore

/// What a submission asks of the job's life beyond the request itself: a webhook, the lane, a start deadline, and
/// an idempotency key.
public struct JobOptions: Sendable {
    public var webhook: WebhookTarget?
    public var lane: JobLane = .interactive
    /// Seconds since 1970 after which the job must not start.
    public var deadline: Double?
    /// The namespace and SHA-256 of the `Idempotency-Key` header.
    public var idempotency: (namespace: String, keyHash: String)?
    /// The API key that submitted the job, whose secret signs its webhooks.
    public var keyID: String?
    /// The id to create the job with (set once the idempotency key is claimed for it).
    var jobID: String?

    public init() {}

    func apply(to envelope: inout JobEnvelope) {
        envelope.webhook = webhook
        envelope.lane = lane == .batch ? .batch : nil
        envelope.deadline = deadline
        envelope.keyID = keyID
    }
}

extension JobService {
    /// The lifecycle options of a submission, validated.
    /// - Parameter synchronous: the caller waits for the answer (`/gateway/query`); the batch lane is refused there.
    /// - Throws: `GatewayError` 400 for a bad webhook URL, priority, deadline or idempotency key.
    func options(for submission: JobSubmission, headers: HTTPFields, synchronous: Bool) async throws(GatewayError) -> JobOptions {
        var options = JobOptions()
        let tenant = TenancyRequestState.current?.tenant
        options.keyID = tenant?.keyID
        if let webhook = submission.webhook {
            let components = URLComponents(string: webhook.url)
            let host = components?.host?.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
            if let refusal = configuration.lifecycle.webhookPolicy.refusal(scheme: components?.scheme, host: host) {
                throw .invalidRequest("The webhook URL is not allowed: \(refusal).", param: "webhook.url", code: "invalid_webhook_url")
            }
            if try await signingSecretMissing(keyID: options.keyID) {
                throw .invalidRequest(
                    "Webhooks need a signing secret: rotate the API key's webhook secret, or set LLMGW_WEBHOOK_SECRET for requests without a key.",
                    param: "webhook", code: "webhook_secret_missing")
            }
            options.webhook = webhook
        }
        if let priority = submission.priority {
            if priority == .batch, synchronous || submission.stream == true {
                throw .invalidRequest("\"priority\": \"batch\" is for asynchronous jobs (POST /gateway/jobs without streaming).", param: "priority")
            }
            options.lane = priority
        }
        if submission.deadline != nil, submission.ttlSeconds != nil {
            throw .invalidRequest("Send either 'deadline' or 'ttl_seconds', not both.", param: "deadline")
        }
        let now = Date().timeIntervalSince1970
        if let ttl = submission.ttlSeconds {
            guard ttl > 0, ttl.isFinite else { throw .invalidRequest("'ttl_seconds' must be a positive number.", param: "ttl_seconds") }
            options.deadline = now + ttl
        }
        if let deadline = submission.deadline {
            guard deadline > now else { throw .invalidRequest("'deadline' is in the past.", param: "deadline") }
            options.deadline = deadline
        }
        if let key = headers[.idempotencyKey] {
            guard (1...255).contains(key.count) else {
                throw .invalidRequest("'Idempotency-Key' must be 1 to 255 characters.", param: "Idempotency-Key", code: "invalid_idempotency_key")
            }
            let namespace = tenant.map { $0.id == Tenant.anonymous.id ? "global" : $0.id } ?? "global"
            options.idempotency = (namespace, SHA256.hash(data: Array(key.utf8)).hexString)
        }
        return options
    }

    private func signingSecretMissing(keyID: String?) async throws(GatewayError) -> Bool {
        if configuration.lifecycle.webhookFallbackSecret != nil { return false }
        guard let keyID else { return true }
        do {
            return try await WebhookKeyStore(redis: store.redis).secret(forKey: keyID) == nil
        } catch {
            throw .unavailable("The key store is unavailable; retry shortly.", code: "store_unavailable")
        }
    }

    /// Creates the job unless the idempotency key already names one, which is then returned instead. Concurrent
    /// identical submissions race for the key in one atomic `SET NX`; the losers read the winner's job.
    func submitIdempotently(_ job: NormalizedJob, wait: Bool, stream: Bool, options: JobOptions) async throws(GatewayError) -> Accepted {
        guard let idempotency = options.idempotency else { return try await submit(job, wait: wait, stream: stream, options: options) }
        let id = JobID.make(milliseconds: UInt64(Date().timeIntervalSince1970 * 1000))
        // The request's model, messages, parameters and fallbacks (what the response cache keys on).
        let claim = IdempotencyClaim(jobID: id, fingerprint: ResponseCacheKey.digest(job))
        let holder: IdempotencyClaim?
        do {
            holder = try await store.claimIdempotency(
                namespace: idempotency.namespace, keyHash: idempotency.keyHash, claim: claim, ttl: configuration.lifecycle.idempotencyTTL)
        } catch {
            throw .unavailable("The result store is unavailable; the job was not accepted. Retry shortly.", code: "store_unavailable")
        }
        guard let holder else {
            var claimed = options
            claimed.jobID = id
            do {
                return try await submit(job, wait: wait, stream: stream, options: claimed)
            } catch {
                try? await store.releaseIdempotency(namespace: idempotency.namespace, keyHash: idempotency.keyHash, claim: claim)
                throw error
            }
        }
        guard let fingerprint = claim.fingerprint, holder.matches(fingerprint) else {
            await releaseAdmission()
            throw GatewayError(
                status: 422, message: "This Idempotency-Key was already used with a different request; use a new key for a new request.",
                type: "invalid_request_error", param: "Idempotency-Key", code: "idempotency_key_reused")
        }
        // The winner records its job right after taking the key; wait briefly for that record. A replay runs
        // nothing, so what its admission charged is given back.
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            if let record = try await record(id: holder.jobID) {
                await releaseAdmission()
                return Accepted(record: record, registration: nil, replayed: true)
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        await releaseAdmission()
        throw GatewayError(
            status: 409, message: "A request with the same Idempotency-Key is still being accepted, or was not; retry shortly.",
            type: "invalid_request_error", param: "Idempotency-Key", code: "idempotency_key_in_use")
    }

    /// Waits for a replayed job (whose notifications go to the replica that created it) by re-reading its record.
    func waitForReplay(_ id: String, timeout: Double) async throws(GatewayError) -> JobRecord? {
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
        var interval = 20
        while true {
            if let record = try await record(id: id), record.status.isFinal { return record }
            guard ContinuousClock.now < deadline, !Task.isCancelled else { return nil }
            try? await Task.sleep(for: .milliseconds(interval))
            interval = min(interval * 2, 250)
        }
    }
}

/// `POST /gateway/jobs/{id}/cancel` and the admin routes of the job lifecycle and webhooks, all guarded by
/// `LLMGW_ADMIN_TOKEN` except cancel (which follows the job routes' authentication).
struct LifecycleRoutes: Sendable {
    let jobs: JobService
    var configuration: GatewayConfiguration { jobs.configuration }
    var store: ResultStore { jobs.store }

    func register(on router: Router<BasicRequestContext>) {
        router.post("/gateway/jobs/{id}/cancel") { _, context in try await cancel(context.parameters.get("id") ?? "") }
        router.post("/admin/jobs/{id}/retry") { request, context in
            try AdminAuthorization.check(request, token: configuration.tenancy.adminToken)
            return try await retry(context.parameters.get("id") ?? "")
        }
        router.get("/admin/webhooks/dead") { request, _ in
            try AdminAuthorization.check(request, token: configuration.tenancy.adminToken)
            let limit = request.uri.queryParameters["limit"].flatMap { Int($0) } ?? 100
            let dead = try await call { try await store.deadWebhooks(limit: min(max(limit, 1), 1_000)) }
            return HTTPSupport.json(DeliveryList(data: dead))
        }
        router.post("/admin/webhooks/{id}/redeliver") { request, context in
            try AdminAuthorization.check(request, token: configuration.tenancy.adminToken)
            let id = context.parameters.get("id") ?? ""
            let retention = Self.retention(configuration.lifecycle.webhookSchedule)
            switch try await call({ try await store.redeliverWebhook(id: id, now: Date().timeIntervalSince1970, retention: retention) }) {
            case true?:
                let delivery = try await call { try await store.webhookDeliveries(ids: [id]) }.first
                return HTTPSupport.json(delivery, status: .accepted)
            case false?:
                throw GatewayError(status: 409, message: "The delivery '\(id)' is still pending.", type: "invalid_request_error", code: "delivery_pending")
            case nil:
                throw GatewayError.notFound("No webhook delivery with id '\(id)'.", code: "delivery_not_found")
            }
        }
        router.post("/admin/keys/{id}/webhook-secret/rotate") { request, context in
            try AdminAuthorization.check(request, token: configuration.tenancy.adminToken)
            let id = context.parameters.get("id") ?? ""
            guard APIKey.isValidID(id), let secret = try await call({ try await WebhookKeyStore(redis: store.redis).rotateSecret(forKey: id) }) else {
                throw GatewayError.notFound("No API key with id '\(id)'.", code: "key_not_found")
            }
            return HTTPSupport.json(["id": id, "webhook_secret": secret.text])
        }
        router.get("/admin/keys/{id}/webhook-endpoints") { request, context in
            try AdminAuthorization.check(request, token: configuration.tenancy.adminToken)
            let id = context.parameters.get("id") ?? ""
            let endpoints = try await call { try await WebhookKeyStore(redis: store.redis).endpoints(forKey: id) }
            return HTTPSupport.json(EndpointList(data: endpoints))
        }
        router.put("/admin/keys/{id}/webhook-endpoints") { request, context in
            try AdminAuthorization.check(request, token: configuration.tenancy.adminToken)
            let id = context.parameters.get("id") ?? ""
            let body = try await HTTPSupport.decode(EndpointUpdate.self, from: request, limit: configuration.maxBodyBytes)
            for url in body.urls {
                let components = URLComponents(string: url)
                if let refusal = configuration.lifecycle.webhookPolicy.refusal(scheme: components?.scheme, host: components?.host) {
                    throw GatewayError.invalidRequest("The endpoint '\(url)' is not allowed: \(refusal).", param: "urls", code: "invalid_webhook_url")
                }
            }
            let endpoints = body.urls.map { WebhookEndpoint(url: $0) }
            guard APIKey.isValidID(id), try await call({ try await WebhookKeyStore(redis: store.redis).setEndpoints(endpoints, forKey: id) }) else {
                throw GatewayError.notFound("No API key with id '\(id)'.", code: "key_not_found")
            }
            return HTTPSupport.json(EndpointList(data: endpoints))
        }
    }

    static func retention(_ schedule: WebhookRetrySchedule) -> Int {
        Int(schedule.delays.reduce(0, +) * (1 + schedule.jitter)) + 7 * 86_400
    }

    func cancel(_ id: String) async throws -> Response {
        // Another tenant's job is not found, as the job route answers it.
        guard JobID.isValid(id), let record = try await jobs.record(id: id) else {
            throw GatewayError.notFound("No job with id '\(id)'.", code: "job_not_found")
        }
        let now = Date().timeIntervalSince1970
        let webhooks = try await call { try await cancellationWebhooks(record, now: now) }
        switch try await call({
            try await store.cancel(id: id, now: now, webhooks: webhooks, webhookRetention: configuration.lifecycle.webhookSchedule.retention)
        }) {
        case .cancelled:
            let record = try await jobs.record(id: id)
            return HTTPSupport.json(record)
        case .alreadyFinished(let status):
            throw GatewayError(
                status: 409, message: "The job \(id) already ended with status '\(status.rawValue)'; nothing was cancelled.",
                type: "invalid_request_error", param: "id", code: "job_already_\(status.rawValue)")
        case .unknown:
            throw GatewayError.notFound("No job with id '\(id)'.", code: "job_not_found")
        }
    }

    /// The `job.cancelled` deliveries of a job that has not ended: to its own webhook and its key's endpoints.
    private func cancellationWebhooks(_ record: JobRecord, now: Double) async throws -> [WebhookDeliveryPlan] {
        guard !record.status.isFinal, let request = try await store.request(id: record.id),
              let envelope = try? JSONDecoder().decode(JobEnvelope.self, from: Data(request)),
              envelope.webhook != nil || envelope.keyID != nil
        else { return [] }
        var registered: [String] = []
        if let keyID = envelope.keyID {
            registered = try await WebhookKeyStore(redis: store.redis).endpoints(forKey: keyID).filter { $0.disabledAt == nil }.map(\.url)
        }
        let event = WebhookEvent.ended(jobID: record.id, status: .cancelled, provider: record.provider, model: record.model, at: now)
        return WebhookDeliveryPlan.plans(for: envelope, registered: registered, event: event)
    }

    /// Re-drives a failed or expired job: back to `queued`, and produced again from its original envelope.
    func retry(_ id: String) async throws -> Response {
        guard JobID.isValid(id) else { throw GatewayError.notFound("No job with id '\(id)'.", code: "job_not_found") }
        switch try await call({ try await store.requeue(id: id) }) {
        case .queued(let requeued):
            // A re-drive that cannot be produced puts the job back as it was, its outcome included.
            func putBack() async { _ = try? await store.restore(requeued, id: id) }
            guard var envelope = try? JSONDecoder().decode(JobEnvelope.self, from: Data(requeued.envelope)) else {
                await putBack()
                throw Self.noRequest(id)
            }
            // Nobody waits on the original request any more, and its deadline is lifted by the explicit retry.
            envelope.replyTo = nil
            envelope.deadline = nil
            let payload = Array((try? JSONEncoder().encode(envelope)) ?? Data(requeued.envelope))
            // Read before producing: once the record is on the topic a worker may already be running it, and the
            // answer is the state this call set. A job that cannot be answered for is not re-driven either.
            let record: JobRecord?
            do {
                record = try await jobs.record(id: id)
            } catch {
                await putBack()
                throw error
            }
            do {
                try await jobs.producer.send(topic: Topics.jobs(provider: envelope.provider, lane: envelope.lane ?? .interactive), key: Array(id.utf8), value: payload)
            } catch {
                await putBack()
                throw GatewayError.unavailable("The job queue is unavailable; the job was not re-driven. Retry shortly.", code: "queue_unavailable")
            }
            return HTTPSupport.json(record, status: .accepted, headers: [.location: "/gateway/jobs/\(id)"])
        case .refused(let status):
            throw GatewayError(
                status: 409, message: "Only failed or expired jobs can be retried; the job \(id) is '\(status.rawValue)'.",
                type: "invalid_request_error", param: "id", code: "job_not_retryable")
        case .noRequest:
            throw Self.noRequest(id)
        case .unknown:
            throw GatewayError.notFound("No job with id '\(id)'.", code: "job_not_found")
        }
    }

    private static func noRequest(_ id: String) -> GatewayError {
        GatewayError(status: 409, message: "The job \(id) has no readable request to run again.", type: "invalid_request_error", code: "job_not_retryable")
    }

    private func call<T>(_ body: () async throws -> T) async throws(GatewayError) -> T {
        do {
            return try await body()
        } catch let error as GatewayError {
            throw error
        } catch {
            throw .unavailable("The result store is unavailable. Retry shortly.", code: "store_unavailable")
        }
    }
}

struct DeliveryList: Encodable {
    var object = "list"
    var data: [WebhookDeliveryStatus]
}

struct EndpointList: Encodable {
    var object = "list"
    var data: [WebhookEndpoint]
}

struct EndpointUpdate: Decodable {
    var urls: [String]
}
