import ArgumentParser
import NIOCore
import NIOPosix

@main
struct LLMGateway: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "llm-gateway",
        abstract: "An LLM API gateway built around a message queue.",
        subcommands: [IngressCommand.self, WorkerCommand.self, MockProviderCommand.self, KeysCommand.self]
    )

    /// Runs Swift Concurrency on NIO's event loops, which removes a thread hop per request.
    /// - Parameter threads: the number of event loops; `nil` for one per CPU.
    static func installExecutor(threads: Int? = nil) {
        if let threads { NIOSingletons.groupLoopCountSuggestion = threads }
        _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    }
}
