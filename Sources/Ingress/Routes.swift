import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Protocol
import Telemetry

/// The ingress HTTP API.
public struct IngressRoutes: Sendable {
    let jobs: JobService
    let readiness: @Sendable () async -> (redis: Bool, broker: Bool)
    /// Authentication, rate limits, budgets and the response cache.
    let tenancy: TenancyGate

    public init(jobs: JobService, tenancy: TenancyGate, readiness: @escaping @Sendable () async -> (redis: Bool, broker: Bool)) {
        self.jobs = jobs
        self.tenancy = tenancy
        self.readiness = readiness
    }

    var configuration: GatewayConfiguration { jobs.configuration }

    public func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        router.middlewares.add(HTTPMetricsMiddleware(metrics: jobs.metrics))
        if configuration.exportsSpans {
            router.middlewares.add(TracingMiddleware())
        } else {
            router.middlewares.add(TraceContextMiddleware())
        }
        // The request line is logged at debug: at a higher level the middleware would only cost a layer.
        if let level = Logger.Level(rawValue: configuration.logLevel), level <= .debug {
            router.middlewares.add(LogRequestsMiddleware(.debug))
        }
        router.middlewares.add(TenancyMiddleware(gate: tenancy))
        router.middlewares.add(OpenAIErrorMiddleware())
        router.get("/metrics") { _, _ in jobs.metrics.response() }
        router.get("/healthz") { _, _ in HTTPSupport.json(["status": "ok"]) }
        router.get("/readyz") { _, _ in
            let state = await readiness()
            let ready = state.redis && state.broker
            return HTTPSupport.json(
                ReadinessBody(status: ready ? "ready" : "unavailable", redis: state.redis, broker: state.broker),
                status: ready ? .ok : .serviceUnavailable
            )
        }
        router.post("/gateway/jobs") { request, context in try await submitJob(request, context: context) }
        router.get("/gateway/jobs/{id}") { _, context in try await getJob(context) }
        router.get("/gateway/jobs/{id}/events") { request, context in try await jobEvents(request, context: context) }
        router.post("/gateway/query") { request, context in try await query(request, context: context) }
        router.post("/v1/chat/completions") { request, context in try await chatCompletions(request, context: context) }
        router.get("/v1/models") { _, _ in listModels() }
        AdminRoutes(keys: tenancy.authenticator.keys, usage: tenancy.usage, adminToken: configuration.tenancy.adminToken, maxBodyBytes: configuration.maxBodyBytes)
            .register(on: router)
        LifecycleRoutes(jobs: jobs).register(on: router)
        return router
    }

    // MARK: - /gateway

    func submitJob(_ request: Request, context: BasicRequestContext) async throws -> Response {
        let submission = try await HTTPSupport.decode(JobSubmission.self, from: request, limit: configuration.maxBodyBytes)
        let job = try normalize(submission)
        let options = try await jobs.options(for: submission, headers: request.headers, synchronous: false)
        let stream = submission.stream == true
        let accepted: JobService.Accepted
        switch try await admitAndSubmit(job, headers: request.headers, wait: false, stream: stream, options: options) {
        case .cached(let hit): return hit.jobResponse()
        case .accepted(let value): accepted = value
        }
        var headers = HTTPFields()
        headers[.location] = "/gateway/jobs/\(accepted.record.id)"
        if accepted.replayed { headers[.idempotentReplayed] = "true" }
        return HTTPSupport.json(accepted.record, status: .accepted, headers: headers)
    }

    func getJob(_ context: BasicRequestContext) async throws -> Response {
        let id = context.parameters.get("id") ?? ""
        guard let record = try await jobs.record(id: id) else {
            throw GatewayError.notFound("No job with id '\(id)'.", code: "job_not_found")
        }
        return HTTPSupport.json(record)
    }

    /// The seed's synchronous call: enqueue, then wait for the completion notification.
    func query(_ request: Request, context: BasicRequestContext) async throws -> Response {
        let submission = try await HTTPSupport.decode(JobSubmission.self, from: request, limit: configuration.maxBodyBytes)
        let job = try normalize(submission)
        let options = try await jobs.options(for: submission, headers: request.headers, synchronous: true)
        if submission.stream == true {
            // A streamed answer never comes from the cache.
            _ = try await tenancy.admit(job, headers: request.headers, streaming: true)
            return try await streamQuery(job, options: options)
        }
        let timeout = try jobs.syncTimeout(requested: submission.timeout)
        let accepted: JobService.Accepted
        switch try await admitAndSubmit(job, headers: request.headers, wait: true, options: options) {
        case .cached(let hit): return hit.queryResponse()
        case .accepted(let value): accepted = value
        }
        guard let record = try await jobs.result(of: accepted, timeout: timeout) else {
            var headers = HTTPFields()
            headers[.location] = "/gateway/jobs/\(accepted.record.id)"
            let pending = try await jobs.record(id: accepted.record.id) ?? accepted.record
            return HTTPSupport.json(pending, status: .accepted, headers: headers)
        }
        guard record.status == .completed, let result = record.result else {
            throw GatewayError.jobFailed(record.error, jobID: record.id)
        }
        return HTTPSupport.json(QueryResponse(
            cached: false,
            response: result.text,
            jobID: record.id,
            provider: record.provider,
            model: record.model,
            usage: record.usage
        ))
    }

    /// How a request that would enqueue a job was answered.
    enum Submission {
        case cached(CachedResponse)
        case accepted(JobService.Accepted)
    }

    /// Admits the request and submits its job. Admission reads the cache, charges the limits and records the job
    /// as `queued` in one round trip; the job is then produced. A likely cache hit (a prompt seen lately) is
    /// admitted first and recorded after a miss, and so is a request with an `Idempotency-Key`, whose key is
    /// claimed before the job is recorded.
    func admitAndSubmit(_ job: NormalizedJob, headers: HTTPFields, wait: Bool, stream: Bool = false, options: JobOptions = JobOptions()) async throws -> Submission {
        let plan = try tenancy.plan(job, headers: headers, streaming: stream)
        if options.idempotency != nil || plan.likelyHit {
            if let hit = try await tenancy.admit(plan).cached { return .cached(hit) }
            return .accepted(try await jobs.submit(job, wait: wait, stream: stream, options: options))
        }
        let draft = jobs.draft(job, wait: wait, stream: stream, options: options)
        let recording = try jobs.recording(draft, tenancy: plan.tenancy)
        let admission = try await tenancy.admit(plan, recording: recording.commands)
        if let hit = admission.cached { return .cached(hit) }
        return .accepted(try await jobs.submit(draft, recorded: admission.recorded ? recording : nil))
    }

    // MARK: - OpenAI-compatible

    func chatCompletions(_ request: Request, context: BasicRequestContext) async throws -> Response {
        let body = try await HTTPSupport.decode(ChatCompletionsBody.self, from: request, limit: configuration.maxBodyBytes)
        guard let resolution = configuration.models.resolve(body.request.model, providers: configuration.providers) else {
            throw GatewayError.modelNotFound(body.request.model, configuration: configuration)
        }
        let reference = resolution.primary
        var chat = body.request
        chat.model = reference.model
        chat.stream = nil
        try chat.validate()
        var fallbacks = resolution.fallbacks
        for name in body.fallbacks ?? [] {
            guard let fallback = resolveModel(name) else {
                throw GatewayError.invalidRequest("Unknown fallback model '\(name)'.", param: "fallbacks", code: "model_not_found")
            }
            fallbacks.append(fallback)
        }
        let job = NormalizedJob(provider: reference.provider, request: chat, fallbacks: fallbacks)
        if body.request.stream == true {
            // A streamed answer never comes from the cache.
            _ = try await tenancy.admit(job, headers: request.headers, streaming: true)
            return try await streamChatCompletion(job, includeUsage: body.includeUsage)
        }
        let accepted: JobService.Accepted
        switch try await admitAndSubmit(job, headers: request.headers, wait: true) {
        case .cached(let hit): return hit.chatCompletionResponse()
        case .accepted(let value): accepted = value
        }
        guard let record = try await jobs.result(of: accepted, timeout: configuration.syncTimeout) else {
            throw GatewayError(
                status: 504,
                message: "The job \(accepted.record.id) is still running; fetch it at /gateway/jobs/\(accepted.record.id).",
                type: "timeout_error", code: "timeout")
        }
        guard record.status == .completed, let result = record.result else {
            throw GatewayError.jobFailed(record.error, jobID: record.id)
        }
        var headers = HTTPFields()
        headers[.gatewayJobID] = record.id
        return HTTPSupport.json(ChatCompletionObject(record: record, completion: result), headers: headers)
    }

    func listModels() -> Response {
        var models = configuration.providers.values.sorted { $0.id < $1.id }.map {
            ModelObject(id: "\($0.id)/\($0.defaultModel)", ownedBy: $0.id)
        }
        models += catalogModels()
        return HTTPSupport.json(ModelList(data: models))
    }

    /// `provider/model` with a configured provider, or an alias or group (its primary model).
    func resolveModel(_ name: String) -> ModelRef? {
        configuration.models.resolve(name, providers: configuration.providers)?.primary
    }
}

