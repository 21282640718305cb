import Foundation
import Kafka
import Logging
import NIOConcurrencyHelpers
import Protocol
import Redis
@testable import ResultStore
import Testing
@testable import Worker

extension Integration {
    /// The Redis module against the test Redis.
    @Suite(.serialized)
    struct RedisModule {
        let logger = Logger(label: "test")

        func client(port: Int? = nil) throws -> RedisClient {
            RedisClient(endpoint: RedisEndpointSettings(host: "127.0.0.1", port: try port ?? TestStack.redisPort), connections: 2, timeoutMs: 1000, logger: logger)
        }

        /// A subscriber to `server` that appends each message to `received` as `<channel>=<payload>`.
        func recordingSubscriber(
            on server: OwnRedis, channels: [String], into received: NIOLockedValueBox<[String]>,
            onSubscribed: @escaping @Sendable () -> Void = {}
        ) -> RedisSubscriber {
            RedisSubscriber(
                endpoint: RedisEndpointSettings(host: "127.0.0.1", port: server.port), channels: channels, logger: logger,
                onMessage: { channel, payload in received.withLockedValue { $0.append("\(channel)=\(String(decoding: payload, as: UTF8.self))") } },
                onSubscribed: onSubscribed)
        }

        @Test func commandsPipelinesAndErrorReplies() async throws {
            let redis = try client()
            defer { redis.shutdown() }
            let key = TestStack.unique("llmgw:test:key")
            #expect(try await redis.command("SET", RedisArgument(key), "value") == .status("OK"))
            #expect(try await redis.command("GET", RedisArgument(key)).string == "value")
            let replies = try await redis.pipeline([["INCR", RedisArgument(key + ":n")], ["INCR", RedisArgument(key + ":n")], ["WRONGCOMMAND"]])
            #expect(replies[0] == .integer(1))
            #expect(replies[1] == .integer(2))
            guard case .error = replies[2] else {
                Issue.record("expected an error reply, got \(replies[2])")
                return
            }
            await #expect(throws: RedisError.self) { try await redis.command("WRONGCOMMAND") }
            // Many concurrent callers share the connections' pipelines; every reply reaches its caller.
            let values = try await withThrowingTaskGroup(of: (Int, String?).self) { group in
                for index in 0..<500 {
                    group.addTask { (index, try await redis.command("ECHO", RedisArgument("v\(index)")).string) }
                }
                return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
            }
            #expect(values.count == 500)
            #expect(values.allSatisfy { $0.value == "v\($0.key)" })
        }

        /// `post` writes commands without a waiter: they run in order on the connection, and their replies (an
        /// error reply among them) are consumed without shifting the next caller's reply.
        @Test func postedCommandsRunAndTheirRepliesReachNoOne() async throws {
            let redis = RedisClient(endpoint: RedisEndpointSettings(host: "127.0.0.1", port: try TestStack.redisPort), connections: 1, timeoutMs: 1000, logger: logger)
            defer { redis.shutdown() }
            let key = RedisArgument(TestStack.unique("llmgw:test:posted"))
            for _ in 0..<3 {
                redis.post(commands: [RedisCommand(["INCR", key])])
            }
            redis.post(commands: [RedisCommand(["WRONGCOMMAND"]), RedisCommand(["INCR", key])])
            #expect(try await redis.command("GET", key).string == "4")
            #expect(try await redis.command("ECHO", "next").string == "next")

            // Posted while the server is down: nothing is thrown or left waiting, and posts work once it is up.
            let server = try OwnRedis()
            let down = RedisClient(endpoint: RedisEndpointSettings(host: "127.0.0.1", port: server.port), connections: 1, timeoutMs: 1000, logger: logger)
            defer { down.shutdown() }
            down.post(commands: [RedisCommand(["PING"])])
            try await server.start()
            defer { server.process?.signal(SIGKILL) }
            try await waitFor("the client to connect", timeout: .seconds(10)) { await down.ping() }
            down.post(commands: [RedisCommand(["INCR", "llmgw:test:posted-up"])])
            #expect(try await down.command("GET", "llmgw:test:posted-up").string == "1")
        }

        @Test func argumentsAreBinarySafe() async throws {
            let redis = try client()
            defer { redis.shutdown() }
            let key = TestStack.unique("llmgw:test:binary")
            let value: [UInt8] = Array("a\r\n$3\r\n*1".utf8) + [0, 255, 13, 10] + Array(repeating: 7, count: 70_000)
            #expect(try await redis.command("SET", RedisArgument(key), RedisArgument(value)) == .status("OK"))
            #expect(try await redis.command("GET", RedisArgument(key)).bytes == value)
            #expect(try await redis.command("STRLEN", RedisArgument(key)) == .integer(Int64(value.count)))
        }

