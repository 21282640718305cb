import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// A local LLM server for demos, tests and benchmarks. It speaks each provider's wire format at the real paths,
/// answers deterministically from the prompt, and injects latency and failures on request (see `MockScript`).
public enum MockProvider {
    /// Server-wide behaviour; prompts can override it per call.
    public struct Options: Sendable {
        public var host = "127.0.0.1"
        public var port = 3030
        /// A fixed delay before every answer.
        public var delayMs = 0
        /// The pause between streamed tokens.
        public var streamIntervalMs = 0
        /// The share of calls, 0…1, that fail with a 500.
        public var errorRate = 0.0

        public init() {}
    }

    /// Builds the mock's HTTP application.
    public static func makeApplication(options: Options, logger: Logger) -> some ApplicationProtocol {
        let stats = CallStats()
        let router = Router()
        for dialect in dialects {
            for path in dialect.paths {
                router.post(RouterPath(path)) { request, _ in
                    try await handle(request, dialect: dialect, options: options, stats: stats)
                }
            }
        }
        router.get("/mock/stats") { request, _ -> Response in
            if let prompt = request.uri.queryParameters.get("prompt") {
                if let dialect = request.uri.queryParameters.get("dialect") {
                    return jsonResponse(["prompt": prompt, "dialect": dialect, "calls": stats.calls(for: prompt, dialect: dialect)])
                }
                var answer: [String: Any] = ["prompt": prompt, "calls": stats.calls(for: prompt)]
                if let traceparent = stats.traceparent(for: prompt) { answer["traceparent"] = traceparent }
                return jsonResponse(answer)
            }
            let snapshot = stats.snapshot()
            return jsonResponse(["total": snapshot.total, "calls": snapshot.byPrompt])
        }
        router.post("/mock/reset") { _, _ -> Response in
            stats.reset()
            return jsonResponse(["reset": true])
        }
        router.get("/healthz") { _, _ in jsonResponse(["status": "ok"]) }
        return Application(
            router: router,
            configuration: .init(address: .hostname(options.host, port: options.port), serverName: "llm-gateway-mock"),
            logger: logger
        )
    }

    static func handle(_ request: Request, dialect: any MockDialect, options: Options, stats: CallStats) async throws -> Response {
        var headers: MockHeaders = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        if let reply = dialect.checkAuth(headers) { return response(reply) }
        let body = try await request.body.collect(upTo: 32 * 1024 * 1024)
        var query: [String: String] = [:]
        for (key, value) in request.uri.queryParameters { query[String(key)] = String(value) }
        let prompt: MockPrompt
        switch dialect.parse(path: request.uri.path, query: query, body: Array(buffer: body)) {
        case .success(let parsed): prompt = parsed
        case .failure(let reply): return response(reply)
        }

        let script = MockScript(prompt: prompt.lastUserText)
        let (call, dialectCall) = stats.record(prompt.lastUserText, dialect: dialect.name, traceparent: headers["traceparent"])
        let delay = script.delayMs ?? options.delayMs
        if delay > 0 { try await Task.sleep(for: .milliseconds(delay)) }
        if script.hang {
            // Bounded, so a forgotten client cannot pin the mock forever.
            try await Task.sleep(for: .seconds(600))
        }
        var failure = script.failureStatus(call: call, dialectCall: dialectCall, dialect: dialect.name)
        if failure == nil, options.errorRate > 0, Double.random(in: 0..<1) < options.errorRate { failure = 500 }
        if let status = failure {
            var reply = dialect.error(status: status, message: "mock failure \(status) on call \(call)")
            if let retryAfter = script.retryAfter {
                reply.headers.append(("Retry-After", String(Int(retryAfter.rounded(.up)))))
                reply.headers.append(("retry-after-ms", String(Int(retryAfter * 1000))))
            }
            return response(reply)
        }

        let wanted = script.tokens ?? MockText.tokens(for: prompt.lastUserText).count
        let limit = prompt.maxTokens.map { min($0, wanted) } ?? wanted
        let completion = MockCompletion(
            id: "mock-\(UInt64.random(in: 0...UInt64.max))",
            model: prompt.model,
            tokens: MockText.tokens(for: prompt.lastUserText, count: limit),
            promptTokens: MockText.countTokens(prompt.allText),
            finishedByLength: limit < wanted
        )
        guard prompt.stream else { return response(dialect.reply(to: prompt, completion: completion)) }

        let frames = dialect.streamFrames(for: prompt, completion: completion)
        let interval = script.intervalMs ?? options.streamIntervalMs
        var responseHeaders = HTTPFields()
        responseHeaders[.contentType] = "text/event-stream"
        responseHeaders[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: responseHeaders, body: ResponseBody { writer in
            for frame in frames {
                if frame.isToken, interval > 0 { try await Task.sleep(for: .milliseconds(interval)) }
                try await writer.write(ByteBuffer(bytes: frame.bytes))
            }
            try await writer.finish(nil)
        })
    }

    static func response(_ reply: MockReply) -> Response {
        var headers = HTTPFields()
        for (name, value) in reply.headers {
            if let fieldName = HTTPField.Name(name) { headers.append(HTTPField(name: fieldName, value: value)) }
        }
        return Response(status: .init(code: reply.status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: reply.body)))
    }

    static func jsonResponse(_ object: Any) -> Response {
        response(.json(object))
    }
}

/// Counts calls per prompt, so tests can tell how often the provider was really called, and in which trace.
final class CallStats: Sendable {
    private struct State {
        var total = 0
        var byPrompt: [String: Int] = [:]
        var byDialect: [String: [String: Int]] = [:]
        /// The `traceparent` of each prompt's latest call that sent one.
        var traceparents: [String: String] = [:]
    }

    private let state = NIOLockedValueBox(State())

    /// Records a call and returns its number for this prompt, from 1, overall and in `dialect`.
    func record(_ prompt: String, dialect: String, traceparent: String?) -> (call: Int, dialectCall: Int) {
        state.withLockedValue { state in
            state.total += 1
            if let traceparent { state.traceparents[prompt] = traceparent }
            let count = (state.byPrompt[prompt] ?? 0) + 1
            state.byPrompt[prompt] = count
            let dialectCount = (state.byDialect[dialect]?[prompt] ?? 0) + 1
            state.byDialect[dialect, default: [:]][prompt] = dialectCount
            return (count, dialectCount)
        }
    }

    func calls(for prompt: String) -> Int { state.withLockedValue { $0.byPrompt[prompt] ?? 0 } }

    func traceparent(for prompt: String) -> String? { state.withLockedValue { $0.traceparents[prompt] } }

    func calls(for prompt: String, dialect: String) -> Int { state.withLockedValue { $0.byDialect[dialect]?[prompt] ?? 0 } }

    func snapshot() -> (total: Int, byPrompt: [String: Int]) { state.withLockedValue { ($0.total, $0.byPrompt) } }

    func reset() { state.withLockedValue { $0 = State() } }
}
