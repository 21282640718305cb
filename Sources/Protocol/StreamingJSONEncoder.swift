import Foundation

/// Encodes `Encodable` values straight into compact JSON bytes, for the per-job hot paths.
///
/// Foundation's `JSONEncoder` first builds a tree of the whole value, then writes it; this writes each value as it
/// is encoded. The output means what `JSONEncoder` with `.withoutEscapingSlashes` writes, in the same notation:
/// integral floating-point numbers without a fraction, `URL` as its absolute string, `Data` as Base64 and `Date` as
/// seconds since 2001 (its default strategies). A non-finite number throws, as it does there (without a coding
/// path: none is tracked). Members come in encoding order: a struct's in the order its `encode(to:)` writes them, a
/// `JSONValue` object's by key, a `Dictionary`'s in its own order, which changes from process to process
/// (JSONEncoder on Linux writes every keyed container in its dictionary's order). The cache key's canonical form
/// uses it.
///
/// With `sortedKeys`, every object's members come by key (String's `<`), as with `JSONEncoder`'s `.sortedKeys`: a
/// dictionary's too, so the same value always gives the same bytes. Provider request bodies are written so.
public struct StreamingJSONEncoder: Sendable {
    public var sortedKeys: Bool

    public init(sortedKeys: Bool = false) {
        self.sortedKeys = sortedKeys
    }

    public func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let writer = Writer(sortsKeys: sortedKeys)
        try writer.value(value, depth: 0)
        writer.close(deeperThan: -1)
        return writer.bytes
    }
}

extension StreamingJSONEncoder {
    /// The output and the containers open along the path being encoded, one per depth.
    final class Writer {
        enum Kind {
            /// Nothing encoded yet at this depth.
            case pending
            case object
            case array
            case single
        }

        struct Level {
            var kind: Kind
            var count: Int
            /// When sorting keys: where the object's first member starts, and each member's key and start.
            var start = 0
            var members: [(key: String, start: Int)] = []

            init(kind: Kind, count: Int) {
                self.kind = kind
                self.count = count
            }
        }

        let sortsKeys: Bool
        // Only this encoding touches them, one call at a time: no dynamic exclusivity checks on every write.
        @exclusivity(unchecked) var bytes: [UInt8] = []
        @exclusivity(unchecked) var levels: [Level] = []

        init(sortsKeys: Bool) {
            self.sortsKeys = sortsKeys
            bytes.reserveCapacity(512)
        }

        /// Ends the containers deeper than `depth`, innermost first.
        func close(deeperThan depth: Int) {
            while levels.count > depth + 1 {
                let level = levels.removeLast()
                switch level.kind {
                case .pending: bytes.append(contentsOf: "{}".utf8)
                case .object:
                    if sortsKeys { sortMembers(of: level) }
                    bytes.append(UInt8(ascii: "}"))
                case .array: bytes.append(UInt8(ascii: "]"))
                case .single: break
                }
            }
        }

        /// Opens the container of the value at `depth` (reusing it when that value asks again).
        func open(_ kind: Kind, at depth: Int) {
            close(deeperThan: depth)
            switch levels[depth].kind {
            case .pending:
                levels[depth].kind = kind
                if kind == .object {
                    bytes.append(UInt8(ascii: "{"))
                    levels[depth].start = bytes.count
                }
                if kind == .array { bytes.append(UInt8(ascii: "[")) }
            case let open:
                precondition(open == kind, "a value asked for two kinds of container")
            }
        }

        /// Starts the next member of the object at `depth`.
        func key(_ key: String, at depth: Int) {
            close(deeperThan: depth)
            if levels[depth].count > 0 { bytes.append(UInt8(ascii: ",")) }
            levels[depth].count += 1
            if sortsKeys { levels[depth].members.append((key, bytes.count)) }
            string(key)
            bytes.append(UInt8(ascii: ":"))
        }