// MARK: - Bodies

struct ReadinessBody: Encodable {
    var status: String
    var redis: Bool
    var broker: Bool
}

struct QueryResponse: Encodable {
    var cached: Bool
    var response: String
    var jobID: String
    var provider: String
    var model: String
    var usage: Usage?

    enum CodingKeys: String, CodingKey {
        case cached, response, provider, model, usage
        case jobID = "job_id"
    }
}

struct ChatCompletionsBody: Decodable {
    var request: ChatRequest
    var fallbacks: [String]?
    /// `stream_options.include_usage`: send a usage chunk before `[DONE]`.
    var includeUsage = false

    enum CodingKeys: String, CodingKey {
        case fallbacks
        case streamOptions = "stream_options"
    }

    struct StreamOptions: Decodable {
        var includeUsage: Bool?
        enum CodingKeys: String, CodingKey { case includeUsage = "include_usage" }
    }

    init(from decoder: any Decoder) throws {
        request = try ChatRequest(from: decoder)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        fallbacks = try container.decodeIfPresent([String].self, forKey: .fallbacks)
        includeUsage = try container.decodeIfPresent(StreamOptions.self, forKey: .streamOptions)?.includeUsage ?? false
    }
}

/// OpenAI's `chat.completion` object.
struct ChatCompletionObject: Encodable {
    struct Message: Encodable {
        var role = "assistant"
        var content: String?
        var toolCalls: [ToolCall]?

