import Crypto
import Foundation
import Logging
import NIOConcurrencyHelpers
import Protocol
import Redis
import Testing
import _CryptoExtras

extension Integration {
    /// API keys, JWTs, rate limits, budgets and the response cache, against real ingress replicas and Redis.
    @Suite(.serialized)
    struct Tenancy {
        static let admin = [("Authorization", "Bearer \(GatewayStack.adminToken)")]

        static func bearer(_ token: String) -> [(String, String)] { [("Authorization", "Bearer \(token)")] }

        static func errorCode(_ reply: HTTP.Reply) -> String? {
            (reply.json?["error"] as? [String: Any])?["code"] as? String
        }

        static func redis() throws -> RedisClient {
            RedisClient(endpoint: RedisEndpointSettings(host: "127.0.0.1", port: try TestStack.redisPort), connections: 1, timeoutMs: 2000, logger: Logger(label: "test"))
        }

        @Test func missingUnknownAndRevokedKeysGetTheSame401() async throws {
            try await withStack(try await GatewayStack.start()) { stack in
                let query = "\(stack.baseURL)/gateway/query"
                let body: [String: Any] = ["provider": "openai", "prompt": TestStack.unique("auth")]
                let (key, id) = try await stack.createKey(["--name", "auth-test"])

                // A valid key works as a bearer token and bare, as in the seed, and the answer carries the headers.
                let ok = try await HTTP.post(query, json: body, headers: Self.bearer(key))
                #expect(ok.status == 200, "\(ok.text)")
                #expect(ok.header("x-ratelimit-limit-requests") == "600")
                #expect(ok.header("x-ratelimit-remaining-requests") == "599")
                #expect(ok.header("x-ratelimit-limit-tokens") == "200000")
                #expect(Int(ok.header("x-ratelimit-remaining-tokens") ?? "") ?? 0 > 0)
                #expect(ok.header("x-ratelimit-reset-requests")?.hasSuffix("s") == true)
                #expect(ok.header("x-ratelimit-reset-tokens")?.hasSuffix("s") == true)
                #expect(ok.header("x-cache") == "MISS")
                let bare = try await HTTP.post(query, json: ["provider": "openai", "prompt": TestStack.unique("bare")], headers: [("Authorization", key)])
                #expect(bare.status == 200, "\(bare.text)")
                // Non-job routes are authenticated and limited too.
                let models = try await HTTP.get("\(stack.baseURL)/v1/models", headers: Self.bearer(key))
                #expect(models.status == 200)
                // Three requests were charged; the bucket refills 1 request per 100 ms meanwhile.
                #expect((597...599).contains(Int(models.header("x-ratelimit-remaining-requests") ?? "") ?? 0))

                let wrongSecret = "lgw_\(id)_" + String(repeating: "A", count: 43)
                let unknown = "lgw_zzzzzzzzzzzz_" + String(repeating: "B", count: 43)
                var refusals = [
                    try await HTTP.post(query, json: body, headers: [("Authorization", "")]),
                    try await HTTP.post(query, json: body, headers: Self.bearer(unknown)),
                    try await HTTP.post(query, json: body, headers: Self.bearer(wrongSecret)),
                    try await HTTP.post(query, json: body, headers: Self.bearer("not-a-key")),
                    try await HTTP.get("\(stack.baseURL)/gateway/jobs/job_01ARZ3NDEKTSV4RRFFQ69G5FAV", headers: [("Authorization", "")]),
                ]
                let revoke = try ChildProcess(name: "keys", executable: try TestStack.binary, arguments: ["keys", "revoke", id], environment: stack.environment)
                #expect(await revoke.waitForExit(timeout: .seconds(30)) == 0, "\(revoke.log)")
                try await waitFor("the revocation", timeout: .seconds(5)) {
                    try await HTTP.post(query, json: body, headers: Self.bearer(key)).status == 401
                }
                refusals.append(try await HTTP.post(query, json: body, headers: Self.bearer(key)))
                for reply in refusals {
                    #expect(reply.status == 401, "\(reply.text)")
                    #expect(Self.errorCode(reply) == "invalid_api_key")
                    // Byte order of JSON keys may vary; the content may not.
                    #expect(reply.json?["error"] as? NSDictionary == refusals[0].json?["error"] as? NSDictionary)
                    #expect(reply.header("x-ratelimit-limit-requests") == nil)
                }
                // Health probes need no key.
                #expect(try await HTTP.get("\(stack.baseURL)/healthz", headers: [("Authorization", "")]).status == 200)

                // The admin API needs the admin token, and never lists secrets.
                let denied = try await HTTP.get("\(stack.baseURL)/admin/keys", headers: Self.bearer(key))
                #expect(denied.status == 401)
                #expect(Self.errorCode(denied) == "invalid_admin_token")
                let created = try await HTTP.post("\(stack.baseURL)/admin/keys", json: ["name": "from-http", "rpm": 5, "shared_cache": true], headers: Self.admin)
                #expect(created.status == 201, "\(created.text)")
                let newKey = try #require(created.json?["key"] as? String)
                #expect(created.json?["cache_namespace"] as? String == "shared")
                #expect((created.json?["limits"] as? [String: Any])?["rpm"] as? Int == 5)
                let list = try await HTTP.get("\(stack.baseURL)/admin/keys", headers: Self.admin)
                #expect(list.status == 200)
                let entries = try #require(list.json?["data"] as? [[String: Any]])
                #expect(entries.contains { $0["id"] as? String == id && $0["revoked_at"] is Double })
                #expect(entries.contains { $0["name"] as? String == "from-http" && $0["revoked_at"] == nil })
                #expect(!list.text.contains(String(newKey.split(separator: "_")[2])))
                let viaHTTP = try await HTTP.post(query, json: ["provider": "openai", "prompt": TestStack.unique("http-key")], headers: Self.bearer(newKey))
                #expect(viaHTTP.status == 200, "\(viaHTTP.text)")
                #expect(viaHTTP.header("x-ratelimit-limit-requests") == "5")
            }
        }

