/// A Redis reply.
public enum RedisValue: Sendable, Hashable {
    case null
    case bulk([UInt8])
    case status(String)
    case integer(Int64)
    case array([RedisValue])
    case error(String)

    public var string: String? {
        switch self {
        case .bulk(let bytes): return String(decoding: bytes, as: UTF8.self)
        case .status(let text): return text
        case .integer(let value): return String(value)
        default: return nil
        }
    }

    public var bytes: [UInt8]? {
        if case .bulk(let bytes) = self { return bytes }
        return nil
    }

    public var integer: Int64? {
        switch self {
        case .integer(let value): return value
        case .bulk(let bytes): return Int64(String(decoding: bytes, as: UTF8.self))
        default: return nil
        }
    }

    public var array: [RedisValue]? {
        if case .array(let values) = self { return values }
        return nil
    }

    public var isNull: Bool { self == .null }
}

/// One argument of a command: bytes, written from strings and integers for convenience.
public struct RedisArgument: Sendable, Hashable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    public var bytes: [UInt8]

    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public init(_ string: String) { self.bytes = Array(string.utf8) }
    public init(_ value: Int) { self.bytes = Array(String(value).utf8) }
    public init(stringLiteral value: String) { self.init(value) }
    public init(integerLiteral value: Int) { self.init(value) }
}

/// A Redis failure.
public struct RedisError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: RawRepresentable, Sendable, Hashable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// The server could not be reached, or the connection broke.
        public static let connection = Code(rawValue: "connection")
        /// The server did not answer in time.
        public static let timeout = Code(rawValue: "timeout")
        /// The server answered with an error reply.
        public static let server = Code(rawValue: "server")
        /// The reply had an unexpected shape.
        public static let unexpectedReply = Code(rawValue: "unexpected_reply")
        /// The client was shut down.
        public static let shutdown = Code(rawValue: "shutdown")
    }

    public var code: Code
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    /// Connection trouble may pass; a server error reply will not.
    public var isRetryable: Bool { code == .connection || code == .timeout }

    public var description: String { "Redis \(code.rawValue) error: \(message)" }
}