        enum CodingKeys: String, CodingKey {
            case role, content
            case toolCalls = "tool_calls"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(role, forKey: .role)
            try container.encode(content, forKey: .content)
            try container.encodeIfPresent(toolCalls, forKey: .toolCalls)
        }
    }

    struct Choice: Encodable {
        var index = 0
        var message: Message
        var finishReason: String

        enum CodingKeys: String, CodingKey {
            case index, message
            case finishReason = "finish_reason"
        }
    }

    struct WireUsage: Encodable {
        var promptTokens: Int
        var completionTokens: Int
        var totalTokens: Int

        enum CodingKeys: String, CodingKey {
            case promptTokens = "prompt_tokens"
            case completionTokens = "completion_tokens"
            case totalTokens = "total_tokens"
        }
    }

    var id: String
    var object = "chat.completion"
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: WireUsage?

    init(record: JobRecord, completion: ChatCompletion) {
        self.id = "chatcmpl-\(record.id)"
        self.created = Int(record.createdAt)
        self.model = completion.model
        let hasText = !completion.text.isEmpty || completion.toolCalls == nil
        self.choices = [Choice(
            message: Message(content: hasText ? completion.text : nil, toolCalls: completion.toolCalls),
            finishReason: completion.finishReason.rawValue
        )]
        self.usage = completion.usage.map {
            WireUsage(promptTokens: $0.promptTokens, completionTokens: $0.completionTokens, totalTokens: $0.totalTokens)
        }
    }
}

struct ModelObject: Encodable {
    var id: String
    var object = "model"
    var created = 0
    var ownedBy: String

    enum CodingKeys: String, CodingKey {
        case id, object, created
        case ownedBy = "owned_by"
    }
}

struct ModelList: Encodable {
    var object = "list"
    var data: [ModelObject]
}
