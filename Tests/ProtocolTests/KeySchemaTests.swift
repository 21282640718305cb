import Protocol
import Testing

@Suite("Redis keys and Kafka topics", .serialized, .timeLimit(.minutes(2)))
struct KeySchemaTests {
    static let ids = ["job_01HZX3K5M8Q2R4T6V8W0Y2A4C6", "job_01HZX3K5M8Q2R4T6V8W0Y2A4C7", JobID.make(milliseconds: 1)]

    @Test("every key and channel starts with llmgw:")
    func prefix() {
        for id in Self.ids {
            for key in [RedisKeys.job(id), RedisKeys.jobLease(id), RedisKeys.notifyChannel(instance: id)] {
                #expect(key.hasPrefix("llmgw:"), "\(key)")
                #expect(key.hasPrefix(RedisKeys.prefix), "\(key)")
                #expect(key.contains(id), "\(key)")
            }
        }
    }

    @Test("job, lease and notify keys of the same id are distinct; different ids never share a key")
    func distinct() {
        var all: [String] = []
        for id in Self.ids {
            let keys = [RedisKeys.job(id), RedisKeys.jobLease(id), RedisKeys.notifyChannel(instance: id)]
            #expect(Set(keys).count == 3, "\(keys)")
            all += keys
        }
        #expect(Set(all).count == all.count)
    }

    @Test("each provider has its own topic and consumer group, and topic names are legal for Kafka")
    func topics() {
        let providers = ProviderDescriptor.builtIn.map(\.id) + ["vllm", "my-vllm"]
        let topics = providers.map { Topics.jobs(provider: $0) }
        let groups = providers.map { Topics.consumerGroup(provider: $0) }
        #expect(Set(topics).count == providers.count)
        #expect(Set(groups).count == providers.count)
        #expect(!topics.contains(Topics.deadLetters))
        // Each partition of each topic has its own dispatch channel, distinct from every notify channel, and the
        // name gives back its topic and partition.
        let partitions: [Int32] = [0, 1, 5, 11, 1023]
        let channels = topics.flatMap { topic in partitions.map { RedisKeys.dispatchChannel(topic: topic, partition: $0) } }
        #expect(Set(channels).count == topics.count * partitions.count)
        for channel in channels {
            #expect(channel.hasPrefix(RedisKeys.prefix), "\(channel)")
            #expect(!Self.ids.map { RedisKeys.notifyChannel(instance: $0) }.contains(channel))
        }
        for topic in topics {
            for partition in partitions {
                let parsed = RedisKeys.dispatchPartition(ofChannel: RedisKeys.dispatchChannel(topic: topic, partition: partition))
                #expect(parsed?.topic == topic && parsed?.partition == partition, "\(topic) \(partition)")
            }
        }
        let foreign = [
            RedisKeys.notifyChannel(instance: "ingress-1"), "\(RedisKeys.prefix)dispatch:llm.jobs.openai",
            "\(RedisKeys.prefix)dispatch:llm.jobs.openai:", "\(RedisKeys.prefix)dispatch:llm.jobs.openai:-1",
            "\(RedisKeys.prefix)dispatch:llm.jobs.openai:x1", "\(RedisKeys.prefix)dispatch::3", "dispatch:llm.jobs.openai:3",
        ]
        for channel in foreign {
            #expect(RedisKeys.dispatchPartition(ofChannel: channel) == nil, "\(channel)")
        }
        let legal = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        for (provider, topic) in zip(providers, topics) {
            #expect(topic.contains(provider), "\(topic)")
            #expect(topic.allSatisfy { legal.contains($0) } && topic.count <= 249, "\(topic)")
        }
        #expect(Topics.deadLetters.allSatisfy { legal.contains($0) })
        for (provider, group) in zip(providers, groups) {
            #expect(group.contains(provider), "\(group)")
        }
    }
}