        @Test func aServerThatStopsAnsweringTimesOutAndIsUsedAgainOnceItAnswers() async throws {
            let server = try OwnRedis()
            try await server.start()
            defer { server.process?.signal(SIGKILL) }
            let redis = server.client(timeoutMs: 300, logger: logger)
            defer { redis.shutdown() }
            #expect(await redis.ping())
            server.process?.signal(SIGSTOP)
            let started = ContinuousClock.now
            do {
                try await redis.command("PING")
                Issue.record("a stopped server answered")
            } catch {
                #expect(error.code == .timeout)
            }
            #expect(ContinuousClock.now - started < .seconds(3))
            server.process?.signal(SIGCONT)
            try await waitFor("the client to reconnect", timeout: .seconds(10)) { await redis.ping() }
        }

        @Test func eachCommandGetsItsOwnDeadlineOnAConnection() async throws {
            // One connection, 400 ms per reply: a PING, then 200 ms later a BLPOP that Redis answers after 300 ms.
            // The BLPOP is within its own deadline though past the PING's, and must not be timed out by it.
            let redis = RedisClient(
                endpoint: RedisEndpointSettings(host: "127.0.0.1", port: try TestStack.redisPort), connections: 1, timeoutMs: 400,
                logger: logger)
            defer { redis.shutdown() }
            let key = RedisArgument(TestStack.unique("llmgw:test:never-pushed"))
            #expect(await redis.ping())
            try await Task.sleep(for: .milliseconds(200))
            #expect(try await redis.command("BLPOP", key, "0.3") == .null)
            // A reply later than its deadline still fails, and the connection is used again afterwards.
            do {
                try await redis.command("BLPOP", key, "1")
                Issue.record("a reply after its deadline was accepted")
            } catch {
                #expect(error.code == .timeout)
            }
            #expect(await redis.ping())
        }

        @Test func passwordAndDatabaseAreSentWhenConnecting() async throws {
            let server = try OwnRedis()
            try await server.start()
            defer { server.process?.signal(SIGKILL) }
            let admin = server.client(logger: logger)
            defer { admin.shutdown() }
            try await admin.command("ACL", "SETUSER", "gateway", "on", ">s3cret", "~*", "+@all")
            try await admin.command("SET", "where", "db0")
            let endpoint = RedisEndpointSettings(host: "127.0.0.1", port: server.port, database: 3, username: "gateway", password: "s3cret")
            let redis = RedisClient(endpoint: endpoint, connections: 1, logger: logger)
            defer { redis.shutdown() }
            try await redis.command("SET", "where", "db3")
            #expect(try await redis.command("GET", "where").string == "db3")
            #expect(try await admin.command("GET", "where").string == "db0")
            let wrong = RedisClient(
                endpoint: RedisEndpointSettings(host: "127.0.0.1", port: server.port, username: "gateway", password: "wrong"),
                connections: 1, logger: logger)
            defer { wrong.shutdown() }
            do {
                try await wrong.command("PING")
                Issue.record("a wrong password was accepted")
            } catch {
                #expect(error.code == .connection)
                #expect(!error.message.contains("wrong"))
            }
        }

        @Test func scriptsRunByDigestOnceLoadedAndAgainAfterAFlush() async throws {
            let server = try OwnRedis()
            try await server.start()
            defer { server.process?.signal(SIGKILL) }
            let redis = server.client(logger: logger)
            defer { redis.shutdown() }
            let script: RedisScript = "return redis.call('INCRBY', KEYS[1], ARGV[1])"
            func calls(_ command: String) async throws -> Int {
                let info = try await redis.command("INFO", "commandstats").string ?? ""
                guard let line = info.split(separator: "\r\n").first(where: { $0.hasPrefix("cmdstat_\(command):") }),
                      let range = line.range(of: "calls="), let end = line[range.upperBound...].firstIndex(of: ",")
                else { return 0 }
                return Int(line[range.upperBound..<end]) ?? 0
            }
            for step in 1...3 {
                #expect(try await redis.eval(script, keys: ["llmgw:test:script"], arguments: [2]).integer == Int64(2 * step))
            }
            // The first call loaded the script; the next two named it by its digest.
            #expect(try await calls("eval") == 1)
            #expect(try await calls("evalsha") == 2)
            #expect(script.digest == (try await redis.command("SCRIPT", "LOAD", script.source)).string)
            // A server that forgot its scripts answers NOSCRIPT once; the client runs the script by EVAL again.
            try await redis.command("SCRIPT", "FLUSH")
            #expect(try await redis.eval(script, keys: ["llmgw:test:script"], arguments: [2]).integer == 8)
            #expect(try await calls("eval") == 2)
            #expect(try await redis.eval(script, keys: ["llmgw:test:script"], arguments: [2]).integer == 10)
            #expect(try await calls("evalsha") == 4)
        }

