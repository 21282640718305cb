import Testing

/// Every integration suite nests in this one, so that they run one at a time: they share one Redis, one broker
/// and the consumer groups of the provider topics.
@Suite(.serialized, .timeLimit(.minutes(10)))
enum Integration {}

/// Runs `body` with a started stack and always stops its processes, printing their logs when the body fails.
func withStack<T>(_ stack: GatewayStack, _ body: (GatewayStack) async throws -> T) async throws -> T {
    do {
        let result = try await body(stack)
        await stack.stop()
        return result
    } catch {
        print(stack.logs())
        await stack.stop()
        throw error
    }
}
