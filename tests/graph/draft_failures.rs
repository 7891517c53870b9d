//! What a failed large-attachment send says about its draft: deleted, left behind (and
//! where), or possibly made; and that nothing sent is never called uncertain.

use httpmock::{Method::DELETE, Method::POST, Method::PUT, MockServer};
use mail_connector::{Attachment, Delivery, Email, EmailBuilder, MailTransport};
use serde_json::json;

use super::helpers::*;
use crate::support;

/// Three attachments of 1.5 MB: too large together for `sendMail`, each added by a POST.
pub(super) fn parts_email() -> Email {
    with_parts(Email::builder().to("ann@example.org").subject("parts"))
}

/// `builder`'s email with [`parts_email`]'s three attachments.
pub(super) fn with_parts(mut builder: EmailBuilder) -> Email {
    for i in 0..3u8 {
        builder = builder.attachment(Attachment::from_bytes(
            format!("p{i}.bin"),
            vec![i; 1_500_000],
        ));
    }
    builder.build().unwrap()
}

#[tokio::test]
async fn a_failure_before_the_send_says_not_sent_never_uncertain() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    mock_draft(&server);
    server.mock(|when, then| {
        when.method(POST).path(format!("{MESSAGES}/d1/attachments"));
        then.status(500);
    });
    let delete = server.mock(|when, then| {
        when.method(DELETE).path(format!("{MESSAGES}/d1"));
        then.status(204);
    });
    let error = send_error(&server, &parts_email()).await;
    delete.assert_calls(1);
    assert_eq!(error.delivery(), Delivery::NotSent);
    assert!(error.is_transient());
    let text = error.to_string();
    assert!(
        !text.contains("uncertain") && !text.contains("do not resend"),
        "{text}"
    );
    assert!(
        text.ends_with("— the mail was not sent (its draft was deleted)"),
        "{text}"
    );
}