        /// Puts the members of a finished object (the bytes from its `start` to the end) in key order. Its nested
        /// objects are sorted already, and sorting keeps every member's length, so outer offsets stay valid.
        private func sortMembers(of level: Level) {
            let members = level.members
            guard members.indices.dropFirst().contains(where: { members[$0].key < members[$0 - 1].key }) else { return }
            let order = members.indices.sorted { members[$0].key < members[$1].key || (members[$0].key == members[$1].key && $0 < $1) }
            var sorted: [UInt8] = []
            sorted.reserveCapacity(bytes.count - level.start)
            for index in order {
                // Each member runs to the comma before the next one, the last to the end.
                let end = index + 1 < members.count ? members[index + 1].start - 1 : bytes.count
                if !sorted.isEmpty { sorted.append(UInt8(ascii: ",")) }
                sorted.append(contentsOf: bytes[members[index].start..<end])
            }
            bytes.replaceSubrange(level.start..., with: sorted)
        }

        /// Starts the next element of the array at `depth`.
        func element(at depth: Int) {
            close(deeperThan: depth)
            if levels[depth].count > 0 { bytes.append(UInt8(ascii: ",")) }
            levels[depth].count += 1
        }

        /// Writes a whole value as the next thing at `depth` (a member, an element or the top level).
        func value<T: Encodable>(_ value: T, depth: Int) throws {
            // JSONEncoder's own representations; compared by type first, which is cheaper than a cast.
            if T.self == String.self { return string(value as! String) }
            if T.self == URL.self { return string((value as! URL).absoluteString) }
            if T.self == Data.self { return string((value as! Data).base64EncodedString()) }
            if T.self == Date.self { return try number((value as! Date).timeIntervalSinceReferenceDate) }
            if T.self == Decimal.self { return bytes.append(contentsOf: (value as! Decimal).description.utf8) }
            levels.append(Level(kind: .pending, count: 0))
            try value.encode(to: LevelEncoder(writer: self, depth: levels.count - 1))
            close(deeperThan: depth - 1)
        }

        /// The encoder of a value that is the next thing at `depth - 1`, as a super encoder hands out.
        func pendingEncoder(depth: Int) -> LevelEncoder {
            levels.append(Level(kind: .pending, count: 0))
            return LevelEncoder(writer: self, depth: depth)
        }

        /// Opens a nested container as the next thing at `depth - 1`.
        func nested(_ kind: Kind, depth: Int) {
            levels.append(Level(kind: .pending, count: 0))
            open(kind, at: depth)
        }

        func string(_ string: String) {
            bytes.append(UInt8(ascii: "\""))
            let written: Void? = string.utf8.withContiguousStorageIfAvailable { escaped($0) }
            if written == nil { Array(string.utf8).withUnsafeBufferPointer { escaped($0) } }
            bytes.append(UInt8(ascii: "\""))
        }

