/// Exponential backoff with jitter: attempt `n` (from 1) waits a random time in
/// `[d/2, d]`, where `d = min(maximum, base × multiplier^(n-1))`. A server-given `Retry-After` wins when it is longer.
public struct Backoff: Sendable, Hashable {
    public var base: Double
    public var multiplier: Double
    public var maximum: Double

    public init(base: Double = 0.25, multiplier: Double = 2, maximum: Double = 20) {
        self.base = base
        self.multiplier = multiplier
        self.maximum = maximum
    }

    /// The ceiling of the wait before retry `attempt`, without jitter.
    public func ceiling(attempt: Int) -> Double {
        let exponent = Double(max(0, attempt - 1))
        let raw = base * pow(multiplier, exponent)
        return min(maximum, raw)
    }

    /// The wait before retry `attempt`, in seconds.
    public func delay<G: RandomNumberGenerator>(attempt: Int, retryAfter: Double? = nil, using generator: inout G) -> Double {
        let ceiling = self.ceiling(attempt: attempt)
        let jittered = ceiling / 2 + Double.random(in: 0...(ceiling / 2), using: &generator)
        if let retryAfter, retryAfter > jittered {
            return min(retryAfter, maximum)
        }
        return jittered
    }

    public func delay(attempt: Int, retryAfter: Double? = nil) -> Double {
        var generator = SystemRandomNumberGenerator()
        return delay(attempt: attempt, retryAfter: retryAfter, using: &generator)
    }
}

private func pow(_ base: Double, _ exponent: Double) -> Double {
    var result = 1.0
    var remaining = Int(exponent)
    while remaining > 0 {
        result *= base
        remaining -= 1
    }
    return result
}