        @Test func unreachableRedisFailsFastAndARestartedOneIsUsedAgain() async throws {
            let server = try OwnRedis()
            let redis = try client(port: server.port)
            defer { redis.shutdown() }
            let started = ContinuousClock.now
            await #expect(throws: RedisError.self) { try await redis.command("PING") }
            #expect(ContinuousClock.now - started < .seconds(3))
            try await server.start()
            defer { server.process?.signal(SIGKILL) }
            try await waitFor("the client to reconnect", timeout: .seconds(10)) { await redis.ping() }
            await server.stop()
            #expect(await redis.ping() == false)
            try await server.start()
            try await waitFor("the client to reconnect after a restart", timeout: .seconds(10)) { await redis.ping() }
        }

        @Test func subscriberReceivesMessagesAndResubscribesAfterARestart() async throws {
            let server = try OwnRedis()
            try await server.start()
            defer { server.process?.signal(SIGKILL) }
            let redis = try client(port: server.port)
            defer { redis.shutdown() }
            let received = NIOLockedValueBox<[String]>([])
            let subscriptions = NIOLockedValueBox(0)
            let subscriber = recordingSubscriber(on: server, channels: ["llmgw:test:channel"], into: received) {
                subscriptions.withLockedValue { $0 += 1 }
            }
            defer { subscriber.shutdown() }
            try await waitFor("the first message", timeout: .seconds(10)) {
                _ = try? await redis.command("PUBLISH", "llmgw:test:channel", "one")
                return received.withLockedValue { $0.contains("llmgw:test:channel=one") }
            }
            #expect(subscriptions.withLockedValue { $0 } == 1)
            await server.stop()
            try await server.start()
            try await waitFor("a message after the restart", timeout: .seconds(15)) {
                _ = try? await redis.command("PUBLISH", "llmgw:test:channel", "two")
                return received.withLockedValue { $0.contains("llmgw:test:channel=two") }
            }
            #expect(subscriptions.withLockedValue { $0 } >= 2)
        }

        @Test func aSubscriberConnectsOnceStartedAndOnlyOnce() async throws {
            let redis = try client()
            defer { redis.shutdown() }
            let endpoint = RedisEndpointSettings(host: "127.0.0.1", port: try TestStack.redisPort)
            let (waiting, other) = (TestStack.unique("llmgw:test:later"), TestStack.unique("llmgw:test:now"))
            let subscribers = { () async throws -> [Int] in
                let reply = try await redis.command("PUBSUB", "NUMSUB", RedisArgument(waiting), RedisArgument(other)).array ?? []
                return stride(from: 1, to: reply.count, by: 2).map { Int(reply[$0].integer ?? -1) }
            }
            let subscriber = RedisSubscriber(endpoint: endpoint, channels: [waiting], logger: logger)
            defer { subscriber.shutdown() }
            // One created and started after it has subscribed; the first, never started, has not.
            let started = RedisSubscriber(endpoint: endpoint, channels: [other], logger: logger, onMessage: { _, _ in }, onSubscribed: {})
            defer { started.shutdown() }
            try await waitFor("the started subscriber", timeout: .seconds(10)) { try await subscribers() == [0, 1] }

            let received = NIOLockedValueBox<[String]>([])
            let record: RedisSubscriber.MessageHandler = { _, payload in
                received.withLockedValue { $0.append(String(decoding: payload, as: UTF8.self)) }
            }
            subscriber.start(onMessage: record)
            subscriber.start(onMessage: record)
            try await waitFor("the subscription", timeout: .seconds(10)) { try await subscribers() == [1, 1] }
            #expect(try await redis.command("PUBLISH", RedisArgument(waiting), "once").integer == 1)
            try await waitFor("the message", timeout: .seconds(10)) { received.withLockedValue { $0 } == ["once"] }

            // Shut down, a subscriber stays down, and one never started closes its pipe without a thread.
            subscriber.shutdown()
            subscriber.start(onMessage: record)
            try await waitFor("the unsubscription", timeout: .seconds(10)) { try await subscribers() == [0, 1] }
            let descriptors = { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1 }
            let before = descriptors()
            for _ in 0..<50 {
                let unused = RedisSubscriber(endpoint: endpoint, channels: [waiting], logger: logger)
                unused.shutdown()
            }
            for _ in 0..<50 { _ = RedisSubscriber(endpoint: endpoint, channels: [waiting], logger: logger) }
            // 200 descriptors if the pipes leaked; other tests' connections closing meanwhile may move a few.
            #expect(descriptors() < before + 20, "\(before) descriptors before, \(descriptors()) after")
            #expect(try await subscribers() == [0, 1])
        }

