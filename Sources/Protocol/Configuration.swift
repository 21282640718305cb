/// A configuration value that cannot be used; its description is the one line printed at startup.
public struct ConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    public var variable: String
    public var message: String

    public init(variable: String, message: String) {
        self.variable = variable
        self.message = message
    }

    public var description: String { "\(variable): \(message)" }
}

/// Where Redis is, parsed from `redis://[[user]:password@]host[:port][/db]`.
public struct RedisEndpoint: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var database: Int
    public var username: String?
    public var password: String?

    public init(host: String, port: Int = 6379, database: Int = 0, username: String? = nil, password: String? = nil) {
        self.host = host
        self.port = port
        self.database = database
        self.username = username
        self.password = password
    }

    public init?(url: String) {
        guard url.hasPrefix("redis://") else { return nil }
        var rest = Substring(url.dropFirst("redis://".count))
        var username: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                let user = credentials[..<colon]
                username = user.isEmpty ? nil : String(user)
                password = String(credentials[credentials.index(after: colon)...])
            } else {
                password = String(credentials)
            }
        }
        var database = 0
        if let slash = rest.firstIndex(of: "/") {
            let path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
            if !path.isEmpty {
                guard let value = Int(path), value >= 0 else { return nil }
                database = value
            }
        }
        var host = String(rest)
        var port = 6379
        if let colon = rest.lastIndex(of: ":") {
            guard let value = Int(rest[rest.index(after: colon)...]), (1...65535).contains(value) else { return nil }
            port = value
            host = String(rest[..<colon])
        }
        guard !host.isEmpty else { return nil }
        self.init(host: host, port: port, database: database, username: username, password: password)
    }

    /// The URL without its password, safe to log.
    public var description: String { "redis://\(password == nil ? "" : "***@")\(host):\(port)/\(database)" }
}

