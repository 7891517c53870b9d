//! The connection pool: reuse, replacement and the connection limit.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use mail_connector::{MailTransport, RetryPolicy, Secret};

use super::helpers::*;
use crate::support::smtp_server::{ServerOptions, TestServer};

#[tokio::test]
async fn connections_are_reused_across_sends() {
    let server = TestServer::start(ServerOptions::default()).await;
    let transport = basic_settings(&server).build().unwrap();
    for _ in 0..5 {
        transport
            .send(&simple_email("ann@example.org"))
            .await
            .unwrap();
    }
    assert_eq!(server.messages().len(), 5);
    assert_eq!(server.connections(), 1);
    assert_eq!(server.auths().len(), 1);
}

/// A transport logged in to `server` that never retries: what a test sees is not the retry
/// loop's doing.
fn without_retries(server: &TestServer) -> mail_connector::smtp::SmtpTransport {
    starttls(server)
        .basic_auth(USER, Secret::new(PASSWORD))
        .retry_policy(RetryPolicy {
            max_retries: 0,
            ..mail_connector::smtp::default_retry_policy()
        })
        .build()
        .unwrap()
}

/// A server closes a pooled connection silently, or with a parting reply the next send reads
/// as the answer to its `MAIL FROM` — Exchange Online answers one left idle `451 4.7.0` and
/// closes it. Not a refusal of that send: a new connection carries it, without a retry.
#[tokio::test]
async fn a_connection_closed_by_the_server_is_replaced_transparently() {
    for farewell in [
        None,
        Some("451 4.7.0 Timeout waiting for client input"),
        Some("421 4.4.2 smtp.example.org Error: timeout exceeded"),
    ] {
        let server = TestServer::start(ServerOptions {
            close_after_message: farewell.is_none(),
            farewell_after_message: farewell.map(str::to_owned),
            ..ServerOptions::default()
        })
        .await;
        let transport = without_retries(&server);
        for _ in 0..3 {
            if let Err(error) = transport.send(&simple_email("ann@example.org")).await {
                panic!("after {farewell:?}: {error}");
            }
        }
        assert_eq!(server.messages().len(), 3, "{farewell:?}");
        assert_eq!(server.connections(), 3, "{farewell:?}");
        assert_eq!(transport.connections_opened(), 3, "{farewell:?}");
    }
}