        /// Appends UTF-8 text with JSON's escapes, copying the runs between them whole.
        private func escaped(_ utf8: UnsafeBufferPointer<UInt8>) {
            var run = 0
            for index in utf8.indices {
                let byte = utf8[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[run..<index]))
                run = index + 1
                switch byte {
                case UInt8(ascii: "\""): bytes.append(contentsOf: #"\""#.utf8)
                case UInt8(ascii: "\\"): bytes.append(contentsOf: #"\\"#.utf8)
                case 0x0A: bytes.append(contentsOf: #"\n"#.utf8)
                case 0x0D: bytes.append(contentsOf: #"\r"#.utf8)
                case 0x09: bytes.append(contentsOf: #"\t"#.utf8)
                case 0x08: bytes.append(contentsOf: #"\b"#.utf8)
                case 0x0C: bytes.append(contentsOf: #"\f"#.utf8)
                default:
                    let hex = Array("0123456789abcdef".utf8)
                    bytes.append(contentsOf: #"\u00"#.utf8)
                    bytes.append(hex[Int(byte >> 4)])
                    bytes.append(hex[Int(byte & 0xF)])
                }
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[run...]))
        }

        func number<F: BinaryFloatingPoint & LosslessStringConvertible>(_ value: F) throws {
            guard value.isFinite else {
                throw EncodingError.invalidValue(value, .init(codingPath: [], debugDescription: "\(value) is not valid in JSON"))
            }
            var text = value.description
            if text.hasSuffix(".0") { text.removeLast(2) }
            bytes.append(contentsOf: text.utf8)
        }

        func integer<I: FixedWidthInteger>(_ value: I) {
            bytes.append(contentsOf: String(value).utf8)
        }

        func bool(_ value: Bool) {
            bytes.append(contentsOf: (value ? "true" : "false").utf8)
        }

        func null() {
            bytes.append(contentsOf: "null".utf8)
        }
    }

    /// The `Encoder` a value encodes itself to: the writer at that value's depth.
    struct LevelEncoder: Encoder {
        let writer: Writer
        let depth: Int
        /// Not tracked: building the path costs an array per nested value, and no encoded type reads it.
        var codingPath: [any CodingKey] { [] }
        var userInfo: [CodingUserInfoKey: Any] { [:] }

        func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
            writer.open(.object, at: depth)
            return KeyedEncodingContainer(KeyedContainer<Key>(writer: writer, depth: depth))
        }

        func unkeyedContainer() -> any UnkeyedEncodingContainer {
            writer.open(.array, at: depth)
            return UnkeyedContainer(writer: writer, depth: depth)
        }

        func singleValueContainer() -> any SingleValueEncodingContainer {
            writer.open(.single, at: depth)
            return SingleValueContainer(writer: writer, depth: depth)
        }
    }

    struct KeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
        let writer: Writer
        let depth: Int
        var codingPath: [any CodingKey] { [] }

        func encodeNil(forKey key: Key) throws { writer.key(key.stringValue, at: depth); writer.null() }
        func encode(_ value: Bool, forKey key: Key) throws { writer.key(key.stringValue, at: depth); writer.bool(value) }
        func encode(_ value: String, forKey key: Key) throws { writer.key(key.stringValue, at: depth); writer.string(value) }
        func encode(_ value: Double, forKey key: Key) throws { writer.key(key.stringValue, at: depth); try writer.number(value) }
        func encode(_ value: Float, forKey key: Key) throws { writer.key(key.stringValue, at: depth); try writer.number(value) }
        func encode(_ value: Int, forKey key: Key) throws { writer.key(key.stringValue, at: depth); writer.integer(value) }
        func encode(_ value: Int8, forKey key: Key) throws { writer.key(key.stringValue, at: depth); writer.integer(value) }
        func encode(_ value: Int16, forKey key: Key) throws { writer.key(key.stringValue, at: depth); writer.integer(value) }
        func encode(_ value: Int32, forKey key: Key) throws { writer.key(key.stringValue, at: depth); writer.integer(value) }
        func encode(_ value: Int64, forKey key: Key) throws { writer.key(key.stringValue, at: depth); writer.integer(value) }
        func encode(_ value: UInt, forKey key: Key) throws { writer.key(key.stringValue, at: depth); writer.integer(value) }
        func encode(_ value: UInt8, forKey key: Key) throws { writer.key(key.stringValue, at: depth); writer.integer(value) }
        func encode(_ value: UInt16, forKey key: Key) throws { writer.key(key.stringValue, at: depth); writer.integer(value) }
        func encode(_ value: UInt32, forKey key: Key) throws { writer.key(key.stringValue, at: depth); writer.integer(value) }
        func encode(_ value: UInt64, forKey key: Key) throws { writer.key(key.stringValue, at: depth); writer.integer(value) }

        func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
            writer.key(key.stringValue, at: depth)
            try writer.value(value, depth: depth + 1)
        }

        func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
            writer.key(key.stringValue, at: depth)
            writer.nested(.object, depth: depth + 1)
            return KeyedEncodingContainer(KeyedContainer<NestedKey>(writer: writer, depth: depth + 1))
        }

        func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
            writer.key(key.stringValue, at: depth)
            writer.nested(.array, depth: depth + 1)
            return UnkeyedContainer(writer: writer, depth: depth + 1)
        }

        func superEncoder() -> any Encoder {
            superEncoder(named: "super")
        }

        func superEncoder(forKey key: Key) -> any Encoder {
            superEncoder(named: key.stringValue)
        }

        private func superEncoder(named name: String) -> any Encoder {
            writer.key(name, at: depth)
            return writer.pendingEncoder(depth: depth + 1)
        }
    }

