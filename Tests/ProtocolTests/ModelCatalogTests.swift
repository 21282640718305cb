import Protocol
import Testing

@Suite("ModelCatalog", .timeLimit(.minutes(1)))
struct ModelCatalogTests {
    static let names = [
        "LLMGW_MODEL_ALIASES": "fast=groq/llama-3.1-8b-instant, smart=openai/gpt-4o,router=openrouter/meta-llama/llama-3.1-8b-instruct",
        "LLMGW_MODEL_GROUPS": "resilient=anthropic/claude-3-5-haiku-latest|openai/gpt-4o-mini|gemini/gemini-2.0-flash",
    ]

    @Test("aliases and groups are read from the environment")
    func parsed() throws {
        let configuration = try GatewayConfiguration.load(environment: Self.names)
        let catalog = configuration.models
        #expect(catalog.aliases["fast"] == ModelRef(provider: "groq", model: "llama-3.1-8b-instant"))
        #expect(catalog.aliases["smart"] == ModelRef(provider: "openai", model: "gpt-4o"))
        #expect(catalog.aliases["router"] == ModelRef(provider: "openrouter", model: "meta-llama/llama-3.1-8b-instruct"))
        #expect(catalog.groups["resilient"]?.map(\.description) == [
            "anthropic/claude-3-5-haiku-latest", "openai/gpt-4o-mini", "gemini/gemini-2.0-flash",
        ])
        #expect(try GatewayConfiguration.load(environment: [:]).models == ModelCatalog())
    }

    @Test("names resolve to a primary and fallbacks; provider/model still works; anything else is unknown")
    func resolution() throws {
        let configuration = try GatewayConfiguration.load(environment: Self.names)
        let catalog = configuration.models
        let providers = configuration.providers
        let fast = try #require(catalog.resolve("fast", providers: providers))
        #expect(fast.primary.description == "groq/llama-3.1-8b-instant")
        #expect(fast.fallbacks.isEmpty)
        let group = try #require(catalog.resolve("resilient", providers: providers))
        #expect(group.primary.description == "anthropic/claude-3-5-haiku-latest")
        #expect(group.fallbacks.map(\.description) == ["openai/gpt-4o-mini", "gemini/gemini-2.0-flash"])
        #expect(catalog.resolve("cohere/command-r-plus", providers: providers)?.primary == ModelRef(provider: "cohere", model: "command-r-plus"))
        #expect(catalog.resolve("nowhere/model", providers: providers) == nil)
        #expect(catalog.resolve("slow", providers: providers) == nil)
    }

    @Test("a bad entry stops startup naming the variable", arguments: [
        ("LLMGW_MODEL_ALIASES", "fast", "expected name=provider/model"),
        ("LLMGW_MODEL_ALIASES", "fast=llama", "expected provider/model"),
        ("LLMGW_MODEL_ALIASES", "fast=nowhere/llama", "unknown provider 'nowhere'"),
        ("LLMGW_MODEL_ALIASES", "a/b=openai/gpt-4o", "may not contain"),
        ("LLMGW_MODEL_ALIASES", "fast=openai/gpt-4o,fast=groq/x", "defined twice"),
        ("LLMGW_MODEL_GROUPS", "pair=openai/gpt-4o|nowhere/x", "unknown provider 'nowhere'"),
        ("LLMGW_MODEL_GROUPS", "pair=", "expected name=provider/model|provider/model"),
    ])
    func invalid(variable: String, value: String, message: String) {
        do {
            _ = try GatewayConfiguration.load(environment: [variable: value])
            Issue.record("\(variable)=\(value) was accepted")
        } catch {
            #expect(error.variable == variable)
            #expect(error.message.contains(message), "\(error.message)")
        }
    }

    @Test("a name may not be both an alias and a group")
    func collision() {
        #expect(throws: ConfigurationError.self) {
            try GatewayConfiguration.load(environment: ["LLMGW_MODEL_ALIASES": "x=openai/gpt-4o", "LLMGW_MODEL_GROUPS": "x=openai/gpt-4o|groq/y"])
        }
    }

    @Test("job event stream bounds are validated")
    func eventBounds() throws {
        let configuration = try GatewayConfiguration.load(environment: ["LLMGW_JOB_EVENTS_TTL_SECONDS": "60", "LLMGW_JOB_EVENTS_MAX_LENGTH": "500"])
        #expect(configuration.jobEventsTTL == 60)
        #expect(configuration.jobEventsMaxLength == 500)
        #expect(try GatewayConfiguration.load(environment: [:]).jobEventsTTL == 3_600)
        #expect(throws: ConfigurationError.self) { try GatewayConfiguration.load(environment: ["LLMGW_JOB_EVENTS_MAX_LENGTH": "5"]) }
    }
}
