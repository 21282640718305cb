import Foundation
import HTTPTypes
import Hummingbird
import Protocol
import ResultStore

/// `/admin/keys` and `/admin/usage`, guarded by `LLMGW_ADMIN_TOKEN` as a bearer token.
struct AdminRoutes: Sendable {
    let keys: KeyStore
    let usage: UsageStore
    let adminToken: String?
    let maxBodyBytes: Int

    func register(on router: Router<BasicRequestContext>) {
        router.post("/admin/keys") { request, _ in
            try authorize(request)
            let body = try await HTTPSupport.decode(KeyCreation.self, from: request, limit: maxBodyBytes)
            let created = try await KeyIssuer(keys: keys).create(body)
            return HTTPSupport.json(created, status: .created)
        }
        router.get("/admin/keys") { request, _ in
            try authorize(request)
            let list = try await call { try await keys.list() }
            return HTTPSupport.json(KeyList(data: list))
        }
        router.delete("/admin/keys/{id}") { request, context in
            try authorize(request)
            return try await revoke(context.parameters.get("id") ?? "")
        }
        router.post("/admin/keys/{id}/revoke") { request, context in
            try authorize(request)
            return try await revoke(context.parameters.get("id") ?? "")
        }
        router.get("/admin/usage") { request, _ in
            try authorize(request)
            let now = Date().timeIntervalSince1970
            var period = UsagePeriod.dayAndMonth(now)
            if let day = request.uri.queryParameters["day"].map(String.init) {
                guard day.count == 10, day.split(separator: "-").count == 3 else {
                    throw GatewayError.invalidRequest("'day' must be YYYY-MM-DD.", param: "day")
                }
                period = (day, String(day.prefix(7)))
            }
            var tenants: [String]?
            if let key = request.uri.queryParameters["key"].map(String.init) { tenants = ["key:\(key)"] }
            if let tenant = request.uri.queryParameters["tenant"].map(String.init) { tenants = [tenant] }
            let rows = try await call { try await usage.usage(day: period.day, month: period.month, tenants: tenants) }
            return HTTPSupport.json(UsageList(data: rows))
        }
    }

    private func revoke(_ id: String) async throws -> Response {
        guard APIKey.isValidID(id), let record = try await call({ try await keys.revoke(id: id, now: Date().timeIntervalSince1970) }) else {
            throw GatewayError.notFound("No API key with id '\(id)'.", code: "key_not_found")
        }
        return HTTPSupport.json(record)
    }

    private func authorize(_ request: Request) throws {
        try AdminAuthorization.check(request, token: adminToken)
    }

    private func call<T>(_ body: () async throws -> T) async throws(GatewayError) -> T {
        do {
            return try await body()
        } catch {
            throw .unavailable("The key store is unavailable; retry shortly.", code: "store_unavailable")
        }
    }
}

/// The body of `POST /admin/keys` (and the options of `llm-gateway keys create`).
public struct KeyCreation: Sendable, Codable {
    public var name: String
    public var rpm: Int?
    public var tpm: Int?
    public var dailyTokens: Int?
    public var monthlyTokens: Int?
    public var monthlyCostUSD: Double?
    /// `true` puts the key in the shared cache namespace.
    public var sharedCache: Bool?

    public init(name: String, rpm: Int? = nil, tpm: Int? = nil, dailyTokens: Int? = nil, monthlyTokens: Int? = nil, monthlyCostUSD: Double? = nil, sharedCache: Bool? = nil) {
        self.name = name
        self.rpm = rpm
        self.tpm = tpm
        self.dailyTokens = dailyTokens
        self.monthlyTokens = monthlyTokens
        self.monthlyCostUSD = monthlyCostUSD
        self.sharedCache = sharedCache
    }

    enum CodingKeys: String, CodingKey {
        case name, rpm, tpm
        case dailyTokens = "daily_tokens"
        case monthlyTokens = "monthly_tokens"
        case monthlyCostUSD = "monthly_cost_usd"
        case sharedCache = "shared_cache"
    }
}

