import Foundation

/// Decodes `Decodable` values from JSON bytes, for the per-job hot paths: request bodies, job envelopes, provider
/// responses, job records and cached responses.
///
/// Foundation's `JSONDecoder` builds a dictionary of every object it decodes (hashing each key) and tracks a coding
/// path as it descends; this one indexes the document once into a flat array of nodes, finds a member by comparing
/// its key's bytes, and works out a coding path only for an error. It accepts what `JSONDecoder` accepts (including
/// its trailing commas and a leading byte order mark) and decodes values as it does with its default strategies:
/// numbers into any numeric type that holds them exactly, `URL` from its string, `Data` from Base64, `Date` from
/// seconds since 2001, and a duplicated key's first value. Errors are the same `DecodingError` cases, with the same
/// coding paths (an array element's key is `Index N` with its integer value).
public struct IndexedJSONDecoder: Sendable {
    /// Containers nested deeper than this make the document invalid.
    public static let maximumDepth = 512

    public init() {}

    /// - Throws: `DecodingError`, as `JSONDecoder` does.
    public func decode<T: Decodable>(_ type: T.Type, from bytes: some ContiguousBytes) throws -> T {
        let document = try bytes.withUnsafeBytes { try Document(copying: $0.assumingMemoryBound(to: UInt8.self)) }
        return try document.decode(T.self, at: 0)
    }
}

extension IndexedJSONDecoder {
    /// One value of the document. A container's members follow it, each object member as its key (a string node)
    /// then its value; `end` skips past the value and everything in it.
    struct Node {
        enum Kind: UInt8 {
            case null
            case `true`
            case `false`
            case number
            case string
            case object
            case array
        }

        var kind: Kind
        /// Strings: `escaped`, `nonASCII`; numbers: `fractional`.
        var flags: UInt8
        /// The first byte: of a string, the one after its opening quote.
        var start: UInt32
        /// Strings and numbers: their bytes; objects and arrays: their members.
        var length: UInt32
        /// The index of the node after this value.
        var end: UInt32

        static let escaped: UInt8 = 1
        static let nonASCII: UInt8 = 2
        /// A number with a fraction or an exponent.
        static let fractional: UInt8 = 4
    }

    /// A coding path component that the decoder makes up: an object member's key, or `Index N`.
    struct PathKey: CodingKey {
        var stringValue: String
        var intValue: Int?

        init(stringValue: String) {
            self.stringValue = stringValue
        }

        init(intValue: Int) {
            self.stringValue = "Index \(intValue)"
            self.intValue = intValue
        }
    }

    static func invalid(_ description: String = "The given data was not valid JSON.") -> DecodingError {
        .dataCorrupted(.init(codingPath: [], debugDescription: description))
    }
}

// MARK: - Indexing

extension IndexedJSONDecoder {
    /// Builds the nodes of a document in one pass, checking its syntax.
    struct Indexer {
        let bytes: UnsafePointer<UInt8>
        let count: Int
        var position = 0
        var nodes: [Node] = []

        init(_ bytes: UnsafePointer<UInt8>, count: Int) {
            self.bytes = bytes
            self.count = count
            nodes.reserveCapacity(count / 12 + 4)
        }

        mutating func document() throws -> [Node] {
            if count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { position = 3 }
            try value(depth: 0)
            skipWhitespace()
            guard position == count else { throw IndexedJSONDecoder.invalid() }
            return nodes
        }

        private mutating func skipWhitespace() {
            while position < count {
                switch bytes[position] {
                case 0x20, 0x0A, 0x0D, 0x09: position += 1
                default: return
                }
            }
        }

        private func peek() throws -> UInt8 {
            guard position < count else { throw IndexedJSONDecoder.invalid("Unexpected end of file.") }
            return bytes[position]
        }