/// Everything the gateway's processes read at startup. Defaults are documented in the README.
public struct GatewayConfiguration: Sendable {
    /// `LLMGW_HTTP_HOST`, default `127.0.0.1`.
    public var httpHost = "127.0.0.1"
    /// `LLMGW_HTTP_PORT`, default `3020`.
    public var httpPort = 3020
    /// `LLMGW_WORKER_HTTP_PORT`: where a worker serves `/healthz`, `/readyz` and `/metrics`, default `3021`.
    public var workerHTTPPort = 3021
    /// `LLMGW_KAFKA_BROKERS`, comma-separated `host:port`, default `127.0.0.1:9092`.
    public var kafkaBrokers = "127.0.0.1:9092"
    /// `LLMGW_REDIS_URL`, default `redis://127.0.0.1:6379/0`.
    public var redis = RedisEndpoint(host: "127.0.0.1")
    /// `LLMGW_MAX_BODY_BYTES`, default 10 MiB.
    public var maxBodyBytes = 10 * 1024 * 1024
    /// `LLMGW_SYNC_TIMEOUT_SECONDS`: how long `/gateway/query` waits by default, 60.
    public var syncTimeout: Double = 60
    /// `LLMGW_SYNC_TIMEOUT_MAX_SECONDS`: the cap on a client's `timeout`, 300.
    public var syncTimeoutMax: Double = 300
    /// `LLMGW_RESULT_TTL_SECONDS`: how long job records live after they finish, 24 h.
    public var resultTTL = 86_400
    /// `LLMGW_PRODUCE_TIMEOUT_MS`: how long the ingress waits for the broker's acknowledgement, 5 s.
    public var produceTimeoutMs = 5_000
    /// `LLMGW_REDIS_TIMEOUT_MS`: connect and command timeout for Redis, 2 s.
    public var redisTimeoutMs = 2_000
    /// `LLMGW_WORKER_CONCURRENCY`: jobs a worker runs at once, 64.
    public var workerConcurrency = 64
    /// `LLMGW_EVENT_LOOP_THREADS`: the event-loop threads that run a process's network I/O and its Swift tasks;
    /// `nil` for the role's default: one per CPU for the ingress, one for a worker. A worker spends its time
    /// waiting on providers, and on one loop its job's steps (broker record, Redis, provider call) stay on one
    /// thread instead of waking another: on the 2-core benchmark box, 8–19 % less CPU per job. Scale workers out by
    /// process (the consumer group shares the partitions); a busy ingress needs every CPU (cache hits).
    public var eventLoopThreads: Int?
    /// `LLMGW_NICE`: the CPU niceness a process lowers every one of its threads to (0–19, never raised back);
    /// `nil` leaves it as started. Set 10 on the workers of a host they share with the ingress, and when its CPUs
    /// are saturated the ingress answers first while accepted jobs wait in the broker: on the 2-core benchmark box,
    /// accepts while a worker consumes +15 to +25 %, at the price of about 8 % of the synchronous cache-miss
    /// throughput and 12 % of end-to-end async completion (the worker then runs after the ingress). In a container
    /// of its own a process has no neighbour to yield to, so it changes nothing there.
    public var nice: Int?
    /// `LLMGW_KAFKA_SESSION_TIMEOUT_MS`: the consumer group session timeout, 10 s.
    public var kafkaSessionTimeoutMs = 10_000
    /// `LLMGW_KAFKA_FETCH_WAIT_MS`: the broker's maximum fetch wait, 50 ms. Jobs that a client waits for start
    /// from their dispatch hint, so this bounds only how late a queued job starts on a broker that holds every
    /// fetch for the whole wait (Tansu does; Kafka answers as soon as records arrive). Shorter waits poll the
    /// broker more often: at 1 ms an idle worker kept the local broker at 19 % of a CPU, at 50 ms 3 %.
    /// At least 1: 0 has the consumer ask the broker again at once, which keeps both busy.
    public var kafkaFetchWaitMs = 50
    /// `LLMGW_KAFKA_BATCH_FETCH_WAIT_MS`: the same for the batch lane, 500 ms (librdkafka's default). Bulk jobs
    /// can start later; each fetch that Tansu holds and answers empty costs it about a millisecond of CPU, and its
    /// synchronous produce requests answered meanwhile wait (at c=1 the slow synchronous requests came once per
    /// consumer fetch).
    public var kafkaBatchFetchWaitMs = 500
    /// `LLMGW_KAFKA_LINGER_MS`: how long the ingress's producer gathers jobs into one batch before sending, 0 (at
    /// once); fractions of a millisecond allowed, at most 1000. Every queued job waits this long.
    public var kafkaLingerMs: Double = 0
    /// `LLMGW_PROVIDER_MAX_ATTEMPTS`: calls of one model before a job fails or falls back, 3.
    public var providerMaxAttempts = 3
    /// `LLMGW_PROVIDER_TIMEOUT_SECONDS`: the total deadline of one provider call, 120.
    public var providerTimeout: Double = 120
    /// `LLMGW_PROVIDER_CONNECT_TIMEOUT_SECONDS`: 5.
    public var providerConnectTimeout: Double = 5
    /// `LLMGW_PROVIDER_FIRST_BYTE_TIMEOUT_SECONDS`: the wait for response headers, 60.
    public var providerFirstByteTimeout: Double = 60
    /// `LLMGW_JOB_LEASE_SECONDS`: how long a worker's claim on a running job lasts without renewal, 15.
    public var jobLeaseSeconds = 15
    /// `LLMGW_DRAIN_SECONDS`: how long SIGTERM waits for in-flight jobs, 25.
    public var drainSeconds: Double = 25
    /// `LLMGW_KAFKA_DEBUG`: librdkafka debug contexts, for troubleshooting (`eos,msg,broker,cgrp`).
    public var kafkaDebug: String?
    /// `LLMGW_LOG_LEVEL`: trace, debug, info, notice, warning, error or critical; default info.
    public var logLevel = "info"
    /// `LLMGW_LOG_PROMPTS`: log each job's messages at debug level, default false. Prompts are never logged
    /// otherwise, whatever the level.
    public var logPrompts = false
    /// The OTLP/HTTP URL that receives spans: `LLMGW_OTLP_ENDPOINT` (a base URL, `/v1/traces` is appended), else
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (as is), else `OTEL_EXPORTER_OTLP_ENDPOINT` (a base URL). `nil` exports
    /// no spans; trace context still propagates.
    public var otlpTracesEndpoint: String?

    /// Whether spans leave the process (an OTLP endpoint is configured). Without, the gateway still carries each
    /// request's trace context (log lines, Kafka headers, provider calls) but starts no span that nothing would read.
    public var exportsSpans: Bool { otlpTracesEndpoint != nil }

