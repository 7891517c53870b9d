//! The PostgreSQL store's one clock — the database server's — and the one conversion from a
//! worker's clock to it and back.
//!
//! Workers' clocks disagree; the server's is the same for all of them. So every time the
//! store writes or compares is on the server's clock, and a time a worker hands over (a
//! retry time, a lease's end, a not-before time) is stored as the server's now plus that
//! time's distance from the worker's now: a retry "in 30 s" is due 30 s after the server's
//! now, however far the worker's clock is off. The worker's now is the `now` the store is
//! given with the time (a claim's, a finish's, an enqueued message's `created_at`, an
//! operator's), else this machine's clock read when the call is made (`extend`, `pause`,
//! `purge`, `pending`). A time read back for a worker (when to look again, since when
//! retries count) is converted back the same way.

use std::time::{Duration, SystemTime};

use sqlx::{Executor, Postgres};

/// The server's clock, in milliseconds since the Unix epoch: the one clock every worker's
/// leases, rate windows, attempt stamps and due times are measured by, whatever the
/// workers' own clocks say.
pub(super) const SERVER_NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// How far `at` lies from the worker's `now`, in milliseconds (negative before it): what a
/// time on the worker's clock means on any other. Every worker time the store writes goes
/// through here: as `{SERVER_NOW} + distance` in one statement, or through [`Clocks`].
/// Bounded to a quarter of `i64`'s range (tens of millions of years), so that the
/// server's addition never overflows its `bigint` whatever time a caller hands over.
pub(super) fn from_now(at: SystemTime, now: SystemTime) -> i64 {
    const FAR: i64 = i64::MAX / 4;
    let ms = |d: Duration| i64::try_from(d.as_millis()).map_or(FAR, |ms| ms.min(FAR));
    match at.duration_since(now) {
        Ok(ahead) => ms(ahead),
        Err(behind) => -ms(behind.duration()),
    }
}

/// One reading of the server's clock, paired with the worker's now it stands for, to
/// convert several times by one reading (all the times one transaction writes agree).
#[derive(Debug, Clone, Copy)]
pub(super) struct Clocks {
    server: i64,
    worker: SystemTime,
}

impl Clocks {
    /// Reads the server's clock on `conn` for a worker whose clock reads `worker` now.
    pub(super) async fn read<'c>(
        conn: impl Executor<'c, Database = Postgres>,
        worker: SystemTime,
    ) -> Result<Self, sqlx::Error> {
        let (server,): (i64,) = sqlx::query_as(&format!("SELECT {SERVER_NOW}"))
            .fetch_one(conn)
            .await?;
        Ok(Self { server, worker })
    }

    /// The server's now (ms).
    pub(super) fn now(self) -> i64 {
        self.server
    }

    /// A time on the worker's clock, on the server's (ms): the same distance from now.
    pub(super) fn to_server(self, at: SystemTime) -> i64 {
        self.server.saturating_add(from_now(at, self.worker))
    }

    /// A time on the server's clock (ms), on the worker's: the same distance from now.
    pub(super) fn to_worker(self, at: i64) -> SystemTime {
        let distance = Duration::from_millis(at.saturating_sub(self.server).unsigned_abs());
        let moved = if at >= self.server {
            self.worker.checked_add(distance)
        } else {
            self.worker.checked_sub(distance)
        };
        // Only a time hundreds of millions of years away overflows: keep the worker's now.
        moved.unwrap_or(self.worker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_time_keeps_its_distance_from_now_on_the_server_s_clock() {
        let worker = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000);
        // The server's clock is 10 minutes behind the worker's.
        let clocks = Clocks {
            server: 1_999_400_000,
            worker,
        };
        let in_30_s = worker + Duration::from_secs(30);
        assert_eq!(clocks.to_server(in_30_s), 1_999_430_000);
        assert_eq!(clocks.to_server(worker), clocks.now());
        let ago = worker - Duration::from_millis(1_500);
        assert_eq!(clocks.to_server(ago), 1_999_398_500);
        // And back.
        assert_eq!(clocks.to_worker(1_999_430_000), in_30_s);
        assert_eq!(clocks.to_worker(1_999_398_500), ago);
        assert_eq!(from_now(ago, worker), -1_500);
        assert_eq!(from_now(in_30_s, worker), 30_000);
    }

    #[test]
    fn extreme_times_saturate_instead_of_overflowing() {
        let worker = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000);
        let clocks = Clocks {
            server: i64::MAX - 5,
            worker,
        };
        assert_eq!(clocks.to_server(worker + Duration::from_secs(60)), i64::MAX);
        // A distance too large for the server's `bigint` arithmetic is bounded first.
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::MAX >> 2);
        assert_eq!(from_now(far, worker), i64::MAX / 4);
        assert_eq!(from_now(worker, far), -(i64::MAX / 4));
        // Whatever the stored value, converting it back never panics.
        for at in [i64::MIN, -1, 0, i64::MAX] {
            let _ = clocks.to_worker(at);
        }
    }
}
