//! The idle reaper: pooled connections left idle past `idle_timeout` are said goodbye to
//! (QUIT) in the background, without waiting for a send; the background task ends with the
//! transport and never touches a connection a send is using.

use std::sync::Arc;
use std::time::Duration;

use mail_connector::MailTransport;
use mail_connector::smtp::SmtpTransport;

use super::helpers::*;
use crate::support;
use crate::support::smtp_server::{ServerOptions, TestServer};
use crate::support::{alive_tasks, assert_no_secrets};

/// Waits, within a deadline, until `done` holds, re-checking on each of the server's events
/// and every few milliseconds for what it does not see (the tasks alive).
async fn wait_for(server: &TestServer, done: impl Fn(&TestServer) -> bool) {
    let mut poll = tokio::time::interval(Duration::from_millis(5));
    bounded(async {
        while !done(server) {
            tokio::select! {
                () = server.wait_until(&done) => {}
                _ = poll.tick() => {}
            }
        }
    })
    .await;
}

#[tokio::test]
async fn an_idle_connection_gets_quit_without_another_send() {
    let (logs, _guard) = support::capture_logs();
    let server = TestServer::start(ServerOptions::default()).await;
    let transport = logged_in(&server)
        .idle_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    transport
        .send(&email_to(&["ann@example.org"]))
        .await
        .unwrap();
    // No further send: the reaper alone closes the connection, politely, and says so.
    bounded(server.wait_until(|s| s.quits() == 1 && s.active() == 0)).await;
    assert_eq!(server.connections(), 1);
    let logged = format!("port={} closed=1", server.port());
    wait_for(&server, |_| logs.text().contains(&logged)).await;
    assert_no_secrets(&logs.text(), &[PASSWORD]);
    // The transport goes on: the next send opens a new connection.
    transport
        .send(&email_to(&["bob@example.org"]))
        .await
        .unwrap();
    assert_eq!(transport.connections_opened(), 2);
    bounded(server.wait_until(|s| s.quits() == 2 && s.active() == 0)).await;
}

/// Dropped or closed with a connection idle and a long idle timeout: the reaper (a task on
/// the send's runtime) ends then, rather than sleeping out the timeout with the pool.
async fn reaper_ends_when(close: bool) {
    let server = TestServer::start(ServerOptions::default()).await;
    let transport = logged_in(&server)
        .idle_timeout(Duration::from_secs(3600))
        .build()
        .unwrap();
    // The server's own task, listening.
    let before = alive_tasks();
    transport
        .send(&email_to(&["ann@example.org"]))
        .await
        .unwrap();
    // The server's session of the idle connection, and the reaper.
    wait_for(&server, |_| alive_tasks() == before + 2).await;
    if close {
        transport.close().await;
    } else {
        drop(transport);
    }
    // Closed: said goodbye to by `close`; dropped: just closed.
    let quits = usize::from(close);
    wait_for(&server, |s| {
        alive_tasks() == before && s.active() == 0 && s.quits() == quits
    })
    .await;
}

#[tokio::test]
async fn the_reaper_ends_with_the_transport_dropped() {
    reaper_ends_when(false).await;
}

/// As above with the reaper on a worker thread other than the one the transport is dropped
/// on: it may wake before the pool's last strong reference is gone, and must end all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reaper_on_another_thread_ends_with_the_transport_dropped() {
    reaper_ends_when(false).await;
}

#[tokio::test]
async fn the_reaper_ends_with_the_transport_closed() {
    reaper_ends_when(true).await;
}

/// A connection taken from the pool for a send that lasts past its idle timeout is not
/// reaped under it, while the reaper closes another one that expired even later.
#[tokio::test]
async fn a_connection_in_use_is_not_reaped() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let server = TestServer::start(ServerOptions {
        gated_recipient: Some(("held@example.org".to_owned(), Arc::clone(&gate))),
        ..ServerOptions::default()
    })
    .await;
    let transport: SmtpTransport = logged_in(&server)
        .idle_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    transport
        .send(&email_to(&["ann@example.org"]))
        .await
        .unwrap();
    // The pooled connection is taken at once (well within its idle timeout) by a send that
    // the server then holds at its RCPT TO.
    let held = tokio::spawn({
        let transport = transport.clone();
        async move { transport.send(&email_to(&["held@example.org"])).await }
    });
    bounded(server.wait_until(|s| s.rcpt_commands("held@example.org") == 1)).await;
    assert_eq!(
        server.connections(),
        1,
        "the held send reused the pooled connection"
    );
    // Meanwhile a second connection carries a send, goes idle later than the first one
    // would have expired, and is reaped.
    transport
        .send(&email_to(&["bob@example.org"]))
        .await
        .unwrap();
    assert_eq!(transport.connections_opened(), 2);
    bounded(server.wait_until(|s| s.quits() == 1 && s.active() == 1)).await;
    // The connection in use was past its idle timeout all along, and is intact.
    gate.add_permits(1);
    bounded(held).await.unwrap().unwrap();
    assert_eq!(server.messages().len(), 3);
    assert_eq!(server.connections(), 2);
    // Back in the pool, it is reaped in turn.
    bounded(server.wait_until(|s| s.quits() == 2 && s.active() == 0)).await;
}

