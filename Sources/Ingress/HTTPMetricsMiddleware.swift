import Hummingbird
import Telemetry

/// Records `llmgw_http_requests_total`, `llmgw_http_request_duration_seconds` and `llmgw_http_requests_in_flight`
/// for every request, labelled with the matched route's template (`/gateway/jobs/{id}`), never the raw path.
///
/// Add it first, outside the error middleware, so that it sees the status the client gets.
struct HTTPMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: GatewayMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        let method = request.method.rawValue
        metrics.httpRequestsInFlight(1)
        let ended: @Sendable (Int) -> Void = { [metrics] status in
            metrics.httpRequest(route: Self.route(context), method: method, status: status, duration: ContinuousClock.now - started)
            metrics.httpRequestsInFlight(-1)
        }
        do {
            var response = try await next(request, context)
            let status = Int(response.status.code)
            if response.body.contentLength != nil {
                // A body of known length is already in memory, and Hummingbird writes it in one go.
                ended(status)
            } else {
                // A stream (server-sent events): the request lasts until its last event is written.
                response.body = response.body.afterWrite { ended(status) }
            }
            return response
        } catch {
            ended(Int((error as? any HTTPResponseError)?.status.code ?? 500))
            throw error
        }
    }

    /// The route template, or `unmatched` for a request no route matched (Hummingbird names that endpoint
    /// `NotFound`): raw paths would make the label unbounded.
    static func route(_ context: Context) -> String {
        guard let path = context.endpointPath, path.hasPrefix("/") else { return GatewayMetrics.unmatchedRoute }
        return path
    }
}

extension ResponseBody {
    /// The same body, calling `postWrite` once it was written (or failed to be).
    func afterWrite(_ postWrite: @escaping @Sendable () async -> Void) -> ResponseBody {
        let body = self
        return ResponseBody(contentLength: contentLength) { writer in
            do {
                try await body.write(writer)
                await postWrite()
            } catch {
                await postWrite()
                throw error
            }
        }
    }
}

extension GatewayMetrics {
    /// `GET /metrics`: the Prometheus text exposition.
    public func response() -> Response {
        Response(
            status: .ok,
            headers: [.contentType: GatewayMetrics.contentType],
            body: .init(byteBuffer: ByteBuffer(bytes: exposition())))
    }
}