/// A new key with its secret: the only time the secret is shown.
public struct CreatedKey: Sendable, Encodable {
    public var key: String
    public var record: APIKeyRecord
    /// The key's webhook signing secret (`whsec_…`), shown with the key; rotatable through the admin API.
    public var webhookSecret: String?

    public func encode(to encoder: any Encoder) throws {
        try record.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(key, forKey: .key)
        try container.encodeIfPresent(webhookSecret, forKey: .webhookSecret)
    }

    enum CodingKeys: String, CodingKey {
        case key
        case webhookSecret = "webhook_secret"
    }
}

/// Creates keys, for the admin API and the `keys` command alike.
public struct KeyIssuer: Sendable {
    let keys: KeyStore

    public init(keys: KeyStore) {
        self.keys = keys
    }

    /// - Throws: `GatewayError` 400 for a bad option, 503 when Redis is unavailable.
    public func create(_ options: KeyCreation) async throws(GatewayError) -> CreatedKey {
        let name = options.name.trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty, name.count <= 200 else { throw .invalidRequest("'name' must be 1 to 200 characters.", param: "name") }
        for (field, value) in [("rpm", options.rpm), ("tpm", options.tpm), ("daily_tokens", options.dailyTokens), ("monthly_tokens", options.monthlyTokens)] {
            if let value, value < 1 { throw .invalidRequest("'\(field)' must be at least 1.", param: field) }
        }
        if let cost = options.monthlyCostUSD, !(cost > 0 && cost.isFinite) {
            throw .invalidRequest("'monthly_cost_usd' must be a positive number.", param: "monthly_cost_usd")
        }
        let key = APIKey.generate()
        let record = APIKeyRecord(
            id: key.id, name: name,
            limits: TenantLimits(rpm: options.rpm, tpm: options.tpm, dailyTokens: options.dailyTokens, monthlyTokens: options.monthlyTokens, monthlyCostUSD: options.monthlyCostUSD),
            cacheNamespace: options.sharedCache == true ? "shared" : "key",
            createdAt: Date().timeIntervalSince1970)
        do {
            try await keys.create(record, secretHash: key.secretHash)
        } catch {
            throw .unavailable("The key store is unavailable; retry shortly.", code: "store_unavailable")
        }
        let webhookSecret: WebhookSecret?
        do {
            webhookSecret = try await WebhookKeyStore(redis: keys.redis).rotateSecret(forKey: record.id)
        } catch {
            throw .unavailable("The key store is unavailable; retry shortly.", code: "store_unavailable")
        }
        return CreatedKey(key: key.token, record: record, webhookSecret: webhookSecret?.text)
    }
}

struct KeyList: Encodable {
    var object = "list"
    var data: [APIKeyRecord]
}

struct UsageList: Encodable {
    var object = "list"
    var data: [UsageStore.TenantUsage]
}

/// The bearer check of `/admin/*`: `Authorization: Bearer <LLMGW_ADMIN_TOKEN>`, compared in constant time.
enum AdminAuthorization {
    static func check(_ request: Request, token: String?) throws(GatewayError) {
        guard let token else {
            throw GatewayError(status: 403, message: "The admin API is disabled; set LLMGW_ADMIN_TOKEN to enable it.", type: "invalid_request_error", code: "admin_disabled")
        }
        let raw = request.headers[.authorization] ?? ""
        let presented = raw.lowercased().hasPrefix("bearer ") ? String(raw.dropFirst(7)) : ""
        guard APIKey.constantTimeEquals(presented, token) else {
            throw GatewayError(status: 401, message: "Send 'Authorization: Bearer <LLMGW_ADMIN_TOKEN>'.", type: "invalid_request_error", code: "invalid_admin_token")
        }
    }
}