        @Test func subscriberFollowsChannelChangesAndKeepsThemAcrossARestart() async throws {
            let server = try OwnRedis()
            try await server.start()
            defer { server.process?.signal(SIGKILL) }
            let redis = try client(port: server.port)
            defer { redis.shutdown() }
            let received = NIOLockedValueBox<[String]>([])
            let subscriber = recordingSubscriber(on: server, channels: [], into: received)
            defer { subscriber.shutdown() }
            let (a, b, c) = ("llmgw:test:a", "llmgw:test:b", "llmgw:test:c")
            let counts = { () async throws -> [Int] in
                let reply = try await redis.command("PUBSUB", "NUMSUB", RedisArgument(a), RedisArgument(b), RedisArgument(c)).array ?? []
                return stride(from: 1, to: reply.count, by: 2).map { Int(reply[$0].integer ?? -1) }
            }
            // Nothing at first, then a and b, then b and c: each change reaches Redis without a reconnect.
            #expect(try await counts() == [0, 0, 0])
            subscriber.setChannels([a, b])
            try await waitFor("a and b subscribed", timeout: .seconds(10)) { try await counts() == [1, 1, 0] }
            subscriber.setChannels([b, c])
            try await waitFor("a dropped, c added", timeout: .seconds(10)) { try await counts() == [0, 1, 1] }
            for channel in [a, b, c] {
                #expect(try await redis.command("PUBLISH", RedisArgument(channel), "first").integer == (channel == a ? 0 : 1))
            }
            try await waitFor("the messages of b and c", timeout: .seconds(10)) {
                received.withLockedValue { Set($0) == ["\(b)=first", "\(c)=first"] }
            }
            // A restarted server gets the current channels, not the first ones.
            await server.stop()
            try await server.start()
            try await waitFor("b and c subscribed again", timeout: .seconds(15)) { (try? await counts()) == [0, 1, 1] }
            subscriber.setChannels([])
            try await waitFor("everything unsubscribed", timeout: .seconds(10)) { try await counts() == [0, 0, 0] }
            #expect(received.withLockedValue { $0.count } == 2)
        }
    }

    /// The Result Store's scripts against the test Redis.
    @Suite(.serialized)
    struct ResultStoreScripts {
        let logger = Logger(label: "test")

        func store() throws -> ResultStore {
            let redis = RedisClient(endpoint: RedisEndpointSettings(host: "127.0.0.1", port: try TestStack.redisPort), logger: logger)
            return ResultStore(redis: redis, resultTTL: 600)
        }

        func newJob(_ store: ResultStore, replyTo: String? = nil) async throws -> String {
            let id = JobID.make(milliseconds: UInt64(Date().timeIntervalSince1970 * 1000))
            let record = JobRecord(id: id, status: .queued, provider: "openai", model: "gpt-4o-mini", createdAt: Date().timeIntervalSince1970)
            try await store.create(record, request: Array("{}".utf8), replyTo: replyTo)
            return id
        }

        @Test func leaseGivesAJobToOneWorkerAtATime() async throws {
            let store = try store()
            defer { store.redis.shutdown() }
            let id = try await newJob(store)
            #expect(try await store.start(id: id, worker: "a", leaseMs: 5000, now: 1) == .run(attempt: 1))
            guard case .leasedElsewhere(let wait) = try await store.start(id: id, worker: "b", leaseMs: 5000, now: 1) else {
                Issue.record("a second worker must not run a leased job")
                return
            }
            #expect(wait > 0 && wait <= 5000)
            #expect(try await store.renewLease(id: id, worker: "a", leaseMs: 5000) == .renewed)
            #expect(try await store.renewLease(id: id, worker: "b", leaseMs: 5000) == .heldElsewhere)
            #expect(try await store.renewLease(id: try await newJob(store), worker: "a", leaseMs: 5000) == .lapsed)
            // The holder may claim again (its own redelivery).
            #expect(try await store.start(id: id, worker: "a", leaseMs: 5000, now: 2) == .run(attempt: 2))
            let record = try #require(try await store.record(id: id))
            #expect(record.status == .inProgress)
            #expect(record.startedAt == 2)
        }

