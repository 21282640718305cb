/// The model names a client may use besides `provider/model`: aliases (`fast` → `groq/llama-3.1-8b-instant`) and
/// groups (`resilient` → a primary plus fallbacks), from `LLMGW_MODEL_ALIASES` and `LLMGW_MODEL_GROUPS`.
public struct ModelCatalog: Sendable, Hashable {
    /// Alias name → the model it stands for.
    public var aliases: [String: ModelRef]
    /// Group name → its models, primary first; each later one is a fallback.
    public var groups: [String: [ModelRef]]

    public init(aliases: [String: ModelRef] = [:], groups: [String: [ModelRef]] = [:]) {
        self.aliases = aliases
        self.groups = groups
    }

    /// A model name resolved to the models a job tries, in order.
    public struct Resolution: Sendable, Hashable {
        public var primary: ModelRef
        public var fallbacks: [ModelRef]
    }

    /// Resolves an alias, a group, or `provider/model` with a provider in `providers`; `nil` for anything else.
    public func resolve(_ name: String, providers: [String: ProviderSettings]) -> Resolution? {
        if let target = aliases[name] { return Resolution(primary: target, fallbacks: []) }
        if let members = groups[name], let first = members.first { return Resolution(primary: first, fallbacks: Array(members.dropFirst())) }
        guard let reference = ModelRef(parsing: name), providers[reference.provider] != nil else { return nil }
        return Resolution(primary: reference, fallbacks: [])
    }

    /// Parses `LLMGW_MODEL_ALIASES` (`name=provider/model,…`) and `LLMGW_MODEL_GROUPS`
    /// (`name=provider/model|provider/model,…`), checking every target against the configured providers.
    /// - Throws: `ConfigurationError` naming the variable and the bad entry.
    static func parse(aliases: String?, groups: String?, providers: [String: ProviderSettings]) throws(ConfigurationError) -> ModelCatalog {
        var catalog = ModelCatalog()
        for (variable, text) in [("LLMGW_MODEL_ALIASES", aliases), ("LLMGW_MODEL_GROUPS", groups)] {
            guard let text else { continue }
            let isGroup = variable == "LLMGW_MODEL_GROUPS"
            for entry in text.split(separator: ",").map({ $0.trimmingSpaces }) where !entry.isEmpty {
                let pair = entry.split(separator: "=", maxSplits: 1).map { $0.trimmingSpaces }
                guard pair.count == 2, !pair[0].isEmpty, !pair[1].isEmpty else {
                    throw ConfigurationError(variable: variable, message: "expected name=\(isGroup ? "provider/model|provider/model" : "provider/model"), got '\(entry)'")
                }
                let name = pair[0]
                guard !name.contains("/"), !name.contains("|") else {
                    throw ConfigurationError(variable: variable, message: "the name '\(name)' may not contain '/' or '|'")
                }
                guard catalog.aliases[name] == nil, catalog.groups[name] == nil else {
                    throw ConfigurationError(variable: variable, message: "the name '\(name)' is defined twice")
                }
                let targets = isGroup ? pair[1].split(separator: "|").map { $0.trimmingSpaces } : [pair[1]]
                var references: [ModelRef] = []
                for target in targets {
                    guard let reference = ModelRef(parsing: target) else {
                        throw ConfigurationError(variable: variable, message: "'\(name)': expected provider/model, got '\(target)'")
                    }
                    guard providers[reference.provider] != nil else {
                        throw ConfigurationError(variable: variable, message: "'\(name)': unknown provider '\(reference.provider)' in '\(target)'")
                    }
                    references.append(reference)
                }
                if isGroup {
                    guard references.count >= 1 else { throw ConfigurationError(variable: variable, message: "'\(name)' has no models") }
                    catalog.groups[name] = references
                } else {
                    catalog.aliases[name] = references[0]
                }
            }
        }
        return catalog
    }
}
