//! SmtpTransport against hostile servers on loopback (issue 8): STARTTLS injection, endless
//! replies, echoed credentials, lettre's own logs. Faults (cancellation, TLS failures, a
//! silent login host, extreme builder values) are in the `faults` module.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mail_connector::{CheckStatus, Error, MailTransport, Secret, SmtpStage, SmtpTransport};

use super::helpers::*;
use crate::support::FakeTokens;
use crate::support::assert_no_secrets;
use crate::support::hostile_smtp::{self, INJECTED_CAPABILITY};
use crate::support::smtp_server::{ServerOptions, TestServer};

// ---- item 1: STARTTLS response injection ----

#[tokio::test]
async fn bytes_injected_after_the_starttls_reply_abort_the_send() {
    let server = hostile_smtp::starttls_injector().await;
    let transport = SmtpTransport::starttls("localhost")
        .port(server.port())
        .tls_ca_pem(server.ca_pem.clone())
        .basic_auth(USER, Secret::new(PASSWORD))
        .retry_policy(fast_retry())
        .build()
        .unwrap();
    let result = bounded(transport.send(&email())).await;
    let error = result.expect_err("the real server refused everything over TLS");
    assert_eq!(stage_of(&error), Some(SmtpStage::Tls), "{error:?}");
    assert!(!error.is_transient(), "{error:?}");
    assert!(error.to_string().contains("STARTTLS"), "{error}");
    assert_eq!(server.seen.connections(), 1, "an attack is not retried");
    // Nothing was sent after the plaintext STARTTLS: no AUTH, no MAIL.
    assert!(
        !server
            .seen
            .lines()
            .iter()
            .any(|l| l.starts_with("AUTH") || l.starts_with("MAIL")),
        "{:?}",
        server.seen.lines()
    );
}

#[tokio::test]
async fn check_never_shows_capabilities_injected_before_tls() {
    let server = hostile_smtp::starttls_injector().await;
    let transport = SmtpTransport::starttls("localhost")
        .port(server.port())
        .tls_ca_pem(server.ca_pem.clone())
        .build()
        .unwrap();
    let report = bounded(transport.check()).await.unwrap();
    let printed = report.to_string();
    assert!(!printed.contains(INJECTED_CAPABILITY), "{printed}");
    assert_eq!(report.status(), CheckStatus::Failed, "{printed}");
    let tls = report.steps.iter().find(|s| s.name == "tls").unwrap();
    assert_eq!(tls.status, CheckStatus::Failed, "{printed}");
}

/// The `220` to STARTTLS ends in a bare LF and the fake transcript comes in a later segment:
/// a client that reads on after the bare LF takes the transcript from the plaintext socket.
#[tokio::test]
async fn an_injection_after_a_bare_lf_reply_aborts_the_send_and_the_check() {
    let server = hostile_smtp::starttls_injector_split().await;
    let transport = SmtpTransport::starttls("localhost")
        .port(server.port())
        .tls_ca_pem(server.ca_pem.clone())
        .basic_auth(USER, Secret::new(PASSWORD))
        .retry_policy(fast_retry())
        .build()
        .unwrap();
    let error = bounded(transport.send(&email()))
        .await
        .expect_err("the real server refused everything over TLS");
    assert_eq!(stage_of(&error), Some(SmtpStage::Tls), "{error:?}");
    assert!(error.to_string().contains("STARTTLS"), "{error}");
    let report = bounded(transport.check()).await.unwrap();
    let printed = report.to_string();
    assert!(!printed.contains(INJECTED_CAPABILITY), "{printed}");
    assert_eq!(report.status(), CheckStatus::Failed, "{printed}");
}

// ---- item 5: an endless reply line ----

#[tokio::test]
async fn an_endless_reply_line_is_cut_off_early() {
    // Without a cap the client reads all 64 MiB the server offers.
    let server = hostile_smtp::endless_greeting(64 * 1024 * 1024).await;
    let transport = without_login_to(server.port());
    let error = bounded(transport.send(&email())).await.unwrap_err();
    assert!(!error.is_transient(), "{error:?}");
    assert!(error.to_string().contains("too long"), "{error}");
    // Blamed on the greeting it cut off, not on TLS (there is none here).
    assert_eq!(stage_of(&error), Some(SmtpStage::Connect), "{error:?}");
    assert_eq!(server.seen.connections(), 1, "not retried");
    // What the client accepted, plus what the loopback socket buffers held when it closed.
    let written = server.seen.bytes_written();
    assert!(
        written < 16 * 1024 * 1024,
        "the server wrote {written} bytes"
    );
}

