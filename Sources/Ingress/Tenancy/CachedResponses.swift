import HTTPTypes
import Hummingbird
import Protocol

/// The answers each route gives for a response cache hit. The `x-cache: HIT` header is added by
/// `TenancyMiddleware`.
extension CachedResponse {
    /// The job that produced the answer, as a completed job document with `"cached": true`.
    var record: JobRecord {
        JobRecord(
            id: jobID, status: .completed, provider: provider, model: model, createdAt: cachedAt,
            completedAt: cachedAt, attempts: 0, result: completion, usage: completion.usage)
    }

    /// `POST /gateway/query`: the seed's shape with `"cached": true`.
    func queryResponse() -> Response {
        HTTPSupport.json(QueryResponse(
            cached: true, response: completion.text, jobID: jobID, provider: provider, model: model, usage: completion.usage))
    }

    /// `POST /gateway/jobs`: `200` with the finished job, instead of `202` with a queued one.
    func jobResponse() -> Response {
        HTTPSupport.json(CachedJobBody(record: record))
    }

    /// `POST /v1/chat/completions`: OpenAI's `chat.completion` object.
    func chatCompletionResponse() -> Response {
        var headers = HTTPFields()
        headers[.gatewayJobID] = jobID
        return HTTPSupport.json(ChatCompletionObject(record: record, completion: completion), headers: headers)
    }
}

/// A job document with `"cached": true`.
struct CachedJobBody: Encodable {
    var record: JobRecord

    enum CodingKeys: String, CodingKey { case cached }

    func encode(to encoder: any Encoder) throws {
        try record.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(true, forKey: .cached)
    }
}
