//! The durable queue against real databases: SQLite files and a throwaway PostgreSQL
//! cluster on loopback (tests/support/postgres.rs; it fails, never skips, when PostgreSQL is
//! not installed). Behaviours run on both stores; the fleet and crash tests run worker
//! processes (this test binary, re-executed) against a loopback Graph server.

#[path = "../support/postgres.rs"]
mod postgres;
#[path = "../support/mod.rs"]
mod support;

mod admission_race;
mod all_refused;
mod around;
mod behaviours;
mod certificates;
mod claims;
mod clock;
mod concurrency;
mod crash;
mod factory;
mod fleet;
mod held;
mod helpers;
mod lost_commit;
mod lost_enqueue;
mod mailctl;
mod opening;
mod operator_retry;
mod outage;
mod outbox;
mod proxy;
mod refusals;
mod remedies;
mod scheduled;
mod size_limit;
mod skew;
mod skewed;
mod split_race;
mod sqlite_files;
mod sqlite_processes;
mod states;
mod store_failures;