        private mutating func value(depth: Int) throws {
            skipWhitespace()
            switch try peek() {
            case UInt8(ascii: "{"): try container(.object, closedBy: UInt8(ascii: "}"), depth: depth)
            case UInt8(ascii: "["): try container(.array, closedBy: UInt8(ascii: "]"), depth: depth)
            case UInt8(ascii: "\""): try string()
            case UInt8(ascii: "t"): try literal("true", .true)
            case UInt8(ascii: "f"): try literal("false", .false)
            case UInt8(ascii: "n"): try literal("null", .null)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try number()
            default: throw IndexedJSONDecoder.invalid()
            }
        }

        private mutating func container(_ kind: Node.Kind, closedBy close: UInt8, depth: Int) throws {
            guard depth < IndexedJSONDecoder.maximumDepth else { throw IndexedJSONDecoder.invalid("Too many nested arrays or dictionaries.") }
            let index = nodes.count
            nodes.append(Node(kind: kind, flags: 0, start: UInt32(position), length: 0, end: 0))
            position += 1
            var members: UInt32 = 0
            while true {
                skipWhitespace()
                // An empty container, or a trailing comma (which JSONDecoder accepts too).
                if try peek() == close { break }
                if kind == .object {
                    guard bytes[position] == UInt8(ascii: "\"") else { throw IndexedJSONDecoder.invalid() }
                    try string()
                    skipWhitespace()
                    guard try peek() == UInt8(ascii: ":") else { throw IndexedJSONDecoder.invalid() }
                    position += 1
                }
                try value(depth: depth + 1)
                members += 1
                skipWhitespace()
                let next = try peek()
                if next == close { break }
                guard next == UInt8(ascii: ",") else { throw IndexedJSONDecoder.invalid() }
                position += 1
            }
            position += 1
            nodes[index].length = members
            nodes[index].end = UInt32(nodes.count)
        }

        private mutating func string() throws {
            position += 1
            let start = position
            var flags: UInt8 = 0
            while true {
                guard position < count else { throw IndexedJSONDecoder.invalid("Unexpected end of file.") }
                let byte = bytes[position]
                if byte == UInt8(ascii: "\"") { break }
                if byte == UInt8(ascii: "\\") {
                    flags |= Node.escaped
                    // The escape is checked when the string is decoded; here it only must not end the string.
                    position += 2
                    continue
                }
                if byte < 0x20 { throw IndexedJSONDecoder.invalid("Unescaped control character in a string.") }
                if byte >= 0x80 { flags |= Node.nonASCII }
                position += 1
            }
            nodes.append(Node(kind: .string, flags: flags, start: UInt32(start), length: UInt32(position - start), end: UInt32(nodes.count + 1)))
            position += 1
        }

        private mutating func literal(_ word: StaticString, _ kind: Node.Kind) throws {
            let length = word.utf8CodeUnitCount
            guard count - position >= length, memcmp(bytes + position, word.utf8Start, length) == 0 else { throw IndexedJSONDecoder.invalid() }
            nodes.append(Node(kind: kind, flags: 0, start: UInt32(position), length: UInt32(length), end: UInt32(nodes.count + 1)))
            position += length
        }

        /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
        private mutating func number() throws {
            let start = position
            var flags: UInt8 = 0
            if bytes[position] == UInt8(ascii: "-") { position += 1 }
            guard position < count, isDigit(bytes[position]) else { throw IndexedJSONDecoder.invalid() }
            if bytes[position] == UInt8(ascii: "0") {
                position += 1
            } else {
                digits()
            }
            if position < count, bytes[position] == UInt8(ascii: ".") {
                flags = Node.fractional
                position += 1
                guard position < count, isDigit(bytes[position]) else { throw IndexedJSONDecoder.invalid() }
                digits()
            }
            if position < count, bytes[position] | 0x20 == UInt8(ascii: "e") {
                flags = Node.fractional
                position += 1
                if position < count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") { position += 1 }
                guard position < count, isDigit(bytes[position]) else { throw IndexedJSONDecoder.invalid() }
                digits()
            }
            nodes.append(Node(kind: .number, flags: flags, start: UInt32(start), length: UInt32(position - start), end: UInt32(nodes.count + 1)))
        }