#[tokio::test]
async fn an_endless_reply_line_over_implicit_tls_is_cut_off_early() {
    let server = hostile_smtp::endless_greeting_over_tls(64 * 1024 * 1024).await;
    let transport = SmtpTransport::implicit_tls("localhost")
        .port(server.port())
        .tls_ca_pem(server.ca_pem.clone())
        .sender(mail_connector::Mailbox::parse(USER).unwrap())
        .retry_policy(fast_retry())
        .build()
        .unwrap();
    let error = bounded(transport.send(&email())).await.unwrap_err();
    assert!(!error.is_transient(), "{error:?}");
    assert!(error.to_string().contains("too long"), "{error}");
    assert_eq!(server.seen.connections(), 1, "not retried");
    let written = server.seen.bytes_written();
    assert!(
        written < 16 * 1024 * 1024,
        "the server wrote {written} bytes"
    );
}

/// The cap is for hostile replies only: a long but well-formed one (an EHLO of 600 lines,
/// about 60 KB, below lettre's own limit of 100,000 bytes) is read, and the mail goes.
#[tokio::test]
async fn a_long_well_formed_reply_is_not_cut_off() {
    let in_data = std::sync::atomic::AtomicBool::new(false);
    let server = hostile_smtp::replier(move |command, _| {
        use std::sync::atomic::Ordering::SeqCst;
        if in_data.load(SeqCst) {
            // The message's lines get no reply; its end gets one.
            let end = command == ".";
            in_data.store(!end, SeqCst);
            return Some(if end { "250 2.0.0 queued\r\n" } else { "" }.to_owned());
        }
        match command.to_ascii_uppercase().as_str() {
            "DATA" => {
                in_data.store(true, SeqCst);
                Some("354 go ahead\r\n".to_owned())
            }
            ehlo if ehlo.starts_with("EHLO") => {
                let mut reply = String::from("250-echo\r\n");
                for i in 0..600 {
                    let padding = "v".repeat(70);
                    reply.push_str(&format!("250-X-LONG-EXTENSION-{i:04} {padding}\r\n"));
                }
                Some(reply + "250 AUTH PLAIN XOAUTH2\r\n")
            }
            _ => None,
        }
    })
    .await;
    let transport = without_login_to(server.port());
    let report = bounded(transport.send(&email())).await.unwrap();
    assert_eq!(report.recipients().count(), 1);
    assert!(
        server
            .seen
            .lines()
            .iter()
            .any(|l| l.starts_with("MAIL FROM")),
        "{:?}",
        server.seen.lines()
    );
}

// ---- item 6: credentials echoed over several reply lines ----

/// A multi-line 535 reply that echoes the AUTH line in pieces of `size` characters.
fn echo_in_pieces(size: usize) -> impl Fn(&str) -> String + Send + Sync + 'static {
    move |auth: &str| {
        let chars: Vec<char> = auth.chars().collect();
        let mut reply = String::new();
        for piece in chars.chunks(size) {
            reply.push_str(&format!(
                "535-5.7.8 {}\r\n",
                piece.iter().collect::<String>()
            ));
        }
        reply.push_str("535 5.7.8 Authentication credentials invalid\r\n");
        reply
    }
}

/// Every 12-character window of `encoded`, which must not survive in `text`.
fn assert_no_window(text: &str, encoded: &str, what: &str) {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = encoded.as_bytes();
    for window in bytes.windows(12) {
        let window = std::str::from_utf8(window).unwrap();
        assert!(
            !compact.contains(window),
            "{what} leaked ({window}): {text}"
        );
    }
}

fn printed(error: &Error) -> String {
    format!("{error} {error:?} {}", error.remedy().unwrap_or_default())
}

