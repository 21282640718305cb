import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The CPU scheduling priority of this process's threads.
enum CPUPriority {
    /// The main thread's niceness.
    static var current: Int {
        #if os(Linux)
        Int(getpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(getpid())))
        #else
        Int(getpriority(PRIO_PROCESS, 0))
        #endif
    }

    /// Raises the niceness of every thread of this process to at least `nice`, and returns the main thread's.
    ///
    /// Linux keeps a niceness per thread, and a new thread starts with its creator's; so this goes over every
    /// thread in /proc/self/task, again until a pass finds nothing to change (a thread created meanwhile by one not
    /// yet lowered). A thread already nicer is left as it is: lowering it back needs privileges.
    @discardableResult
    static func lower(to nice: Int, logger: Logger) -> Int {
        #if os(Linux)
        let which = __priority_which_t(PRIO_PROCESS.rawValue)
        passes: for _ in 0..<8 {
            guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") else { break }
            var changed = false
            for task in tasks {
                guard let tid = id_t(task) else { continue }
                errno = 0
                let niceness = getpriority(which, tid)
                guard errno == 0, niceness < nice else { continue }  // gone, or nice enough already
                if setpriority(which, tid, Int32(nice)) == 0 {
                    changed = true
                } else if errno != ESRCH {
                    logger.warning("Could not lower a thread's CPU priority", metadata: ["nice": "\(nice)", "errno": "\(errno)"])
                    break passes
                }
            }
            if !changed { break }
        }
        #else
        if current < nice { setpriority(PRIO_PROCESS, 0, Int32(nice)) }
        #endif
        return current
    }
}
