import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address as bytes (4 or 16 of them).
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    public var bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// Parses dotted IPv4 or IPv6 text (`::ffff:127.0.0.1`, `[::1]` with brackets too).
    public init?(_ text: String) {
        var text = text
        if text.hasPrefix("["), text.hasSuffix("]") { text = String(text.dropFirst().dropLast()) }
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self.bytes = withUnsafeBytes(of: &v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            self.bytes = withUnsafeBytes(of: &v6) { Array($0) }
            return
        }
        return nil
    }

    public var isIPv4: Bool { bytes.count == 4 }

    /// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`) or IPv4-compatible (`::a.b.c.d`) IPv6 address.
    public var embeddedIPv4: IPAddress? {
        guard bytes.count == 16, bytes[0..<10].allSatisfy({ $0 == 0 }) else { return nil }
        let marker = bytes[10..<12]
        guard marker == [0xff, 0xff] || (marker == [0, 0] && bytes[12..<16] != [0, 0, 0, 0] && bytes[12..<16] != [0, 0, 0, 1]) else { return nil }
        return IPAddress(bytes: Array(bytes[12..<16]))
    }

    public var description: String {
        var text = [CChar](repeating: 0, count: 64)
        var raw = bytes
        let family = isIPv4 ? AF_INET : AF_INET6
        guard inet_ntop(family, &raw, &text, socklen_t(text.count)) != nil else { return "?" }
        return String(cString: text)
    }
}

/// A network, `10.0.0.0/8` or `fc00::/7`; a bare address is a /32 or /128.
public struct CIDR: Sendable, Hashable, CustomStringConvertible {
    public var network: IPAddress
    public var prefixLength: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = IPAddress(String(parts[0])) else { return nil }
        let maximum = address.bytes.count * 8
        var length = maximum
        if parts.count == 2 {
            guard let value = Int(parts[1]), (0...maximum).contains(value) else { return nil }
            length = value
        }
        self.network = address
        self.prefixLength = length
    }

    /// Whether `address` lies in this network. IPv4 networks also match IPv4-mapped IPv6 addresses.
    public func contains(_ address: IPAddress) -> Bool {
        var candidate = address
        if network.isIPv4, !address.isIPv4, let embedded = address.embeddedIPv4 { candidate = embedded }
        guard candidate.bytes.count == network.bytes.count else { return false }
        var remaining = prefixLength
        for index in network.bytes.indices where remaining > 0 {
            let bits = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: 0xff << (8 - bits))
            if candidate.bytes[index] & mask != network.bytes[index] & mask { return false }
            remaining -= bits
        }
        return true
    }

    public var description: String { "\(network)/\(prefixLength)" }
}

/// The SSRF guard's decision about where a webhook may connect: https only unless plain http is allowed, and never to
/// an internal address unless the host or address is allowlisted.
public struct WebhookAddressPolicy: Sendable, Hashable {
    /// `LLMGW_WEBHOOK_ALLOW_HTTP`: permit `http://` URLs.
    public var allowHTTP: Bool
    /// `LLMGW_WEBHOOK_ALLOWLIST`: host names (exact, case-insensitive) that bypass the address check.
    public var allowedHosts: Set<String>
    /// `LLMGW_WEBHOOK_ALLOWLIST`: networks whose addresses bypass the address check.
    public var allowedNetworks: [CIDR]

    public init(allowHTTP: Bool = false, allowedHosts: Set<String> = [], allowedNetworks: [CIDR] = []) {
        self.allowHTTP = allowHTTP
        self.allowedHosts = allowedHosts
        self.allowedNetworks = allowedNetworks
    }

    /// Parses a comma-separated allowlist of hosts and CIDRs; `nil` when an entry is neither.
    public init?(allowHTTP: Bool, allowlist: String) {
        var hosts: Set<String> = []
        var networks: [CIDR] = []
        for entry in allowlist.split(separator: ",").map({ $0.trimmingSpaces.lowercased() }) where !entry.isEmpty {
            if let network = CIDR(entry) {
                networks.append(network)
            } else if !entry.contains("/"), entry.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_" }) {
                hosts.insert(entry)
            } else {
                return nil
            }
        }
        self.init(allowHTTP: allowHTTP, allowedHosts: hosts, allowedNetworks: networks)
    }

    /// Networks a webhook never reaches unless allowlisted, each with the reason given in the delivery log.
    public static let refusedNetworks: [(CIDR, String)] = [
        ("0.0.0.0/8", "unspecified"), ("127.0.0.0/8", "loopback"), ("10.0.0.0/8", "private"),
        ("172.16.0.0/12", "private"), ("192.168.0.0/16", "private"), ("100.64.0.0/10", "carrier-grade NAT"),
        ("169.254.169.254/32", "cloud metadata"), ("169.254.0.0/16", "link-local"), ("192.0.0.0/24", "IETF protocol assignments"),
        ("198.18.0.0/15", "benchmarking"), ("224.0.0.0/4", "multicast"), ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"), ("::1/128", "loopback"), ("fd00:ec2::254/128", "cloud metadata"),
        ("fc00::/7", "unique-local"), ("fe80::/10", "link-local"), ("ff00::/8", "multicast"),
        ("64:ff9b::/96", "NAT64 of an IPv4 address"), ("2002::/16", "6to4"),
    ].map { (CIDR($0.0)!, $0.1) }

    /// Why a URL is refused before any lookup (scheme, missing host), or `nil` when it may be tried.
    public func refusal(scheme: String?, host: String?) -> String? {
        switch scheme?.lowercased() {
        case "https": break
        case "http": if !allowHTTP { return "plain http is not allowed (set LLMGW_WEBHOOK_ALLOW_HTTP=true)" }
        default: return "only https URLs are allowed"
        }
        guard let host, !host.isEmpty else { return "the URL has no host" }
        return nil
    }

    /// Why connecting to `address` for `host` is refused, or `nil` when it is allowed.
    public func refusal(host: String, address: IPAddress) -> String? {
        if allowedHosts.contains(host.lowercased()) { return nil }
        if allowedNetworks.contains(where: { $0.contains(address) }) { return nil }
        let checked = address.embeddedIPv4 ?? address
        let mapped = checked != address
        for (network, reason) in Self.refusedNetworks where network.contains(checked) {
            // 6to4 and NAT64 embed an IPv4 address: refuse them only when that address is internal.
            if network.prefixLength == 16 || network.prefixLength == 96, !network.network.isIPv4 {
                let inner = network.prefixLength == 16 ? Array(checked.bytes[2..<6]) : Array(checked.bytes[12..<16])
                if let embedded = IPAddress(bytes: inner), refusal(host: host, address: embedded) != nil {
                    return "\(address) is a \(reason) address of an internal IPv4 address"
                }
                continue
            }
            return "\(address) is a \(reason) address\(mapped ? " (IPv4-mapped)" : "")"
        }
        return nil
    }
}
