import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Protocol
import ResultStore

/// What following a job's event stream produces for a streaming route.
enum JobFeedItem: Sendable {
    /// `queued`, `started` or `delta`, as written.
    case event(JobEvent)
    /// `completed` or `failed`, with the job's final document. `eventID` is nil when the record showed the end but
    /// the stream had no terminal entry (its writer died between the two writes, or the stream expired).
    case end(eventID: String?, type: JobEventType, record: JobRecord?)
    /// Nothing happened for a while; send a comment so proxies and clients see a live connection.
    case keepAlive
}

/// Server-sent events framing.
enum SSE {
    static let headers: HTTPFields = [
        .contentType: "text/event-stream",
        .cacheControl: "no-cache",
        .accelBuffering: "no",
    ]

    /// One event; multi-line data is split over several `data:` lines, as the format requires.
    static func event(_ name: String?, id: String?, data: String) -> ByteBuffer {
        var text = ""
        if let id { text += "id: \(id)\n" }
        if let name { text += "event: \(name)\n" }
        for line in data.split(separator: "\n", omittingEmptySubsequences: false) { text += "data: \(line)\n" }
        text += "\n"
        return ByteBuffer(string: text)
    }

    static func event(_ name: String?, id: String?, json value: some Encodable) -> ByteBuffer {
        let data = (try? HTTPSupport.encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return event(name, id: id, data: data)
    }

    static let keepAlive = ByteBuffer(string: ": keep-alive\n\n")
}

extension IngressRoutes {
    /// Follows job `id` from after `lastEventID` and hands each item to `write`, until the job's terminal event has
    /// been written, or `write` throws (the client went away; the job itself goes on).
    func followJob(
        _ id: String,
        after lastEventID: String?,
        write: (JobFeedItem) async throws -> Void
    ) async throws {
        try await jobs.feed.withEvents(jobID: id, after: lastEventID) { events in
            var idleChecksShowingEnd = 0
            for await element in events {
                switch element {
                case .event(let event) where event.type.isTerminal:
                    try await write(.end(eventID: event.id, type: event.type, record: try? await jobs.record(id: id)))
                    return
                case .event(let event):
                    try await write(.event(event))
                case .idle:
                    try await write(.keepAlive)
                    // The record is the source of truth: when it has ended twice in a row with no terminal event
                    // in between, the event is not coming.
                    let record = try? await jobs.record(id: id)
                    if let record, record.status.isFinal {
                        idleChecksShowingEnd += 1
                    } else {
                        idleChecksShowingEnd = 0
                    }
                    if let record, idleChecksShowingEnd >= 2 {
                        try await write(.end(eventID: nil, type: record.status == .completed ? .completed : .failed, record: record))
                        return
                    }
                }
            }
        }
    }

    /// The `Last-Event-ID` header, or the `last_event_id` query parameter for clients that cannot set headers.
    func lastEventID(_ request: Request) throws -> String? {
        let value = request.headers[.lastEventID] ?? request.uri.queryParameters.get("last_event_id")
        guard let value, !value.isEmpty else { return nil }
        guard JobEventFeed.isValidEventID(value) else {
            throw GatewayError.invalidRequest("'Last-Event-ID' must be an event id this feed sent (like 1700000000000-0).", param: "Last-Event-ID", code: "invalid_event_id")
        }
        return value
    }

    // MARK: - GET /gateway/jobs/{id}/events

    /// The job's life as server-sent events: `queued`, `started`, each `delta` (streamed jobs), then `completed` or
    /// `failed` with the job document. Every event's `id` is its stream entry id, so `Last-Event-ID` resumes.
    func jobEvents(_ request: Request, context: BasicRequestContext) async throws -> Response {
        let id = context.parameters.get("id") ?? ""
        guard try await jobs.record(id: id) != nil else {
            throw GatewayError.notFound("No job with id '\(id)'.", code: "job_not_found")
        }
        let after = try lastEventID(request)
        return Response(status: .ok, headers: SSE.headers, body: ResponseBody { writer in
            try await followJob(id, after: after) { item in
                switch item {
                case .event(let event):
                    try await writer.write(SSE.event(event.type.rawValue, id: event.id, data: String(decoding: event.data, as: UTF8.self)))
                case .end(let eventID, let type, let record):
                    if let record {
                        try await writer.write(SSE.event(type.rawValue, id: eventID, json: record))
                    } else {
                        try await writer.write(SSE.event(type.rawValue, id: eventID, json: JobEventStatus(id: id, status: type == .completed ? .completed : .failed)))
                    }
                case .keepAlive:
                    try await writer.write(SSE.keepAlive)
                }
            }
            try await writer.finish(nil)
        })
    }

    // MARK: - POST /gateway/query with "stream": true