        private mutating func digits() {
            while position < count, isDigit(bytes[position]) { position += 1 }
        }

        private func isDigit(_ byte: UInt8) -> Bool {
            byte &- UInt8(ascii: "0") < 10
        }
    }
}

// MARK: - The document

extension IndexedJSONDecoder {
    /// A copy of the bytes and their nodes, shared by every decoder and container of one `decode` call.
    final class Document {
        let bytes: UnsafeMutablePointer<UInt8>
        let count: Int
        let nodes: [Node]

        init(copying source: UnsafeBufferPointer<UInt8>) throws {
            // Nodes keep offsets in 32 bits.
            guard source.count < Int(UInt32.max) else { throw IndexedJSONDecoder.invalid("The document is larger than 4 GiB.") }
            count = source.count
            bytes = .allocate(capacity: max(count, 1))
            if let base = source.baseAddress { bytes.initialize(from: base, count: count) }
            var indexer = Indexer(bytes, count: count)
            do {
                nodes = try indexer.document()
            } catch {
                bytes.deallocate()
                throw error
            }
        }

        deinit {
            bytes.deallocate()
        }

        // MARK: Values

        func decode<T: Decodable>(_ type: T.Type, at index: Int) throws -> T {
            if T.self == JSONValue.self { return try json(at: index) as! T }
            if T.self == URL.self {
                guard let url = URL(string: try string(at: index)) else {
                    throw DecodingError.dataCorrupted(.init(codingPath: path(to: index), debugDescription: "Invalid URL string."))
                }
                return url as! T
            }
            if T.self == Data.self {
                guard let data = Data(base64Encoded: try string(at: index)) else {
                    throw DecodingError.dataCorrupted(.init(codingPath: path(to: index), debugDescription: "Encountered Data is not valid Base64."))
                }
                return data as! T
            }
            return try T(from: ValueDecoder(document: self, index: index))
        }

        func isNull(_ index: Int) -> Bool {
            nodes[index].kind == .null
        }

        func bool(at index: Int) throws -> Bool {
            switch nodes[index].kind {
            case .true: return true
            case .false: return false
            default: throw mismatch(Bool.self, at: index)
            }
        }

        func string(at index: Int) throws -> String {
            let node = nodes[index]
            guard node.kind == .string else { throw mismatch(String.self, at: index) }
            let text = UnsafeBufferPointer(start: bytes + Int(node.start), count: Int(node.length))
            if node.flags == 0 { return String(decoding: text, as: UTF8.self) }
            if node.flags & Node.escaped == 0 {
                guard let string = String(validating: text, as: UTF8.self) else { throw corrupted("Invalid UTF-8 in a string.", at: index) }
                return string
            }
            guard let unescaped = Self.unescape(text), let string = String(validating: unescaped, as: UTF8.self) else {
                throw corrupted("Invalid escape sequence or UTF-8 in a string.", at: index)
            }
            return string
        }

        func integer<T: FixedWidthInteger>(_ type: T.Type, at index: Int) throws -> T {
            guard nodes[index].kind == .number else { throw mismatch(T.self, at: index) }
            if let value = exactInteger(T.self, at: index) { return value }
            let node = nodes[index]
            let text = UnsafeBufferPointer(start: bytes + Int(node.start), count: Int(node.length))
            throw corrupted("Number \(String(decoding: text, as: UTF8.self)) does not fit in \(T.self).", at: index)
        }