/// The deletion's refusal is quoted with its HTTP status, and its Graph code when it has one.
#[tokio::test]
async fn a_draft_that_could_not_be_deleted_is_named_with_its_mailbox() {
    for (refusal, quoted) in [
        (
            Some(graph_error("ErrorAccessDenied", "Access is denied.")),
            "its draft could not be deleted (HTTP 403 ErrorAccessDenied",
        ),
        (None, "its draft could not be deleted (HTTP 403: "),
    ] {
        let server = MockServer::start_async().await;
        mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
        mock_refused_upload(&server, 400);
        let delete = server.mock(|when, then| {
            when.method(DELETE).path(format!("{MESSAGES}/d1"));
            let then = then.status(403);
            if let Some(body) = refusal {
                then.json_body(body);
            }
        });
        let error = send_error(&server, &large_email()).await;
        delete.assert_calls(1);
        assert_eq!(error.delivery(), Delivery::NotSent);
        let text = error.to_string();
        assert!(
            text.contains(quoted) && text.contains("Drafts folder of `no-reply@contoso.com`"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn an_uncertain_send_of_the_draft_says_where_the_draft_stays() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let (_send, delete) = draft_mocks(&server, 504, None);
    let error = send_error(&server, &parts_email()).await;
    delete.assert_calls(0);
    assert_eq!(error.delivery(), Delivery::Uncertain);
    let text = error.to_string();
    assert!(
        text.contains("delivery is uncertain")
            && text.contains("its draft is still in the Drafts folder of `no-reply@contoso.com`"),
        "{text}"
    );
}

#[tokio::test]
async fn an_unanswered_draft_creation_is_not_sent_but_may_have_left_a_draft() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let create = server.mock(|when, then| {
        when.method(POST).path(MESSAGES);
        then.status(500);
    });
    let error = send_error(&server, &parts_email()).await;
    create.assert_calls(1);
    assert_eq!(error.delivery(), Delivery::NotSent);
    assert!(error.is_transient());
    let text = error.to_string();
    assert!(!text.contains("uncertain"), "{text}");
    assert!(
        text.contains("a draft of it may have been created in the Drafts folder"),
        "{text}"
    );
    // Refused outright: no draft, and it says not sent.
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    server.mock(|when, then| {
        when.method(POST).path(MESSAGES);
        then.status(400)
            .json_body(graph_error("ErrorInvalidRequest", "no"));
    });
    let error = send_error(&server, &parts_email()).await;
    let text = error.to_string();
    assert!(text.contains(": no — the mail was not sent"), "{text}");
}

/// The upload URL is not Graph: it carries its own authorisation and lives on another host.
/// Its refusal is not the app's credentials, and its host is named when it cannot be reached.
#[tokio::test]
async fn an_upload_url_failure_names_the_session_and_its_host_not_the_apps_token() {
    let server = MockServer::start_async().await;
    let token = mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    mock_draft_uploading_to(&server, &server.url("/upload/s?authtoken=SESSION-SECRET"));
    server.mock(|when, then| {
        when.method(PUT).path("/upload/s");
        then.status(401);
    });
    let error = send_error(&server, &large_email()).await;
    token.assert_calls(1); // no new token was fetched for it
    assert!(!error.is_auth(), "{error}");
    assert_eq!(error.delivery(), Delivery::NotSent);
    let remedy = error.remedy().unwrap();
    assert!(
        remedy.contains("the upload session was refused")
            && remedy.contains("not the cause")
            && !remedy.contains("even after fetching a new one"),
        "{remedy}"
    );

    // An upload host that cannot be reached: named (host only), and the remedy says it is
    // another host than `graph_endpoint`.
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let unreachable = closed.local_addr().unwrap();
    drop(closed);
    mock_draft_uploading_to(
        &server,
        &format!("http://{unreachable}/upload/s?authtoken=SESSION-SECRET"),
    );
    let error = send_error(&server, &large_email()).await;
    let text = format!("{error} {:?}", error.remedy());
    assert!(text.contains(&format!("`{unreachable}`")), "{text}");
    assert!(
        text.contains("another host than `graph_endpoint`"),
        "{text}"
    );
    assert!(!text.contains("SESSION-SECRET"), "{text}");
}

#[tokio::test]
async fn a_refused_send_of_the_draft_says_not_sent_once() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let (_send, delete) = draft_mocks(&server, 400, None);
    let error = send_error(&server, &parts_email()).await;
    delete.assert_calls(1);
    let text = error.to_string();
    assert_eq!(text.matches("the mail was not sent").count(), 1, "{text}");
    assert!(text.contains("(its draft was deleted)"), "{text}");
}

/// A draft's `/send` and its deletion carry no body, and say so: `Content-Length: 0` and no
/// `Content-Type` (a JSON type on an empty body is a malformed request to a strict proxy).
#[tokio::test]
async fn the_drafts_send_and_its_deletion_go_without_a_body() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let mailbox = "no-reply@contoso.com";
    let messages = messages(mailbox);
    mock_draft_in(&server, mailbox);
    server.mock(|when, then| {
        when.method(POST).path(format!("{messages}/d1/attachments"));
        then.status(201).json_body(json!({"id": "a"}));
    });
    let bodiless = |method, path: String, status: u16| {
        server.mock(move |when, then| {
            when.method(method)
                .path(path)
                .header("content-length", "0")
                .header_missing("content-type");
            then.status(status);
        })
    };
    // Refused, so that the draft is deleted.
    let send = bodiless(POST, format!("{messages}/d1/send"), 400);
    let delete = bodiless(DELETE, format!("{messages}/d1"), 204);
    let error = send_error(&server, &parts_email()).await;
    send.assert_calls(1);
    delete.assert_calls(1);
    assert!(
        error.to_string().contains("(its draft was deleted)"),
        "{error}"
    );
}

/// A large message whose draft would wait out the mailbox's pause (a `Retry-After` another
/// send got) past the send deadline says once that it was not sent.
#[tokio::test]
async fn a_draft_stopped_by_the_mailboxs_pause_says_not_sent_once() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(429).header("retry-after", "3600");
    });
    let create = server.mock(|when, then| {
        when.method(POST).path(MESSAGES);
        then.status(201).json_body(json!({"id": "d4"}));
    });
    let graph = transport(&settings(&server));
    // An hour's pause for the whole mailbox, far past the send deadline.
    graph.send(&simple_email()).await.unwrap_err();
    let error = graph.send(&parts_email()).await.unwrap_err();
    create.assert_calls(0);
    assert_eq!(error.delivery(), Delivery::NotSent);
    let text = error.to_string();
    assert!(text.contains("past the send deadline"), "{text}");
    assert_eq!(text.matches("the mail was not sent").count(), 1, "{text}");
}

