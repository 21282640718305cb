import Protocol
import Testing

@Suite("GatewayConfiguration", .serialized, .timeLimit(.minutes(2)))
struct ConfigurationTests {
    static let builtInBaseURLs = [
        "openai": "https://api.openai.com/v1",
        "anthropic": "https://api.anthropic.com",
        "gemini": "https://generativelanguage.googleapis.com",
        "groq": "https://api.groq.com/openai/v1",
        "openrouter": "https://openrouter.ai/api/v1",
        "hf": "https://router.huggingface.co/v1",
        "mistral": "https://api.mistral.ai/v1",
        "cohere": "https://api.cohere.com",
    ]

    @Test("an empty environment gives the documented defaults")
    func defaults() throws {
        let configuration = try GatewayConfiguration.load(environment: [:])
        #expect(configuration.httpPort == 3020)
        #expect(configuration.kafkaBrokers == "127.0.0.1:9092")
        #expect(configuration.redis == RedisEndpoint(host: "127.0.0.1", port: 6379, database: 0))
        #expect(configuration.redis.password == nil)
        #expect(configuration.maxBodyBytes == 10 * 1024 * 1024)
        #expect(configuration.logLevel == "info")
        #expect(configuration.kafkaLingerMs == 0)
        #expect(configuration.dispatchHints == true)
        #expect(configuration.eventLoopThreads == nil, "each role picks its own default")
        #expect(configuration.nice == nil, "processes keep the niceness they started with")
        #expect(configuration.logPrompts == false)
        #expect(configuration.syncTimeout <= configuration.syncTimeoutMax)
        #expect(configuration.providers.mapValues(\.baseURL) == Self.builtInBaseURLs)
        for (id, settings) in configuration.providers {
            #expect(settings.id == id)
            #expect(settings.apiKey == nil, "\(id) has a key nobody configured")
            #expect(!settings.defaultModel.isEmpty)
        }
        let kinds = configuration.providers.mapValues(\.kind)
        #expect(kinds["anthropic"] == .anthropic)
        #expect(kinds["gemini"] == .gemini)
        #expect(kinds["cohere"] == .cohere)
        for id in ["openai", "groq", "openrouter", "hf", "mistral"] {
            #expect(kinds[id] == .openAI, "\(id)")
        }
    }

    @Test("valid values are read, trimmed, and empty values count as unset")
    func overrides() throws {
        let configuration = try GatewayConfiguration.load(environment: [
            "LLMGW_HTTP_PORT": " 8080 ",
            "LLMGW_KAFKA_BROKERS": "kafka-0:9092, kafka-1:9093",
            "LLMGW_REDIS_URL": "redis://:s3cret@redis.internal:6380/2",
            "LLMGW_MAX_BODY_BYTES": "",
            "LLMGW_LOG_LEVEL": "DEBUG",
            "LLMGW_SYNC_TIMEOUT_SECONDS": "2.5",
            "LLMGW_WORKER_CONCURRENCY": "8",
            "LLMGW_EVENT_LOOP_THREADS": "3",
            "LLMGW_NICE": "0",
            "LLMGW_KAFKA_BATCH_FETCH_WAIT_MS": "250",
        ])
        #expect(configuration.httpPort == 8080)
        #expect(configuration.kafkaBrokers == "kafka-0:9092, kafka-1:9093")
        #expect(configuration.redis == RedisEndpoint(host: "redis.internal", port: 6380, database: 2, password: "s3cret"))
        #expect(configuration.maxBodyBytes == 10 * 1024 * 1024)
        #expect(configuration.logLevel == "debug")
        #expect(configuration.syncTimeout == 2.5)
        #expect(configuration.workerConcurrency == 8)
        #expect(configuration.eventLoopThreads == 3)
        #expect(configuration.nice == 0)
        #expect(configuration.kafkaBatchFetchWaitMs == 250)
        #expect(configuration.kafkaFetchWaitMs == 50)
    }

