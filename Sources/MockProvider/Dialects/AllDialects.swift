extension MockProvider {
    /// Every wire format the mock speaks.
    static let dialects: [any MockDialect] = [
        OpenAIDialect(),
        AnthropicDialect(),
        GeminiDialect(),
        CohereDialect(),
    ]
}
