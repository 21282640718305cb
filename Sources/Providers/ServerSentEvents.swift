/// One server-sent event.
public struct ServerSentEvent: Sendable, Hashable {
    public var event: String?
    public var data: String
    public var id: String?

    public init(event: String? = nil, data: String, id: String? = nil) {
        self.event = event
        self.data = data
        self.id = id
    }
}

/// An incremental parser of a `text/event-stream` body. Bytes may arrive split anywhere, even inside a UTF-8
/// sequence or a line ending; events come out whole.
public struct ServerSentEventParser: Sendable {
    private var buffer: [UInt8] = []
    private var event: String?
    private var data: [String] = []
    private var id: String?
    private var hasField = false

    public init() {}

    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [ServerSentEvent] {
        buffer.append(contentsOf: bytes)
        var events: [ServerSentEvent] = []
        var lineStart = 0
        var index = 0
        while index < buffer.count {
            let byte = buffer[index]
            if byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") {
                // A CR at the very end may be the first half of CRLF: wait for the next byte.
                if byte == UInt8(ascii: "\r"), index + 1 == buffer.count { break }
                let line = buffer[lineStart..<index]
                if byte == UInt8(ascii: "\r"), buffer[index + 1] == UInt8(ascii: "\n") { index += 1 }
                if let completed = process(line: line) { events.append(completed) }
                lineStart = index + 1
            }
            index += 1
        }
        buffer.removeFirst(lineStart)
        return events
    }

    /// Ends the stream; an event without its closing blank line is still delivered.
    public mutating func finish() -> [ServerSentEvent] {
        var events: [ServerSentEvent] = []
        if !buffer.isEmpty {
            let line = buffer[...]
            if let completed = process(line: line) { events.append(completed) }
            buffer.removeAll()
        }
        if let completed = dispatch() { events.append(completed) }
        return events
    }

    private mutating func process(line: ArraySlice<UInt8>) -> ServerSentEvent? {
        if line.isEmpty { return dispatch() }
        if line.first == UInt8(ascii: ":") { return nil }
        let colon = line.firstIndex(of: UInt8(ascii: ":"))
        let name = String(decoding: line[line.startIndex..<(colon ?? line.endIndex)], as: UTF8.self)
        var valueStart = colon.map { line.index(after: $0) } ?? line.endIndex
        if valueStart < line.endIndex, line[valueStart] == UInt8(ascii: " ") { valueStart += 1 }
        let value = String(decoding: line[valueStart..<line.endIndex], as: UTF8.self)
        switch name {
        case "event": event = value; hasField = true
        case "data": data.append(value); hasField = true
        case "id": id = value; hasField = true
        default: break
        }
        return nil
    }

    private mutating func dispatch() -> ServerSentEvent? {
        defer {
            event = nil
            data = []
            hasField = false
        }
        guard hasField, !(data.isEmpty && event == nil) else { return nil }
        return ServerSentEvent(event: event, data: data.joined(separator: "\n"), id: id)
    }
}
