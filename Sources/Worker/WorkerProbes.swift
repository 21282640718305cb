import Hummingbird
import Kafka
import Redis
import Telemetry

/// The worker's `/healthz`, `/readyz` and `/metrics`.
public struct WorkerProbes: Sendable {
    let redis: RedisClient
    let consumers: [KafkaConsumer]
    let metrics: GatewayMetrics

    public init(redis: RedisClient, consumers: [KafkaConsumer], metrics: GatewayMetrics) {
        self.redis = redis
        self.consumers = consumers
        self.metrics = metrics
    }

    public func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: GatewayMetrics.contentType], body: .init(byteBuffer: ByteBuffer(bytes: metrics.exposition())))
        }
        router.get("/healthz") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"status":"ok"}"#)))
        }
        router.get("/readyz") { _, _ in
            let redisUp = await redis.ping()
            let brokerUp = await consumers.first?.isBrokerReachable() ?? false
            let ready = redisUp && brokerUp
            let partitions = consumers.reduce(0) { $0 + $1.assignedPartitions }
            let body = #"{"status":"\#(ready ? "ready" : "unavailable")","redis":\#(redisUp),"broker":\#(brokerUp),"assigned_partitions":\#(partitions)}"#
            return Response(status: ready ? .ok : .serviceUnavailable, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        return router
    }
}