        @Test func theLeaseKeeperRenewsTheJobsItHoldsAndNoOthers() async throws {
            let store = try store()
            defer { store.redis.shutdown() }
            let (held, released, taken) = (try await newJob(store), try await newJob(store), try await newJob(store))
            for id in [held, released, taken] {
                #expect(try await store.start(id: id, worker: "a", leaseMs: 600, now: 1) == .run(attempt: 1))
            }
            // Another worker owns `taken`'s lease now (as after an expiry): renewing must not take it back.
            try await store.redis.command("SET", RedisArgument(RedisKeys.jobLease(taken)), "b", "PX", "5000")
            let keeper = LeaseKeeper(store: store, workerID: "a", leaseMs: 600, logger: logger)
            for id in [held, released, taken] { keeper.hold(id, logger: logger) }
            keeper.release(released)
            #expect(keeper.count == 2)
            let renewal = Task { await keeper.run() }
            defer { renewal.cancel() }
            let lease = { (id: String) async throws -> String? in try await store.redis.command("GET", RedisArgument(RedisKeys.jobLease(id))).string }
            // Both leases were set together for 600 ms; only the held one outlives it, for more than another lease.
            try await waitFor("the released job's lease to expire", timeout: .seconds(5), every: .milliseconds(20)) { try await lease(released) == nil }
            try await Task.sleep(for: .milliseconds(900))
            #expect(try await lease(held) == "a")
            guard case .leasedElsewhere = try await store.start(id: held, worker: "b", leaseMs: 600, now: 2) else {
                Issue.record("a renewed lease must keep the job from another worker")
                return
            }
            #expect(try await lease(taken) == "b")
            // Released, the held job's lease lapses like any other.
            keeper.release(held)
            try await waitFor("the held job's lease to expire once released", timeout: .seconds(5), every: .milliseconds(20)) { try await lease(held) == nil }
            #expect(try await store.start(id: held, worker: "b", leaseMs: 600, now: 3) == .run(attempt: 2))
        }

        @Test func theLeaseKeeperReportsLostLeasesButNotThoseItsFinishesRelease() async throws {
            let store = try store()
            defer { store.redis.shutdown() }
            let (running, taken, lapsed, finished) = (try await newJob(store), try await newJob(store), try await newJob(store), try await newJob(store))
            let keeper = LeaseKeeper(store: store, workerID: "a", leaseMs: 5000, logger: logger)
            for id in [running, taken, lapsed, finished] {
                #expect(try await store.start(id: id, worker: "a", leaseMs: 5000, now: 1) == .run(attempt: 1))
                keeper.hold(id, logger: logger)
            }
            try await store.redis.command("SET", RedisArgument(RedisKeys.jobLease(taken)), "b", "PX", "5000")
            try await store.redis.command("DEL", RedisArgument(RedisKeys.jobLease(lapsed)))
            // The run is storing its outcome, which deletes the lease, and the renewal runs before its release.
            keeper.finishing(finished)
            let completion = ChatCompletion(model: "gpt-4o-mini", text: "done", finishReason: .stop, usage: Usage(promptTokens: 1, completionTokens: 1))
            #expect(try await store.finish(id: finished, worker: "a", outcome: .completed(completion), attemptLog: [], provider: "openai", model: "gpt-4o-mini", now: 2))
            #expect(await keeper.renewAll() == [taken: .heldElsewhere, lapsed: .lapsed])
            #expect(try await store.redis.command("PTTL", RedisArgument(RedisKeys.jobLease(running))).integer ?? 0 > 4000)
            // A finishing run's lease is still renewed, as long as it is this worker's.
            keeper.finishing(running)
            #expect(await keeper.renewAll() == [taken: .heldElsewhere, lapsed: .lapsed])
            #expect(try await store.redis.command("GET", RedisArgument(RedisKeys.jobLease(running))).string == "a")
            #expect(try await store.redis.command("EXISTS", RedisArgument(RedisKeys.jobLease(finished))) == .integer(0))
            for id in [taken, lapsed] { keeper.release(id) }
            #expect(await keeper.renewAll() == [:])
        }