        /// A number node's value as `T`, or `nil` when `T` does not hold it exactly (no error is built).
        private func exactInteger<T: FixedWidthInteger>(_ type: T.Type, at index: Int) -> T? {
            let node = nodes[index]
            let text = UnsafeBufferPointer(start: bytes + Int(node.start), count: Int(node.length))
            if node.flags & Node.fractional == 0 { return Self.integer(T.self, text) }
            // `1.0` and `1e2` are integers too, as JSONDecoder reads them.
            guard let double = Double(String(decoding: text, as: UTF8.self)), double.isFinite else { return nil }
            return T(exactly: double)
        }

        func double(at index: Int) throws -> Double {
            let node = nodes[index]
            guard node.kind == .number else { throw mismatch(Double.self, at: index) }
            let text = UnsafeBufferPointer(start: bytes + Int(node.start), count: Int(node.length))
            // Up to 15 digits an integer is exact as a double.
            if node.flags & Node.fractional == 0, node.length <= 15, let value = Self.integer(Int64.self, text) { return Double(value) }
            guard let value = Double(String(decoding: text, as: UTF8.self)), value.isFinite else {
                throw corrupted("Number \(String(decoding: text, as: UTF8.self)) does not fit in Double.", at: index)
            }
            return value
        }

        func float(at index: Int) throws -> Float {
            let double = try double(at: index)
            let value = Float(double)
            guard value.isFinite else { throw corrupted("Number \(double) does not fit in Float.", at: index) }
            return value
        }

        func json(at index: Int) throws -> JSONValue {
            let node = nodes[index]
            switch node.kind {
            case .null: return .null
            case .true: return .bool(true)
            case .false: return .bool(false)
            case .string: return .string(try string(at: index))
            case .number:
                // As `JSONValue.init(from:)` reads it: an integer when `Int64` holds it exactly, else a double.
                if let value = exactInteger(Int64.self, at: index) { return .int(value) }
                if let value = try? double(at: index) { return .double(value) }
                // Out of range for every number: the error `JSONValue.init(from:)` ends with, from its last try.
                throw mismatch([String: Any].self, at: index)
            case .array:
                var elements: [JSONValue] = []
                elements.reserveCapacity(Int(node.length))
                var child = index + 1
                while child < Int(node.end) {
                    elements.append(try json(at: child))
                    child = Int(nodes[child].end)
                }
                return .array(elements)
            case .object:
                var members: [String: JSONValue] = [:]
                members.reserveCapacity(Int(node.length))
                var key = index + 1
                while key < Int(node.end) {
                    let name = try string(at: key)
                    if members[name] == nil { members[name] = try json(at: key + 1) }
                    key = Int(nodes[key + 1].end)
                }
                return .object(members)
            }
        }

        // MARK: Members

        /// The value of the object's first member named `name`.
        func member(_ name: String, of object: Int) -> Int? {
            var name = name
            return name.withUTF8 { key -> Int? in
                var child = object + 1
                let end = Int(nodes[object].end)
                while child < end {
                    let node = nodes[child]
                    if node.flags & Node.escaped == 0 {
                        if Int(node.length) == key.count, key.isEmpty || memcmp(bytes + Int(node.start), key.baseAddress!, key.count) == 0 {
                            return child + 1
                        }
                    } else if let unescaped = Self.unescape(UnsafeBufferPointer(start: bytes + Int(node.start), count: Int(node.length))),
                              unescaped.elementsEqual(key) {
                        return child + 1
                    }
                    child = Int(nodes[child + 1].end)
                }
                return nil
            }
        }

        /// The key nodes of an object, in document order.
        func keys(of object: Int) -> [Int] {
            var keys: [Int] = []
            keys.reserveCapacity(Int(nodes[object].length))
            var child = object + 1
            while child < Int(nodes[object].end) {
                keys.append(child)
                child = Int(nodes[child + 1].end)
            }
            return keys
        }

        // MARK: Errors

