import ArgumentParser
import Foundation
import Ingress
import Logging
import Protocol
import Redis
import ResultStore

/// `llm-gateway keys create|list|revoke`: manages API keys directly in Redis.
struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Create, list and revoke gateway API keys.",
        subcommands: [Create.self, List.self, Revoke.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key; its secret is printed once.")

        @OptionGroup var common: CommonOptions
        @Option(help: "A name for the key.") var name: String
        @Option(help: "Requests per minute (default LLMGW_DEFAULT_RPM).") var rpm: Int?
        @Option(help: "Tokens per minute (default LLMGW_DEFAULT_TPM).") var tpm: Int?
        @Option(name: .customLong("daily-tokens"), help: "Token budget per UTC day.") var dailyTokens: Int?
        @Option(name: .customLong("monthly-tokens"), help: "Token budget per UTC month.") var monthlyTokens: Int?
        @Option(name: .customLong("monthly-cost"), help: "Cost budget per UTC month in US dollars (priced with LLMGW_PRICES).") var monthlyCost: Double?
        @Flag(name: .customLong("shared-cache"), help: "Use the shared response cache namespace instead of the key's own.") var sharedCache = false
        @Flag(help: "Print one JSON object, including the key.") var json = false

        func run() async throws {
            let configuration = try common.load()
            try await withKeyStore(configuration) { store in
                let options = KeyCreation(
                    name: name, rpm: rpm, tpm: tpm, dailyTokens: dailyTokens, monthlyTokens: monthlyTokens,
                    monthlyCostUSD: monthlyCost, sharedCache: sharedCache ? true : nil)
                let created: CreatedKey
                do {
                    created = try await KeyIssuer(keys: store).create(options)
                } catch let error as GatewayError {
                    throw ValidationError(error.body.error.message)
                }
                if json {
                    print(try encode(created))
                } else {
                    print("Created key \(created.record.id) (\(created.record.name)). It is shown only this once:\n\n  \(created.key)\n")
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys (never their secrets).")

        @OptionGroup var common: CommonOptions
        @Flag(help: "Print a JSON array.") var json = false

        func run() async throws {
            let configuration = try common.load()
            try await withKeyStore(configuration) { store in
                let records = try await store.list()
                if json {
                    print(try encode(records))
                    return
                }
                for record in records {
                    let limits = record.limits
                    let state = record.revokedAt == nil ? "active" : "revoked"
                    print("\(record.id)  \(state)  \(record.name)  rpm=\(limits.rpm.map(String.init) ?? "default") tpm=\(limits.tpm.map(String.init) ?? "default") daily=\(limits.dailyTokens.map(String.init) ?? "-") cache=\(record.cacheNamespace)")
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key on every replica.")

        @OptionGroup var common: CommonOptions
        @Argument(help: "The key's public id (the part after 'lgw_').") var id: String

        func run() async throws {
            let configuration = try common.load()
            try await withKeyStore(configuration) { store in
                // Kept as separate statements: Swift 6.3.1 crashes compiling the combined `guard … , try await …`
                // condition in release builds.
                guard APIKey.isValidID(id) else { throw ValidationError("no key with id '\(id)'") }
                let revoked = try await store.revoke(id: id, now: Date().timeIntervalSince1970)
                guard revoked != nil else { throw ValidationError("no key with id '\(id)'") }
                print("Revoked key \(id).")
            }
        }
    }
}

private func withKeyStore(_ configuration: GatewayConfiguration, _ body: (KeyStore) async throws -> Void) async throws {
    let redis = RedisClient(endpoint: configuration.redisSettings, connections: 1, timeoutMs: configuration.redisTimeoutMs, logger: Logger(label: "llm-gateway.keys"))
    defer { redis.shutdown() }
    try await body(KeyStore(redis: redis))
}

private func encode(_ value: some Encodable) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}
