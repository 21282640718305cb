import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Protocol
import Providers
import Telemetry
import Tracing

/// Calls providers over HTTP with a deadline per phase: connect, first byte, and total.
public struct ProviderClient: Sendable {
    public struct Timeouts: Sendable {
        public var connect: Double
        public var firstByte: Double
        public var total: Double

        public init(connect: Double, firstByte: Double, total: Double) {
            self.connect = connect
            self.firstByte = firstByte
            self.total = total
        }
    }

    let http: HTTPClient
    let timeouts: Timeouts
    /// Whether each call runs in a client span of its own (spans are exported); else the call carries the job's
    /// trace context as it is.
    let spans: Bool
    /// The largest response body accepted from a provider.
    let maxResponseBytes = 32 * 1024 * 1024

    public init(timeouts: Timeouts, spans: Bool = true) {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .milliseconds(Int64(timeouts.connect * 1000)), read: .milliseconds(Int64(timeouts.firstByte * 1000)))
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 256)
        configuration.httpVersion = .automatic
        configuration.decompression = .enabled(limit: .ratio(50))
        // The call's client span is ours (`complete`, `stream`), and so is the `traceparent` it sends; a second span
        // per request from the HTTP client only cost CPU (3 % of the worker's under load).
        configuration.tracing.tracer = nil
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.timeouts = timeouts
        self.spans = spans
    }

    /// One non-streamed call, in a client span (when `spans`) whose `traceparent` goes to the provider.
    /// - Throws: `UpstreamError`, classified.
    public func complete(_ chat: ChatRequest, adapter: any ProviderAdapter) async throws(UpstreamError) -> ChatCompletion {
        guard spans else { return try await completeInSpan(chat, adapter: adapter) }
        let result: Result<ChatCompletion, UpstreamError> = await withSpan("\(adapter.settings.id) chat", ofKind: .client) { span in
            span.attributes["gen_ai.system"] = adapter.settings.id
            span.attributes["gen_ai.request.model"] = chat.model
            do throws(UpstreamError) {
                return .success(try await completeInSpan(chat, adapter: adapter))
            } catch {
                span.attributes["error.type"] = error.errorClass.rawValue
                span.setStatus(.init(code: .error, message: error.errorClass.rawValue))
                return .failure(error)
            }
        }
        return try result.get()
    }

    private func completeInSpan(_ chat: ChatRequest, adapter: any ProviderAdapter) async throws(UpstreamError) -> ChatCompletion {
        let upstream: UpstreamRequest
        do {
            upstream = try adapter.request(for: chat, stream: false)
        } catch let error as UpstreamError {
            throw error
        } catch {
            throw UpstreamError(errorClass: .client, status: nil, message: "the request cannot be expressed for \(adapter.settings.id)")
        }
        let (status, headers, body) = try await send(upstream, provider: adapter.settings.id)
        guard (200..<300).contains(status) else {
            throw adapter.error(status: status, headers: headers, body: body)
        }
        do {
            return try adapter.completion(from: body, requestedModel: chat.model)
        } catch let error as UpstreamError {
            throw error
        } catch {
            throw UpstreamError(errorClass: .protocolViolation, status: status, message: "\(adapter.settings.id) sent an unreadable response")
        }
    }

    private func send(_ upstream: UpstreamRequest, provider: String) async throws(UpstreamError) -> (Int, [(name: String, value: String)], [UInt8]) {
        var request = HTTPClientRequest(url: upstream.url)
        request.method = HTTPMethod(rawValue: upstream.method)
        for header in Self.traced(upstream.headers) { request.headers.add(name: header.name, value: header.value) }
        request.body = .bytes(ByteBuffer(bytes: upstream.body))
        let deadline = NIODeadline.now() + .milliseconds(Int64(timeouts.total * 1000))
        do {
            let response = try await http.execute(request, deadline: deadline)
            let body = try await response.body.collect(upTo: maxResponseBytes)
            let headers = response.headers.map { (name: $0.name, value: $0.value) }
            return (Int(response.status.code), headers, Array(buffer: body))
        } catch let error as HTTPClientError {
            throw Self.classify(error, provider: provider)
        } catch is CancellationError {
            throw UpstreamError(errorClass: .timeout, status: nil, message: "the call to \(provider) was cancelled")
        } catch is NIOTooManyBytesError {
            throw UpstreamError(errorClass: .protocolViolation, status: nil, message: "\(provider) sent a response that is too large")
        } catch {
            throw UpstreamError(errorClass: .connect, status: nil, message: "\(provider) is unreachable")
        }
    }

    /// The headers plus the current span's `traceparent`, so that a provider that traces joins the job's trace.
    static func traced(_ headers: [(name: String, value: String)]) -> [(name: String, value: String)] {
        var headers = headers
        InstrumentationSystem.instrument.inject(ServiceContext.current ?? .topLevel, into: &headers, using: HTTPHeaderListInjector())
        return headers
    }

    static func classify(_ error: HTTPClientError, provider: String) -> UpstreamError {
        switch error {
        case .deadlineExceeded, .readTimeout, .writeTimeout:
            return UpstreamError(errorClass: .timeout, status: nil, message: "\(provider) did not answer in time")
        case .connectTimeout:
            return UpstreamError(errorClass: .connect, status: nil, message: "connecting to \(provider) timed out")
        case .cancelled:
            return UpstreamError(errorClass: .timeout, status: nil, message: "the call to \(provider) was cancelled")
        case .remoteConnectionClosed:
            return UpstreamError(errorClass: .server, status: nil, message: "\(provider) closed the connection")
        default:
            return UpstreamError(errorClass: .connect, status: nil, message: "\(provider) is unreachable")
        }
    }

    public func shutdown() async throws {
        try await http.shutdown()
    }
}
