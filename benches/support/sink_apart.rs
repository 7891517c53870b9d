//! The bench's CPU accounting, and the loopback sink on a thread of its own so that the
//! client's CPU can be told from the sink's.
//!
//! By default the sink shares the client's runtime, and CPU is the whole process's: the sink
//! then also pays for what the client sends (a header more is encoded by the client and
//! decoded by the sink). With the sink apart, its one thread is named [`SINK_THREAD`] and
//! [`cpu_ns`] tells its CPU from everyone else's.

use std::future::Future;

/// The name of the sink's thread when it runs apart (at most 15 bytes: Linux's limit).
pub const SINK_THREAD: &str = "graph-hot-sink";

/// CPU time used so far, in nanoseconds: by every thread of this process, and by the
/// sink's thread among them. Summed from `/proc/self/task/*/schedstat`; zero where there
/// is no `/proc`.
pub fn cpu_ns() -> (u64, u64) {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return (0, 0);
    };
    let (mut all, mut sink) = (0, 0);
    for task in tasks.flatten() {
        let path = task.path();
        let Some(ns) = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        else {
            continue;
        };
        all += ns;
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if name.trim_end() == SINK_THREAD {
            sink += ns;
        }
    }
    (all, sink)
}

/// A runtime of one thread, named [`SINK_THREAD`], for the sinks; dropped without waiting
/// for their tasks (they serve until the process ends).
pub struct SinkRuntime(Option<tokio::runtime::Runtime>);

impl SinkRuntime {
    pub fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(SINK_THREAD)
            .enable_all()
            .build()
            .unwrap();
        Self(Some(runtime))
    }

    /// Runs `start` (a sink's start, which spawns its tasks on the runtime it runs on) on
    /// this runtime, from a task of another one.
    pub async fn start<T: Send + 'static>(
        &self,
        start: impl Future<Output = T> + Send + 'static,
    ) -> T {
        let runtime = self.0.as_ref().unwrap();
        runtime.spawn(start).await.unwrap()
    }
}

impl Drop for SinkRuntime {
    fn drop(&mut self) {
        // Dropping a runtime from async code would panic; this does not wait.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}
