import Foundation
@testable import Ingress
import Testing

@Suite("Authorization credentials", .timeLimit(.minutes(1)))
struct CredentialTests {
    @Test("a bearer credential in any case, or a bare one, without the blanks around it")
    func schemes() {
        #expect(Authenticator.credential("Bearer lgw_key") == "lgw_key")
        #expect(Authenticator.credential("bearer lgw_key") == "lgw_key")
        #expect(Authenticator.credential("BEARER \t lgw_key \t") == "lgw_key")
        #expect(Authenticator.credential("  lgw_key  ") == "lgw_key")
        #expect(Authenticator.credential("Bearer ключ") == "ключ")
        // Only `Bearer` and a space make the scheme; anything else is the credential as sent.
        #expect(Authenticator.credential("Bearer\tlgw_key") == "Bearer\tlgw_key")
        #expect(Authenticator.credential("Bearerlgw_key") == "Bearerlgw_key")
        #expect(Authenticator.credential("Basic dXNlcjpwYXNz") == "Basic dXNlcjpwYXNz")
        #expect(Authenticator.credential("Bearer") == "Bearer")
    }

    @Test("nothing but blanks is no credential, and the scheme alone is the credential `Bearer`, which no key matches")
    func empty() {
        #expect(Authenticator.credential("") == nil)
        #expect(Authenticator.credential(" \t ") == nil)
        #expect(Authenticator.credential("Bearer    ") == "Bearer")
        #expect(Authenticator.credential("Bearer \t") == "Bearer")
    }

    /// The Foundation parsing it replaced, for ASCII values: trim, drop a case-insensitive `bearer `, trim again.
    static func foundationCredential(_ value: String) -> String? {
        let raw = value.trimmingCharacters(in: .whitespaces)
        guard !raw.isEmpty else { return nil }
        return raw.lowercased().hasPrefix("bearer ") ? String(raw.dropFirst(7)).trimmingCharacters(in: .whitespaces) : raw
    }

    @Test("the same credential as the Foundation parsing for 20,000 generated ASCII values")
    func matchesFoundation() {
        var generator = SystemRandomNumberGenerator()
        let pieces = [" ", "\t", "b", "B", "e", "E", "a", "r", "R", "bearer", "Bearer ", "BEARER  ", "x", ".", "_", "lgw_k"]
        for _ in 0..<20_000 {
            let value = (0..<Int.random(in: 0...6, using: &generator)).map { _ in pieces.randomElement(using: &generator)! }.joined()
            #expect(Authenticator.credential(value).map(String.init) == Self.foundationCredential(value), "\(value.debugDescription)")
        }
    }
}