    @Test(
        "each bad value throws, naming its variable",
        arguments: [
            (["LLMGW_HTTP_PORT": "abc"], "LLMGW_HTTP_PORT"),
            (["LLMGW_HTTP_PORT": "70000"], "LLMGW_HTTP_PORT"),
            (["LLMGW_HTTP_PORT": "0"], "LLMGW_HTTP_PORT"),
            (["LLMGW_HTTP_PORT": "80.5"], "LLMGW_HTTP_PORT"),
            (["LLMGW_KAFKA_BROKERS": "localhost"], "LLMGW_KAFKA_BROKERS"),
            (["LLMGW_KAFKA_BROKERS": "host:notaport"], "LLMGW_KAFKA_BROKERS"),
            (["LLMGW_KAFKA_BROKERS": "a:9092,:9093"], "LLMGW_KAFKA_BROKERS"),
            (["LLMGW_KAFKA_BROKERS": ",,"], "LLMGW_KAFKA_BROKERS"),
            (["LLMGW_REDIS_URL": "http://x"], "LLMGW_REDIS_URL"),
            (["LLMGW_REDIS_URL": "redis://host/notadb"], "LLMGW_REDIS_URL"),
            (["LLMGW_LOG_LEVEL": "verbose"], "LLMGW_LOG_LEVEL"),
            (["OPENAI_BASE_URL": "ftp://x"], "OPENAI_BASE_URL"),
            (["ANTHROPIC_BASE_URL": "api.anthropic.com"], "ANTHROPIC_BASE_URL"),
            (["LLMGW_SYNC_TIMEOUT_SECONDS": "400"], "LLMGW_SYNC_TIMEOUT_SECONDS"),
            (["LLMGW_SYNC_TIMEOUT_SECONDS": "100", "LLMGW_SYNC_TIMEOUT_MAX_SECONDS": "50"], "LLMGW_SYNC_TIMEOUT_SECONDS"),
            (["LLMGW_DRAIN_SECONDS": "-1"], "LLMGW_DRAIN_SECONDS"),
            (["LLMGW_PROVIDER_TIMEOUT_SECONDS": "0"], "LLMGW_PROVIDER_TIMEOUT_SECONDS"),
            (["LLMGW_PROVIDER_TIMEOUT_SECONDS": "inf"], "LLMGW_PROVIDER_TIMEOUT_SECONDS"),
            (["LLMGW_PROVIDER_CONNECT_TIMEOUT_SECONDS": "nan"], "LLMGW_PROVIDER_CONNECT_TIMEOUT_SECONDS"),
            (["LLMGW_MAX_BODY_BYTES": "-5"], "LLMGW_MAX_BODY_BYTES"),
            (["LLMGW_WORKER_CONCURRENCY": "0"], "LLMGW_WORKER_CONCURRENCY"),
            (["LLMGW_KAFKA_FETCH_WAIT_MS": "0"], "LLMGW_KAFKA_FETCH_WAIT_MS"),
            (["LLMGW_KAFKA_BATCH_FETCH_WAIT_MS": "0"], "LLMGW_KAFKA_BATCH_FETCH_WAIT_MS"),
            (["LLMGW_KAFKA_BATCH_FETCH_WAIT_MS": "10001"], "LLMGW_KAFKA_BATCH_FETCH_WAIT_MS"),
            (["LLMGW_EVENT_LOOP_THREADS": "0"], "LLMGW_EVENT_LOOP_THREADS"),
            (["LLMGW_EVENT_LOOP_THREADS": "many"], "LLMGW_EVENT_LOOP_THREADS"),
            (["LLMGW_NICE": "-5"], "LLMGW_NICE"),
            (["LLMGW_NICE": "20"], "LLMGW_NICE"),
            (["LLMGW_NICE": "low"], "LLMGW_NICE"),
            (["LLMGW_KAFKA_LINGER_MS": "-0.5"], "LLMGW_KAFKA_LINGER_MS"),
            (["LLMGW_KAFKA_LINGER_MS": "1001"], "LLMGW_KAFKA_LINGER_MS"),
            (["LLMGW_KAFKA_LINGER_MS": "soon"], "LLMGW_KAFKA_LINGER_MS"),
            (["LLMGW_DISPATCH_HINTS": "sometimes"], "LLMGW_DISPATCH_HINTS"),
            (["LLMGW_LOG_PROMPTS": "yes please"], "LLMGW_LOG_PROMPTS"),
            (["LLMGW_OPENAI_COMPATIBLE": "bad id!"], "LLMGW_OPENAI_COMPATIBLE"),
            (["LLMGW_OPENAI_COMPATIBLE": "vllm"], "VLLM_BASE_URL"),
            (["LLMGW_OPENAI_COMPATIBLE": "vllm", "VLLM_BASE_URL": "ftp://x"], "VLLM_BASE_URL"),
        ] as [([String: String], String)]
    )
    func badValue(environment: [String: String], variable: String) throws {
        let error = try #require(configurationError(environment))
        #expect(error.variable == variable)
        #expect(error.description.hasPrefix(variable))
        #expect(!error.message.isEmpty)
    }