    struct UnkeyedContainer: UnkeyedEncodingContainer {
        let writer: Writer
        let depth: Int
        var codingPath: [any CodingKey] { [] }
        var count: Int { writer.levels.indices.contains(depth) ? writer.levels[depth].count : 0 }

        func encodeNil() throws { writer.element(at: depth); writer.null() }
        func encode(_ value: Bool) throws { writer.element(at: depth); writer.bool(value) }
        func encode(_ value: String) throws { writer.element(at: depth); writer.string(value) }
        func encode(_ value: Double) throws { writer.element(at: depth); try writer.number(value) }
        func encode(_ value: Float) throws { writer.element(at: depth); try writer.number(value) }
        func encode(_ value: Int) throws { writer.element(at: depth); writer.integer(value) }
        func encode(_ value: Int8) throws { writer.element(at: depth); writer.integer(value) }
        func encode(_ value: Int16) throws { writer.element(at: depth); writer.integer(value) }
        func encode(_ value: Int32) throws { writer.element(at: depth); writer.integer(value) }
        func encode(_ value: Int64) throws { writer.element(at: depth); writer.integer(value) }
        func encode(_ value: UInt) throws { writer.element(at: depth); writer.integer(value) }
        func encode(_ value: UInt8) throws { writer.element(at: depth); writer.integer(value) }
        func encode(_ value: UInt16) throws { writer.element(at: depth); writer.integer(value) }
        func encode(_ value: UInt32) throws { writer.element(at: depth); writer.integer(value) }
        func encode(_ value: UInt64) throws { writer.element(at: depth); writer.integer(value) }

        func encode<T: Encodable>(_ value: T) throws {
            writer.element(at: depth)
            try writer.value(value, depth: depth + 1)
        }

        func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
            writer.element(at: depth)
            writer.nested(.object, depth: depth + 1)
            return KeyedEncodingContainer(KeyedContainer<NestedKey>(writer: writer, depth: depth + 1))
        }

        func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
            writer.element(at: depth)
            writer.nested(.array, depth: depth + 1)
            return UnkeyedContainer(writer: writer, depth: depth + 1)
        }

        func superEncoder() -> any Encoder {
            writer.element(at: depth)
            return writer.pendingEncoder(depth: depth + 1)
        }
    }

    struct SingleValueContainer: SingleValueEncodingContainer {
        let writer: Writer
        let depth: Int
        var codingPath: [any CodingKey] { [] }

        func encodeNil() throws { writer.null() }
        func encode(_ value: Bool) throws { writer.bool(value) }
        func encode(_ value: String) throws { writer.string(value) }
        func encode(_ value: Double) throws { try writer.number(value) }
        func encode(_ value: Float) throws { try writer.number(value) }
        func encode(_ value: Int) throws { writer.integer(value) }
        func encode(_ value: Int8) throws { writer.integer(value) }
        func encode(_ value: Int16) throws { writer.integer(value) }
        func encode(_ value: Int32) throws { writer.integer(value) }
        func encode(_ value: Int64) throws { writer.integer(value) }
        func encode(_ value: UInt) throws { writer.integer(value) }
        func encode(_ value: UInt8) throws { writer.integer(value) }
        func encode(_ value: UInt16) throws { writer.integer(value) }
        func encode(_ value: UInt32) throws { writer.integer(value) }
        func encode(_ value: UInt64) throws { writer.integer(value) }

        func encode<T: Encodable>(_ value: T) throws {
            // The value takes this depth's place: its own container opens here.
            writer.levels[depth].kind = .pending
            writer.levels.removeLast(writer.levels.count - depth)
            try writer.value(value, depth: depth)
            writer.levels.append(Writer.Level(kind: .single, count: 1))
        }
    }
}
