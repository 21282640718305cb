import Foundation
import Protocol
import Testing

@Suite("ErrorBody", .serialized, .timeLimit(.minutes(2)))
struct ErrorBodyTests {
    @Test("encodes the OpenAI shape with explicit nulls for param and code")
    func explicitNulls() throws {
        let object = try jsonObject(ErrorBody(message: "Boom.", type: "server_error"))
        #expect(Set(object.keys) == ["error"])
        let detail = try #require(object["error"] as? [String: Any])
        #expect(Set(detail.keys) == ["message", "type", "param", "code"])
        #expect(detail["message"] as? String == "Boom.")
        #expect(detail["type"] as? String == "server_error")
        #expect(detail["param"] is NSNull)
        #expect(detail["code"] is NSNull)
    }

    @Test("param and code carry their values and the body decodes back")
    func values() throws {
        let body = ErrorBody(message: "Bad.", type: "invalid_request_error", param: "temperature", code: "invalid_request")
        let detail = try #require(try jsonObject(body)["error"] as? [String: Any])
        #expect(detail["param"] as? String == "temperature")
        #expect(detail["code"] as? String == "invalid_request")
        let data = try JSONEncoder().encode(body)
        #expect(try JSONDecoder().decode(ErrorBody.self, from: data) == body)
        let nulls = ErrorBody(message: "m", type: "t")
        #expect(try JSONDecoder().decode(ErrorBody.self, from: JSONEncoder().encode(nulls)) == nulls)
    }

    @Test("invalidRequest is a 400 invalid_request_error carrying param and code")
    func invalidRequest() {
        let error = GatewayError.invalidRequest("Nope.", param: "top_p")
        #expect(error.status == 400)
        #expect(error.body == ErrorBody(message: "Nope.", type: "invalid_request_error", param: "top_p", code: "invalid_request"))
        #expect(GatewayError.invalidRequest("Nope.", code: "unknown_provider").body.error.code == "unknown_provider")
    }
}
