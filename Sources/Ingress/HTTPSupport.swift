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
            throw GatewayError.invalidRequest(describe(error), param: path(of: error), code: "invalid_json")
        }
    }

    private static func path(of error: DecodingError) -> String? {
        let context: DecodingError.Context
        switch error {
        case .typeMismatch(_, let value), .valueNotFound(_, let value), .dataCorrupted(let value): context = value
        case .keyNotFound(let key, let value):
            return (value.codingPath + [key]).map(\.stringValue).joined(separator: ".")
        @unknown default: return nil
        }
        let path = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        return path.isEmpty ? nil : path
    }

    private static func describe(_ error: DecodingError) -> String {
        switch error {
        case .dataCorrupted(let context) where context.codingPath.isEmpty:
            return "The request body is not valid JSON."
        case .keyNotFound(let key, _):
            return "Missing required field '\(key.stringValue)'."
        case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            return "Field '\(field)' has the wrong type; expected \(type)."
        case .dataCorrupted(let context):
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            return "Field '\(field)' is invalid."
        @unknown default:
            return "The request body is invalid."
        }
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
