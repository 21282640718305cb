/// The wire format a provider speaks.
public enum ProviderKind: String, Sendable, Hashable, Codable {
    case openAI = "openai"
    case anthropic
    case gemini
    case cohere
}

/// A provider the gateway knows by id, with the defaults of its official SDK.
public struct ProviderDescriptor: Sendable, Hashable {
    public var id: String
    public var kind: ProviderKind
    public var defaultBaseURL: String
    public var defaultModel: String

    public init(id: String, kind: ProviderKind, defaultBaseURL: String, defaultModel: String) {
        self.id = id
        self.kind = kind
        self.defaultBaseURL = defaultBaseURL
        self.defaultModel = defaultModel
    }

    /// The built-in providers; the seed's ids plus Mistral and Cohere.
    public static let builtIn: [ProviderDescriptor] = [
        ProviderDescriptor(id: "openai", kind: .openAI, defaultBaseURL: "https://api.openai.com/v1", defaultModel: "gpt-4o-mini"),
        ProviderDescriptor(id: "anthropic", kind: .anthropic, defaultBaseURL: "https://api.anthropic.com", defaultModel: "claude-3-5-haiku-latest"),
        ProviderDescriptor(id: "gemini", kind: .gemini, defaultBaseURL: "https://generativelanguage.googleapis.com", defaultModel: "gemini-2.0-flash"),
        ProviderDescriptor(id: "groq", kind: .openAI, defaultBaseURL: "https://api.groq.com/openai/v1", defaultModel: "llama-3.1-8b-instant"),
        ProviderDescriptor(id: "openrouter", kind: .openAI, defaultBaseURL: "https://openrouter.ai/api/v1", defaultModel: "openai/gpt-4o-mini"),
        ProviderDescriptor(id: "hf", kind: .openAI, defaultBaseURL: "https://router.huggingface.co/v1", defaultModel: "meta-llama/Llama-3.1-8B-Instruct"),
        ProviderDescriptor(id: "mistral", kind: .openAI, defaultBaseURL: "https://api.mistral.ai/v1", defaultModel: "mistral-small-latest"),
        ProviderDescriptor(id: "cohere", kind: .cohere, defaultBaseURL: "https://api.cohere.com", defaultModel: "command-r"),
    ]
}

/// A configured provider: where it is, and how to authenticate.
public struct ProviderSettings: Sendable, Hashable {
    public var id: String
    public var kind: ProviderKind
    public var baseURL: String
    /// The API key; never logged, never included in an error.
    public var apiKey: String?
    public var defaultModel: String
    /// Extra headers sent on every call (OpenRouter's `HTTP-Referer` and `X-Title`, for example).
    public var extraHeaders: [String: String]

    public init(id: String, kind: ProviderKind, baseURL: String, apiKey: String?, defaultModel: String, extraHeaders: [String: String] = [:]) {
        self.id = id
        self.kind = kind
        self.baseURL = baseURL
        self.apiKey = apiKey
        self.defaultModel = defaultModel
        self.extraHeaders = extraHeaders
    }
}
