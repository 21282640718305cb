@testable import Ingress
import Testing

@Suite("RecentCacheKeys", .timeLimit(.minutes(1)))
struct RecentCacheKeysTests {
    @Test("a key is new the first time and seen after that")
    func seenAfterFirst() {
        let recent = RecentCacheKeys(capacity: 4)
        #expect(recent.checkAndInsert("a") == false)
        #expect(recent.checkAndInsert("a") == true)
        #expect(recent.checkAndInsert("b") == false)
        #expect(recent.checkAndInsert("a") == true)
    }

    @Test("the oldest key falls out once the capacity is used")
    func oldestFallsOut() {
        let recent = RecentCacheKeys(capacity: 3)
        for key in ["a", "b", "c"] { #expect(recent.checkAndInsert(key) == false) }
        #expect(recent.checkAndInsert("d") == false)  // evicts "a"
        #expect(recent.checkAndInsert("b") == true)
        #expect(recent.checkAndInsert("c") == true)
        #expect(recent.checkAndInsert("d") == true)
        #expect(recent.checkAndInsert("a") == false)  // back in, evicting "b"
        #expect(recent.checkAndInsert("b") == false)
    }

    @Test("a capacity below one still remembers the last key")
    func minimumCapacity() {
        let recent = RecentCacheKeys(capacity: 0)
        #expect(recent.checkAndInsert("a") == false)
        #expect(recent.checkAndInsert("a") == true)
        #expect(recent.checkAndInsert("b") == false)
        #expect(recent.checkAndInsert("a") == false)
    }
}