        /// The coding path from the root to a node, found by descending through the containers that hold it.
        func path(to target: Int) -> [any CodingKey] {
            var path: [any CodingKey] = []
            var container = 0
            descent: while container != target {
                let node = nodes[container]
                var child = container + 1
                var position = 0
                while child < Int(node.end) {
                    let value = node.kind == .object ? child + 1 : child
                    let next = Int(nodes[value].end)
                    if target >= value, target < next {
                        path.append(node.kind == .object ? PathKey(stringValue: (try? string(at: child)) ?? "") : PathKey(intValue: position))
                        container = value
                        continue descent
                    }
                    child = next
                    position += 1
                }
                break
            }
            return path
        }

        func mismatch(_ type: Any.Type, at index: Int) -> DecodingError {
            let context = { (description: String) in DecodingError.Context(codingPath: self.path(to: index), debugDescription: description) }
            let found: String
            switch nodes[index].kind {
            case .null: return .valueNotFound(type, context("Expected \(type) value but found null instead."))
            case .true, .false: found = "bool"
            case .number: found = "number"
            case .string: found = "a string"
            case .object: found = "a dictionary"
            case .array: found = "an array"
            }
            return .typeMismatch(type, context("Expected to decode \(type) but found \(found) instead."))
        }

        func corrupted(_ description: String, at index: Int) -> DecodingError {
            .dataCorrupted(.init(codingPath: path(to: index), debugDescription: description))
        }

        // MARK: Scalars

        /// Reads `-?[0-9]+`, or `nil` when it does not fit in `T`.
        static func integer<T: FixedWidthInteger>(_ type: T.Type, _ text: UnsafeBufferPointer<UInt8>) -> T? {
            var index = 0
            let negative = text.first == UInt8(ascii: "-")
            if negative {
                guard T.isSigned else { return text.count == 2 && text[1] == UInt8(ascii: "0") ? 0 : nil }
                index = 1
            }
            var value: T = 0
            while index < text.count {
                let digit = T(text[index] &- UInt8(ascii: "0"))
                let (shifted, overflow) = value.multipliedReportingOverflow(by: 10)
                guard !overflow else { return nil }
                let (next, overflowed) = negative ? shifted.subtractingReportingOverflow(digit) : shifted.addingReportingOverflow(digit)
                guard !overflowed else { return nil }
                value = next
                index += 1
            }
            return value
        }

        /// The UTF-8 bytes of a string's content with its escapes resolved; `nil` for a malformed escape or an
        /// unpaired surrogate.
        static func unescape(_ text: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
            var output: [UInt8] = []
            output.reserveCapacity(text.count)
            var index = 0
            while index < text.count {
                let byte = text[index]
                guard byte == UInt8(ascii: "\\") else {
                    output.append(byte)
                    index += 1
                    continue
                }
                guard index + 1 < text.count else { return nil }
                let escape = text[index + 1]
                index += 2
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): output.append(escape)
                case UInt8(ascii: "b"): output.append(0x08)
                case UInt8(ascii: "f"): output.append(0x0C)
                case UInt8(ascii: "n"): output.append(0x0A)
                case UInt8(ascii: "r"): output.append(0x0D)
                case UInt8(ascii: "t"): output.append(0x09)
                case UInt8(ascii: "u"):
                    guard var scalar = hex(text, at: index) else { return nil }
                    index += 4
                    if scalar >= 0xD800, scalar < 0xDC00 {
                        guard index + 6 <= text.count, text[index] == UInt8(ascii: "\\"), text[index + 1] == UInt8(ascii: "u"),
                              let low = hex(text, at: index + 2), low >= 0xDC00, low < 0xE000
                        else { return nil }
                        index += 6
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { return nil }
                    output.append(contentsOf: UTF8.encode(unicode)!)
                default:
                    return nil
                }
            }
            return output
        }

        private static func hex(_ text: UnsafeBufferPointer<UInt8>, at index: Int) -> UInt32? {
            guard index + 4 <= text.count else { return nil }
            var value: UInt32 = 0
            for byte in text[index..<index + 4] {
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: return nil
                }
                value = value << 4 | UInt32(digit)
            }
            return value
        }
    }
}

