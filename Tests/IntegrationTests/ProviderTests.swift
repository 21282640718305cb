import Foundation
import Protocol
import Testing

extension Integration {
    /// Every provider through the queue against the mock: each wire format end to end, retries and fallbacks with
    /// the mock's failure injection, model aliases and groups, and the OpenAI Python SDK against the gateway.
    @Suite(.serialized)
    struct Providers {
        static let allProviders = "openai,anthropic,gemini,groq,openrouter,hf,mistral,cohere"

        /// Mock, one worker consuming every provider's topic, and an ingress.
        static func start(extra: [String: String] = [:]) async throws -> GatewayStack {
            // These tests are about providers, not tenancy: every caller is anonymous.
            let stack = try GatewayStack(extra: ["LLMGW_AUTH": "disabled"].merging(extra) { $1 })
            try await stack.startMock()
            try await stack.startWorker(providers: allProviders)
            try await stack.startIngress()
            return stack
        }

        static func defaultModel(_ provider: String) throws -> String {
            try #require(ProviderDescriptor.builtIn.first { $0.id == provider }).defaultModel
        }

        static func expectUsage(_ usage: Any?, _ context: String) throws {
            let usage = try #require(usage as? [String: Any], "no usage: \(context)")
            let prompt = try #require(usage["prompt_tokens"] as? Int, "\(context)")
            let completion = try #require(usage["completion_tokens"] as? Int, "\(context)")
            #expect(prompt > 0, "\(context)")
            #expect(completion > 0, "\(context)")
            #expect(usage["total_tokens"] as? Int == prompt + completion, "\(context)")
        }

        @Test func everyProviderAnswersThroughTheQueue() async throws {
            try await withStack(try await Self.start()) { stack in
                let run = TestStack.unique("providers")
                for provider in Self.allProviders.split(separator: ",").map(String.init) {
                    // The seed's form: provider and prompt, the provider's default model.
                    let prompt = "\(run) seed \(provider)"
                    let seed = try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["provider": provider, "prompt": prompt])
                    #expect(seed.status == 200, "\(provider): \(seed.text)")
                    #expect(seed.json?["response"] as? String == "mock reply: \(prompt)", "\(provider): \(seed.text)")
                    #expect(seed.json?["provider"] as? String == provider)
                    #expect(seed.json?["model"] as? String == (try Self.defaultModel(provider)))
                    try Self.expectUsage(seed.json?["usage"], "\(provider) seed: \(seed.text)")

                    // The chat form: a system message, an explicit model and generation parameters.
                    let chatPrompt = "\(run) chat \(provider)"
                    let chat = try await HTTP.post("\(stack.baseURL)/gateway/query", json: [
                        "provider": provider, "model": "custom-\(provider)-model",
                        "messages": [["role": "system", "content": "be brief"], ["role": "user", "content": chatPrompt]],
                        "max_tokens": 64, "temperature": 0.3,
                    ])
                    #expect(chat.status == 200, "\(provider): \(chat.text)")
                    #expect(chat.json?["response"] as? String == "mock reply: \(chatPrompt)", "\(provider): \(chat.text)")
                    #expect(chat.json?["model"] as? String == "custom-\(provider)-model", "\(provider): \(chat.text)")
                    try Self.expectUsage(chat.json?["usage"], "\(provider) chat: \(chat.text)")
                    #expect(try await stack.mockCalls(prompt: chatPrompt) == 1)
                }

                // The OpenAI-compatible route with models of the non-OpenAI wire formats.
                for model in ["anthropic/claude-3-5-haiku-latest", "gemini/gemini-2.0-flash", "cohere/command-r"] {
                    let prompt = "\(run) v1 \(model)"
                    let reply = try await HTTP.post("\(stack.baseURL)/v1/chat/completions", json: [
                        "model": model, "messages": [["role": "user", "content": prompt]],
                    ])
                    #expect(reply.status == 200, "\(model): \(reply.text)")
                    let json = try #require(reply.json, "\(reply.text)")
                    #expect(json["object"] as? String == "chat.completion")
                    #expect(json["model"] as? String == String(model.split(separator: "/", maxSplits: 1)[1]))
                    let choice = try #require((json["choices"] as? [[String: Any]])?.first, "\(reply.text)")
                    #expect((choice["message"] as? [String: Any])?["content"] as? String == "mock reply: \(prompt)")
                    #expect((choice["message"] as? [String: Any])?["role"] as? String == "assistant")
                    #expect(choice["finish_reason"] as? String == "stop")
                    try Self.expectUsage(json["usage"], "\(model): \(reply.text)")
                    let jobID = try #require(reply.header("x-gateway-job-id"))
                    let job = try #require(try await HTTP.get("\(stack.baseURL)/gateway/jobs/\(jobID)").json)
                    #expect(job["provider"] as? String == String(model.split(separator: "/")[0]))
                }
            }
        }