#[tokio::test]
async fn basic_credentials_echoed_over_several_lines_are_redacted() {
    for size in [3, 5, 7, 11] {
        let server = hostile_smtp::auth_replier(echo_in_pieces(size)).await;
        let password = "pw-7c3a9e-never-print-41";
        let transport = SmtpTransport::builder_dangerous("127.0.0.1")
            .port(server.port())
            .basic_auth(USER, Secret::new(password))
            .build()
            .unwrap();
        let error = bounded(transport.send(&email())).await.unwrap_err();
        let text = printed(&error);
        let blob = STANDARD.encode(format!("\0{USER}\0{password}"));
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        assert_no_secrets(&compact, &["never-print"]);
        // The password's part of the PLAIN blob (the user name's part is not secret).
        assert_no_window(&text, &blob[blob.len() - 28..], "PLAIN blob");
        assert_no_window(&text, &STANDARD.encode(password), "password");
    }
}

#[tokio::test]
async fn an_xoauth2_token_echoed_over_several_lines_is_redacted() {
    for size in [4, 7, 10] {
        let server = hostile_smtp::auth_replier(echo_in_pieces(size)).await;
        let token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.tok-SECRET-payload-5531.sig";
        let transport = SmtpTransport::builder_dangerous("127.0.0.1")
            .port(server.port())
            .xoauth2(USER, Arc::new(FakeTokens::new(&[token])))
            .build()
            .unwrap();
        let error = bounded(transport.send(&email())).await.unwrap_err();
        let text = printed(&error);
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        assert_no_secrets(&compact, &["tok-SECRET"]);
        let blob = STANDARD.encode(format!("user={USER}\x01auth=Bearer {token}\x01\x01"));
        assert_no_window(&text, &blob[40..], "XOAUTH2 blob");
    }
}

/// A server that takes the login, then refuses MAIL FROM with `550`, echoing the session's
/// AUTH line in pieces.
async fn echoing_auth_at_mail() -> hostile_smtp::Hostile {
    hostile_smtp::replier(|command, auth| {
        command
            .to_ascii_uppercase()
            .starts_with("MAIL")
            .then(|| echo_in_pieces(5)(auth).replace("535", "550"))
    })
    .await
}

/// The error of a send through `transport` that its server refused at MAIL FROM with `550`.
async fn refused_at_mail(transport: &SmtpTransport) -> Error {
    let error = bounded(transport.send(&email())).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::Smtp {
                stage: SmtpStage::Mail,
                code: Some(550),
                ..
            }
        ),
        "{error:?}"
    );
    error
}

#[tokio::test]
async fn credentials_echoed_after_auth_are_redacted_too() {
    let server = echoing_auth_at_mail().await;
    let password = "pw-3b9d1f-never-print-77";
    let transport = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(server.port())
        .basic_auth(USER, Secret::new(password))
        .build()
        .unwrap();
    let error = refused_at_mail(&transport).await;
    let text = printed(&error);
    let blob = STANDARD.encode(format!("\0{USER}\0{password}"));
    assert_no_window(&text, &blob[blob.len() - 28..], "PLAIN blob");
}

/// As above with XOAUTH2: the token this session logged in with is one of its secrets for
/// every later reply, not only for the reply to AUTH.
#[tokio::test]
async fn an_xoauth2_token_echoed_after_auth_is_redacted_too() {
    let server = echoing_auth_at_mail().await;
    let token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.tok-SECRET-after-auth-9081.sig";
    let transport = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(server.port())
        .xoauth2(USER, Arc::new(FakeTokens::new(&[token])))
        .build()
        .unwrap();
    let error = refused_at_mail(&transport).await;
    let text = printed(&error);
    assert!(text.contains("[redacted]"), "nothing echoed: {text}");
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    assert_no_secrets(&compact, &["tok-SECRET"]);
    let blob = STANDARD.encode(format!("user={USER}\x01auth=Bearer {token}\x01\x01"));
    assert_no_window(&text, &blob[40..], "XOAUTH2 blob");
}

// ---- item 7: lettre's own logs ----