    @Test("the producer linger takes fractions of a millisecond")
    func lingerFractions() throws {
        #expect(try GatewayConfiguration.load(environment: ["LLMGW_KAFKA_LINGER_MS": "0.25"]).kafkaLingerMs == 0.25)
        #expect(try GatewayConfiguration.load(environment: ["LLMGW_KAFKA_LINGER_MS": "5"]).kafkaLingerMs == 5)
    }

    @Test("switches take true, false, 1 and 0 in any case")
    func switches() throws {
        for (raw, value) in [("false", false), ("FALSE", false), ("0", false), ("true", true), ("True", true), ("1", true)] {
            let configuration = try GatewayConfiguration.load(environment: ["LLMGW_DISPATCH_HINTS": raw, "LLMGW_LOG_PROMPTS": raw])
            #expect(configuration.dispatchHints == value, "\(raw)")
            #expect(configuration.logPrompts == value, "\(raw)")
        }
    }

    @Test("a bad Redis URL's error does not echo its password")
    func redisErrorHidesPassword() throws {
        let error = try #require(configurationError(["LLMGW_REDIS_URL": "redis://:hunter2@host:notaport/0"]))
        #expect(error.variable == "LLMGW_REDIS_URL")
        #expect(!error.description.contains("hunter2"))
    }

    @Test("a base URL that is only a scheme and slashes is rejected (validated after trimming)")
    func schemeOnlyBaseURL() {
        // "https:///" passes the length check before the trailing slashes are trimmed, and is stored as "https:".
        #expect(configurationError(["OPENAI_BASE_URL": "https:///"])?.variable == "OPENAI_BASE_URL")
    }

    @Test("provider keys, models and base URLs come from <ID>_* variables; trailing slashes are trimmed")
    func providerVariables() throws {
        let configuration = try GatewayConfiguration.load(environment: [
            "OPENAI_API_KEY": "sk-openai",
            "OPENAI_BASE_URL": "http://localhost:3030/v1//",
            "ANTHROPIC_DEFAULT_MODEL": "claude-x",
            "OPENROUTER_HTTP_REFERER": "https://example.com",
            "OPENROUTER_X_TITLE": "gateway",
        ])
        let openAI = try #require(configuration.providers["openai"])
        #expect(openAI.apiKey == "sk-openai")
        #expect(openAI.baseURL == "http://localhost:3030/v1")
        #expect(configuration.providers["anthropic"]?.defaultModel == "claude-x")
        #expect(configuration.providers["anthropic"]?.baseURL == "https://api.anthropic.com")
        #expect(configuration.providers["openrouter"]?.extraHeaders == ["HTTP-Referer": "https://example.com", "X-Title": "gateway"])
        #expect(configuration.providers["groq"]?.extraHeaders == [:])
    }

    @Test("hf falls back to HF_TOKEN; HF_API_KEY wins when both are set")
    func huggingFaceToken() throws {
        let tokenOnly = try GatewayConfiguration.load(environment: ["HF_TOKEN": "hf_token"])
        #expect(tokenOnly.providers["hf"]?.apiKey == "hf_token")
        #expect(tokenOnly.providers["openai"]?.apiKey == nil)
        let both = try GatewayConfiguration.load(environment: ["HF_TOKEN": "hf_token", "HF_API_KEY": "hf_key"])
        #expect(both.providers["hf"]?.apiKey == "hf_key")
    }

