import AsyncHTTPClient
import Dispatch
import Foundation
import NIOCore
import NIOHTTP1
import Protocol
#if canImport(Glibc)
import Glibc
#endif

/// Sends one signed webhook through the SSRF guard: the host is resolved at send time, every address is checked
/// against `WebhookAddressPolicy`, and the connection goes to the vetted address only (the URL's host still names
/// the server for TLS), without following redirects and within a short deadline.
public struct WebhookSender: Sendable {
    /// What one attempt got.
    public struct Response: Sendable, Equatable {
        public var statusCode: Int?
        /// Seconds the receiver asked to wait (`Retry-After` on 429 and 503).
        public var retryAfter: Double?
        /// Why the attempt failed without a status code, or the status that failed it.
        public var error: String?
        public var latencyMs: Int

        public var succeeded: Bool { statusCode.map { (200..<300).contains($0) } ?? false }
    }

    let policy: WebhookAddressPolicy
    let timeout: Double

    public init(policy: WebhookAddressPolicy, timeout: Double) {
        self.policy = policy
        self.timeout = timeout
    }

    /// Signs `body` with `secret` now and posts it to `url`.
    public func send(url: String, messageID: String, body: [UInt8], secret: WebhookSecret) async -> Response {
        let started = ContinuousClock.now
        func failure(_ message: String) -> Response {
            Response(statusCode: nil, retryAfter: nil, error: message, latencyMs: started.millisecondsSince)
        }
        guard let parsed = URLComponents(string: url) else { return failure("the URL is invalid") }
        let host = parsed.host?.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        if let refusal = policy.refusal(scheme: parsed.scheme, host: host) { return failure("refused: \(refusal)") }
        guard let host else { return failure("the URL has no host") }

        let addresses: [IPAddress]
        if let literal = IPAddress(host) {
            addresses = [literal]
        } else {
            addresses = await Self.resolve(host)
            guard !addresses.isEmpty else { return failure("\(host) does not resolve") }
        }
        var vetted: IPAddress?
        var firstRefusal: String?
        for address in addresses {
            if let refusal = policy.refusal(host: host, address: address) {
                firstRefusal = firstRefusal ?? refusal
            } else {
                vetted = address
                break
            }
        }
        guard let vetted else { return failure("refused: \(firstRefusal ?? "no permitted address")") }

        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.timeout = .init(connect: .milliseconds(Int64(min(timeout, 5) * 1000)), read: .milliseconds(Int64(timeout * 1000)))
        // Pins the host to the address that was checked; TLS still verifies the certificate for `host`.
        if IPAddress(host) == nil { configuration.dnsOverride = [host: vetted.description] }
        configuration.decompression = .disabled
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        defer { client.shutdown { _ in } }

        let timestamp = Int(Date().timeIntervalSince1970)
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.headers.add(name: "user-agent", value: "llm-gateway-webhooks")
        request.headers.add(name: "webhook-id", value: messageID)
        request.headers.add(name: "webhook-timestamp", value: String(timestamp))
        request.headers.add(name: "webhook-signature", value: secret.signature(messageID: messageID, timestamp: timestamp, body: body))
        request.body = .bytes(ByteBuffer(bytes: body))
        do {
            let response = try await client.execute(request, deadline: .now() + .milliseconds(Int64(timeout * 1000)))
            // The body is read (up to a small bound) only to let the connection finish cleanly.
            _ = try? await response.body.collect(upTo: 64 * 1024)
            let status = Int(response.status.code)
            var retryAfter: Double?
            if status == 429 || status == 503, let value = response.headers.first(name: "retry-after") {
                retryAfter = Self.retryAfterSeconds(value)
            }
            return Response(
                statusCode: status, retryAfter: retryAfter,
                error: (200..<300).contains(status) ? nil : "the receiver answered \(status)",
                latencyMs: started.millisecondsSince)
        } catch let error as HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout, .connectTimeout: return failure("timed out")
            default: return failure("connection failed: \(error)")
            }
        } catch {
            return failure("connection failed")
        }
    }

    /// `Retry-After` as delay-seconds or an HTTP date.
    static func retryAfterSeconds(_ value: String) -> Double? {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        if let seconds = Double(trimmed), seconds >= 0 { return seconds }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return formatter.date(from: trimmed).map { max(0, $0.timeIntervalSinceNow) }
    }

    /// Every address `host` resolves to, looked up off the cooperative thread pool (getaddrinfo blocks).
    static func resolve(_ host: String) async -> [IPAddress] {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var hints = addrinfo()
                hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
                var result: UnsafeMutablePointer<addrinfo>?
                guard getaddrinfo(host, nil, &hints, &result) == 0 else {
                    continuation.resume(returning: [])
                    return
                }
                defer { freeaddrinfo(result) }
                var addresses: [IPAddress] = []
                var cursor = result
                while let entry = cursor {
                    if let socketAddress = entry.pointee.ai_addr {
                        if entry.pointee.ai_family == AF_INET {
                            var address = socketAddress.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                            if let ip = IPAddress(bytes: withUnsafeBytes(of: &address) { Array($0) }) { addresses.append(ip) }
                        } else if entry.pointee.ai_family == AF_INET6 {
                            var address = socketAddress.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                            if let ip = IPAddress(bytes: withUnsafeBytes(of: &address) { Array($0) }) { addresses.append(ip) }
                        }
                    }
                    cursor = entry.pointee.ai_next
                }
                var seen = Set<IPAddress>()
                continuation.resume(returning: addresses.filter { seen.insert($0).inserted })
            }
        }
    }
}