        @Test func aJobEndsOnceAndRedeliveriesSeeIt() async throws {
            let store = try store()
            defer { store.redis.shutdown() }
            let id = try await newJob(store)
            _ = try await store.start(id: id, worker: "a", leaseMs: 5000, now: 1)
            let completion = ChatCompletion(model: "gpt-4o-mini", text: "done", finishReason: .stop, usage: Usage(promptTokens: 1, completionTokens: 2))
            let attempt = AttemptRecord(provider: "openai", model: "gpt-4o-mini", outcome: "ok", httpStatus: 200, latencyMs: 3, error: nil)
            #expect(try await store.finish(id: id, worker: "a", outcome: .completed(completion), attemptLog: [attempt], provider: "openai", model: "gpt-4o-mini", now: 3))
            let failure = JobFailure(message: "late", type: "upstream_error", code: "upstream_error")
            #expect(try await store.finish(id: id, worker: "b", outcome: .failed(failure), attemptLog: [], provider: "openai", model: "x", now: 4) == false)
            let record = try #require(try await store.record(id: id))
            #expect(record.status == .completed)
            #expect(record.result?.text == "done")
            #expect(record.usage?.totalTokens == 3)
            #expect(record.attempts == 1)
            #expect(record.error == nil)
            #expect(try await store.start(id: id, worker: "c", leaseMs: 5000, now: 5) == .alreadyFinished(.completed))
            // The lease is released on finish.
            #expect(try await store.redis.command("EXISTS", RedisArgument(RedisKeys.jobLease(id))) == .integer(0))
            // The record expires after the result TTL.
            let ttl = try #require(try await store.redis.command("TTL", RedisArgument(RedisKeys.job(id))).integer)
            #expect(ttl > 0 && ttl <= 600)
        }

        @Test func finishNotifiesTheWaitingReplica() async throws {
            let store = try store()
            defer { store.redis.shutdown() }
            let instance = TestStack.unique("ingress")
            let received = NIOLockedValueBox<[[UInt8]]>([])
            let subscriber = RedisSubscriber(
                endpoint: RedisEndpointSettings(host: "127.0.0.1", port: try TestStack.redisPort),
                channels: [RedisKeys.notifyChannel(instance: instance)], logger: logger,
                onMessage: { _, payload in received.withLockedValue { $0.append(payload) } },
                onSubscribed: {})
            defer { subscriber.shutdown() }
            try await waitFor("the subscription", timeout: .seconds(10)) {
                (try await store.redis.command("PUBSUB", "NUMSUB", RedisArgument(RedisKeys.notifyChannel(instance: instance)))).array?.last?.integer == 1
            }
            let id = try await newJob(store, replyTo: instance)
            _ = try await store.start(id: id, worker: "a", leaseMs: 5000, now: 1)
            let failure = JobFailure(message: "boom", type: "upstream_error", code: "upstream_error", providerStatus: 500)
            #expect(try await store.finish(id: id, worker: "a", outcome: .failed(failure), attemptLog: [], provider: "openai", model: "m", now: 2))
            try await waitFor("the notification", timeout: .seconds(5)) { received.withLockedValue { $0.count == 1 } }
            // The notification names the job and carries its finished record, equal to what Redis holds.
            let notification = JobNotification.parse(received.withLockedValue { $0[0] })
            #expect(notification.id == id)
            let carried = try #require(notification.record)
            #expect(carried.status == .failed)
            #expect(carried.error?.providerStatus == 500)
            let record = try #require(try await store.record(id: id))
            #expect(record.status == .failed)
            #expect(record.error?.providerStatus == 500)
            #expect(carried.completedAt == record.completedAt && carried.attempts == record.attempts && carried.model == record.model)
        }

        @Test func unknownJobs() async throws {
            let store = try store()
            defer { store.redis.shutdown() }
            let id = JobID.make(milliseconds: 1)
            #expect(try await store.record(id: id) == nil)
            #expect(try await store.start(id: id, worker: "a", leaseMs: 1000, now: 1) == .unknown)
        }

        @Test func requeueResetsAFailedJobAndHandsBackItsRequestInOneStep() async throws {
            let store = try store()
            defer { store.redis.shutdown() }
            let failure = JobFailure(message: "boom", type: "upstream_error", code: "upstream_error")
            func failedJob() async throws -> String {
                let id = try await newJob(store)
                _ = try await store.start(id: id, worker: "a", leaseMs: 5000, now: 1)
                #expect(try await store.finish(id: id, worker: "a", outcome: .failed(failure), attemptLog: [], provider: "openai", model: "m", now: 2))
                return id
            }

            let id = try await failedJob()
            let before = try #require(try await store.record(id: id))
            guard case .queued(let requeued) = try await store.requeue(id: id) else {
                Issue.record("the failed job was not requeued")
                return
            }
            #expect(requeued.previous == .failed && requeued.envelope == Array("{}".utf8))
            let record = try #require(try await store.record(id: id))
            #expect(record.status == .queued)
            #expect(record.error == nil && record.completedAt == nil)
            #expect(try await store.requeue(id: id) == .refused(.queued))

            // A re-drive that could not be produced puts the job back as it was, outcome and timestamps included.
            #expect(try await store.restore(requeued, id: id))
            let restored = try #require(try await store.record(id: id))
            #expect(restored.status == .failed && restored.error == failure)
            #expect(restored.completedAt == before.completedAt && restored.startedAt == before.startedAt)
            // Once a worker has claimed the re-driven job, a late restore changes nothing.
            guard case .queued(let again) = try await store.requeue(id: id) else {
                Issue.record("the restored job could not be requeued again")
                return
            }
            #expect(try await store.start(id: id, worker: "b", leaseMs: 5000, now: 3) == .run(attempt: 2))
            #expect(try await !store.restore(again, id: id))
            #expect(try #require(try await store.record(id: id)).status == .inProgress)

            // A job that kept no request is left as it was, not queued with nothing to produce.
            let bare = try await failedJob()
            _ = try await store.redis.command("HDEL", RedisArgument(RedisKeys.job(bare)), "request")
            #expect(try await store.requeue(id: bare) == .noRequest(.failed))
            #expect(try #require(try await store.record(id: bare)).status == .failed)
            #expect(try await store.requeue(id: JobID.make(milliseconds: 1)) == .unknown)
        }
    }

