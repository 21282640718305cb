import CHiredis
import Foundation

/// Owns one hiredis `redisContext`: a blocking connection, used from one thread at a time.
final class RedisContext {
    private let context: UnsafeMutablePointer<redisContext>

    /// Connects, authenticates and selects the database.
    init(endpoint: RedisEndpointSettings, timeoutMs: Int) throws(RedisError) {
        let timeout = timeval(tv_sec: timeoutMs / 1000, tv_usec: Int((timeoutMs % 1000) * 1000))
        guard let context = redisConnectWithTimeout(endpoint.host, Int32(endpoint.port), timeout) else {
            throw RedisError(code: .connection, message: "cannot allocate a Redis context")
        }
        if context.pointee.err != 0 {
            let message = Self.errorText(context)
            redisFree(context)
            throw RedisError(code: .connection, message: "\(endpoint.host):\(endpoint.port): \(message)")
        }
        redisSetTimeout(context, timeout)
        self.context = context
        if let password = endpoint.password {
            var arguments: [RedisArgument] = ["AUTH"]
            if let username = endpoint.username { arguments.append(RedisArgument(username)) }
            arguments.append(RedisArgument(password))
            if case .error = try roundTrip(arguments) {
                throw RedisError(code: .connection, message: "authentication failed")
            }
        }
        if endpoint.database != 0 {
            if case .error(let message) = try roundTrip(["SELECT", RedisArgument(endpoint.database)]) {
                throw RedisError(code: .connection, message: "SELECT \(endpoint.database): \(message)")
            }
        }
    }

    deinit {
        redisFree(context)
    }

    var fileDescriptor: Int32 { context.pointee.fd }

    /// Buffers a command for the next flush.
    func append(_ arguments: [RedisArgument]) {
        let copies: [UnsafeMutableBufferPointer<CChar>] = arguments.map { argument in
            let buffer = UnsafeMutableBufferPointer<CChar>.allocate(capacity: max(1, argument.bytes.count))
            argument.bytes.withUnsafeBytes { source in
                UnsafeMutableRawBufferPointer(buffer).copyMemory(from: source)
            }
            return buffer
        }
        defer { copies.forEach { $0.deallocate() } }
        var pointers: [UnsafePointer<CChar>?] = copies.map { UnsafePointer($0.baseAddress) }
        let lengths: [Int] = arguments.map { $0.bytes.count }
        _ = redisAppendCommandArgv(context, Int32(arguments.count), &pointers, lengths)
    }

    /// Flushes buffered commands if needed and reads one reply, blocking up to the timeout.
    func readReply() throws(RedisError) -> RedisValue {
        var raw: UnsafeMutableRawPointer?
        guard redisGetReply(context, &raw) == REDIS_OK, let raw else {
            throw ioError()
        }
        defer { freeReplyObject(raw) }
        return Self.value(raw.assumingMemoryBound(to: redisReply.self))
    }

    /// Writes the buffered commands, blocking up to the timeout.
    func flush() throws(RedisError) {
        var done: Int32 = 0
        while done == 0 {
            guard redisBufferWrite(context, &done) == REDIS_OK else { throw ioError() }
        }
    }

    func roundTrip(_ arguments: [RedisArgument]) throws(RedisError) -> RedisValue {
        append(arguments)
        return try readReply()
    }

    /// Reads what the socket has without blocking and returns every complete reply in the buffer.
    /// - Throws: when the connection closed or broke.
    func drainAvailable() throws(RedisError) -> [RedisValue] {
        guard redisBufferRead(context) == REDIS_OK else { throw ioError() }
        var replies: [RedisValue] = []
        while true {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReplyFromReader(context, &raw) == REDIS_OK else { throw ioError() }
            guard let raw else { break }
            replies.append(Self.value(raw.assumingMemoryBound(to: redisReply.self)))
            freeReplyObject(raw)
        }
        return replies
    }

    private func ioError() -> RedisError {
        let message = Self.errorText(context)
        let isTimeout = context.pointee.err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK || message.contains("temporarily unavailable"))
        return RedisError(code: isTimeout ? .timeout : .connection, message: message.isEmpty ? "connection lost" : message)
    }

    private static func errorText(_ context: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: context.pointee.errstr) { bytes in
            String(decoding: bytes.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }

    static func value(_ reply: UnsafeMutablePointer<redisReply>) -> RedisValue {
        let node = reply.pointee
        switch Int32(node.type) {
        case REDIS_REPLY_STRING:
            return .bulk(Array(UnsafeRawBufferPointer(start: node.str, count: Int(node.len))))
        case REDIS_REPLY_STATUS:
            return .status(String(decoding: UnsafeRawBufferPointer(start: node.str, count: Int(node.len)), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            return .error(String(decoding: UnsafeRawBufferPointer(start: node.str, count: Int(node.len)), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            return .integer(node.integer)
        case REDIS_REPLY_ARRAY:
            return .array((0..<Int(node.elements)).map { value(node.element[$0]!) })
        default:
            return .null
        }
    }
}

/// The connection settings the Redis module needs (the gateway's `RedisEndpoint`, without the dependency).
public struct RedisEndpointSettings: Sendable, Hashable {
    public var host: String
    public var port: Int
    public var database: Int
    public var username: String?
    public var password: String?

    public init(host: String, port: Int, database: Int = 0, username: String? = nil, password: String? = nil) {
        self.host = host
        self.port = port
        self.database = database
        self.username = username
        self.password = password
    }
}
