import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The Redis and broker that `make test` started, and the built `llm-gateway` binary.
enum TestStack {
    static var redisPort: Int {
        get throws { try #require(Int(ProcessInfo.processInfo.environment["LLMGW_TEST_REDIS_PORT"] ?? ""), "run the tests with `make test`") }
    }

    static var brokers: String {
        get throws { try #require(ProcessInfo.processInfo.environment["LLMGW_TEST_BROKERS"], "run the tests with `make test`") }
    }

    static var binary: String {
        get throws { try #require(ProcessInfo.processInfo.environment["LLMGW_TEST_BINARY"], "run the tests with `make test`") }
    }

    static var tansu: String {
        get throws { try #require(ProcessInfo.processInfo.environment["LLMGW_TEST_TANSU"], "run the tests with `make test`") }
    }

    static var workDirectory: String {
        ProcessInfo.processInfo.environment["LLMGW_TEST_WORKDIR"] ?? NSTemporaryDirectory()
    }

    static let http = HTTPClient(eventLoopGroupProvider: .singleton)

    /// A TCP port free on 127.0.0.1 now, below the kernel's ephemeral range. A port from bind(0) lies in the range
    /// that outgoing connections take their source ports from, so one of a stack's own connections (an ingress's to
    /// Redis) could take it before the stack's server binds it, which then fails with "Address already in use".
    /// Ports are handed out upwards from a random start, so no two calls of a run get the same one.
    static func freePort() -> Int {
        nextPort.withLockedValue { next in
            if !ports.contains(next) { next = Int.random(in: ports) }
            while true {
                let port = next
                next = port + 1 < ports.upperBound ? port + 1 : ports.lowerBound
                if canBind(port) { return port }
            }
        }
    }

    private static let nextPort = NIOLockedValueBox(0)

    /// The ports outside the ephemeral range: below it, or above it when it starts low.
    private static let ports: Range<Int> = {
        let text = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
        let bounds = text.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        let (low, high) = bounds.count == 2 ? (bounds[0], bounds[1]) : (32_768, 60_999)
        if low > 11_000 { return 10_000..<low }
        return high < 64_000 ? (high + 1)..<65_536 : 10_000..<65_536
    }()

    private static func canBind(_ port: Int) -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    /// Creates a topic on the test broker (and its batch lane), for tests that need a provider of their own.
    static func createTopics(provider: String, partitions: Int = 3) async throws {
        let url = "tcp://\(try brokers)"
        for topic in ["llm.jobs.\(provider)", "llm.jobs.\(provider).batch"] {
            let create = try ChildProcess(name: "topic", executable: try tansu, arguments: ["topic", "create", "--broker", url, "--partitions", String(partitions), topic], environment: [:])
            _ = await create.waitForExit(timeout: .seconds(20))
        }
    }

    /// A unique suffix so that tests sharing Redis and the broker never see each other's prompts.
    static func unique(_ label: String) -> String {
        "\(label)-\(UInt64.random(in: 0...UInt64.max))"
    }
}

/// A child process with its output in a log file.
final class ChildProcess: @unchecked Sendable {
    // Marked `@unchecked Sendable` because `Process` is only touched through thread-safe calls here.
    let process = Process()
    let logPath: String
    let name: String

    init(name: String, executable: String, arguments: [String], environment: [String: String]) throws {
        self.name = name
        self.logPath = "\(TestStack.workDirectory)/\(name)-\(UInt32.random(in: 0...UInt32.max)).log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try #require(FileHandle(forWritingAtPath: logPath))
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var merged = ProcessInfo.processInfo.environment
        for key in merged.keys where (key.hasPrefix("LLMGW_") && !key.hasPrefix("LLMGW_TEST_")) || key.hasSuffix("_API_KEY") || key.hasSuffix("_BASE_URL") {
            merged[key] = nil
        }
        merged.merge(environment) { $1 }
        process.environment = merged
        process.standardOutput = log
        process.standardError = log
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    func signal(_ number: Int32) {
        if process.isRunning { kill(process.processIdentifier, number) }
    }

    /// Waits for the process to exit; returns its status, or nil when it is still running after `timeout`.
    func waitForExit(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline { return nil }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return process.terminationStatus
    }

    func stop() async {
        signal(SIGTERM)
        if await waitForExit(timeout: .seconds(10)) == nil {
            signal(SIGKILL)
            _ = await waitForExit(timeout: .seconds(5))
        }
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
}

/// One running gateway: mock provider, worker and ingress, sharing the test Redis and broker unless told otherwise.
final class GatewayStack: @unchecked Sendable {
    // Marked `@unchecked Sendable` because its children list is only changed by the test that owns the stack.
    let environment: [String: String]
    let ingressPort: Int
    let mockPort: Int
    private(set) var children: [ChildProcess] = []
    private(set) var workers: [ChildProcess] = []
    /// Each worker's HTTP port (`/healthz`, `/readyz`, `/metrics`), in the order of `workers`.
    private(set) var workerHTTPPorts: [Int] = []
    private(set) var ingress: ChildProcess?

    var baseURL: String { "http://127.0.0.1:\(ingressPort)" }
    var mockURL: String { "http://127.0.0.1:\(mockPort)" }

    /// - Parameters:
    ///   - brokers: the broker to use; the shared test broker by default.
    ///   - redisPort: the Redis to use; the shared test Redis by default.
    ///   - extra: more environment for the gateway processes.
    init(brokers: String? = nil, redisPort: Int? = nil, extra: [String: String] = [:]) throws {
        ingressPort = TestStack.freePort()
        mockPort = TestStack.freePort()
        let mock = "http://127.0.0.1:\(mockPort)"
        var environment: [String: String] = [
            "LLMGW_REDIS_URL": "redis://127.0.0.1:\(try redisPort ?? TestStack.redisPort)/0",
            "LLMGW_KAFKA_BROKERS": try brokers ?? TestStack.brokers,
            "LLMGW_HTTP_PORT": String(ingressPort),
            "LLMGW_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "LLMGW_JOB_LEASE_SECONDS": "3",
            "LLMGW_DRAIN_SECONDS": "10",
            "LLMGW_PRODUCE_TIMEOUT_MS": "2000",
            "LLMGW_REDIS_TIMEOUT_MS": "1000",
            "LLMGW_PROVIDER_TIMEOUT_SECONDS": "5",
            "LLMGW_LOG_LEVEL": "info",
            "LLMGW_ADMIN_TOKEN": GatewayStack.adminToken,
        ]
        for (id, path) in [("OPENAI", "/v1"), ("HF", "/v1"), ("MISTRAL", "/v1"), ("GROQ", "/openai/v1"), ("OPENROUTER", "/api/v1"),
                           ("ANTHROPIC", ""), ("GEMINI", ""), ("COHERE", "")] {
            environment["\(id)_API_KEY"] = "test-key-\(id.lowercased())"
            environment["\(id)_BASE_URL"] = mock + path
        }
        // Extra OpenAI-compatible providers (`LLMGW_OPENAI_COMPATIBLE`) also point at the mock.
        for id in (extra["LLMGW_OPENAI_COMPATIBLE"] ?? "").split(separator: ",") {
            let prefix = id.uppercased().replacingOccurrences(of: "-", with: "_")
            environment["\(prefix)_API_KEY"] = "test-key-\(id)"
            environment["\(prefix)_BASE_URL"] = mock + "/v1"
        }
        self.environment = environment.merging(extra) { $1 }
    }

    func startMock(arguments: [String] = []) async throws {
        let mock = try ChildProcess(name: "mock", executable: TestStack.binary, arguments: ["mock-provider", "--port", String(mockPort)] + arguments, environment: [:])
        children.append(mock)
        try await waitForHTTP("\(mockURL)/healthz")
    }

    /// Starts a worker and waits until the consumer group assigned it partitions.
    @discardableResult
    func startWorker(providers: String = "openai", extra: [String: String] = [:]) async throws -> ChildProcess {
        let port = TestStack.freePort()
        let worker = try ChildProcess(
            name: "worker", executable: TestStack.binary, arguments: ["worker", "--provider", providers],
            environment: environment.merging(["LLMGW_WORKER_HTTP_PORT": String(port)].merging(extra) { $1 }) { $1 })
        children.append(worker)
        workers.append(worker)
        workerHTTPPorts.append(port)
        try await waitFor("worker partitions assigned", timeout: .seconds(60)) {
            guard let body = try? await HTTP.get("http://127.0.0.1:\(port)/readyz"), body.status == 200 else { return false }
            return (body.json?["assigned_partitions"] as? Int ?? 0) > 0
        }
        return worker
    }

    func startIngress(extra: [String: String] = [:]) async throws {
        let ingress = try ChildProcess(name: "ingress", executable: TestStack.binary, arguments: ["ingress"], environment: environment.merging(extra) { $1 })
        children.append(ingress)
        self.ingress = ingress
        try await waitForHTTP("\(baseURL)/readyz")
        try await authorizeByDefault(port: ingressPort)
    }

    /// The token `HTTP` calls to this stack's ingress replicas carry unless they send their own `Authorization`.
    private(set) var apiKey: String?

    /// The admin token every stack's ingress is started with.
    static let adminToken = "test-admin-token-0123456789"

    /// Starts another ingress replica on its own port, sharing Redis and the broker; returns its base URL.
    func startIngressReplica(extra: [String: String] = [:]) async throws -> String {
        let port = TestStack.freePort()
        let replica = try ChildProcess(
            name: "ingress-replica", executable: TestStack.binary, arguments: ["ingress"],
            environment: environment.merging(["LLMGW_HTTP_PORT": String(port)].merging(extra) { $1 }) { $1 })
        children.append(replica)
        let url = "http://127.0.0.1:\(port)"
        try await waitForHTTP("\(url)/readyz")
        try await authorizeByDefault(port: port)
        return url
    }

    /// Creates an API key with `llm-gateway keys create --json` against this stack's Redis.
    /// - Returns: the key (`lgw_…`) and its public id.
    func createKey(_ arguments: [String] = []) async throws -> (key: String, id: String) {
        let process = try ChildProcess(name: "keys", executable: TestStack.binary, arguments: ["keys", "create", "--json"] + arguments, environment: environment)
        let status = await process.waitForExit(timeout: .seconds(30))
        #expect(status == 0, "\(process.log)")
        let line = try #require(process.log.split(separator: "\n").first { $0.hasPrefix("{") }, "\(process.log)")
        let json = try #require((try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any])
        return (try #require(json["key"] as? String), try #require(json["id"] as? String))
    }

    /// Makes `HTTP` calls to `port` carry this stack's default key (created once, with limits no test reaches).
    private func authorizeByDefault(port: Int) async throws {
        if apiKey == nil {
            apiKey = try await createKey(["--name", "integration-tests", "--rpm", "10000000", "--tpm", "1000000000"]).key
        }
        HTTP.defaultAuthorization.withLockedValue { $0[port] = "Bearer \(apiKey!)" }
    }

    /// Starts mock, worker and ingress.
    static func start(brokers: String? = nil, redisPort: Int? = nil, extra: [String: String] = [:]) async throws -> GatewayStack {
        let stack = try GatewayStack(brokers: brokers, redisPort: redisPort, extra: extra)
        try await stack.startMock()
        try await stack.startWorker()
        try await stack.startIngress()
        return stack
    }

    func stop() async {
        for child in children.reversed() { await child.stop() }
    }

    /// How often the mock was called with `prompt`.
    func mockCalls(prompt: String) async throws -> Int {
        let encoded = prompt.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? prompt
        let response = try await HTTP.get("\(mockURL)/mock/stats?prompt=\(encoded)")
        return try #require(response.json?["calls"] as? Int)
    }

    /// Polls a job until it reaches a final status.
    /// - Parameter apiKey: the key that submitted the job (only it can read it); the stack's default key if `nil`.
    func waitForJob(_ id: String, apiKey: String? = nil, timeout: Duration = .seconds(60)) async throws -> [String: Any] {
        var last: [String: Any] = [:]
        let headers = apiKey.map { [("Authorization", "Bearer \($0)")] } ?? []
        try await waitFor("job \(id) to finish", timeout: timeout) {
            guard let response = try? await HTTP.get("\(self.baseURL)/gateway/jobs/\(id)", headers: headers), let json = response.json else { return false }
            last = json
            let status = json["status"] as? String ?? ""
            return ["completed", "failed", "cancelled", "expired"].contains(status)
        }
        return last
    }

    func logs() -> String {
        children.map { "--- \($0.name) ---\n\($0.log.suffix(4000))" }.joined(separator: "\n")
    }
}

/// Waits for an HTTP endpoint to answer 200.
func waitForHTTP(_ url: String, timeout: Duration = .seconds(30)) async throws {
    try await waitFor("\(url) to answer", timeout: timeout) {
        (try? await HTTP.get(url))?.status == 200
    }
}

/// Re-checks a condition until it holds, failing the test after `timeout`.
func waitFor(_ what: String, timeout: Duration, every interval: Duration = .milliseconds(100), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: interval)
    }
    Issue.record("timed out waiting for \(what)")
    throw TimedOut(what: what)
}

struct TimedOut: Error {
    var what: String
}

/// A small HTTP helper over AsyncHTTPClient.
enum HTTP {
    struct Reply: Sendable {
        var status: Int
        var headers: [(String, String)]
        var body: [UInt8]

        var text: String { String(decoding: body, as: UTF8.self) }
        var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] }

        func header(_ name: String) -> String? {
            headers.first { $0.0.lowercased() == name.lowercased() }?.1
        }
    }

    static func get(_ url: String, headers: [(String, String)] = [], timeout: Duration = .seconds(30)) async throws -> Reply {
        try await send("GET", url, body: nil, headers: headers, timeout: timeout)
    }

    static func post(_ url: String, json: Any, headers: [(String, String)] = [], timeout: Duration = .seconds(30)) async throws -> Reply {
        let data = try JSONSerialization.data(withJSONObject: json)
        return try await send("POST", url, body: Array(data), headers: headers + [("Content-Type", "application/json")], timeout: timeout)
    }

    static func post(_ url: String, raw: [UInt8], headers: [(String, String)] = [], timeout: Duration = .seconds(30)) async throws -> Reply {
        try await send("POST", url, body: raw, headers: headers, timeout: timeout)
    }

    /// The `Authorization` value sent to each local port unless a call sets its own; an empty `Authorization`
    /// header in a call means "send none".
    static let defaultAuthorization = NIOLockedValueBox<[Int: String]>([:])

    static func send(_ method: String, _ url: String, body: [UInt8]?, headers: [(String, String)], timeout: Duration) async throws -> Reply {
        var request = HTTPClientRequest(url: url)
        request.method = .init(rawValue: method)
        var headers = headers
        if !headers.contains(where: { $0.0.lowercased() == "authorization" }),
           let port = URLComponents(string: url)?.port, let value = defaultAuthorization.withLockedValue({ $0[port] }) {
            headers.append(("Authorization", value))
        }
        headers.removeAll { $0.0.lowercased() == "authorization" && $0.1.isEmpty }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let seconds = timeout.components.seconds
        let response = try await TestStack.http.execute(request, timeout: .seconds(seconds))
        let collected = try await response.body.collect(upTo: 64 * 1024 * 1024)
        return Reply(status: Int(response.status.code), headers: response.headers.map { ($0.name, $0.value) }, body: Array(buffer: collected))
    }
}

/// A Tansu broker of a test's own, for tests that stop the broker.
final class OwnBroker: @unchecked Sendable {
    // Marked `@unchecked Sendable` because `process` is only replaced by the test that owns the broker.
    let port = TestStack.freePort()
    private(set) var process: ChildProcess?

    var brokers: String { "127.0.0.1:\(port)" }

    func start() async throws {
        let url = "tcp://127.0.0.1:\(port)"
        process = try ChildProcess(name: "tansu", executable: TestStack.tansu, arguments: ["broker", "--listener-url", url, "--advertised-listener-url", url], environment: [:])
        try await waitFor("broker on \(port)", timeout: .seconds(20)) { canConnect(port: port) }
        for topic in ["llm.jobs.openai", "llm.jobs.dead-letter"] {
            let create = try ChildProcess(name: "topic", executable: TestStack.tansu, arguments: ["topic", "create", "--broker", url, "--partitions", "3", topic], environment: [:])
            _ = await create.waitForExit(timeout: .seconds(20))
        }
    }

    func kill() async {
        process?.signal(SIGKILL)
        _ = await process?.waitForExit(timeout: .seconds(10))
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
func canConnect(port: Int) -> Bool {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    return withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
}
