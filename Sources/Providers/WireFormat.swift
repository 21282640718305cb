import Foundation
import Protocol

/// JSON helpers shared by the adapters.
enum WireJSON {
    private static let encoder = StreamingJSONEncoder(sortedKeys: true)
    private static let decoder = IndexedJSONDecoder()

    /// Encodes with sorted keys, so a request body is byte-for-byte reproducible (and a provider's prompt cache
    /// sees the same prefix for the same request).
    static func encode(_ value: some Encodable) throws -> [UInt8] {
        try encoder.encode(value)
    }

    static func decode<T: Decodable>(_ type: T.Type, from body: [UInt8], provider: String) throws -> T {
        do {
            return try decoder.decode(type, from: body)
        } catch {
            throw UpstreamError(
                errorClass: .protocolViolation,
                status: nil,
                message: "\(provider) sent a response that does not match its documented format"
            )
        }
    }

    /// The start of an unparseable error body, for the job record.
    static func snippet(_ body: [UInt8], status: Int) -> String {
        let text = String(decoding: body.prefix(200), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? "HTTP \(status)" : text
    }

    /// A JSON value as compact text, the way OpenAI sends tool-call arguments.
    static func text(of value: JSONValue) -> String {
        guard let bytes = try? encode(value) else { return "{}" }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Parses JSON text, or nil when it is not JSON.
    static func value(parsing text: String) -> JSONValue? {
        try? decoder.decode(JSONValue.self, from: Data(text.utf8))
    }

    /// Tool-call arguments as a JSON object: providers other than OpenAI want an object, not a string.
    /// Empty or unparseable arguments become `{}`.
    static func argumentsObject(_ arguments: String) -> JSONValue {
        if let value = value(parsing: arguments), case .object = value { return value }
        return .object([:])
    }
}

extension JSONValue {
    /// A code that may be sent as a string or a number.
    var stringValueOrNumber: String? {
        switch self {
        case .string(let value): return value
        case .int(let value): return String(value)
        default: return nil
        }
    }

    var objectValue: [String: JSONValue]? {
        if case .object(let value) = self { return value }
        return nil
    }
}

/// URL building shared by the adapters.
enum WireURL {
    /// `base` + `path`, tolerating a trailing slash on the configured base URL.
    static func join(_ base: String, _ path: String) -> String {
        var base = Substring(base)
        while base.hasSuffix("/") { base = base.dropLast() }
        return base + path
    }

    /// Percent-encodes one path segment (a model id such as `gemini-2.0-flash` passes unchanged).
    static func segment(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}

/// Removes the API key from text that may echo it (some providers quote the rejected key in their 401 message).
enum Redaction {
    static func redact(_ message: String, secret: String?) -> String {
        guard let secret, secret.count >= 4 else { return message }
        return message.replacingOccurrences(of: secret, with: "[redacted]")
    }
}

// MARK: - The canonical request's OpenAI-shaped pass-through fields, read once for the non-OpenAI adapters

/// One OpenAI content part, as the non-OpenAI adapters understand it.
enum ContentPart: Equatable {
    case text(String)
    /// An `image_url` part: a `data:` URL or a remote URL.
    case image(url: String)
    /// A part the adapter cannot translate (`input_audio`, `file`, …).
    case unsupported(type: String)

    static func parts(of content: MessageContent?) -> [ContentPart] {
        switch content {
        case nil: return []
        case .text(let text)?: return [.text(text)]
        case .parts(let parts)?:
            return parts.map { part in
                let type = part["type"]?.stringValue ?? ""
                switch type {
                case "text": return .text(part["text"]?.stringValue ?? "")
                case "image_url":
                    // OpenAI sends `{"image_url":{"url":…}}`; a bare string is accepted too.
                    if let url = part["image_url"]?["url"]?.stringValue ?? part["image_url"]?.stringValue {
                        return .image(url: url)
                    }
                    return .unsupported(type: type)
                default: return .unsupported(type: type.isEmpty ? "unknown" : type)
                }
            }
        }
    }
}

/// A `data:<media type>;base64,<data>` URL.
struct DataURL: Equatable {
    var mediaType: String
    var base64: String

    init?(_ url: String) {
        guard url.hasPrefix("data:"), let comma = url.firstIndex(of: ",") else { return nil }
        let header = url[url.index(url.startIndex, offsetBy: 5)..<comma]
        let pieces = header.split(separator: ";")
        guard pieces.contains("base64"), let type = pieces.first, type.contains("/") else { return nil }
        self.mediaType = String(type)
        self.base64 = String(url[url.index(after: comma)...])
    }
}

/// An OpenAI function tool: `{"type":"function","function":{"name","description","parameters"}}`.
struct FunctionTool: Equatable {
    var name: String
    var description: String?
    var parameters: JSONValue?

    /// Reads the canonical tools.
    /// - Throws: `UpstreamError` of class `.client` for tools that are not functions.
    static func tools(from values: [JSONValue]?, provider: String) throws -> [FunctionTool] {
        try (values ?? []).map { value in
            guard value["type"]?.stringValue ?? "function" == "function",
                  let function = value["function"], let name = function["name"]?.stringValue
            else {
                throw UpstreamError(errorClass: .client, status: nil, message: "\(provider) supports only function tools")
            }
            return FunctionTool(name: name, description: function["description"]?.stringValue, parameters: function["parameters"])
        }
    }
}

/// OpenAI's `tool_choice`.
enum ToolChoice: Equatable {
    case auto
    case none
    case required
    case function(String)

    init?(_ value: JSONValue?) {
        switch value {
        case .string("auto")?: self = .auto
        case .string("none")?: self = .none
        case .string("required")?: self = .required
        case .object(let object)?:
            guard let name = object["function"]?["name"]?.stringValue else { return nil }
            self = .function(name)
        default: return nil
        }
    }
}

/// OpenAI's `response_format`.
enum ResponseFormat: Equatable {
    case text
    case jsonObject
    /// A JSON schema (`json_schema.schema`).
    case jsonSchema(JSONValue)

    init?(_ value: JSONValue?) {
        switch value?["type"]?.stringValue {
        case "text": self = .text
        case "json_object": self = .jsonObject
        case "json_schema":
            self = .jsonSchema(value?["json_schema"]?["schema"] ?? .object(["type": .string("object")]))
        default: return nil
        }
    }
}

extension ChatRequest {
    /// The text of the system and developer messages, joined, for providers that take it as a separate field.
    var instructionText: String? {
        let parts = messages.filter { $0.role == .system || $0.role == .developer }.compactMap { $0.content?.text }
        return parts.isEmpty ? nil : parts.joined(separator: "\n\n")
    }
}

extension UpstreamError {
    static func unsupported(_ what: String, provider: String) -> UpstreamError {
        UpstreamError(errorClass: .client, status: nil, message: "\(provider) does not support \(what)")
    }
}
