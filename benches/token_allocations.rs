//! Allocations of a cached token read, counted by a counting global allocator (dhat's):
//! `Credentials::access_token`, `TokenProvider::token`, and `TokenProvider::ready_token` (what
//! the Graph transport asks first), for a scope whose token is cached. `cargo bench --bench token_allocations` prints allocations per read,
//! and the time of a read in a plain loop.

use std::time::{Duration, SystemTime};

use mail_connector::{AccessToken, Credentials, TokenProvider};

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

const SCOPE: &str = "https://graph.microsoft.com/.default";
const READS: u64 = 10_000;
const TIMED_READS: u32 = 1_000_000;

#[derive(Debug)]
struct OneToken;

#[async_trait::async_trait]
impl TokenProvider for OneToken {
    async fn token(&self, _scope: &str) -> mail_connector::Result<AccessToken> {
        Ok(AccessToken::new(
            "bench-token",
            SystemTime::now() + Duration::from_secs(3600),
        ))
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let credentials = Credentials::from_token_provider(OneToken);
    runtime.block_on(async {
        // Fill the cache, then count only the cached reads.
        credentials.access_token(SCOPE).await.unwrap();
        let profiler = dhat::Profiler::builder().testing().build();
        let before = dhat::HeapStats::get().total_blocks;
        for _ in 0..READS {
            std::hint::black_box(credentials.access_token(SCOPE).await.unwrap());
        }
        let access_token = dhat::HeapStats::get().total_blocks - before;
        let before = dhat::HeapStats::get().total_blocks;
        for _ in 0..READS {
            std::hint::black_box(TokenProvider::token(&credentials, SCOPE).await.unwrap());
        }
        let provider = dhat::HeapStats::get().total_blocks - before;
        let before = dhat::HeapStats::get().total_blocks;
        for _ in 0..READS {
            std::hint::black_box(TokenProvider::ready_token(&credentials, SCOPE).unwrap());
        }
        let ready = dhat::HeapStats::get().total_blocks - before;
        drop(profiler);
        // And the time of a read, in a plain loop (criterion's figure is in
        // `cargo bench --bench credentials`).
        // This thread's CPU time too: on a loaded machine the wall clock also counts the
        // time the thread waited for a core.
        let (started, cpu) = (std::time::Instant::now(), thread_cpu_ns());
        for _ in 0..TIMED_READS {
            std::hint::black_box(credentials.access_token(SCOPE).await.unwrap());
        }
        let nanos = started.elapsed().as_nanos() as f64 / TIMED_READS as f64;
        let cpu_nanos = thread_cpu_ns().saturating_sub(cpu) as f64 / f64::from(TIMED_READS);
        println!(
            "cached token read: Credentials::access_token {nanos:.0} ns ({cpu_nanos:.0} ns of CPU) \
             and {:.2} allocations per read; TokenProvider::token {:.2} (the boxed future of an \
             async-trait method); TokenProvider::ready_token {:.2}",
            access_token as f64 / READS as f64,
            provider as f64 / READS as f64,
            ready as f64 / READS as f64,
        );
    });
}

/// CPU time this thread has used, in nanoseconds (Linux; 0 elsewhere).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