#[tokio::test]
async fn lettre_never_logs_credentials_or_messages() {
    let (logs, _guard) = hostile_smtp::capture_all_logs();
    let password = "pw-Logged-9f2b";
    let token = "tok-Logged-4a7c";
    let server = TestServer::start(ServerOptions {
        mechanisms: vec!["PLAIN", "XOAUTH2"],
        users: vec![(USER.into(), password.into())],
        tokens: vec![token.into()],
        ..ServerOptions::default()
    })
    .await;
    let basic = SmtpTransport::starttls("127.0.0.1")
        .port(server.port())
        .tls_ca_pem(server.ca_pem.clone())
        .basic_auth(USER, Secret::new(password))
        .build()
        .unwrap();
    basic.send(&email()).await.unwrap();
    let oauth = SmtpTransport::starttls("127.0.0.1")
        .port(server.port())
        .tls_ca_pem(server.ca_pem.clone())
        .xoauth2(USER, Arc::new(FakeTokens::new(&[token])))
        .build()
        .unwrap();
    oauth.send(&email()).await.unwrap();
    assert_eq!(server.messages().len(), 2);
    // Our own events stay (this test's, by its server's port): the capture works.
    crate::support::logged_line(
        &logs,
        &["message submitted", &format!("port={} ", server.port())],
    );
    let text = logs.text();
    let plain = STANDARD.encode(format!("\0{USER}\0{password}"));
    let blob = STANDARD.encode(format!("user={USER}\x01auth=Bearer {token}\x01\x01"));
    assert_no_secrets(&text, &[password, token, &plain, &blob, "Body text 7d1e0c"]);
}

// ---- builder values that would reach the wire as they are ----

/// The one problem of a refused build, as (field, message).
fn only_problem(result: Result<SmtpTransport, Error>) -> (String, String) {
    let Err(error) = result else {
        panic!("the build must be refused")
    };
    let Error::InvalidSettings { problems, .. } = &error else {
        panic!("{error:?}")
    };
    let [problem] = problems.as_slice() else {
        panic!("{problems:?}")
    };
    assert!(!error.to_string().contains(['\r', '\n']), "{error}");
    (problem.field.clone(), problem.message.clone())
}

#[tokio::test]
async fn an_ehlo_name_that_would_add_commands_is_refused_at_build_time() {
    let server = TestServer::start(ServerOptions::default()).await;
    for (name, what) in [
        (
            "client.example\r\nMAIL FROM:<spoof@evil.example>",
            "line break",
        ),
        ("client.example\nRSET", "line break"),
        ("client.example\0", "control character"),
        ("client example", "space"),
        ("", "is empty"),
    ] {
        let (field, message) = only_problem(logged_in(&server).hello_name(name).build());
        assert_eq!(field, "hello_name", "{name:?}");
        assert!(message.contains("`hello_name`"), "{message}");
        assert!(message.contains(what), "{name:?}: {message}");
        assert!(message.contains("mail.example.org"), "the fix: {message}");
    }
    // A host name or an address literal is sent.
    for name in ["client.example.org", "[127.0.0.1]"] {
        let transport = logged_in(&server).hello_name(name).build().unwrap();
        transport.send(&email()).await.unwrap();
    }
    assert_eq!(server.messages().len(), 2);
}

#[tokio::test]
async fn a_user_name_that_would_corrupt_the_login_is_refused_at_build_time() {
    let server = TestServer::start(ServerOptions::default()).await;
    let tokens = || Arc::new(FakeTokens::new(&["tok"]));
    let cases = [
        (
            starttls(&server).xoauth2(format!("{USER}\x01auth=Bearer forged"), tokens()),
            "xoauth2",
            "'\\u{1}'",
        ),
        (
            starttls(&server).basic_auth(format!("{USER}\0admin"), Secret::new(PASSWORD)),
            "basic_auth",
            "'\\0'",
        ),
        (
            starttls(&server).basic_auth(format!("{USER}\r\n"), Secret::new(PASSWORD)),
            "basic_auth",
            "line break",
        ),
    ];
    for (builder, setter, what) in cases {
        let (field, message) = only_problem(builder.build());
        assert_eq!(field, "user_name", "{message}");
        assert!(
            message.contains(&format!("`SmtpTransportBuilder::{setter}`")),
            "{message}"
        );
        assert!(message.contains(what), "{message}");
        assert!(
            message.contains("mailbox address alone"),
            "the fix: {message}"
        );
    }
    assert_eq!(server.connections(), 0, "nothing was sent");
}

/// A plaintext transport to the hostile server on `port`, sending as [`USER`] without
/// logging in, retrying quickly.
fn without_login_to(port: u16) -> SmtpTransport {
    SmtpTransport::builder_dangerous("127.0.0.1")
        .port(port)
        .sender(mail_connector::Mailbox::parse(USER).unwrap())
        .retry_policy(fast_retry())
        .build()
        .unwrap()
}