/// A server that holds each `RCPT TO:<held@example.org>` until its first semaphore gives a
/// permit, and each `QUIT` until its second does.
async fn gated_server() -> (
    TestServer,
    Arc<tokio::sync::Semaphore>,
    Arc<tokio::sync::Semaphore>,
) {
    let held = Arc::new(tokio::sync::Semaphore::new(0));
    let goodbye = Arc::new(tokio::sync::Semaphore::new(0));
    let server = TestServer::start(ServerOptions {
        gated_recipient: Some(("held@example.org".to_owned(), Arc::clone(&held))),
        gated_quit: Some(Arc::clone(&goodbye)),
        ..ServerOptions::default()
    })
    .await;
    (server, held, goodbye)
}

/// `n` sends at once through `transport`, each on a connection of its own: `server` (a
/// [`gated_server`]) holds each at its `RCPT TO` until all `n` are there, then `held` lets
/// them finish, and their connections go back to the pool.
async fn fill_pool(
    transport: &mail_connector::smtp::SmtpTransport,
    server: &TestServer,
    held: &tokio::sync::Semaphore,
    n: usize,
) {
    let sends: Vec<_> = (0..n)
        .map(|_| {
            let transport = transport.clone();
            tokio::spawn(async move { transport.send(&email_to(&["held@example.org"])).await })
        })
        .collect();
    bounded(server.wait_until(|s| s.rcpt_commands("held@example.org") == n)).await;
    held.add_permits(n);
    for send in sends {
        bounded(send).await.unwrap().unwrap();
    }
}

/// On a multi-thread runtime, the transport dropped (on the test's thread) while the reaper
/// (on a worker thread) is inside its goodbye to one expired connection: the reaper finishes
/// that goodbye, says no other, and ends; the other idle connections close with the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reaper_ends_when_the_transport_is_dropped_during_a_goodbye() {
    let (server, held, goodbye) = gated_server().await;
    let transport = logged_in(&server)
        .max_concurrency(3)
        .idle_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    // The server's own task, listening.
    let before = alive_tasks();
    fill_pool(&transport, &server, &held, 3).await;
    assert_eq!(transport.connections_opened(), 3);
    // The three connections expire; the reaper's QUIT to the first is held unanswered.
    bounded(server.wait_until(|s| s.quits() == 1)).await;
    drop(transport);
    // The two connections still in the pool closed with it, at once (not said goodbye to).
    // At most: the held goodbye gives up after a second of its own, on a slow machine before
    // this looks.
    wait_for(&server, |s| s.active() <= 1).await;
    goodbye.add_permits(3);
    // The reaper's goodbye ends, and so does the reaper, without another QUIT.
    wait_for(&server, |s| alive_tasks() == before && s.active() == 0).await;
    assert_eq!(server.quits(), 1);
    assert_eq!(server.connections(), 3);
}

/// A connection past its idle timeout that the reaper has not reached yet (it is held in its
/// goodbye to an older one) is not used by a send: the send drops it and opens a new one,
/// rather than sending on a session the server may be closing.
#[tokio::test]
async fn an_expired_connection_the_reaper_has_not_reached_is_not_used() {
    let (server, held, goodbye) = gated_server().await;
    let idle_timeout = Duration::from_millis(50);
    let transport = logged_in(&server)
        .max_concurrency(3)
        .idle_timeout(idle_timeout)
        .build()
        .unwrap();
    fill_pool(&transport, &server, &held, 2).await;
    let idle_since = tokio::time::Instant::now();
    assert_eq!(transport.connections_opened(), 2);
    // The reaper's QUIT to the older connection goes unanswered (for up to a second) ...
    bounded(server.wait_until(|s| s.quits() == 1)).await;
    // ... and the other one is past its idle timeout too (it went back to the pool before
    // the sends returned): not a wait for another task, the connection's age.
    tokio::time::sleep_until(idle_since + idle_timeout).await;
    bounded(transport.send(&email_to(&["ann@example.org"])))
        .await
        .unwrap();
    assert_eq!(
        transport.connections_opened(),
        3,
        "the expired connection was dropped, not used"
    );
    goodbye.add_permits(3);
    assert_eq!(server.messages().len(), 3);
}