/// An upload host whose TLS certificate is refused (a proxy that inspects TLS): the remedy
/// names the upload host and `tls_ca_file`, not `graph_endpoint`, which was reached.
#[tokio::test]
async fn a_refused_upload_certificate_names_the_upload_host() {
    let sink = crate::support::tls_sink::start().await;
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    mock_draft_uploading_to(&server, &format!("{}/upload/1", sink.base));
    let error = send_error(&server, &large_email()).await;
    assert_eq!(error.delivery(), Delivery::NotSent, "{error}");
    let remedy = error.remedy().unwrap_or_default();
    assert!(
        remedy.contains("the upload host's TLS certificate was refused"),
        "{error}: {remedy}"
    );
    assert!(remedy.contains("`tls_ca_file`"), "{remedy}");
    assert!(!remedy.contains("graph_endpoint"), "{remedy}");
}

/// An upload URL that answers with a redirect: never followed, and the remedy says a proxy in
/// the way must let the upload host through and that the mail was not sent.
#[tokio::test]
async fn a_redirected_upload_names_the_upload_host() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    mock_draft_uploading_to(&server, &format!("{}/upload/1", server.base_url()));
    server.mock(|when, then| {
        when.method(PUT).path("/upload/1");
        then.status(307)
            .header("location", "https://upload.example.net/upload/1");
    });
    let error = send_error(&server, &large_email()).await;
    assert_eq!(error.delivery(), Delivery::NotSent, "{error}");
    let remedy = error.remedy().unwrap_or_default();
    assert!(
        remedy.contains("the upload URL answered with a redirect"),
        "{error}: {remedy}"
    );
    assert!(!remedy.contains("graph_endpoint"), "{remedy}");
}

/// Draft `d1` in `mailbox`, its upload session at `/upload/s`, and the deletion of the draft
/// answered with `deleted`: the deletion mock.
fn mock_draft_deleted_with<'a>(
    server: &'a MockServer,
    mailbox: &str,
    deleted: u16,
) -> httpmock::Mock<'a> {
    mock_draft_in(server, mailbox);
    let messages = messages(mailbox);
    let upload_url = server.url("/upload/s");
    server.mock(|when, then| {
        when.method(POST)
            .path(format!("{messages}/d1/attachments/createUploadSession"));
        then.status(201).json_body(json!({"uploadUrl": upload_url}));
    });
    server.mock(|when, then| {
        when.method(DELETE).path(format!("{messages}/d1"));
        then.status(deleted)
            .json_body(graph_error("ErrorAccessDenied", "Access is denied."));
    })
}

/// A draft deleted after a refused upload is logged as deleted, and never as left in the
/// Drafts folder (which would send an admin looking for a draft that is not there).
#[tokio::test]
async fn a_deleted_draft_is_never_logged_as_left_behind() {
    let (logs, _guard) = support::capture_logs();
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let mailbox = own_mailbox("deleted-draft");
    let delete = mock_draft_deleted_with(&server, &mailbox, 204);
    server.mock(|when, then| {
        when.method(PUT).path("/upload/s");
        then.status(400)
            .json_body(graph_error("ErrorInvalidRequest", "bad range"));
    });

    let error = transport(&settings_for(&server, &mailbox))
        .send(&large_email())
        .await
        .unwrap_err();

    delete.assert_calls(1);
    assert!(
        error.to_string().contains("(its draft was deleted)"),
        "{error}"
    );
    let ours = sent_from(&mailbox);
    support::logged_line(
        &logs,
        &[&ours, "deleted the draft of a message that was not sent"],
    );
    let text = logs.text();
    let left = text
        .lines()
        .find(|line| line.contains(&ours) && line.contains("left in the Drafts folder"));
    assert!(left.is_none(), "{left:?}");
}