    /// `LLMGW_OPENAI_COMPATIBLE`: extra OpenAI-compatible providers by id (`vllm,ollama`), each read from
    /// `<ID>_BASE_URL`, `<ID>_API_KEY` and `<ID>_DEFAULT_MODEL`.
    public var providers: [String: ProviderSettings] = [:]
    /// Authentication, rate limits, budgets and the response cache (`LLMGW_AUTH`, `LLMGW_ADMIN_TOKEN`, …).
    public var tenancy = TenancyConfiguration()
    /// Webhooks, priority lanes and idempotency (`LLMGW_WEBHOOK_*`, `LLMGW_WORKER_BATCH_CONCURRENCY`, …).
    public var lifecycle = LifecycleConfiguration()
    /// `LLMGW_MODEL_ALIASES` (`fast=groq/llama-3.1-8b-instant,…`) and `LLMGW_MODEL_GROUPS`
    /// (`resilient=anthropic/claude-3-5-haiku-latest|openai/gpt-4o-mini,…`, primary then fallbacks); none by default.
    public var models = ModelCatalog()
    /// `LLMGW_JOB_EVENTS_TTL_SECONDS`: how long a job's event stream (its lifecycle and streamed deltas) is kept, 3600.
    public var jobEventsTTL = 3_600
    /// `LLMGW_JOB_EVENTS_MAX_LENGTH`: the approximate bound on entries in one job's event stream, 10000.
    public var jobEventsMaxLength = 10_000
    /// `LLMGW_DISPATCH_HINTS`: the ingress publishes each record that a client waits for on Redis as well, and an
    /// idle worker that owns its partition starts the job from there rather than after its next broker fetch; the
    /// record stays the durable copy. true.
    public var dispatchHints = true

    public init() {}