    @Test("LLMGW_OPENAI_COMPATIBLE adds OpenAI-kind providers read from <ID>_* variables")
    func openAICompatible() throws {
        let configuration = try GatewayConfiguration.load(environment: [
            "LLMGW_OPENAI_COMPATIBLE": "vllm, My-Vllm,openai",
            "VLLM_BASE_URL": "http://vllm:8000/v1/",
            "VLLM_API_KEY": "vllm-key",
            "VLLM_DEFAULT_MODEL": "qwen",
            "MY_VLLM_BASE_URL": "http://other:8000/v1",
        ])
        let vllm = try #require(configuration.providers["vllm"])
        #expect(vllm.kind == .openAI)
        #expect(vllm.baseURL == "http://vllm:8000/v1")
        #expect(vllm.apiKey == "vllm-key")
        #expect(vllm.defaultModel == "qwen")
        let mine = try #require(configuration.providers["my-vllm"])
        #expect(mine.kind == .openAI)
        #expect(mine.baseURL == "http://other:8000/v1")
        #expect(!mine.defaultModel.isEmpty)
        // A built-in id in the list keeps its built-in settings.
        #expect(configuration.providers["openai"]?.baseURL == "https://api.openai.com/v1")
        #expect(configuration.providers.count == Self.builtInBaseURLs.count + 2)
    }

    @Test("environmentPrefix upper-cases and turns dashes into underscores")
    func environmentPrefix() {
        #expect(GatewayConfiguration.environmentPrefix("my-vllm") == "MY_VLLM")
        #expect(GatewayConfiguration.environmentPrefix("hf") == "HF")
        #expect(GatewayConfiguration.environmentPrefix("a-b-c2") == "A_B_C2")
    }
}

@Suite("RedisEndpoint", .serialized, .timeLimit(.minutes(2)))
struct RedisEndpointTests {
    @Test(
        "parses redis://[[user]:password@]host[:port][/db]",
        arguments: [
            ("redis://localhost", RedisEndpoint(host: "localhost")),
            ("redis://localhost:6380", RedisEndpoint(host: "localhost", port: 6380)),
            ("redis://localhost/3", RedisEndpoint(host: "localhost", database: 3)),
            ("redis://localhost:6380/", RedisEndpoint(host: "localhost", port: 6380)),
            ("redis://secret@cache:7000/1", RedisEndpoint(host: "cache", port: 7000, database: 1, password: "secret")),
            ("redis://:secret@cache", RedisEndpoint(host: "cache", password: "secret")),
            ("redis://alice:s:e@cret@cache:7000/15", RedisEndpoint(host: "cache", port: 7000, database: 15, username: "alice", password: "s:e@cret")),
            ("redis://10.0.0.7:6379/0", RedisEndpoint(host: "10.0.0.7")),
        ]
    )
    func parses(url: String, expected: RedisEndpoint) throws {
        let endpoint = try #require(RedisEndpoint(url: url))
        #expect(endpoint == expected)
    }

    @Test(
        "rejects malformed URLs",
        arguments: [
            "http://x", "localhost:6379", "redis://", "redis://:6379", "redis://host:0", "redis://host:65536",
            "redis://host:port", "redis://host:", "redis://host/db", "redis://host/-1", "rediss://host",
        ]
    )
    func rejects(url: String) {
        #expect(RedisEndpoint(url: url) == nil)
    }

    @Test("description never contains the password")
    func descriptionHidesPassword() throws {
        for url in ["redis://hunter2@cache:7000/1", "redis://alice:hunter2@cache", "redis://:hunter2@cache/4"] {
            let endpoint = try #require(RedisEndpoint(url: url))
            #expect(endpoint.password == "hunter2")
            #expect(!endpoint.description.contains("hunter2"), "\(endpoint.description)")
            #expect(endpoint.description.contains("cache:\(endpoint.port)/\(endpoint.database)"), "\(endpoint.description)")
        }
        #expect(RedisEndpoint(host: "cache", port: 7000, database: 1).description == "redis://cache:7000/1")
    }
}