// MARK: - Decoder and containers

extension IndexedJSONDecoder {
    /// The decoder of one value; also its single-value container.
    struct ValueDecoder: Decoder, SingleValueDecodingContainer {
        let document: Document
        let index: Int

        var codingPath: [any CodingKey] { document.path(to: index) }
        var userInfo: [CodingUserInfoKey: Any] { [:] }

        func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
            guard document.nodes[index].kind == .object else {
                if document.isNull(index) {
                    throw DecodingError.valueNotFound([String: Any].self, .init(codingPath: codingPath, debugDescription: "Cannot get keyed decoding container -- found null value instead"))
                }
                throw document.mismatch([String: Any].self, at: index)
            }
            return KeyedDecodingContainer(KeyedContainer<Key>(document: document, index: index))
        }

        func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
            guard document.nodes[index].kind == .array else {
                if document.isNull(index) {
                    throw DecodingError.valueNotFound([Any].self, .init(codingPath: codingPath, debugDescription: "Cannot get unkeyed decoding container -- found null value instead"))
                }
                throw document.mismatch([Any].self, at: index)
            }
            return UnkeyedContainer(document: document, index: index)
        }

        func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

        func decodeNil() -> Bool { document.isNull(index) }
        func decode(_ type: Bool.Type) throws -> Bool { try document.bool(at: index) }
        func decode(_ type: String.Type) throws -> String { try document.string(at: index) }
        func decode(_ type: Double.Type) throws -> Double { try document.double(at: index) }
        func decode(_ type: Float.Type) throws -> Float { try document.float(at: index) }
        func decode(_ type: Int.Type) throws -> Int { try document.integer(Int.self, at: index) }
        func decode(_ type: Int8.Type) throws -> Int8 { try document.integer(Int8.self, at: index) }
        func decode(_ type: Int16.Type) throws -> Int16 { try document.integer(Int16.self, at: index) }
        func decode(_ type: Int32.Type) throws -> Int32 { try document.integer(Int32.self, at: index) }
        func decode(_ type: Int64.Type) throws -> Int64 { try document.integer(Int64.self, at: index) }
        func decode(_ type: UInt.Type) throws -> UInt { try document.integer(UInt.self, at: index) }
        func decode(_ type: UInt8.Type) throws -> UInt8 { try document.integer(UInt8.self, at: index) }
        func decode(_ type: UInt16.Type) throws -> UInt16 { try document.integer(UInt16.self, at: index) }
        func decode(_ type: UInt32.Type) throws -> UInt32 { try document.integer(UInt32.self, at: index) }
        func decode(_ type: UInt64.Type) throws -> UInt64 { try document.integer(UInt64.self, at: index) }
        func decode<T: Decodable>(_ type: T.Type) throws -> T { try document.decode(T.self, at: index) }
    }

    struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
        let document: Document
        let index: Int

        var codingPath: [any CodingKey] { document.path(to: index) }

        var allKeys: [Key] {
            document.keys(of: index).compactMap { (try? document.string(at: $0)).flatMap(Key.init(stringValue:)) }
        }

        func contains(_ key: Key) -> Bool {
            document.member(key.stringValue, of: index) != nil
        }

        /// The member's value node.
        private func value(_ key: Key) throws -> Int {
            guard let value = document.member(key.stringValue, of: index) else {
                throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "No value associated with key \(key) (\"\(key.stringValue)\")."))
            }
            return value
        }

        /// The member's value node, or `nil` when it is absent or null.
        private func present(_ key: Key) -> Int? {
            guard let value = document.member(key.stringValue, of: index), !document.isNull(value) else { return nil }
            return value
        }

        func decodeNil(forKey key: Key) throws -> Bool { document.isNull(try value(key)) }
        func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try document.bool(at: value(key)) }
        func decode(_ type: String.Type, forKey key: Key) throws -> String { try document.string(at: value(key)) }
        func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try document.double(at: value(key)) }
        func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try document.float(at: value(key)) }
        func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try document.integer(Int.self, at: value(key)) }
        func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try document.integer(Int8.self, at: value(key)) }
        func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try document.integer(Int16.self, at: value(key)) }
        func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try document.integer(Int32.self, at: value(key)) }
        func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try document.integer(Int64.self, at: value(key)) }
        func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try document.integer(UInt.self, at: value(key)) }
        func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try document.integer(UInt8.self, at: value(key)) }
        func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try document.integer(UInt16.self, at: value(key)) }
        func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try document.integer(UInt32.self, at: value(key)) }
        func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try document.integer(UInt64.self, at: value(key)) }
        func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try document.decode(T.self, at: value(key)) }

        // One lookup each, instead of the default's `contains`, `decodeNil` and `decode`.
        func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? { try present(key).map(document.bool(at:)) }
        func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? { try present(key).map(document.string(at:)) }
        func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws -> Double? { try present(key).map(document.double(at:)) }
        func decodeIfPresent(_ type: Float.Type, forKey key: Key) throws -> Float? { try present(key).map(document.float(at:)) }
        func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? { try present(key).map { try document.integer(Int.self, at: $0) } }
        func decodeIfPresent(_ type: Int64.Type, forKey key: Key) throws -> Int64? { try present(key).map { try document.integer(Int64.self, at: $0) } }
        func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? { try present(key).map { try document.decode(T.self, at: $0) } }

        func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
            try ValueDecoder(document: document, index: value(key)).container(keyedBy: type)
        }

        func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
            try ValueDecoder(document: document, index: value(key)).unkeyedContainer()
        }

        func superDecoder() throws -> any Decoder {
            try superDecoder(named: "super")
        }

        func superDecoder(forKey key: Key) throws -> any Decoder {
            try superDecoder(named: key.stringValue)
        }

        /// A decoder of the member's value; an absent member decodes as null, as in JSONDecoder.
        private func superDecoder(named name: String) throws -> any Decoder {
            guard let value = document.member(name, of: index) else { return NullDecoder(codingPath: codingPath + [PathKey(stringValue: name)]) }
            return ValueDecoder(document: document, index: value)
        }
    }

    struct UnkeyedContainer: UnkeyedDecodingContainer {
        let document: Document
        let index: Int
        let count: Int?
        private(set) var currentIndex = 0
        /// The node of the next element.
        private var next: Int

        init(document: Document, index: Int) {
            self.document = document
            self.index = index
            self.count = Int(document.nodes[index].length)
            self.next = index + 1
        }

        var codingPath: [any CodingKey] { document.path(to: index) }
        var isAtEnd: Bool { currentIndex >= count! }

        /// The next element's node, without moving past it.
        private func element(_ type: Any.Type) throws -> Int {
            guard !isAtEnd else {
                throw DecodingError.valueNotFound(type, .init(codingPath: codingPath + [PathKey(intValue: currentIndex)], debugDescription: "Unkeyed container is at end."))
            }
            return next
        }

        /// Decodes the next element; moves past it only when that succeeds.
        private mutating func take<T>(_ type: T.Type, _ read: (Document, Int) throws -> T) throws -> T {
            let node = try element(T.self)
            let value = try read(document, node)
            next = Int(document.nodes[node].end)
            currentIndex += 1
            return value
        }

        mutating func decodeNil() throws -> Bool {
            let node = try element(Never.self)
            guard document.isNull(node) else { return false }
            next = Int(document.nodes[node].end)
            currentIndex += 1
            return true
        }

        mutating func decode(_ type: Bool.Type) throws -> Bool { try take(type) { try $0.bool(at: $1) } }
        mutating func decode(_ type: String.Type) throws -> String { try take(type) { try $0.string(at: $1) } }
        mutating func decode(_ type: Double.Type) throws -> Double { try take(type) { try $0.double(at: $1) } }
        mutating func decode(_ type: Float.Type) throws -> Float { try take(type) { try $0.float(at: $1) } }
        mutating func decode(_ type: Int.Type) throws -> Int { try take(type) { try $0.integer(Int.self, at: $1) } }
        mutating func decode(_ type: Int8.Type) throws -> Int8 { try take(type) { try $0.integer(Int8.self, at: $1) } }
        mutating func decode(_ type: Int16.Type) throws -> Int16 { try take(type) { try $0.integer(Int16.self, at: $1) } }
        mutating func decode(_ type: Int32.Type) throws -> Int32 { try take(type) { try $0.integer(Int32.self, at: $1) } }
        mutating func decode(_ type: Int64.Type) throws -> Int64 { try take(type) { try $0.integer(Int64.self, at: $1) } }
        mutating func decode(_ type: UInt.Type) throws -> UInt { try take(type) { try $0.integer(UInt.self, at: $1) } }
        mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try take(type) { try $0.integer(UInt8.self, at: $1) } }
        mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try take(type) { try $0.integer(UInt16.self, at: $1) } }
        mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try take(type) { try $0.integer(UInt32.self, at: $1) } }
        mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try take(type) { try $0.integer(UInt64.self, at: $1) } }
        mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try take(type) { try $0.decode(T.self, at: $1) } }

        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
            try take(KeyedDecodingContainer<NestedKey>.self) { try ValueDecoder(document: $0, index: $1).container(keyedBy: type) }
        }

        mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
            try take((any UnkeyedDecodingContainer).self) { try ValueDecoder(document: $0, index: $1).unkeyedContainer() }
        }

        mutating func superDecoder() throws -> any Decoder {
            try take((any Decoder).self) { ValueDecoder(document: $0, index: $1) }
        }
    }

    /// The decoder of an absent member (`superDecoder(forKey:)`): a null value.
    struct NullDecoder: Decoder, SingleValueDecodingContainer {
        let codingPath: [any CodingKey]
        var userInfo: [CodingUserInfoKey: Any] { [:] }

        func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
            throw DecodingError.valueNotFound([String: Any].self, .init(codingPath: codingPath, debugDescription: "Cannot get keyed decoding container -- found null value instead"))
        }

        func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
            throw DecodingError.valueNotFound([Any].self, .init(codingPath: codingPath, debugDescription: "Cannot get unkeyed decoding container -- found null value instead"))
        }

        func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

        func decodeNil() -> Bool { true }

        private func null(_ type: Any.Type) -> DecodingError {
            .valueNotFound(type, .init(codingPath: codingPath, debugDescription: "Expected \(type) value but found null instead."))
        }

        func decode(_ type: Bool.Type) throws -> Bool { throw null(type) }
        func decode(_ type: String.Type) throws -> String { throw null(type) }
        func decode(_ type: Double.Type) throws -> Double { throw null(type) }
        func decode(_ type: Float.Type) throws -> Float { throw null(type) }
        func decode(_ type: Int.Type) throws -> Int { throw null(type) }
        func decode(_ type: Int8.Type) throws -> Int8 { throw null(type) }
        func decode(_ type: Int16.Type) throws -> Int16 { throw null(type) }
        func decode(_ type: Int32.Type) throws -> Int32 { throw null(type) }
        func decode(_ type: Int64.Type) throws -> Int64 { throw null(type) }
        func decode(_ type: UInt.Type) throws -> UInt { throw null(type) }
        func decode(_ type: UInt8.Type) throws -> UInt8 { throw null(type) }
        func decode(_ type: UInt16.Type) throws -> UInt16 { throw null(type) }
        func decode(_ type: UInt32.Type) throws -> UInt32 { throw null(type) }
        func decode(_ type: UInt64.Type) throws -> UInt64 { throw null(type) }
        func decode<T: Decodable>(_ type: T.Type) throws -> T { throw null(type) }
    }
}
