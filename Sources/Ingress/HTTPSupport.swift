import Foundation
import Hummingbird
import NIOCore
import Logging
import Protocol

/// JSON bodies and OpenAI-shaped errors for the ingress routes.
enum HTTPSupport {
    static let encoder = StreamingJSONEncoder()

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        let bytes = (try? encoder.encode(value)) ?? Array("{}".utf8)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func error(_ error: GatewayError) -> Response {
        var headers = HTTPFields()
        if let retryAfter = error.retryAfter { headers[.retryAfter] = String(retryAfter) }
        return json(error.body, status: .init(code: error.status), headers: headers)
    }

    /// Reads the request body, enforcing the size limit, and decodes it.
    /// - Throws: `GatewayError` 413 over the limit, 400 for malformed JSON or wrong field types.
    static func decode<T: Decodable>(_ type: T.Type, from request: Request, limit: Int) async throws -> T {
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: limit)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw GatewayError.bodyTooLarge(limit: limit)
        } catch is NIOTooManyBytesError {
            throw GatewayError.bodyTooLarge(limit: limit)
        }
        guard body.readableBytes > 0 else { throw GatewayError.invalidRequest("The request body is empty; expected a JSON object.", code: "invalid_json") }
        do {
            return try body.withUnsafeReadableBytes { try IndexedJSONDecoder().decode(type, from: $0) }
        } catch let error as DecodingError {
            throw invalidJSON(error)
        }
    }

    /// The 400 for a body that did not decode, naming the field as OpenAI does (`messages.[0].role`).
    static func invalidJSON(_ error: DecodingError) -> GatewayError {
        let message: String
        let path: [any CodingKey]
        switch error {
        case .dataCorrupted(let context) where context.codingPath.isEmpty:
            return .invalidRequest("The request body is not valid JSON.", code: "invalid_json")
        case .keyNotFound(let key, let context):
            path = context.codingPath + [key]
            message = "Missing required field '\(render(path))'."
        case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
            path = context.codingPath
            message = "Field '\(render(path))' has the wrong type; expected \(type)."
        case .dataCorrupted(let context):
            path = context.codingPath
            message = "Field '\(render(path))' is invalid."
        @unknown default:
            return .invalidRequest("The request body is invalid.", code: "invalid_json")
        }
        return .invalidRequest(message, param: path.isEmpty ? nil : render(path), code: "invalid_json")
    }

    /// `messages.[0].role`: member names, and array indices in brackets.
    private static func render(_ path: [any CodingKey]) -> String {
        path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }
}

/// Turns every error into the OpenAI error shape. Unknown errors become a bare 500, logged once.
struct OpenAIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as GatewayError {
            return HTTPSupport.error(error)
        } catch let error as HTTPError {
            let status = error.status
            let (type, code): (String, String) = switch status.code {
            case 404: ("invalid_request_error", "not_found")
            case 405: ("invalid_request_error", "method_not_allowed")
            case 413: ("invalid_request_error", "request_too_large")
            case 400..<500: ("invalid_request_error", "invalid_request")
            default: ("server_error", "internal_error")
            }
            let message = status.code == 404 ? "Unknown route \(request.method.rawValue) \(request.uri.path)." : (error.body ?? status.reasonPhrase)
            return HTTPSupport.error(GatewayError(status: status.code, message: message, type: type, code: code))
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            context.logger.error("Unhandled error", metadata: ["error": "\(String(reflecting: type(of: error)))"])
            return HTTPSupport.error(.internalError)
        }
    }
}

extension GatewayError {
    static func bodyTooLarge(limit: Int) -> GatewayError {
        GatewayError(status: 413, message: "The request body exceeds the limit of \(limit) bytes.", type: "invalid_request_error", code: "request_too_large")
    }
}
