import Foundation

extension MockJSON {
    /// Writes the JSON object literal of a reply: keys sorted, slashes unescaped, like `JSONSerialization` with
    /// `.sortedKeys` and `.withoutEscapingSlashes`, at a fraction of its cost (the mock shares the benchmark's
    /// CPUs with every contender).
    static func data(_ object: Any) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(512)
        write(object, to: &output)
        return output
    }

    private static func write(_ value: Any, to output: inout [UInt8]) {
        switch value {
        case let text as String:
            writeString(text, to: &output)
        case let flag as Bool:
            output += flag ? Array("true".utf8) : Array("false".utf8)
        case let number as Int:
            output += Array(String(number).utf8)
        case let number as Double:
            if number.rounded() == number, abs(number) < 1e15 {
                output += Array(String(Int64(number)).utf8)
            } else {
                output += Array(String(number).utf8)
            }
        case let object as [String: Any]:
            output.append(UInt8(ascii: "{"))
            for (index, key) in object.keys.sorted().enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                writeString(key, to: &output)
                output.append(UInt8(ascii: ":"))
                write(object[key]!, to: &output)
            }
            output.append(UInt8(ascii: "}"))
        case let array as [Any]:
            output.append(UInt8(ascii: "["))
            for (index, element) in array.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                write(element, to: &output)
            }
            output.append(UInt8(ascii: "]"))
        case is NSNull:
            output += Array("null".utf8)
        case let number as any BinaryInteger:
            output += Array(String(describing: number).utf8)
        default:
            let data = (try? JSONSerialization.data(withJSONObject: [value], options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("[null]".utf8)
            output += data.dropFirst().dropLast()
        }
    }

    private static func writeString(_ text: String, to output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): output += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): output += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case UInt8(ascii: "\n"): output += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case UInt8(ascii: "\r"): output += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case UInt8(ascii: "\t"): output += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                output += Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            default: output.append(byte)
            }
        }
        output.append(UInt8(ascii: "\""))
    }
}
