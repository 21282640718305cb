@testable import Kafka
import Testing

@Suite("KafkaConfiguration", .serialized, .timeLimit(.minutes(2)))
struct KafkaConfigurationTests {
    @Test("brokers, group and timeouts map to librdkafka keys")
    func mapping() {
        var configuration = KafkaConfiguration(brokers: "kafka-0:9092,kafka-1:9092")
        configuration.sessionTimeoutMs = 30_000
        configuration.messageTimeoutMs = 7_000
        configuration.fetchWaitMaxMs = 12
        let consumer = configuration.consumerProperties(groupID: "llm-gateway.worker.openai")
        let producer = configuration.producerProperties()
        #expect(consumer["bootstrap.servers"] == "kafka-0:9092,kafka-1:9092")
        #expect(producer["bootstrap.servers"] == "kafka-0:9092,kafka-1:9092")
        #expect(consumer["group.id"] == "llm-gateway.worker.openai")
        #expect(producer["group.id"] == nil)
        #expect(consumer["session.timeout.ms"] == "30000")
        #expect(consumer["heartbeat.interval.ms"] == "6000")
        #expect(consumer["fetch.wait.max.ms"] == "12")
        #expect(producer["message.timeout.ms"] == "7000")
    }

    @Test("the producer linger goes to librdkafka in milliseconds, fractions kept")
    func linger() {
        var configuration = KafkaConfiguration(brokers: "k:9092")
        #expect(configuration.producerProperties()["linger.ms"] == "0")
        configuration.lingerMs = 0.25
        #expect(configuration.producerProperties()["linger.ms"] == "0.25")
        configuration.lingerMs = 5
        #expect(configuration.producerProperties()["linger.ms"] == "5")
    }

    @Test("the heartbeat interval is a fifth of the session timeout, at least 100 ms")
    func heartbeat() {
        var configuration = KafkaConfiguration(brokers: "k:9092")
        configuration.sessionTimeoutMs = 300
        #expect(configuration.consumerProperties(groupID: "g")["heartbeat.interval.ms"] == "100")
        configuration.sessionTimeoutMs = 1_000
        #expect(configuration.consumerProperties(groupID: "g")["heartbeat.interval.ms"] == "200")
    }

    @Test("offsets are stored explicitly, so only what the OffsetTracker allows is committed")
    func explicitOffsetStore() {
        let consumer = KafkaConfiguration(brokers: "k:9092").consumerProperties(groupID: "g")
        #expect(consumer["enable.auto.offset.store"] == "false")
    }

    @Test("overrides are applied last, in both producer and consumer")
    func overrides() {
        var configuration = KafkaConfiguration(brokers: "k:9092")
        configuration.overrides = ["linger.ms": "50", "auto.offset.reset": "latest", "security.protocol": "ssl"]
        let producer = configuration.producerProperties()
        let consumer = configuration.consumerProperties(groupID: "g")
        #expect(producer["linger.ms"] == "50")
        #expect(consumer["auto.offset.reset"] == "latest")
        #expect(producer["security.protocol"] == "ssl")
        #expect(consumer["security.protocol"] == "ssl")
    }
}
