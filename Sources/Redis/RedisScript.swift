import Crypto

/// A Lua script. Connections run it by `EVALSHA` once the server has it, and by `EVAL` the first time on each
/// connection (which loads it), so the script's text crosses the network and is hashed by Redis once, not per call.
public struct RedisScript: Sendable, Hashable, ExpressibleByStringLiteral {
    /// The script's text, as sent with `EVAL`.
    public let source: RedisArgument
    /// Its SHA-1 in hex, the name `EVALSHA` uses.
    public let digest: String

    public init(_ source: String) {
        self.source = RedisArgument(source)
        self.digest = Insecure.SHA1.hash(data: Array(source.utf8)).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }

    public init(stringLiteral value: String) { self.init(value) }
}

/// One command of a pipeline: plain arguments, or a script with its key count, keys and arguments.
public struct RedisCommand: Sendable {
    /// The arguments after the command name for a script (`numkeys key… arg…`), the whole command otherwise.
    public var arguments: [RedisArgument]
    public var script: RedisScript?

    public init(_ arguments: [RedisArgument]) {
        self.arguments = arguments
        self.script = nil
    }

    /// Runs `script` with `keys` and `arguments`.
    public static func eval(_ script: RedisScript, keys: [String], arguments: [RedisArgument]) -> RedisCommand {
        var command = RedisCommand([RedisArgument(keys.count)] + keys.map { RedisArgument($0) } + arguments)
        command.script = script
        return command
    }
}