    /// A worker's view of job cancellations, through the test Redis.
    @Suite(.serialized)
    struct Cancellations {
        let logger = Logger(label: "test")

        @Test func aWatchRunsItsActionOnceCancelledAndAnEndedWatchNever() async throws {
            let endpoint = RedisEndpointSettings(host: "127.0.0.1", port: try TestStack.redisPort)
            let redis = RedisClient(endpoint: endpoint, logger: logger)
            defer { redis.shutdown() }
            let cancellations = JobCancellations(store: ResultStore(redis: redis, resultTTL: 600), endpoint: endpoint, timeoutMs: 1000, logger: logger)
            defer { cancellations.shutdown() }
            let (running, ended) = (TestStack.unique("job_running"), TestStack.unique("job_ended"))
            let runs = NIOLockedValueBox<[String]>([])
            let watch = cancellations.watch(running)
            cancellations.onCancel(watch) { runs.withLockedValue { $0.append("running") } }
            let gone = cancellations.watch(ended)
            cancellations.onCancel(gone) { runs.withLockedValue { $0.append("ended") } }
            cancellations.end(gone)
            #expect(!cancellations.isCancelled(watch))
            // The subscriber hears every message after the first one it got, in order: publish until it hears one.
            try await waitFor("the cancellation of the running job", timeout: .seconds(10)) {
                try await redis.command("PUBLISH", RedisArgument(RedisKeys.jobCancellations), RedisArgument(ended))
                try await redis.command("PUBLISH", RedisArgument(RedisKeys.jobCancellations), RedisArgument(running))
                return !runs.withLockedValue { $0 }.isEmpty
            }
            #expect(runs.withLockedValue { $0 } == ["running"], "the ended watch's action ran, or the action ran twice")
            #expect(cancellations.isCancelled(watch))
            // Registered after the cancellation, an action runs at once.
            cancellations.onCancel(watch) { runs.withLockedValue { $0.append("late") } }
            #expect(runs.withLockedValue { $0 } == ["running", "late"])
            cancellations.end(watch)
            #expect(!cancellations.isCancelled(watch))
        }
    }

    /// A worker's cache of API keys' webhook endpoints, through the test Redis.
    @Suite(.serialized)
    struct WebhookEndpointCaching {
        let logger = Logger(label: "test")