/// A temporary refusal of `MAIL FROM` on a pooled connection that stays open is the
/// server's answer to this send, not a farewell: it is not hidden by another connection.
#[tokio::test]
async fn a_temporary_refusal_on_a_pooled_connection_is_reported() {
    let server = TestServer::start(ServerOptions {
        transient_reply: "451 4.3.2 System not accepting network messages".into(),
        ..ServerOptions::default()
    })
    .await;
    let transport = without_retries(&server);
    transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap();
    server.refuse_next_mail_from(1);
    let error = transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            mail_connector::Error::Smtp {
                code: Some(451),
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(transport.connections_opened(), 1);
}

/// A transport without retries that sent one message to `server` and then had a message to
/// `nobody@example.org` refused for good on the pooled connection; that refusal.
async fn refused_on_a_pooled_connection(
    server: &TestServer,
) -> (mail_connector::smtp::SmtpTransport, mail_connector::Error) {
    let transport = without_retries(server);
    transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap();
    let error = transport
        .send(&simple_email("nobody@example.org"))
        .await
        .unwrap_err();
    assert!(!error.is_transient(), "{error:?}");
    (transport, error)
}

/// A permanent refusal on a pooled connection whose server then answers the client's `RSET`
/// with `421` (closing the session) is this send's answer, not a farewell to an idle
/// connection: reported as it is, and not tried again on a new connection.
#[tokio::test]
async fn a_refusal_on_a_pooled_connection_the_server_then_closes_is_reported() {
    let server = TestServer::start(ServerOptions {
        refused: vec!["nobody@example.org".into()],
        refused_reply: "550 5.1.1 User unknown\r\n421 4.7.0 Too many errors, closing".into(),
        ..ServerOptions::default()
    })
    .await;
    let (transport, error) = refused_on_a_pooled_connection(&server).await;
    assert!(error.to_string().contains("5.1.1"), "{error}");
    assert_eq!(server.rcpt_commands("nobody@example.org"), 1, "{error:?}");
    assert_eq!(transport.connections_opened(), 1);
}

/// A refusal the server gave on a pooled connection that stays open (here every recipient
/// refused) leaves the connection fit for the next send: it goes back to the pool rather
/// than being closed and dialled again.
#[tokio::test]
async fn a_pooled_connection_that_saw_a_refusal_is_used_again() {
    let server = TestServer::start(ServerOptions {
        refused: vec!["nobody@example.org".into()],
        ..ServerOptions::default()
    })
    .await;
    let (transport, _refusal) = refused_on_a_pooled_connection(&server).await;
    transport
        .send(&simple_email("bob@example.org"))
        .await
        .unwrap();
    assert_eq!(server.messages().len(), 2);
    assert_eq!(server.connections(), 1);
    assert_eq!(transport.connections_opened(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_sends_stay_within_the_connection_limit() {
    for limit in [3usize, 1] {
        let server = TestServer::start(ServerOptions::default()).await;
        let transport = Arc::new(
            starttls(&server)
                .basic_auth(USER, Secret::new(PASSWORD))
                .max_concurrency(limit)
                .build()
                .unwrap(),
        );
        let sends: Vec<_> = (0..50)
            .map(|i| {
                let transport = transport.clone();
                tokio::spawn(async move {
                    transport
                        .send(&simple_email(&format!("user{i}@example.org")))
                        .await
                })
            })
            .collect();
        for send in sends {
            send.await.unwrap().unwrap();
        }
        assert_eq!(server.messages().len(), 50);
        assert!(
            server.max_active() <= limit,
            "{} simultaneous connections with a limit of {limit}",
            server.max_active()
        );
        assert!(server.connections() <= limit);
        assert!(transport.connections_opened() <= limit as u64);
    }
}

/// async_trait allocates each send's whole future; within a kibibyte, glibc serves it from
/// its per-thread cache (requests of up to 1,032 bytes) rather than its slow path.
#[tokio::test]
async fn the_future_each_send_allocates_stays_within_a_kibibyte() {
    let server = TestServer::start(ServerOptions::default()).await;
    let transport = basic_settings(&server).build().unwrap();
    let email = simple_email("ann@example.org");
    // Made, never polled: nothing is sent.
    let send = transport.send(&email);
    let size = std::mem::size_of_val(&*send);
    assert!(
        size <= 1024,
        "an SMTP send's future is {size} bytes; keep large or rare state out of line"
    );
}

/// A server that says goodbye to an idle connection (`451 4.7.0`) and does not close it:
/// the next send's `MAIL FROM` reads the farewell, so each reply after it would be one
/// behind (its RSET reads the MAIL reply, and the next send would take the reply to its
/// DATA for the reply to its message). Such a connection is never used again: the send
/// goes on a new one, and a refusal of the data is reported, never taken for acceptance.
#[tokio::test]
async fn a_pooled_connection_answered_out_of_turn_is_not_used_again() {
    let server = TestServer::start(ServerOptions {
        unsolicited_after_message: Some("451 4.7.0 Timeout waiting for client input".into()),
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server).build().unwrap();
    transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap();
    // The next message's data is refused once (then taken at the retry).
    server.state.transient_data_left.store(1, Ordering::SeqCst);
    for _ in 0..2 {
        transport
            .send(&simple_email("ann@example.org"))
            .await
            .unwrap();
    }
    assert_eq!(server.state.rejected_data.load(Ordering::SeqCst), 1);
    assert_eq!(
        server.messages().len(),
        3,
        "each send reported sent arrived"
    );
}

/// Pooled connections that died silently while idle (a NAT or firewall forgot them all at
/// once; no reset): the first reply on one is waited for no longer than the connect timeout,
/// then the others, idle as long, are dropped unasked and the send goes on a new connection
/// instead of waiting out its deadline and failing.
#[tokio::test]
async fn pooled_connections_that_died_silently_are_replaced_after_the_connect_timeout() {
    let server = TestServer::start(ServerOptions {
        silent_after_message: true,
        hold_replies: Some(std::time::Duration::from_millis(300)),
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server)
        .max_concurrency(3)
        .connect_timeout(std::time::Duration::from_secs(3))
        .send_deadline(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    // Three at once: three pooled connections, each gone silent after its message.
    let email = simple_email("ann@example.org");
    let send = || transport.send(&email);
    let (a, b, c) = tokio::join!(send(), send(), send());
    for sent in [a, b, c] {
        sent.unwrap();
    }
    assert_eq!(transport.connections_opened(), 3);
    send().await.unwrap();
    assert_eq!(server.messages().len(), 4);
    assert_eq!(transport.connections_opened(), 4);
    assert_eq!(
        server.state.ignored_lines.load(Ordering::SeqCst),
        1,
        "one MAIL FROM went to a dead connection; the others were dropped unasked"
    );
}

/// With a send deadline shorter than the connect timeout, a dead pooled connection is given
/// half the time left, so that a new connection still has the rest.
#[tokio::test]
async fn a_dead_pooled_connection_leaves_time_for_a_new_one() {
    let server = TestServer::start(ServerOptions {
        silent_after_message: true,
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server)
        .connect_timeout(std::time::Duration::from_secs(60))
        .send_deadline(std::time::Duration::from_secs(6))
        .build()
        .unwrap();
    for _ in 0..2 {
        transport
            .send(&simple_email("ann@example.org"))
            .await
            .unwrap();
    }
    assert_eq!(transport.connections_opened(), 2);
}

/// A pooled connection past its idle time is said goodbye to in the background, and a
/// server gone silent (as a NAT that forgot the connection) holds that goodbye for a moment
/// only: the QUIT goes unanswered, the connection is closed anyway, and sends go on.
#[tokio::test]
async fn an_expired_connection_to_a_silent_server_is_closed_after_a_short_wait() {
    let server = TestServer::start(ServerOptions {
        silent_after_message: true,
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server)
        .idle_timeout(std::time::Duration::from_millis(50))
        .max_concurrency(1)
        .build()
        .unwrap();
    transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap();
    // The QUIT arrived and was ignored; the connection was closed all the same.
    bounded(
        server.wait_until(|s| s.state.ignored_lines.load(Ordering::SeqCst) == 1 && s.active() == 0),
    )
    .await;
    // The one connection permit was given back: the next send goes through.
    bounded(transport.send(&simple_email("ann@example.org")))
        .await
        .unwrap();
    assert_eq!(transport.connections_opened(), 2);
}

/// A send its caller stopped waiting for during the data goes on, and its end is logged:
/// here it was delivered after all, which the caller (told "uncertain") could not know.
#[tokio::test]
async fn a_send_abandoned_during_the_data_logs_how_it_ended() {
    let (logs, _guard) = crate::support::capture_logs();
    let answer = Arc::new(tokio::sync::Semaphore::new(0));
    let server = TestServer::start(ServerOptions {
        gated_data_end: Some(Arc::clone(&answer)),
        ..ServerOptions::default()
    })
    .await;
    let transport = logged_in(&server).max_concurrency(1).build().unwrap();
    let email = email_to(&["abandoned@example.org", "also-abandoned@example.org"]);
    let caller = tokio::spawn({
        let transport = transport.clone();
        async move { transport.send(&email).await }
    });
    // The data arrived whole: the caller gives up while the server holds its answer, which
    // comes only then (and the next send's too).
    server.wait_for_data_ends(1).await;
    caller.abort();
    let _ = caller.await;
    answer.add_permits(2);
    // With one connection allowed, the next send starts only once the abandoned one ended.
    transport
        .send(&simple_email("ann@example.org"))
        .await
        .unwrap();
    assert_eq!(server.messages().len(), 2);
    // This send's line (its server's port), not another test's abandoned send.
    crate::support::logged_line(
        &logs,
        &[
            &format!("port={} ", server.port()),
            // And how many got it (the event's field, after its message; the send's span
            // names its recipients too, before it).
            "a send its caller stopped waiting for was delivered after all recipients=2",
        ],
    );
}

/// A send its caller stopped waiting for that then reaches the send deadline is logged by
/// what had happened by then: held at its recipient, it was not delivered; held after its
/// data was written, it may have been (an operator must look before sending it again).
#[tokio::test]
async fn an_abandoned_send_that_reaches_its_deadline_logs_whether_its_data_was_written() {
    const HELD: &str = "held@example.org";
    let (logs, _guard) = crate::support::capture_logs();
    for after_data in [false, true] {
        // Never given a permit: the server holds its answer for good.
        let never = Arc::new(tokio::sync::Semaphore::new(0));
        let server = TestServer::start(ServerOptions {
            gated_recipient: (!after_data).then(|| (HELD.to_owned(), Arc::clone(&never))),
            gated_data_end: after_data.then(|| Arc::clone(&never)),
            ..ServerOptions::default()
        })
        .await;
        // Ten seconds, so that only the held answer can spend them on a loaded machine.
        let transport = logged_in(&server)
            .send_deadline(std::time::Duration::from_secs(10))
            .build()
            .unwrap();
        // Only what is logged from here on: a port is used again once its server is gone.
        let mark = logs.written();
        let caller = tokio::spawn({
            let transport = transport.clone();
            async move { transport.send(&simple_email(HELD)).await }
        });
        bounded(async {
            match after_data {
                true => server.wait_for_data_ends(1).await,
                false => server.wait_until(|s| s.rcpt_commands(HELD) == 1).await,
            }
        })
        .await;
        caller.abort();
        let _ = caller.await;
        // This send's line (its server's port), not another test's.
        let line = crate::support::logged_line_within(
            std::time::Duration::from_secs(60),
            &logs,
            mark,
            &[
                &format!("port={} ", server.port()),
                "a send its caller stopped waiting for reached the send deadline",
            ],
        )
        .await;
        assert_eq!(
            line.contains("it may have been delivered"),
            after_data,
            "{line}"
        );
        assert_eq!(
            line.contains("and was not delivered"),
            !after_data,
            "{line}"
        );
    }
}