        @Test func requestRateLimitIsExactAcrossTwoReplicas() async throws {
            try await withStack(try await GatewayStack.start()) { stack in
                let second = try await stack.startIngressReplica()
                let limit = 60
                let (key, _) = try await stack.createKey(["--name", "burst", "--rpm", String(limit), "--tpm", "100000000"])
                let urls = ["\(stack.baseURL)/gateway/jobs", "\(second)/gateway/jobs"]
                let run = TestStack.unique("limit")
                let started = ContinuousClock.now
                let deadline = started + .seconds(3)
                let counts = NIOLockedValueBox((admitted: 0, limited: 0, other: [String]()))
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for client in 0..<50 {
                        group.addTask {
                            var index = 0
                            while ContinuousClock.now < deadline {
                                let reply = try await HTTP.post(urls[(client + index) % 2], json: ["provider": "openai", "prompt": "\(run) \(client) \(index)"], headers: Self.bearer(key))
                                index += 1
                                switch reply.status {
                                case 202:
                                    counts.withLockedValue { $0.admitted += 1 }
                                case 429 where Self.errorCode(reply) == "rate_limit_exceeded" && Int(reply.header("Retry-After") ?? "") ?? 0 >= 1
                                    && reply.header("x-ratelimit-remaining-requests") == "0":
                                    counts.withLockedValue { $0.limited += 1 }
                                default:
                                    counts.withLockedValue { $0.other.append("\(reply.status) \(reply.text)") }
                                }
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                let elapsed = ContinuousClock.now - started
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                let result = counts.withLockedValue { $0 }
                // GCRA with a burst of one minute's limit: at most limit + limit × elapsed / 60 s.
                let bound = limit + Int((Double(limit) * seconds / 60).rounded(.up))
                print("rate limit across 2 replicas: admitted \(result.admitted), limited \(result.limited), bound \(bound) over \(seconds) s")
                #expect(result.other.isEmpty, "\(result.other.prefix(3))")
                #expect(result.admitted <= bound)
                #expect(result.admitted >= limit)
                #expect(result.limited > 0)
            }
        }

        @Test func cacheIsPerKeyUnlessShared() async throws {
            try await withStack(try await GatewayStack.start()) { stack in
                let query = "\(stack.baseURL)/gateway/query"
                let a = try await stack.createKey(["--name", "cache-a"]).key
                let b = try await stack.createKey(["--name", "cache-b"]).key
                let c = try await stack.createKey(["--name", "cache-c", "--shared-cache"]).key
                let d = try await stack.createKey(["--name", "cache-d", "--shared-cache"]).key
                let prompt = TestStack.unique("cached")
                let body: [String: Any] = ["provider": "openai", "prompt": prompt]

                let first = try await HTTP.post(query, json: body, headers: Self.bearer(a))
                #expect(first.status == 200, "\(first.text)")
                #expect(first.json?["cached"] as? Bool == false)
                #expect(first.header("x-cache") == "MISS")
                let again = try await HTTP.post(query, json: body, headers: Self.bearer(a))
                #expect(again.json?["cached"] as? Bool == true, "\(again.text)")
                #expect(again.header("x-cache") == "HIT")
                #expect(again.json?["response"] as? String == "mock reply: \(prompt)")
                #expect(again.json?["job_id"] as? String == first.json?["job_id"] as? String)
                #expect(try await stack.mockCalls(prompt: prompt) == 1)

                // Another key never sees A's entry.
                let other = try await HTTP.post(query, json: body, headers: Self.bearer(b))
                #expect(other.json?["cached"] as? Bool == false)
                #expect(other.header("x-cache") == "MISS")
                #expect(try await stack.mockCalls(prompt: prompt) == 2)

                // Two keys that opted into the shared namespace share entries.
                #expect(try await HTTP.post(query, json: body, headers: Self.bearer(c)).header("x-cache") == "MISS")
                let shared = try await HTTP.post(query, json: body, headers: Self.bearer(d))
                #expect(shared.header("x-cache") == "HIT")
                #expect(shared.json?["cached"] as? Bool == true)
                #expect(try await stack.mockCalls(prompt: prompt) == 3)

                // The OpenAI route hits the same entry for the same canonical request.
                let chat = try await HTTP.post("\(stack.baseURL)/v1/chat/completions", json: [
                    "model": "openai/gpt-4o-mini", "messages": [["role": "user", "content": prompt]],
                ], headers: Self.bearer(a))
                #expect(chat.status == 200, "\(chat.text)")
                #expect(chat.header("x-cache") == "HIT")
                let choices = try #require(chat.json?["choices"] as? [[String: Any]])
                #expect((choices.first?["message"] as? [String: Any])?["content"] as? String == "mock reply: \(prompt)")
                #expect(try await stack.mockCalls(prompt: prompt) == 3)

                // no-cache skips the read (and refreshes the entry).
                let fresh = try await HTTP.post(query, json: body, headers: Self.bearer(a) + [("Cache-Control", "no-cache")])
                #expect(fresh.header("x-cache") == "MISS")
                #expect(fresh.json?["cached"] as? Bool == false)
                #expect(try await stack.mockCalls(prompt: prompt) == 4)

                // no-store skips the write.
                let secret = TestStack.unique("no-store")
                for _ in 0..<2 {
                    let reply = try await HTTP.post(query, json: ["provider": "openai", "prompt": secret], headers: Self.bearer(a) + [("Cache-Control", "no-store")])
                    #expect(reply.header("x-cache") == "MISS")
                }
                #expect(try await stack.mockCalls(prompt: secret) == 2)

                // An asynchronous job fills the cache too; a cached /gateway/jobs answers 200 with the finished job.
                let later = TestStack.unique("async-cache")
                let accepted = try await HTTP.post("\(stack.baseURL)/gateway/jobs", json: ["provider": "openai", "prompt": later], headers: Self.bearer(a))
                #expect(accepted.status == 202)
                #expect(accepted.header("x-cache") == "MISS")
                let id = try #require(accepted.json?["id"] as? String)
                #expect(try await stack.waitForJob(id, apiKey: a)["status"] as? String == "completed")
                let hit = try await HTTP.post("\(stack.baseURL)/gateway/jobs", json: ["provider": "openai", "prompt": later], headers: Self.bearer(a))
                #expect(hit.status == 200, "\(hit.text)")
                #expect(hit.header("x-cache") == "HIT")
                #expect(hit.json?["cached"] as? Bool == true)
                #expect(hit.json?["status"] as? String == "completed")
                #expect(hit.json?["id"] as? String == id)
                #expect(try await stack.mockCalls(prompt: later) == 1)

                // x-cache-ttl shortens the entry's lifetime; failed jobs are never cached.
                let short = TestStack.unique("short-ttl")
                #expect(try await HTTP.post(query, json: ["provider": "openai", "prompt": short], headers: Self.bearer(a) + [("x-cache-ttl", "2")]).status == 200)
                let keyID = String(a.split(separator: "_")[1])
                let cacheKey = ResponseCacheKey.redisKey(
                    NormalizedJob(provider: "openai", request: ChatRequest(model: "gpt-4o-mini", messages: [.user(short)]), fallbacks: []),
                    namespace: "key:\(keyID)")
                let redis = try Self.redis()
                defer { redis.shutdown() }
                let ttl = try await redis.command("TTL", RedisArgument(cacheKey)).integer ?? -2
                #expect((1...2).contains(ttl), "ttl \(ttl)")
                let failing = TestStack.unique("fails") + " [mock:status=400]"
                for _ in 0..<2 {
                    let reply = try await HTTP.post(query, json: ["provider": "openai", "prompt": failing], headers: Self.bearer(a))
                    #expect(reply.status == 400)
                    #expect(reply.header("x-cache") == "MISS")
                }
                #expect(try await stack.mockCalls(prompt: failing) == 2)
            }
        }

        @Test func aJobIsVisibleOnlyToTheTenantThatSubmittedIt() async throws {
            try await withStack(try await GatewayStack.start()) { stack in
                let owner = try await stack.createKey(["--name", "owner"]).key
                let other = try await stack.createKey(["--name", "other"]).key
                let prompt = TestStack.unique("owned") + " [mock:delay_ms=3000]"
                let submitted = try await HTTP.post("\(stack.baseURL)/gateway/jobs", json: ["provider": "openai", "prompt": prompt], headers: Self.bearer(owner))
                #expect(submitted.status == 202, "\(submitted.text)")
                let id = try #require(submitted.json?["id"] as? String)
                let job = "\(stack.baseURL)/gateway/jobs/\(id)"

                // To another key the job does not exist: not readable, not followable, not cancellable.
                let read = try await HTTP.get(job, headers: Self.bearer(other))
                #expect(read.status == 404, "\(read.text)")
                #expect(Self.errorCode(read) == "job_not_found")
                #expect(!read.text.contains(prompt))
                let events = try await HTTP.get("\(job)/events", headers: Self.bearer(other))
                #expect(events.status == 404)
                #expect(Self.errorCode(events) == "job_not_found")
                let cancel = try await HTTP.post("\(job)/cancel", raw: [], headers: Self.bearer(other))
                #expect(cancel.status == 404)
                #expect(Self.errorCode(cancel) == "job_not_found")

                // The owner reads it, and its job was not cancelled by the other key's attempt.
                let mine = try await HTTP.get(job, headers: Self.bearer(owner))
                #expect(mine.status == 200, "\(mine.text)")
                #expect(["queued", "in_progress"].contains(mine.json?["status"] as? String ?? ""))
                #expect(mine.json?["owner"] == nil)
                let cancelled = try await HTTP.post("\(job)/cancel", raw: [], headers: Self.bearer(owner))
                #expect(cancelled.status == 200, "\(cancelled.text)")
                #expect(cancelled.json?["status"] as? String == "cancelled")

                // A sync answer reaches its owner as before.
                let sync = try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["provider": "openai", "prompt": TestStack.unique("owned-sync")], headers: Self.bearer(owner))
                #expect(sync.status == 200, "\(sync.text)")
                let syncID = try #require(sync.json?["job_id"] as? String)
                #expect(try await HTTP.get("\(stack.baseURL)/gateway/jobs/\(syncID)", headers: Self.bearer(owner)).status == 200)
                #expect(try await HTTP.get("\(stack.baseURL)/gateway/jobs/\(syncID)", headers: Self.bearer(other)).status == 404)
            }
        }

        @Test func revocationReachesBothReplicasWithinASecond() async throws {
            try await withStack(try await GatewayStack.start()) { stack in
                let second = try await stack.startIngressReplica()
                let (key, id) = try await stack.createKey(["--name", "to-revoke"])
                let urls = ["\(stack.baseURL)/v1/models", "\(second)/v1/models"]
                // Both replicas have the key in their lookup cache (5 s by default).
                for url in urls {
                    #expect(try await HTTP.get(url, headers: Self.bearer(key)).status == 200)
                }
                let revoked = try await HTTP.send("DELETE", "\(stack.baseURL)/admin/keys/\(id)", body: nil, headers: Self.admin, timeout: .seconds(10))
                #expect(revoked.status == 200, "\(revoked.text)")
                #expect(revoked.json?["revoked_at"] is Double)
                let started = ContinuousClock.now
                var refused: [String: Duration] = [:]
                while refused.count < urls.count, ContinuousClock.now - started < .seconds(3) {
                    for url in urls where refused[url] == nil {
                        if try await HTTP.get(url, headers: Self.bearer(key)).status == 401 { refused[url] = ContinuousClock.now - started }
                    }
                    try await Task.sleep(for: .milliseconds(10))
                }
                print("revocation seen after: \(refused)")
                #expect(refused.count == 2)
                for (url, delay) in refused { #expect(delay < .seconds(1), "\(url) took \(delay)") }
                // Unknown ids are a 404; revoking over POST works as well.
                #expect(try await HTTP.post("\(second)/admin/keys/zzzzzzzzzzzz/revoke", raw: [], headers: Self.admin).status == 404)
            }
        }

        @Test func redisHoldsNoKeySecret() async throws {
            try await withStack(try await GatewayStack.start()) { stack in
                var keys = [try await stack.createKey(["--name", "dump-cli"]).key]
                let created = try await HTTP.post("\(stack.baseURL)/admin/keys", json: ["name": "dump-http"], headers: Self.admin)
                keys.append(try #require(created.json?["key"] as? String))
                for key in keys {
                    #expect(try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["provider": "openai", "prompt": TestStack.unique("dump")], headers: Self.bearer(key)).status == 200)
                    #expect(try await HTTP.get("\(stack.baseURL)/v1/models", headers: Self.bearer(key)).status == 200)
                }
                let redis = try Self.redis()
                defer { redis.shutdown() }
                var dump: [UInt8] = []
                var cursor = "0"
                var scanned = 0
                repeat {
                    let reply = try await redis.command("SCAN", RedisArgument(cursor), "COUNT", "1000")
                    let parts = try #require(reply.array)
                    cursor = parts[0].string ?? "0"
                    for name in parts[1].array ?? [] {
                        guard let key = name.string else { continue }
                        scanned += 1
                        dump += Array(key.utf8)
                        let value: RedisValue
                        switch try await redis.command("TYPE", RedisArgument(key)).string {
                        case "string": value = try await redis.command("GET", RedisArgument(key))
                        case "hash": value = try await redis.command("HGETALL", RedisArgument(key))
                        case "set": value = try await redis.command("SMEMBERS", RedisArgument(key))
                        case "list": value = try await redis.command("LRANGE", RedisArgument(key), "0", "-1")
                        case "zset": value = try await redis.command("ZRANGE", RedisArgument(key), "0", "-1", "WITHSCORES")
                        case "stream": value = try await redis.command("XRANGE", RedisArgument(key), "-", "+")
                        default: value = .null
                        }
                        dump += Self.flatten(value)
                    }
                } while cursor != "0"
                let text = String(decoding: dump, as: UTF8.self)
                print("scanned \(scanned) Redis keys, \(dump.count) bytes")
                for key in keys {
                    let parts = key.split(separator: "_")
                    let secret = String(parts[2])
                    #expect(!text.contains(secret))
                    #expect(!text.contains(key))
                    // What is stored is the SHA-256 of the secret.
                    let stored = try await redis.command("HGET", RedisArgument(RedisKeys.apiKey(String(parts[1]))), "secret_hash").string
                    #expect(stored == APIKey.hash(secret: secret))
                }
            }
        }

        static func flatten(_ value: RedisValue) -> [UInt8] {
            switch value {
            case .bulk(let bytes): return bytes + [10]
            case .status(let text), .error(let text): return Array(text.utf8) + [10]
            case .integer(let number): return Array(String(number).utf8) + [10]
            case .array(let values): return values.flatMap(flatten)
            case .null: return []
            }
        }

        @Test func budgetsAreEnforcedAndReconciledWithRealUsage() async throws {
            // $1000 per million tokens, so every token costs 1000 micro-dollars.
            let prices = #"{"openai/*": {"prompt": 1000, "completion": 1000}}"#
            try await withStack(try await GatewayStack.start(extra: ["LLMGW_PRICES": prices])) { stack in
                let query = "\(stack.baseURL)/gateway/query"
                let redis = try Self.redis()
                defer { redis.shutdown() }
                let day = UsagePeriod.dayAndMonth(Date().timeIntervalSince1970).day

                // Tokens per minute: a request estimated at 900 tokens fits a 1000 tpm bucket once; after the job
                // completes, the estimate is reconciled with the mock's few real tokens, so the next one fits too.
                let (tpmKey, tpmID) = try await stack.createKey(["--name", "tpm", "--tpm", "1000"])
                let big: [String: Any] = ["provider": "openai", "prompt": TestStack.unique("tpm"), "max_tokens": 880]
                let first = try await HTTP.post(query, json: big, headers: Self.bearer(tpmKey))
                #expect(first.status == 200, "\(first.text)")
                let usage = try #require(first.json?["usage"] as? [String: Any])
                let total = try #require(usage["total_tokens"] as? Int)
                #expect(total < 100)
                let second = try await HTTP.post(query, json: ["provider": "openai", "prompt": TestStack.unique("tpm"), "max_tokens": 880], headers: Self.bearer(tpmKey))
                #expect(second.status == 200, "\(second.text)")
                // While a slow job holds its estimate, the next big request does not fit.
                let slow = try await HTTP.post("\(stack.baseURL)/gateway/jobs", json: ["provider": "openai", "prompt": TestStack.unique("slow") + " [mock:delay_ms=3000]", "max_tokens": 880], headers: Self.bearer(tpmKey))
                #expect(slow.status == 202, "\(slow.text)")
                let refused = try await HTTP.post(query, json: ["provider": "openai", "prompt": TestStack.unique("tpm"), "max_tokens": 880], headers: Self.bearer(tpmKey))
                #expect(refused.status == 429, "\(refused.text)")
                #expect(Self.errorCode(refused) == "rate_limit_exceeded")
                #expect((refused.json?["error"] as? [String: Any])?["type"] as? String == "tokens")
                #expect(Int(refused.header("Retry-After") ?? "") ?? 0 >= 1)
                let slowID = try #require(slow.json?["id"] as? String)
                _ = try await stack.waitForJob(slowID, apiKey: tpmKey)

                // Usage by key, day and model equals what the provider reported; the day's budget spend too.
                let usageReply = try await HTTP.get("\(stack.baseURL)/admin/usage?key=\(tpmID)", headers: Self.admin)
                #expect(usageReply.status == 200, "\(usageReply.text)")
                let row = try #require((usageReply.json?["data"] as? [[String: Any]])?.first)
                let model = try #require((row["models"] as? [[String: Any]])?.first)
                #expect(model["model"] as? String == "openai/gpt-4o-mini")
                #expect(model["requests"] as? Int == 3)
                let jobTokens = try await [first, second].asyncMap { reply -> Int in
                    let id = try #require(reply.json?["job_id"] as? String)
                    let job = try await stack.waitForJob(id, apiKey: tpmKey)
                    return try #require((job["usage"] as? [String: Any])?["total_tokens"] as? Int)
                }
                let slowJob = try await stack.waitForJob(slowID, apiKey: tpmKey)
                let slowTokens = try #require((slowJob["usage"] as? [String: Any])?["total_tokens"] as? Int)
                let realTotal = jobTokens.reduce(0, +) + slowTokens
                #expect((model["prompt_tokens"] as? Int ?? 0) + (model["completion_tokens"] as? Int ?? 0) == realTotal)
                #expect(model["cost_micros"] as? Int == realTotal * 1000)
                #expect(row["day_tokens"] as? Int == realTotal)
                let spent = try await redis.command("HGET", RedisArgument(RedisKeys.budget(tenant: "key:\(tpmID)", period: day)), "tokens").integer
                #expect(spent == Int64(realTotal))

                // A request that runs nothing gives its admission charge back: an Idempotency-Key replay, and the key
                // reused with another request (422). Only the original job's real tokens stay in the budget.
                let (replayKey, replayID) = try await stack.createKey(["--name", "replay", "--tpm", "100000"])
                let replayHeaders = Self.bearer(replayKey) + [("Idempotency-Key", TestStack.unique("budget-replay"))]
                let replayBody: [String: Any] = ["provider": "openai", "prompt": TestStack.unique("replay"), "max_tokens": 500]
                let original = try await HTTP.post(query, json: replayBody, headers: replayHeaders)
                #expect(original.status == 200, "\(original.text)")
                let originalTokens = try #require((original.json?["usage"] as? [String: Any])?["total_tokens"] as? Int)
                let replayBudget = RedisArgument(RedisKeys.budget(tenant: "key:\(replayID)", period: day))
                #expect(try await redis.command("HGET", replayBudget, "tokens").integer == Int64(originalTokens))
                let replayed = try await HTTP.post(query, json: replayBody, headers: replayHeaders)
                #expect(replayed.status == 200)
                #expect(replayed.json?["job_id"] as? String == original.json?["job_id"] as? String)
                let reused = try await HTTP.post(query, json: ["provider": "openai", "prompt": TestStack.unique("other"), "max_tokens": 500], headers: replayHeaders)
                #expect(reused.status == 422, "\(reused.text)")
                #expect(try await redis.command("HGET", replayBudget, "tokens").integer == Int64(originalTokens))

                // A daily token budget: admitted while unspent, then 429 insufficient_quota until the next UTC day.
                let (budgetKey, budgetID) = try await stack.createKey(["--name", "daily", "--daily-tokens", "500"])
                var statuses: [Int] = []
                for _ in 0..<3 {
                    let reply = try await HTTP.post(query, json: ["provider": "openai", "prompt": TestStack.unique("daily") + " [mock:tokens=300]", "max_tokens": 300], headers: Self.bearer(budgetKey))
                    statuses.append(reply.status)
                    if reply.status == 429 {
                        #expect(Self.errorCode(reply) == "insufficient_quota", "\(reply.text)")
                        #expect((reply.json?["error"] as? [String: Any])?["type"] as? String == "insufficient_quota")
                        #expect(Int(reply.header("Retry-After") ?? "") ?? 0 >= 1)
                    }
                }
                #expect(statuses == [200, 200, 429])
                let dailySpent = try await redis.command("HGET", RedisArgument(RedisKeys.budget(tenant: "key:\(budgetID)", period: day)), "tokens").integer ?? 0
                #expect(dailySpent >= 600 && dailySpent < 700, "\(dailySpent)")

                // A monthly cost budget: $0.002 is 2 tokens here; the first request (a few real tokens) spends it.
                let created = try await HTTP.post("\(stack.baseURL)/admin/keys", json: ["name": "cost", "monthly_cost_usd": 0.002], headers: Self.admin)
                let costKey = try #require(created.json?["key"] as? String)
                #expect(try await HTTP.post(query, json: ["provider": "openai", "prompt": TestStack.unique("cost")], headers: Self.bearer(costKey)).status == 200)
                let broke = try await HTTP.post(query, json: ["provider": "openai", "prompt": TestStack.unique("cost")], headers: Self.bearer(costKey))
                #expect(broke.status == 429, "\(broke.text)")
                #expect(Self.errorCode(broke) == "insufficient_quota")
            }
        }

        @Test func jwtIsVerifiedAndItsClaimsApply() async throws {
            let secret = "integration-test-hs256-secret-0123456789"
            let ecKey = P256.Signing.PrivateKey()
            let rsaKey = try _RSA.Signing.PrivateKey(keySize: .bits2048)
            let pemPath = "\(TestStack.workDirectory)/jwt-keys-\(UInt32.random(in: 0...UInt32.max)).pem"
            try (ecKey.publicKey.pemRepresentation + "\n" + rsaKey.publicKey.pemRepresentation + "\n").write(toFile: pemPath, atomically: true, encoding: .utf8)
            let extra = [
                "LLMGW_JWT_HS256_SECRET": secret, "LLMGW_JWT_PUBLIC_KEYS_FILE": pemPath,
                "LLMGW_JWT_ISSUER": "https://issuer.test", "LLMGW_JWT_AUDIENCE": "llm-gateway",
            ]
            try await withStack(try await GatewayStack.start(extra: extra)) { stack in
                let now = Int(Date().timeIntervalSince1970)
                let tenant = TestStack.unique("team")
                let claims: [String: Any] = ["iss": "https://issuer.test", "aud": "llm-gateway", "sub": tenant, "exp": now + 300]
                func call(_ token: String) async throws -> HTTP.Reply {
                    try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["provider": "openai", "prompt": TestStack.unique("jwt")], headers: Self.bearer(token))
                }
                func sign(_ header: [String: Any], _ claims: [String: Any], _ signer: ([UInt8]) throws -> [UInt8]) throws -> String {
                    let input = try JWT.encode(header) + "." + JWT.encode(claims)
                    return input + "." + JWT.base64URL(try signer(Array(input.utf8)))
                }
                let hs256 = { (key: String) in { (data: [UInt8]) -> [UInt8] in Array(HMAC<SHA256>.authenticationCode(for: data, using: SymmetricKey(data: Array(key.utf8)))) } }

                let valid = try await call(try sign(["alg": "HS256", "typ": "JWT"], claims, hs256(secret)))
                #expect(valid.status == 200, "\(valid.text)")
                let es256 = try await call(try sign(["alg": "ES256"], claims) { Array(try ecKey.signature(for: $0).rawRepresentation) })
                #expect(es256.status == 200, "\(es256.text)")
                let rs256 = try await call(try sign(["alg": "RS256"], claims) { Array(try rsaKey.signature(for: $0, padding: .insecurePKCS1v1_5).rawRepresentation) })
                #expect(rs256.status == 200, "\(rs256.text)")

                var expired = claims
                expired["exp"] = now - 120
                var wrongAudience = claims
                wrongAudience["aud"] = "someone-else"
                var wrongIssuer = claims
                wrongIssuer["iss"] = "https://evil.test"
                let refused = [
                    try await call(try sign(["alg": "HS256"], expired, hs256(secret))),
                    try await call(try sign(["alg": "HS256"], claims, hs256("another-secret-of-sufficient-length-000"))),
                    try await call(try JWT.encode(["alg": "none", "typ": "JWT"]) + "." + JWT.encode(claims) + "."),
                    try await call(try sign(["alg": "HS256"], wrongAudience, hs256(secret))),
                    try await call(try sign(["alg": "HS256"], wrongIssuer, hs256(secret))),
                    // An RS256 header on an HMAC signature, and an ES256 token signed by an unknown key.
                    try await call(try sign(["alg": "RS256"], claims, hs256(secret))),
                    try await call(try sign(["alg": "ES256"], claims) { Array(try P256.Signing.PrivateKey().signature(for: $0).rawRepresentation) }),
                ]
                for reply in refused {
                    #expect(reply.status == 401, "\(reply.text)")
                    #expect(Self.errorCode(reply) == "invalid_api_key")
                }

                // Claims set the tenant's limits: one request per minute.
                var limited = claims
                limited["sub"] = TestStack.unique("limited")
                limited["rpm"] = 1
                let token = try sign(["alg": "HS256"], limited, hs256(secret))
                let once = try await call(token)
                #expect(once.status == 200, "\(once.text)")
                #expect(once.header("x-ratelimit-limit-requests") == "1")
                let twice = try await call(token)
                #expect(twice.status == 429)
                #expect(Self.errorCode(twice) == "rate_limit_exceeded")
            }
        }
    }
}

/// Builds test JWTs.
enum JWT {
    static func base64URL(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func encode(_ object: [String: Any]) throws -> String {
        base64URL(Array(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])))
    }
}
