import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Protocol
import Providers
import Tracing

/// Receives a streamed call's deltas as they arrive.
public typealias DeltaRelay = @Sendable (ChatDelta) async -> Void

extension ProviderClient {
    /// The outcome of a streamed call.
    public struct StreamedCompletion: Sendable {
        public var completion: ChatCompletion
        /// From sending the request to the first delta, when there was one.
        public var timeToFirstToken: Duration?
    }

    /// A failed streamed call, and whether any delta had already been relayed (then it must not be retried, or the
    /// client would see the text twice).
    public struct StreamFailure: Error, Sendable {
        public var error: UpstreamError
        public var relayedDeltas: Bool
        public var timeToFirstToken: Duration?
    }

    /// One streamed call: the provider's SSE body is parsed as it arrives and each delta is handed to `relay`
    /// before the next bytes are read, so nothing is buffered.
    /// - Throws: `StreamFailure`, with the classified `UpstreamError`.
    public func stream(_ chat: ChatRequest, adapter: any ProviderAdapter, relay: DeltaRelay) async throws(StreamFailure) -> StreamedCompletion {
        guard spans else { return try await streamInSpan(chat, adapter: adapter, relay: relay) }
        // A client span, like `complete`'s, whose `traceparent` goes to the provider.
        let result: Result<StreamedCompletion, StreamFailure> = await withSpan("\(adapter.settings.id) chat", ofKind: .client) { span in
            span.attributes["gen_ai.system"] = adapter.settings.id
            span.attributes["gen_ai.request.model"] = chat.model
            span.attributes["gen_ai.request.stream"] = true
            do throws(StreamFailure) {
                return .success(try await streamInSpan(chat, adapter: adapter, relay: relay))
            } catch {
                span.attributes["error.type"] = error.error.errorClass.rawValue
                span.setStatus(.init(code: .error, message: error.error.errorClass.rawValue))
                return .failure(error)
            }
        }
        return try result.get()
    }

    private func streamInSpan(_ chat: ChatRequest, adapter: any ProviderAdapter, relay: DeltaRelay) async throws(StreamFailure) -> StreamedCompletion {
        let provider = adapter.settings.id
        let upstream: UpstreamRequest
        do {
            upstream = try adapter.request(for: chat, stream: true)
        } catch let error as UpstreamError {
            throw StreamFailure(error: error, relayedDeltas: false)
        } catch {
            throw StreamFailure(error: UpstreamError(errorClass: .client, status: nil, message: "the request cannot be expressed for \(provider)"), relayedDeltas: false)
        }
        var request = HTTPClientRequest(url: upstream.url)
        request.method = HTTPMethod(rawValue: upstream.method)
        for header in Self.traced(upstream.headers) { request.headers.add(name: header.name, value: header.value) }
        request.body = .bytes(ByteBuffer(bytes: upstream.body))
        let deadline = NIODeadline.now() + .milliseconds(Int64(timeouts.total * 1000))
        let started = ContinuousClock.now
        var firstToken: Duration?
        var accumulator = CompletionAccumulator()
        var relayed = false
        do {
            let response = try await http.execute(request, deadline: deadline)
            let status = Int(response.status.code)
            guard (200..<300).contains(status) else {
                let body = try await response.body.collect(upTo: maxResponseBytes)
                let headers = response.headers.map { (name: $0.name, value: $0.value) }
                throw adapter.error(status: status, headers: headers, body: Array(buffer: body))
            }
            var parser = ServerSentEventParser()
            var decoder = adapter.makeStreamDecoder()
            var received = 0
            func handle(_ events: [ServerSentEvent]) async throws {
                for event in events {
                    for delta in try decoder.decode(event) {
                        accumulator.add(delta)
                        if firstToken == nil, delta.text?.isEmpty == false || delta.toolCalls != nil {
                            firstToken = ContinuousClock.now - started
                        }
                        relayed = true
                        await relay(delta)
                    }
                }
            }
            for try await buffer in response.body {
                received += buffer.readableBytes
                if received > maxResponseBytes {
                    throw UpstreamError(errorClass: .protocolViolation, status: nil, message: "\(provider) sent a response that is too large")
                }
                try await handle(parser.feed(buffer.readableBytesView))
            }
            try await handle(parser.finish())
            guard decoder.isFinished else {
                throw UpstreamError(errorClass: .server, status: nil, message: "\(provider) ended the stream before its end marker")
            }
        } catch let error as UpstreamError {
            throw StreamFailure(error: error, relayedDeltas: relayed, timeToFirstToken: firstToken)
        } catch let error as HTTPClientError {
            throw StreamFailure(error: Self.classify(error, provider: provider), relayedDeltas: relayed, timeToFirstToken: firstToken)
        } catch is CancellationError {
            throw StreamFailure(error: UpstreamError(errorClass: .timeout, status: nil, message: "the call to \(provider) was cancelled"), relayedDeltas: relayed, timeToFirstToken: firstToken)
        } catch is NIOTooManyBytesError {
            throw StreamFailure(error: UpstreamError(errorClass: .protocolViolation, status: nil, message: "\(provider) sent a response that is too large"), relayedDeltas: relayed, timeToFirstToken: firstToken)
        } catch {
            throw StreamFailure(error: UpstreamError(errorClass: .connect, status: nil, message: "\(provider) is unreachable"), relayedDeltas: relayed, timeToFirstToken: firstToken)
        }
        return StreamedCompletion(completion: accumulator.completion(model: chat.model), timeToFirstToken: firstToken)
    }
}

extension Duration {
    /// Whole milliseconds.
    var milliseconds: Int {
        Int(components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000)
    }
}