    /// Reads and validates the environment. The first bad value throws, naming its variable.
    public static func load(environment: [String: String]) throws(ConfigurationError) -> GatewayConfiguration {
        var configuration = GatewayConfiguration()
        let reader = EnvironmentReader(environment: environment)
        if let host = reader.string("LLMGW_HTTP_HOST") { configuration.httpHost = host }
        configuration.httpPort = try reader.integer("LLMGW_HTTP_PORT", in: 1...65535) ?? configuration.httpPort
        configuration.workerHTTPPort = try reader.integer("LLMGW_WORKER_HTTP_PORT", in: 0...65535) ?? configuration.workerHTTPPort
        if let brokers = reader.string("LLMGW_KAFKA_BROKERS") {
            try validateBrokers(brokers, variable: "LLMGW_KAFKA_BROKERS")
            configuration.kafkaBrokers = brokers
        }
        if let url = reader.string("LLMGW_REDIS_URL") {
            guard let endpoint = RedisEndpoint(url: url) else {
                throw ConfigurationError(variable: "LLMGW_REDIS_URL", message: "expected redis://[password@]host[:port][/db]")
            }
            configuration.redis = endpoint
        }
        configuration.maxBodyBytes = try reader.integer("LLMGW_MAX_BODY_BYTES", in: 1...(1 << 30)) ?? configuration.maxBodyBytes
        configuration.syncTimeout = try reader.seconds("LLMGW_SYNC_TIMEOUT_SECONDS") ?? configuration.syncTimeout
        configuration.syncTimeoutMax = try reader.seconds("LLMGW_SYNC_TIMEOUT_MAX_SECONDS") ?? configuration.syncTimeoutMax
        configuration.resultTTL = try reader.integer("LLMGW_RESULT_TTL_SECONDS", in: 1...(365 * 86_400)) ?? configuration.resultTTL
        configuration.produceTimeoutMs = try reader.integer("LLMGW_PRODUCE_TIMEOUT_MS", in: 100...300_000) ?? configuration.produceTimeoutMs
        configuration.redisTimeoutMs = try reader.integer("LLMGW_REDIS_TIMEOUT_MS", in: 10...60_000) ?? configuration.redisTimeoutMs
        configuration.workerConcurrency = try reader.integer("LLMGW_WORKER_CONCURRENCY", in: 1...10_000) ?? configuration.workerConcurrency
        configuration.eventLoopThreads = try reader.integer("LLMGW_EVENT_LOOP_THREADS", in: 1...1_024) ?? configuration.eventLoopThreads
        configuration.nice = try reader.integer("LLMGW_NICE", in: 0...19) ?? configuration.nice
        configuration.kafkaSessionTimeoutMs = try reader.integer("LLMGW_KAFKA_SESSION_TIMEOUT_MS", in: 1_000...300_000) ?? configuration.kafkaSessionTimeoutMs
        configuration.kafkaFetchWaitMs = try reader.integer("LLMGW_KAFKA_FETCH_WAIT_MS", in: 1...10_000) ?? configuration.kafkaFetchWaitMs
        configuration.kafkaBatchFetchWaitMs = try reader.integer("LLMGW_KAFKA_BATCH_FETCH_WAIT_MS", in: 1...10_000) ?? configuration.kafkaBatchFetchWaitMs
        configuration.kafkaLingerMs = try reader.number("LLMGW_KAFKA_LINGER_MS", in: 0...1_000) ?? configuration.kafkaLingerMs
        configuration.providerMaxAttempts = try reader.integer("LLMGW_PROVIDER_MAX_ATTEMPTS", in: 1...20) ?? configuration.providerMaxAttempts
        configuration.providerTimeout = try reader.seconds("LLMGW_PROVIDER_TIMEOUT_SECONDS") ?? configuration.providerTimeout
        configuration.providerConnectTimeout = try reader.seconds("LLMGW_PROVIDER_CONNECT_TIMEOUT_SECONDS") ?? configuration.providerConnectTimeout
        configuration.providerFirstByteTimeout = try reader.seconds("LLMGW_PROVIDER_FIRST_BYTE_TIMEOUT_SECONDS") ?? configuration.providerFirstByteTimeout
        configuration.jobLeaseSeconds = try reader.integer("LLMGW_JOB_LEASE_SECONDS", in: 1...3_600) ?? configuration.jobLeaseSeconds
        configuration.drainSeconds = try reader.seconds("LLMGW_DRAIN_SECONDS") ?? configuration.drainSeconds
        configuration.kafkaDebug = reader.string("LLMGW_KAFKA_DEBUG")
        if let level = reader.string("LLMGW_LOG_LEVEL") {
            let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
            guard levels.contains(level.lowercased()) else {
                throw ConfigurationError(variable: "LLMGW_LOG_LEVEL", message: "expected one of \(levels.joined(separator: ", ")), got '\(level)'")
            }
            configuration.logLevel = level.lowercased()
        }
        configuration.jobEventsTTL = try reader.integer("LLMGW_JOB_EVENTS_TTL_SECONDS", in: 1...(7 * 86_400)) ?? configuration.jobEventsTTL
        configuration.jobEventsMaxLength = try reader.integer("LLMGW_JOB_EVENTS_MAX_LENGTH", in: 100...1_000_000) ?? configuration.jobEventsMaxLength
        configuration.tenancy = try TenancyConfiguration.load(reader)
        configuration.lifecycle = try LifecycleConfiguration.load(reader)
        configuration.logPrompts = try reader.boolean("LLMGW_LOG_PROMPTS") ?? configuration.logPrompts
        configuration.dispatchHints = try reader.boolean("LLMGW_DISPATCH_HINTS") ?? configuration.dispatchHints
        configuration.otlpTracesEndpoint = try otlpTracesEndpoint(reader)
        if configuration.syncTimeout > configuration.syncTimeoutMax {
            throw ConfigurationError(variable: "LLMGW_SYNC_TIMEOUT_SECONDS", message: "must not exceed LLMGW_SYNC_TIMEOUT_MAX_SECONDS (\(configuration.syncTimeoutMax))")
        }

        var descriptors = ProviderDescriptor.builtIn
        if let extra = reader.string("LLMGW_OPENAI_COMPATIBLE") {
            for id in extra.split(separator: ",").map({ $0.trimmingSpaces.lowercased() }) where !id.isEmpty {
                guard id.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                    throw ConfigurationError(variable: "LLMGW_OPENAI_COMPATIBLE", message: "provider id '\(id)' may hold only letters, digits, '-' and '_'")
                }
                guard Topics.jobs(provider: id) != Topics.deadLetters else {
                    throw ConfigurationError(variable: "LLMGW_OPENAI_COMPATIBLE", message: "provider id '\(id)' is reserved")
                }
                guard !descriptors.contains(where: { $0.id == id }) else { continue }
                let prefix = environmentPrefix(id)
                guard reader.string("\(prefix)_BASE_URL") != nil else {
                    throw ConfigurationError(variable: "\(prefix)_BASE_URL", message: "required for the OpenAI-compatible provider '\(id)'")
                }
                descriptors.append(ProviderDescriptor(id: id, kind: .openAI, defaultBaseURL: "", defaultModel: "default"))
            }
        }
        for descriptor in descriptors {
            let prefix = environmentPrefix(descriptor.id)
            let rawBaseURL = reader.string("\(prefix)_BASE_URL") ?? descriptor.defaultBaseURL
            let baseURL = String(rawBaseURL.reversed().drop(while: { $0 == "/" }).reversed())
            let host = baseURL.hasPrefix("https://") ? baseURL.dropFirst(8) : baseURL.hasPrefix("http://") ? baseURL.dropFirst(7) : ""
            guard !host.isEmpty, !host.hasPrefix("/") else {
                throw ConfigurationError(variable: "\(prefix)_BASE_URL", message: "expected an http:// or https:// URL with a host")
            }
            var apiKey = reader.string("\(prefix)_API_KEY")
            if descriptor.id == "hf", apiKey == nil { apiKey = reader.string("HF_TOKEN") }
            var headers: [String: String] = [:]
            if descriptor.id == "openrouter" {
                if let referer = reader.string("OPENROUTER_HTTP_REFERER") { headers["HTTP-Referer"] = referer }
                if let title = reader.string("OPENROUTER_X_TITLE") { headers["X-Title"] = title }
            }
            configuration.providers[descriptor.id] = ProviderSettings(
                id: descriptor.id,
                kind: descriptor.kind,
                baseURL: baseURL,
                apiKey: apiKey,
                defaultModel: reader.string("\(prefix)_DEFAULT_MODEL") ?? descriptor.defaultModel,
                extraHeaders: headers
            )
        }
        configuration.models = try ModelCatalog.parse(
            aliases: reader.string("LLMGW_MODEL_ALIASES"), groups: reader.string("LLMGW_MODEL_GROUPS"), providers: configuration.providers)
        return configuration
    }

    static func otlpTracesEndpoint(_ reader: EnvironmentReader) throws(ConfigurationError) -> String? {
        for name in ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] {
            if let value = reader.string(name), !["http/protobuf", "http/json"].contains(value) {
                throw ConfigurationError(variable: name, message: "this build exports OTLP over HTTP only (http/protobuf), got '\(value)'")
            }
        }
        let candidates: [(name: String, isBase: Bool)] = [
            ("LLMGW_OTLP_ENDPOINT", true), ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", false), ("OTEL_EXPORTER_OTLP_ENDPOINT", true),
        ]
        for (name, isBase) in candidates {
            guard let value = reader.string(name) else { continue }
            guard value.hasPrefix("http://") || value.hasPrefix("https://"), value.split(separator: "/").count >= 2 else {
                throw ConfigurationError(variable: name, message: "expected an http:// or https:// URL, got '\(value)'")
            }
            guard isBase, !value.hasSuffix("/v1/traces") else { return value }
            return value.hasSuffix("/") ? value + "v1/traces" : value + "/v1/traces"
        }
        return nil
    }

    /// The environment variable prefix of a provider id: `hf` → `HF`, `my-vllm` → `MY_VLLM`.
    public static func environmentPrefix(_ id: String) -> String {
        id.uppercased().map { $0 == "-" ? "_" : $0 }.reduce(into: "") { $0.append($1) }
    }

    static func validateBrokers(_ value: String, variable: String) throws(ConfigurationError) {
        let brokers = value.split(separator: ",").map { $0.trimmingSpaces }
        guard !brokers.isEmpty else { throw ConfigurationError(variable: variable, message: "expected host:port[,host:port…]") }
        for broker in brokers {
            guard let colon = broker.lastIndex(of: ":"), colon != broker.startIndex,
                  let port = Int(broker[broker.index(after: colon)...]), (1...65535).contains(port)
            else {
                throw ConfigurationError(variable: variable, message: "expected host:port[,host:port…], got '\(broker)'")
            }
        }
    }
}