/// A file that changed size since it was attached fails the send with an error that has no
/// room to say where its draft is; when the draft cannot be deleted either, the log says
/// so, naming the mailbox whose Drafts folder holds it.
#[tokio::test]
async fn a_draft_left_by_an_error_outside_graph_is_named_in_the_log() {
    let (logs, _guard) = support::capture_logs();
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let mailbox = own_mailbox("left-draft");
    let delete = mock_draft_deleted_with(&server, &mailbox, 403);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    std::fs::write(&path, vec![7u8; 5_000_000]).unwrap();
    let email = Email::builder()
        .to("ann@example.org")
        .attachment(Attachment::from_path(&path).unwrap())
        .build()
        .unwrap();
    std::fs::write(&path, b"shorter now").unwrap();

    let error = transport(&settings_for(&server, &mailbox))
        .send(&email)
        .await
        .unwrap_err();

    delete.assert_calls(1);
    assert_eq!(error.delivery(), Delivery::NotSent);
    assert!(error.to_string().contains("changed size"), "{error}");
    support::logged_line(
        &logs,
        &[
            &sent_from(&mailbox),
            "its draft could not be deleted (HTTP 403 ErrorAccessDenied",
            &format!("delete it from the Drafts folder of `{mailbox}`"),
        ],
    );
}

/// Deleting an unsent draft is safe to repeat: a deletion whose answer never came (the
/// request timed out) or that Graph failed with a 500 is tried again, and the draft does not
/// stay behind in the mailbox's Drafts folder.
#[tokio::test]
async fn a_deletion_unanswered_or_failed_by_graph_is_tried_again_and_the_draft_goes() {
    for unanswered in [true, false] {
        let server = MockServer::start_async().await;
        mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
        let first_delete = server.mock(|when, then| {
            when.method(DELETE).path(format!("{MESSAGES}/d2"));
            match unanswered {
                // Longer than the request timeout below: an answer that never came.
                true => then.status(204).delay(std::time::Duration::from_secs(60)),
                false => then
                    .status(500)
                    .json_body(graph_error("InternalServerError", "Try again.")),
            };
        });
        first_delete.up_to_n_times(1);
        let (send, delete) = draft_mocks(&server, 400, None);
        let graph = settings(&server)
            .graph_builder()
            .unwrap()
            // Ten seconds: only the held deletion spends them, not the other requests of the
            // send on a loaded machine.
            .request_timeout(std::time::Duration::from_secs(10))
            .retry_policy(crate::support::fast_retry(3))
            .build()
            .unwrap();
        let error = graph.send(&parts_email()).await.unwrap_err();
        send.assert_calls(1);
        first_delete.assert_calls(1);
        delete.assert_calls(1);
        assert_eq!(error.delivery(), Delivery::NotSent, "{error}");
        let text = error.to_string();
        assert!(
            text.contains("(its draft was deleted)"),
            "{unanswered}: {text}"
        );
    }
}

/// An upload host whose refusal quotes the upload URL back: the URL is a credential of its
/// own (no bearer token goes with it), so the error keeps the refusal but not the URL's
/// credential, which would let anyone who reads the error upload to that draft.
#[tokio::test]
async fn an_upload_refusal_quoting_its_url_keeps_the_urls_credential_out_of_the_error() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let upload_url = server.url("/upload/s?authtoken=SESSION-SECRET-quoted");
    mock_draft_uploading_to(&server, &upload_url);
    server.mock(|when, then| {
        when.method(PUT).path("/upload/s");
        then.status(400).json_body(graph_error(
            "ErrorInvalidRequest",
            &format!("The request to {upload_url} is not valid."),
        ));
    });
    let error = send_error(&server, &large_email()).await;
    assert_eq!(error.delivery(), Delivery::NotSent);
    let text = format!("{error}\n{error:?}\n{:?}", error.remedy());
    assert!(text.contains("is not valid"), "{text}");
    assert!(!text.contains("SESSION-SECRET-quoted"), "{text}");
}
