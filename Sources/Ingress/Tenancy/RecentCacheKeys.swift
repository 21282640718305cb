import Synchronization

/// The response cache keys this replica saw lately, bounded and oldest first out. A request whose key is among them
/// is likely a cache hit, so admission does not record its job in advance (work a hit would throw away).
final class RecentCacheKeys: Sendable {
    private struct State {
        var keys: Set<String> = []
        var order: [String?]
        var next = 0
    }

    private let state: Mutex<State>

    init(capacity: Int = 4096) {
        state = Mutex(State(order: Array(repeating: nil, count: max(1, capacity))))
    }

    /// Whether `key` was seen since it last fell out; records it as seen now.
    func checkAndInsert(_ key: String) -> Bool {
        state.withLock { state in
            if state.keys.contains(key) { return true }
            if let evicted = state.order[state.next] { state.keys.remove(evicted) }
            state.order[state.next] = key
            state.next = (state.next + 1) % state.order.count
            state.keys.insert(key)
            return false
        }
    }
}
