@testable import Ingress
import Protocol
import Testing

/// The 400 a client gets for a body that does not decode: the message and `param` name the field as OpenAI does.
@Suite("Invalid JSON bodies", .timeLimit(.minutes(1)))
struct InvalidJSONTests {
    static func error(_ json: String) throws -> ErrorBody.Detail {
        do {
            _ = try IndexedJSONDecoder().decode(ChatRequest.self, from: Array(json.utf8))
        } catch let error as DecodingError {
            let gatewayError = HTTPSupport.invalidJSON(error)
            #expect(gatewayError.status == 400)
            return gatewayError.body.error
        }
        Issue.record("\(json) decoded")
        return ErrorBody(message: "", type: "").error
    }

    @Test("malformed JSON names no field")
    func malformed() throws {
        let body = try Self.error(#"{"model":"m","messages":[}"#)
        #expect(body.message == "The request body is not valid JSON.")
        #expect(body.param == nil && body.code == "invalid_json" && body.type == "invalid_request_error")
    }

    @Test("a missing field inside an array element is named with its index")
    func missingNested() throws {
        let body = try Self.error(#"{"model":"m","messages":[{"role":"user","content":"a"},{"content":"hi"}]}"#)
        #expect(body.message == "Missing required field 'messages.[1].role'.")
        #expect(body.param == "messages.[1].role")
    }

    @Test("a missing top-level field, a wrong type and a null are named")
    func topLevelAndTypes() throws {
        #expect(try Self.error(#"{"model":"m"}"#).param == "messages")
        let wrongType = try Self.error(#"{"model":"m","messages":[],"max_tokens":"ten"}"#)
        #expect(wrongType.message == "Field 'max_tokens' has the wrong type; expected Int.")
        #expect(wrongType.param == "max_tokens")
        let null = try Self.error(#"{"model":"m","messages":[{"role":null}]}"#)
        #expect(null.param == "messages.[0].role")
        let range = try Self.error(#"{"model":"m","messages":[],"max_tokens":1e30}"#)
        #expect(range.message == "Field 'max_tokens' is invalid." && range.param == "max_tokens")
    }
}