/// Typed, validated reads of environment variables. Empty values count as unset.
struct EnvironmentReader {
    var environment: [String: String]

    func string(_ name: String) -> String? {
        guard let value = environment[name]?.trimmingSpaces, !value.isEmpty else { return nil }
        return value
    }

    func integer(_ name: String, in range: ClosedRange<Int>) throws(ConfigurationError) -> Int? {
        guard let raw = string(name) else { return nil }
        guard let value = Int(raw), range.contains(value) else {
            throw ConfigurationError(variable: name, message: "expected an integer in \(range.lowerBound)...\(range.upperBound), got '\(raw)'")
        }
        return value
    }

    func number(_ name: String, in range: ClosedRange<Double>) throws(ConfigurationError) -> Double? {
        guard let raw = string(name) else { return nil }
        guard let value = Double(raw), value.isFinite, range.contains(value) else {
            throw ConfigurationError(variable: name, message: "expected a number in \(range.lowerBound)...\(range.upperBound), got '\(raw)'")
        }
        return value
    }

    func boolean(_ name: String) throws(ConfigurationError) -> Bool? {
        guard let raw = string(name) else { return nil }
        guard let value = ["true": true, "1": true, "false": false, "0": false][raw.lowercased()] else {
            throw ConfigurationError(variable: name, message: "expected true or false, got '\(raw)'")
        }
        return value
    }

    func seconds(_ name: String) throws(ConfigurationError) -> Double? {
        guard let raw = string(name) else { return nil }
        guard let value = Double(raw), value > 0, value.isFinite else {
            throw ConfigurationError(variable: name, message: "expected a positive number of seconds, got '\(raw)'")
        }
        return value
    }
}

extension StringProtocol {
    var trimmingSpaces: String {
        String(self.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
