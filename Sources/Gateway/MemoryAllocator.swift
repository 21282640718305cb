#if canImport(CJemalloc)
import CJemalloc
#endif

/// The allocator behind this process's `malloc`, named in each role's startup line (like its librdkafka), so that
/// a build or an image that lost jemalloc shows at once.
enum MemoryAllocator {
    static var description: String {
        #if canImport(CJemalloc)
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 256) { buffer in
            llmgw_allocator_describe(buffer.baseAddress!, buffer.count)
            return String(cString: buffer.baseAddress!)
        }
        #else
        "the platform's malloc"
        #endif
    }
}
