import Foundation

/// A task executor that runs every job on a thread of its own, never on the cooperative pool.
///
/// End-to-end tests block: they wait for child processes, sleep between polls, call libcurl
/// and the sqlite3 shell. On the cooperative pool (one thread per core, two here) two such
/// tests side by side would starve every async test of threads. A task that prefers this
/// executor (`withTaskExecutorPreference`) blocks only threads made for it, so the suite can
/// run in parallel. Written by hand because neither Foundation nor Dispatch offers a task
/// executor, and Dispatch's concurrent queues share a pool as narrow as the cooperative one
/// on Linux (non-overcommitting), so a blocked job there would hold back the others.
public final class ThreadPerJobExecutor: TaskExecutor {
    public static let shared = ThreadPerJobExecutor()

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        let thread = Thread { job.runSynchronously(on: executor) }
        // 8 MiB, as the main thread has, whatever `ulimit -s` gives new threads: deep enough
        // for the SQLite, JSON and regex work a test does.
        thread.stackSize = 8 << 20
        thread.start()
    }
}