        @Test func aKeysEndpointsAreReadOnceAndDroppedWhenTheyChange() async throws {
            let endpoint = RedisEndpointSettings(host: "127.0.0.1", port: try TestStack.redisPort)
            let redis = RedisClient(endpoint: endpoint, logger: logger)
            defer { redis.shutdown() }
            let keys = WebhookKeyStore(redis: redis)
            let id = TestStack.unique("cached-key")
            let hash = RedisArgument(RedisKeys.apiKey(id))
            _ = try await redis.command("HSET", hash, "record", "{}")
            #expect(try await keys.setEndpoints([WebhookEndpoint(url: "https://a.example/hook")], forKey: id))
            let cache = WebhookEndpointCache(keys: keys, ttl: .seconds(600), endpoint: endpoint, timeoutMs: 1000, logger: logger)
            defer { cache.shutdown() }
            try await waitFor("the cache's change subscription", timeout: .seconds(10)) { cache.subscriptions > 0 }

            #expect(try await cache.endpoints(forKey: id) == ["https://a.example/hook"])
            // A write that announces nothing is not seen: the key's entry is served from memory.
            let silent = try JSONEncoder().encode([WebhookEndpoint(url: "https://b.example/hook")])
            _ = try await redis.command("HSET", hash, "webhook_endpoints", RedisArgument(Array(silent)))
            #expect(try await cache.endpoints(forKey: id) == ["https://a.example/hook"])
            // `setEndpoints` announces its change, which drops the entry; disabled endpoints are left out.
            #expect(try await keys.setEndpoints(
                [WebhookEndpoint(url: "https://c.example/hook"), WebhookEndpoint(url: "https://d.example/hook", disabledAt: 1)], forKey: id))
            try await waitFor("the announced change to reach the cache", timeout: .seconds(10)) {
                try await cache.endpoints(forKey: id) == ["https://c.example/hook"]
            }
            _ = try await redis.command("DEL", hash)
        }
    }

    /// The Kafka module against the test broker.
    @Suite(.serialized)
    struct KafkaModule {
        let logger = Logger(label: "test")

        @Test func offsetsAreCommittedOnlyForFinishedRecords() async throws {
            let brokers = try TestStack.brokers
            let topic = "llm.jobs.mistral"
            let producer = try KafkaProducer(configuration: KafkaConfiguration(brokers: brokers), logger: logger)
            defer { producer.shutdown() }
            let marker = TestStack.unique("offsets")
            let key = Array(marker.utf8)
            for index in 0..<3 {
                try await producer.send(topic: topic, key: key, value: Array("\(marker) \(index)".utf8), headers: [("traceparent", Array("tp-\(index)".utf8))])
            }
            var configuration = KafkaConfiguration(brokers: brokers)
            configuration.sessionTimeoutMs = 6000
            let group = TestStack.unique("group")

            // The first member finishes records 0 and 2 only, then leaves: 1 must come back, and 2 with it.
            let first = MessageCollector(try KafkaConsumer(configuration: configuration, groupID: group, topics: [topic], maxInFlight: 100, logger: logger), marker: marker)
            try await waitFor("three records", timeout: .seconds(60)) { first.matching.count == 3 }
            let seen = first.matching
            #expect(seen.map { String(decoding: $0.value, as: UTF8.self) } == (0..<3).map { "\(marker) \($0)" })
            #expect(seen.map { $0.header("traceparent").map { String(decoding: $0, as: UTF8.self) } } == ["tp-0", "tp-1", "tp-2"])
            first.consumer.finished(seen[0])
            first.consumer.finished(seen[2])
            first.consumer.shutdown()

            let second = MessageCollector(try KafkaConsumer(configuration: configuration, groupID: group, topics: [topic], maxInFlight: 100, logger: logger), marker: marker)
            defer { second.consumer.shutdown() }
            try await waitFor("the unfinished records again", timeout: .seconds(60)) { second.matching.count == 2 }
            #expect(second.matching.map { String(decoding: $0.value, as: UTF8.self) } == ["\(marker) 1", "\(marker) 2"])
        }

        @Test func theConsumerHoldsNoMoreThanItsBound() async throws {
            let brokers = try TestStack.brokers
            let topic = "llm.jobs.cohere"
            let producer = try KafkaProducer(configuration: KafkaConfiguration(brokers: brokers), logger: logger)
            defer { producer.shutdown() }
            let marker = TestStack.unique("bound")
            for index in 0..<10 {
                try await producer.send(topic: topic, key: Array(marker.utf8), value: Array("\(marker) \(index)".utf8))
            }
            var configuration = KafkaConfiguration(brokers: brokers)
            configuration.sessionTimeoutMs = 6000
            let collector = MessageCollector(
                try KafkaConsumer(configuration: configuration, groupID: TestStack.unique("group"), topics: [topic], maxInFlight: 3, logger: logger),
                marker: marker)
            defer { collector.consumer.shutdown() }
            try await waitFor("three records", timeout: .seconds(60)) { collector.all.count == 3 }
            // With three unfinished, nothing more is handed out, however long we wait; each finish lets one more through.
            try await Task.sleep(for: .seconds(2))
            #expect(collector.all.count == 3)
            collector.consumer.finished(collector.all[0])
            try await waitFor("a fourth record", timeout: .seconds(10)) { collector.all.count == 4 }
            try await Task.sleep(for: .seconds(1))
            #expect(collector.all.count == 4)
        }
    }
}

/// Reads a consumer's records in the background.
final class MessageCollector: Sendable {
    let consumer: KafkaConsumer
    let marker: String
    private let received = NIOLockedValueBox<[KafkaMessage]>([])

    init(_ consumer: KafkaConsumer, marker: String) {
        self.consumer = consumer
        self.marker = marker
        Task { [received] in
            for await message in consumer.messages {
                received.withLockedValue { $0.append(message) }
            }
        }
    }

    var all: [KafkaMessage] { received.withLockedValue { $0 } }

    /// The records carrying this test's marker.
    var matching: [KafkaMessage] {
        all.filter { String(decoding: $0.value, as: UTF8.self).hasPrefix(marker) }
    }
}
