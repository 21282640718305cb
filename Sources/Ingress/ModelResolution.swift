import Protocol

extension IngressRoutes {
    /// Validates a `/gateway` submission, first replacing an alias or group in `model` (given without `provider`)
    /// with its provider, model and fallbacks.
    func normalize(_ submission: JobSubmission) throws(GatewayError) -> NormalizedJob {
        var submission = submission
        if submission.provider == nil, let name = submission.model {
            let catalog = configuration.models
            if let alias = catalog.aliases[name] {
                submission.provider = alias.provider
                submission.model = alias.model
            } else if let group = catalog.groups[name], let primary = group.first {
                submission.provider = primary.provider
                submission.model = primary.model
                submission.fallbacks = group.dropFirst().map(\.description) + (submission.fallbacks ?? [])
            }
        }
        return try submission.normalized(providers: configuration.providers)
    }

    /// `/v1/models` entries for the configured aliases and groups, owned by the provider of their (primary) model.
    func catalogModels() -> [ModelObject] {
        let catalog = configuration.models
        let aliases = catalog.aliases.sorted { $0.key < $1.key }.map { ModelObject(id: $0.key, ownedBy: $0.value.provider) }
        let groups = catalog.groups.sorted { $0.key < $1.key }.compactMap { entry in
            entry.value.first.map { ModelObject(id: entry.key, ownedBy: $0.provider) }
        }
        return aliases + groups
    }
}

extension GatewayError {
    /// 404 `model_not_found`, naming what a client may use instead.
    static func modelNotFound(_ name: String, configuration: GatewayConfiguration) -> GatewayError {
        let names = (configuration.models.aliases.keys.sorted() + configuration.models.groups.keys.sorted())
        let named = names.isEmpty ? "" : ", or one of the configured names \(names.joined(separator: ", "))"
        return GatewayError(
            status: 404,
            message: "The model '\(name)' does not exist; use 'provider/model' with one of \(configuration.providers.keys.sorted().joined(separator: ", "))\(named).",
            type: "invalid_request_error", param: "model", code: "model_not_found")
    }
}