    /// Enqueues a streamed job and answers with its events: `queued` (with the job id), `started`, `delta`
    /// (`{"text":…}`), then `completed` with the seed-format body, or `failed` with an OpenAI-shaped error.
    /// The request's webhook, deadline and `Idempotency-Key` apply as without streaming; a replayed key streams
    /// the existing job's events from its start.
    func streamQuery(_ job: NormalizedJob, options: JobOptions) async throws -> Response {
        let accepted = try await jobs.submit(job, wait: false, stream: true, options: options)
        let id = accepted.record.id
        var headers = SSE.headers
        headers[.gatewayJobID] = id
        if accepted.replayed { headers[.idempotentReplayed] = "true" }
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            try await followJob(id, after: nil) { item in
                switch item {
                case .event(let event):
                    try await writer.write(SSE.event(event.type.rawValue, id: event.id, data: String(decoding: event.data, as: UTF8.self)))
                case .end(let eventID, _, let record):
                    if let record, record.status == .completed, let result = record.result {
                        try await writer.write(SSE.event("completed", id: eventID, json: QueryResponse(
                            cached: false, response: result.text, jobID: record.id, provider: record.provider,
                            model: record.model, usage: record.usage)))
                    } else {
                        try await writer.write(SSE.event("failed", id: eventID, json: GatewayError.jobFailed(record?.error, jobID: id).body))
                    }
                case .keepAlive:
                    try await writer.write(SSE.keepAlive)
                }
            }
            try await writer.finish(nil)
        })
    }

    // MARK: - POST /v1/chat/completions with "stream": true

    /// Enqueues a streamed job and answers with OpenAI `chat.completion.chunk` objects: the role first, content and
    /// tool-call deltas as they arrive, a last chunk with `finish_reason`, a usage chunk when
    /// `stream_options.include_usage` asks for it, then `data: [DONE]`. A failed job ends the stream with an
    /// OpenAI error object, which the SDKs raise.
    func streamChatCompletion(_ job: NormalizedJob, includeUsage: Bool) async throws -> Response {
        let accepted = try await jobs.submit(job, wait: false, stream: true)
        let id = accepted.record.id
        let chunkID = "chatcmpl-\(id)"
        let created = Int(accepted.record.createdAt)
        let model = job.request.model
        var headers = SSE.headers
        headers[.gatewayJobID] = id
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            func chunk(_ delta: ChatCompletionChunk.Delta, finishReason: String? = nil) -> ChatCompletionChunk {
                ChatCompletionChunk(id: chunkID, created: created, model: model, choices: [.init(delta: delta, finishReason: finishReason)], usage: nil)
            }
            try await writer.write(SSE.event(nil, id: nil, json: chunk(.init(role: "assistant", content: ""))))
            let decoder = IndexedJSONDecoder()
            try await followJob(id, after: nil) { item in
                switch item {
                case .event(let event):
                    guard event.type == .delta, let delta = try? decoder.decode(ChatDelta.self, from: event.data) else { return }
                    if let text = delta.text, !text.isEmpty {
                        try await writer.write(SSE.event(nil, id: nil, json: chunk(.init(content: text))))
                    }
                    if let calls = delta.toolCalls, !calls.isEmpty {
                        try await writer.write(SSE.event(nil, id: nil, json: chunk(.init(toolCalls: calls.map(ChatCompletionChunk.ToolCallDelta.init)))))
                    }
                case .end(_, _, let record):
                    guard let record, record.status == .completed, let result = record.result else {
                        try await writer.write(SSE.event(nil, id: nil, json: GatewayError.jobFailed(record?.error, jobID: id).body))
                        return
                    }
                    try await writer.write(SSE.event(nil, id: nil, json: chunk(.init(), finishReason: result.finishReason.rawValue)))
                    if includeUsage {
                        let usage = (result.usage ?? record.usage).map {
                            ChatCompletionObject.WireUsage(promptTokens: $0.promptTokens, completionTokens: $0.completionTokens, totalTokens: $0.totalTokens)
                        }
                        try await writer.write(SSE.event(nil, id: nil, json: ChatCompletionChunk(id: chunkID, created: created, model: model, choices: [], usage: usage)))
                    }
                    try await writer.write(SSE.event(nil, id: nil, data: "[DONE]"))
                case .keepAlive:
                    try await writer.write(SSE.keepAlive)
                }
            }
            try await writer.finish(nil)
        })
    }
}

/// OpenAI's `chat.completion.chunk` object.
struct ChatCompletionChunk: Encodable {
    struct ToolCallDelta: Encodable {
        struct Function: Encodable {
            var name: String?
            var arguments: String?
        }

        var index: Int
        var id: String?
        var type: String?
        var function: Function

        init(_ delta: Protocol.ToolCallDelta) {
            index = delta.index
            id = delta.id
            type = delta.id == nil ? nil : "function"
            function = Function(name: delta.name, arguments: delta.arguments)
        }
    }

    struct Delta: Encodable {
        var role: String?
        var content: String?
        var toolCalls: [ToolCallDelta]?

        init(role: String? = nil, content: String? = nil, toolCalls: [ToolCallDelta]? = nil) {
            self.role = role
            self.content = content
            self.toolCalls = toolCalls
        }

        enum CodingKeys: String, CodingKey {
            case role, content
            case toolCalls = "tool_calls"
        }
    }

    struct Choice: Encodable {
        var index = 0
        var delta: Delta
        var finishReason: String?

        init(delta: Delta, finishReason: String?) {
            self.delta = delta
            self.finishReason = finishReason
        }

        enum CodingKeys: String, CodingKey {
            case index, delta
            case finishReason = "finish_reason"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(index, forKey: .index)
            try container.encode(delta, forKey: .delta)
            // OpenAI sends an explicit null until the last chunk.
            try container.encode(finishReason, forKey: .finishReason)
        }
    }

    var id: String
    var object = "chat.completion.chunk"
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: ChatCompletionObject.WireUsage?

    init(id: String, created: Int, model: String, choices: [Choice], usage: ChatCompletionObject.WireUsage?) {
        self.id = id
        self.created = created
        self.model = model
        self.choices = choices
        self.usage = usage
    }
}
