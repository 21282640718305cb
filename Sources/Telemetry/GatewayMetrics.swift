import Prometheus
import Synchronization

/// Every Prometheus metric of the gateway, defined once, with the calls that record them.
///
/// The names and labels are a contract with the Grafana dashboard and alert rules in `infra/`; the README's
/// "Metrics" section documents each one. Label values come from bounded sets: route templates, provider ids,
/// configured models, key ids, and the small enums below.
public final class GatewayMetrics: Sendable {
    /// The registry `/metrics` renders.
    public let registry: PrometheusCollectorRegistry

    /// The `Content-Type` of `exposition()`.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// The series made so far, by name and labels. The registry validates the name, the labels and the help
    /// text on every lookup; each job records a dozen series, so the gateway asks the registry once per series.
    private let series = Mutex(Series())

    private struct Series {
        var counters: [SeriesKey: Counter] = [:]
        var gauges: [SeriesKey: Gauge] = [:]
        var histograms: [SeriesKey: ValueHistogram] = [:]
    }

    private struct SeriesKey: Hashable {
        var name: String
        var labels: [String]

        init(_ definition: Definition, _ labels: [(String, String)]) {
            name = definition.name
            self.labels = labels.flatMap { [$0.0, $0.1] }
        }
    }

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
    }

    /// The metrics in Prometheus' text exposition format.
    public func exposition() -> [UInt8] {
        registry.emitToBuffer()
    }

    // MARK: - Names

    /// A metric's name, help text and, for histograms, its buckets (seconds).
    public struct Definition: Sendable {
        public var name: String
        public var help: String
        public var buckets: [Double]

        init(_ name: String, _ help: String, buckets: [Double] = []) {
            self.name = name
            self.help = help
            self.buckets = buckets
        }

        var descriptor: MetricNameDescriptor {
            MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
        }
    }

    static let requestBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]
    static let brokerBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    static let jobBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]

    public enum Names {
        // Ingress
        public static let httpRequests = Definition("llmgw_http_requests_total", "HTTP requests answered, by route template, method and status.")
        public static let httpRequestDuration = Definition(
            "llmgw_http_request_duration_seconds", "Time from request head to response head, by route template and method.", buckets: requestBuckets)
        public static let httpRequestsInFlight = Definition("llmgw_http_requests_in_flight", "HTTP requests being handled now.")
        public static let enqueueDuration = Definition(
            "llmgw_enqueue_duration_seconds", "Time until the broker acknowledged a job record (acks=all).", buckets: brokerBuckets)
        public static let syncWaitDuration = Definition(
            "llmgw_sync_wait_duration_seconds", "Time a synchronous request waited for its job's result after enqueueing.", buckets: jobBuckets)
        public static let cacheRequests = Definition("llmgw_cache_requests_total", "Response cache lookups, by result (hit or miss).")
        public static let rejections = Definition("llmgw_rejections_total", "Requests refused before enqueueing, by reason (rate_limited or over_budget).")
        // Worker
        public static let jobs = Definition("llmgw_jobs_total", "Jobs that ended, by provider, model and outcome (completed or failed).")
        public static let jobQueueWait = Definition(
            "llmgw_job_queue_wait_seconds", "Time from enqueue at the ingress to the start of the job on a worker.", buckets: jobBuckets)
        public static let jobRun = Definition(
            "llmgw_job_run_seconds", "Time a worker spent running a job: every attempt, backoff and fallback.", buckets: jobBuckets)
        public static let jobEndToEnd = Definition(
            "llmgw_job_end_to_end_seconds", "Time from enqueue at the ingress to the job's stored outcome.", buckets: jobBuckets)
        public static let upstreamRequestDuration = Definition(
            "llmgw_upstream_request_duration_seconds", "Duration of one provider call, whatever its result.", buckets: requestBuckets)
        public static let upstreamTimeToFirstToken = Definition(
            "llmgw_upstream_time_to_first_token_seconds", "Time from sending a provider call to the provider's first response byte.",
            buckets: requestBuckets)
        public static let upstreamErrors = Definition(
            "llmgw_upstream_errors_total", "Failed provider calls, by error class (rate_limited, server, timeout, client, connect, auth, protocol).")
        public static let retries = Definition("llmgw_retries_total", "Provider calls repeated after a retryable error.")
        public static let fallbacks = Definition("llmgw_fallbacks_total", "Jobs moved on to a fallback model; provider is the job's primary provider.")
        public static let tokens = Definition("llmgw_tokens_total", "Tokens of completed jobs, by provider, model, key id and kind (prompt or completion).")
        public static let cost = Definition("llmgw_cost_usd_total", "Estimated cost of completed jobs in US dollars, by provider, model and key id.")
        public static let jobsInFlight = Definition("llmgw_jobs_in_flight", "Jobs a worker is running now, by provider.")
        public static let consumerLag = Definition(
            "llmgw_consumer_lag", "Records of a partition not yet committed by the consumer group: high watermark minus committed offset.")
        public static let webhookDeliveries = Definition("llmgw_webhook_deliveries_total", "Webhook delivery attempts, by outcome.")
        public static let dispatchHints = Definition(
            "llmgw_dispatch_hints_total",
            "Dispatch hints a worker received, by outcome: started (the job ran before its record arrived) or ignored (busy, not its partition, record already here).")

        /// Every metric, in the order of the README.
        public static let all: [Definition] = [
            httpRequests, httpRequestDuration, httpRequestsInFlight, enqueueDuration, syncWaitDuration, cacheRequests, rejections,
            jobs, jobQueueWait, jobRun, jobEndToEnd, upstreamRequestDuration, upstreamTimeToFirstToken, upstreamErrors, retries,
            fallbacks, tokens, cost, jobsInFlight, consumerLag, webhookDeliveries, dispatchHints,
        ]
    }

    // MARK: - Label values

    /// Why the ingress refused a request before enqueueing it.
    public enum Rejection: String, Sendable, CaseIterable {
        case rateLimited = "rate_limited"
        case overBudget = "over_budget"
    }

    /// How a job ended.
    public enum JobOutcome: String, Sendable, CaseIterable {
        case completed
        case failed
    }

    /// How one webhook delivery attempt ended.
    public enum WebhookOutcome: String, Sendable, CaseIterable {
        /// The receiver answered 2xx.
        case delivered
        /// The attempt failed and will be retried.
        case retried
        /// The attempt failed and no retry is left.
        case failed
    }

    /// The kinds of tokens counted in `llmgw_tokens_total`.
    public enum TokenKind: String, Sendable, CaseIterable {
        case prompt
        case completion
    }

    /// The `route` label of requests that matched no route.
    public static let unmatchedRoute = "unmatched"

    /// The `key_id` label of jobs submitted without an API key.
    public static let anonymousKey = "anonymous"

    // MARK: - Registration

    /// Creates the ingress' series that have a fixed label set, so that they show (at zero) before any traffic.
    public func registerIngress() {
        _ = gauge(Names.httpRequestsInFlight)
        for hit in [true, false] { _ = counter(Names.cacheRequests, [("result", hit ? "hit" : "miss")]) }
        for reason in Rejection.allCases { _ = counter(Names.rejections, [("reason", reason.rawValue)]) }
        _ = histogram(Names.enqueueDuration)
        _ = histogram(Names.syncWaitDuration)
    }

    /// Creates a worker's per-provider series and the webhook counters, so that they show before any job.
    public func registerWorker(providers: [String]) {
        for provider in providers {
            _ = gauge(Names.jobsInFlight, [("provider", provider)])
            _ = counter(Names.retries, [("provider", provider)])
            _ = counter(Names.fallbacks, [("provider", provider)])
        }
        for outcome in WebhookOutcome.allCases { _ = counter(Names.webhookDeliveries, [("outcome", outcome.rawValue)]) }
        for started in [true, false] { _ = dispatchHintCounter(started: started) }
    }

    // MARK: - Ingress

    /// One answered HTTP request. `route` must be a template (`/gateway/jobs/{id}`) or `unmatchedRoute`.
    public func httpRequest(route: String, method: String, status: Int, duration: Duration) {
        counter(Names.httpRequests, [("route", route), ("method", method), ("status", String(status))]).increment()
        histogram(Names.httpRequestDuration, [("route", route), ("method", method)]).record(duration.seconds)
    }

    /// Adds `delta` (+1 at the request head, -1 when the response is written) to the in-flight requests.
    public func httpRequestsInFlight(_ delta: Int) {
        gauge(Names.httpRequestsInFlight).increment(by: Double(delta))
    }

    /// The broker's acknowledgement latency of one produced job.
    public func enqueue(duration: Duration) {
        histogram(Names.enqueueDuration).record(duration.seconds)
    }

    /// How long a synchronous request waited for its result after enqueueing (also when it timed out).
    public func syncWait(duration: Duration) {
        histogram(Names.syncWaitDuration).record(duration.seconds)
    }

    /// One response-cache lookup.
    public func cacheRequest(hit: Bool) {
        counter(Names.cacheRequests, [("result", hit ? "hit" : "miss")]).increment()
    }

    /// One request refused before enqueueing.
    public func rejection(reason: Rejection) {
        counter(Names.rejections, [("reason", reason.rawValue)]).increment()
    }

    // MARK: - Worker

    /// A dispatch hint that started its job early, or that was ignored.
    public func dispatchHint(started: Bool) {
        dispatchHintCounter(started: started).increment()
    }

    private func dispatchHintCounter(started: Bool) -> Counter {
        counter(Names.dispatchHints, [("outcome", started ? "started" : "ignored")])
    }

    /// Adds `delta` (+1 when a job starts running, -1 when it ends) to a provider's in-flight jobs.
    public func jobsInFlight(provider: String, _ delta: Int) {
        gauge(Names.jobsInFlight, [("provider", provider)]).increment(by: Double(delta))
    }

    /// A job that started running `queueWait` after it was enqueued.
    public func jobStarted(provider: String, queueWait: Duration) {
        histogram(Names.jobQueueWait, [("provider", provider)]).record(queueWait.seconds)
    }

    /// A job whose outcome was stored.
    /// - Parameters:
    ///   - provider: the job's primary provider (its topic).
    ///   - model: the model that produced the outcome.
    ///   - run: the time the worker spent running it.
    ///   - endToEnd: enqueue to stored outcome.
    public func jobEnded(provider: String, model: String, outcome: JobOutcome, run: Duration, endToEnd: Duration) {
        counter(Names.jobs, [("provider", provider), ("model", model), ("outcome", outcome.rawValue)]).increment()
        histogram(Names.jobRun, [("provider", provider)]).record(run.seconds)
        histogram(Names.jobEndToEnd, [("provider", provider)]).record(endToEnd.seconds)
    }

    /// One provider call, successful or not. `firstByte` is the time to the response head, when one came.
    public func upstreamRequest(provider: String, duration: Duration, firstByte: Duration?) {
        histogram(Names.upstreamRequestDuration, [("provider", provider)]).record(duration.seconds)
        if let firstByte {
            histogram(Names.upstreamTimeToFirstToken, [("provider", provider)]).record(firstByte.seconds)
        }
    }

    /// A failed provider call, by its error class (`UpstreamError.Class.rawValue`).
    public func upstreamError(provider: String, errorClass: String) {
        counter(Names.upstreamErrors, [("provider", provider), ("class", errorClass)]).increment()
    }

    /// A provider call repeated after a retryable error.
    public func retry(provider: String) {
        counter(Names.retries, [("provider", provider)]).increment()
    }

    /// A job moving on to a fallback model; `provider` is the job's primary provider.
    public func fallback(provider: String) {
        counter(Names.fallbacks, [("provider", provider)]).increment()
    }

    /// The tokens and estimated cost of a completed job.
    public func usage(provider: String, model: String, keyID: String, promptTokens: Int, completionTokens: Int, costUSD: Double) {
        let labels = [("provider", provider), ("model", model), ("key_id", keyID)]
        counter(Names.tokens, labels + [("kind", TokenKind.prompt.rawValue)]).increment(by: Int64(max(0, promptTokens)))
        counter(Names.tokens, labels + [("kind", TokenKind.completion.rawValue)]).increment(by: Int64(max(0, completionTokens)))
        counter(Names.cost, labels).increment(by: max(0, costUSD))
    }

    /// The latest lag sample of one partition.
    public func consumerLag(topic: String, partition: Int32, lag: Int64) {
        gauge(Names.consumerLag, [("topic", topic), ("partition", String(partition))]).set(Double(lag))
    }

    /// Drops a partition's lag series once this process no longer consumes it.
    public func removeConsumerLag(topic: String, partition: Int32) {
        let labels = [("topic", topic), ("partition", String(partition))]
        registry.unregisterGauge(gauge(Names.consumerLag, labels))
        _ = series.withLock { $0.gauges.removeValue(forKey: SeriesKey(Names.consumerLag, labels)) }
    }

    /// One webhook delivery attempt.
    public func webhookDelivery(outcome: WebhookOutcome) {
        counter(Names.webhookDeliveries, [("outcome", outcome.rawValue)]).increment()
    }

    // MARK: - Registry access

    private func counter(_ definition: Definition, _ labels: [(String, String)] = []) -> Counter {
        let key = SeriesKey(definition, labels)
        if let known = series.withLock({ $0.counters[key] }) { return known }
        let made = registry.makeCounter(descriptor: definition.descriptor, labels: labels)
        series.withLock { $0.counters[key] = made }
        return made
    }

    private func gauge(_ definition: Definition, _ labels: [(String, String)] = []) -> Gauge {
        let key = SeriesKey(definition, labels)
        if let known = series.withLock({ $0.gauges[key] }) { return known }
        let made = registry.makeGauge(descriptor: definition.descriptor, labels: labels)
        series.withLock { $0.gauges[key] = made }
        return made
    }

    private func histogram(_ definition: Definition, _ labels: [(String, String)] = []) -> ValueHistogram {
        let key = SeriesKey(definition, labels)
        if let known = series.withLock({ $0.histograms[key] }) { return known }
        let made = registry.makeValueHistogram(descriptor: definition.descriptor, labels: labels, buckets: definition.buckets)
        series.withLock { $0.histograms[key] = made }
        return made
    }
}

extension Duration {
    /// The duration in seconds, as a `Double`.
    public var seconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