        @Test func aFailingPrimaryFallsBackAndTheAttemptLogListsEveryCall() async throws {
            try await withStack(try await Self.start()) { stack in
                // Anthropic keeps answering 500; the same prompt succeeds in OpenAI's format.
                let prompt = TestStack.unique("fallback") + " [mock:fail=99,only=anthropic]"
                let reply = try await HTTP.post("\(stack.baseURL)/gateway/query", json: [
                    "provider": "anthropic", "prompt": prompt, "fallbacks": ["openai/gpt-4o-mini"],
                ])
                #expect(reply.status == 200, "\(reply.text)")
                #expect(reply.json?["response"] as? String == "mock reply: \(prompt)")
                #expect(reply.json?["provider"] as? String == "openai")
                let id = try #require(reply.json?["job_id"] as? String)
                let job = try #require(try await HTTP.get("\(stack.baseURL)/gateway/jobs/\(id)").json)
                let log = try #require(job["attempt_log"] as? [[String: Any]])
                #expect(log.map { $0["provider"] as? String } == ["anthropic", "anthropic", "anthropic", "openai"])
                #expect(log.map { $0["model"] as? String } == ["claude-3-5-haiku-latest", "claude-3-5-haiku-latest", "claude-3-5-haiku-latest", "gpt-4o-mini"])
                #expect(log.map { $0["outcome"] as? String } == ["server", "server", "server", "ok"])
                #expect(log.map { $0["http_status"] as? Int } == [500, 500, 500, 200])
                for entry in log {
                    #expect(entry["latency_ms"] is Int)
                }
                for entry in log.prefix(3) {
                    #expect((entry["error"] as? String ?? "").contains("mock failure 500"), "\(entry)")
                }
                #expect(log[3]["error"] == nil)
                #expect(job["attempts"] as? Int == 4)
                #expect(try await stack.mockCalls(prompt: prompt, dialect: "anthropic") == 3)
                #expect(try await stack.mockCalls(prompt: prompt, dialect: "openai") == 1)

                // Without a fallback the job fails with the provider's status kept.
                let alone = TestStack.unique("no-fallback") + " [mock:fail=99,only=gemini]"
                let failed = try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["provider": "gemini", "prompt": alone])
                #expect(failed.status == 502, "\(failed.text)")
                let error = try #require(failed.json?["error"] as? [String: Any])
                #expect(error["code"] as? String == "upstream_error")
                #expect(try await stack.mockCalls(prompt: alone, dialect: "gemini") == 3)
            }
        }

        @Test func retryAfterIsHonoured() async throws {
            try await withStack(try await Self.start()) { stack in
                // One 429 asking for 2 s, then success: the retry waits at least that long.
                let prompt = TestStack.unique("retry-after") + " [mock:fail=1,status=429,retry_after=2]"
                let reply = try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["provider": "groq", "prompt": prompt])
                #expect(reply.status == 200, "\(reply.text)")
                let id = try #require(reply.json?["job_id"] as? String)
                let job = try #require(try await HTTP.get("\(stack.baseURL)/gateway/jobs/\(id)").json)
                let log = try #require(job["attempt_log"] as? [[String: Any]])
                #expect(log.map { $0["outcome"] as? String } == ["rate_limited", "ok"])
                #expect(log.first?["http_status"] as? Int == 429)
                #expect(try await stack.mockCalls(prompt: prompt) == 2)
                // The job's own timestamps: from the claim to the end it spent the Retry-After plus both calls.
                let started = try #require(job["started_at"] as? Double)
                let completed = try #require(job["completed_at"] as? Double)
                let callsMs = log.compactMap { $0["latency_ms"] as? Int }.reduce(0, +)
                #expect(completed - started >= 2.0 + Double(callsMs) / 1000 - 0.01, "started \(started), completed \(completed), calls \(callsMs) ms")
            }
        }

        @Test func aProviderWithoutAKeyFailsClearly() async throws {
            try await withStack(try await Self.start(extra: ["COHERE_API_KEY": ""])) { stack in
                let prompt = TestStack.unique("no-key")
                let reply = try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["provider": "cohere", "prompt": prompt])
                #expect(reply.status == 502, "\(reply.text)")
                let error = try #require(reply.json?["error"] as? [String: Any], "\(reply.text)")
                #expect(error["code"] as? String == "upstream_auth_error")
                #expect((error["message"] as? String ?? "").contains("COHERE_API_KEY"), "\(error)")
                #expect(try await stack.mockCalls(prompt: prompt) == 0)
                // Nothing crashed: the worker still serves the providers that have keys.
                let other = try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["provider": "openai", "prompt": prompt])
                #expect(other.status == 200, "\(other.text)")
                for worker in stack.workers { #expect(worker.isRunning) }
                #expect(stack.workers.contains { $0.log.contains("COHERE_API_KEY") })
            }
        }

        @Test func aliasesAndGroupsFromConfiguration() async throws {
            let extra = [
                "LLMGW_MODEL_ALIASES": "fast=groq/llama-3.1-8b-instant,smart=openai/gpt-4o",
                "LLMGW_MODEL_GROUPS": "resilient=anthropic/claude-3-5-haiku-latest|openai/gpt-4o-mini",
            ]
            try await withStack(try await Self.start(extra: extra)) { stack in
                let models = try await HTTP.get("\(stack.baseURL)/v1/models")
                #expect(models.status == 200)
                let ids = Set(((models.json?["data"] as? [[String: Any]]) ?? []).compactMap { $0["id"] as? String })
                #expect(ids.isSuperset(of: ["fast", "smart", "resilient", "openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest", "cohere/command-r"]), "\(ids)")

                let run = TestStack.unique("alias")
                let fast = try await HTTP.post("\(stack.baseURL)/v1/chat/completions", json: ["model": "fast", "messages": [["role": "user", "content": "\(run) fast"]]])
                #expect(fast.status == 200, "\(fast.text)")
                #expect(fast.json?["model"] as? String == "llama-3.1-8b-instant")
                let fastID = try #require(fast.header("x-gateway-job-id"))
                let fastJob = try #require(try await HTTP.get("\(stack.baseURL)/gateway/jobs/\(fastID)").json)
                #expect(fastJob["provider"] as? String == "groq")

                // A group is a primary with fallbacks: the failing Anthropic call falls back to OpenAI.
                let prompt = "\(run) group [mock:fail=99,only=anthropic]"
                let group = try await HTTP.post("\(stack.baseURL)/v1/chat/completions", json: ["model": "resilient", "messages": [["role": "user", "content": prompt]]])
                #expect(group.status == 200, "\(group.text)")
                let content = ((group.json?["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
                #expect(content == "mock reply: \(prompt)")
                let groupID = try #require(group.header("x-gateway-job-id"))
                let groupJob = try #require(try await HTTP.get("\(stack.baseURL)/gateway/jobs/\(groupID)").json)
                let log = try #require(groupJob["attempt_log"] as? [[String: Any]])
                #expect(log.map { $0["provider"] as? String } == ["anthropic", "anthropic", "anthropic", "openai"])

                // The /gateway routes take the names too.
                let smart = try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["model": "smart", "prompt": "\(run) smart"])
                #expect(smart.status == 200, "\(smart.text)")
                #expect(smart.json?["provider"] as? String == "openai")
                #expect(smart.json?["model"] as? String == "gpt-4o")

                let unknown = try await HTTP.post("\(stack.baseURL)/v1/chat/completions", json: ["model": "nope", "messages": [["role": "user", "content": "x"]]])
                #expect(unknown.status == 404, "\(unknown.text)")
                #expect((unknown.json?["error"] as? [String: Any])?["code"] as? String == "model_not_found")
            }
        }

        @Test func aBadModelConfigurationStopsStartupNamingTheVariable() async throws {
            let stack = try GatewayStack(extra: ["LLMGW_MODEL_GROUPS": "resilient=anthropic/claude|nowhere/model"])
            let ingress = try ChildProcess(name: "ingress", executable: TestStack.binary, arguments: ["ingress"], environment: stack.environment)
            let status = await ingress.waitForExit(timeout: .seconds(30))
            #expect(status != nil && status != 0, "\(ingress.log)")
            #expect(ingress.log.contains("LLMGW_MODEL_GROUPS"), "\(ingress.log)")
            #expect(ingress.log.contains("nowhere"), "\(ingress.log)")
        }

        @Test func theOpenAIPythonSDKWorksAgainstTheGateway() async throws {
            let python = Self.repositoryRoot + "/.deps/venv/bin/python"
            let script = Self.repositoryRoot + "/Tests/IntegrationTests/Python/openai_sdk_check.py"
            try #require(FileManager.default.isExecutableFile(atPath: python), "run scripts/bootstrap.sh to install the OpenAI SDK")
            try await withStack(try await Self.start()) { stack in
                let check = try ChildProcess(name: "openai-sdk", executable: python, arguments: [script, stack.baseURL, TestStack.unique("sdk")], environment: [:])
                let status = await check.waitForExit(timeout: .seconds(120))
                let output = check.log
                print(output)
                #expect(status == 0, "\(output)")
                #expect(output.contains("all checks passed"), "\(output)")
                #expect(!output.contains("FAILED"), "\(output)")
                #expect(output.split(separator: "\n").filter { $0.hasPrefix("ok: ") }.count == 13, "\(output)")
            }
        }

        static var repositoryRoot: String {
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        }
    }
}

extension GatewayStack {
    /// How often the mock was called with `prompt` in one wire format (`openai`, `anthropic`, `gemini`, `cohere`).
    func mockCalls(prompt: String, dialect: String) async throws -> Int {
        let encoded = prompt.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? prompt
        let response = try await HTTP.get("\(mockURL)/mock/stats?prompt=\(encoded)&dialect=\(dialect)")
        return try #require(response.json?["calls"] as? Int)
    }
}
