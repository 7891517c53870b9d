//! A message counts as sent only when Graph answers as it does for a message it takes:
//! 202 Accepted. Any other success status (Graph's odd 200 for a MIME message it refused, a
//! proxy's page) leaves it unknown whether the message went: uncertain, never repeated. And a
//! draft is sent only once Graph answered each attachment added to it with 201 Created.

use httpmock::{Method::DELETE, Method::POST, MockServer};
use mail_connector::{Attachment, Delivery, Email, Error, MailTransport};
use serde_json::json;

use super::draft_failures::{parts_email, with_parts};
use super::helpers::*;
use crate::support::{alive_tasks, fast_retry};

/// The error's status, code and text, checked for an uncertain send answered `status`.
fn assert_not_accepted(error: &Error, status: u16) {
    assert_eq!(error.delivery(), Delivery::Uncertain, "{error}");
    assert!(!error.is_transient(), "{error}");
    let Error::Graph {
        status: Some(got),
        code: Some(code),
        request_id,
        ..
    } = error
    else {
        panic!("not a Graph error with a status and a code: {error:?}");
    };
    assert_eq!(*got, status);
    assert_eq!(code, "UnexpectedSuccessStatus");
    assert_eq!(request_id.as_deref(), Some("req-200"));
    let text = error.to_string();
    assert!(
        text.contains(&format!("HTTP {status}")) && text.contains("202 Accepted"),
        "{text}"
    );
    assert!(text.contains("delivery is uncertain"), "{text}");
    // What an admin needs to look it up, in the text that reaches a log or the queue.
    assert!(
        text.contains(&format!("(HTTP {status} UnexpectedSuccessStatus)"))
            && text.contains("[request-id req-200]"),
        "{text}"
    );
    let remedy = error.remedy().unwrap();
    assert!(
        remedy.contains("before sending it again")
            && remedy.contains("`graph_endpoint`")
            && remedy.contains("turns Graph's 202 into 200 makes every send fail this way"),
        "{remedy}"
    );
}

#[tokio::test]
async fn a_send_mail_answered_with_another_success_than_202_is_uncertain() {
    for (status, body) in [(200u16, "<html>Signed in</html>"), (200, ""), (204, "")] {
        let server = MockServer::start_async().await;
        mock_token(&server, &token_for(&["Mail.Send"]));
        let send = server.mock(|when, then| {
            when.method(POST).path(SEND_PATH);
            then.status(status)
                .header("request-id", "req-200")
                .body(body);
        });
        let error = transport(&settings(&server))
            .send(&simple_email())
            .await
            .expect_err("a send not answered 202 was reported sent");
        send.assert_calls(1);
        assert_not_accepted(&error, status);
        let remedy = error.remedy().unwrap();
        assert!(!remedy.contains("MIME"), "not the MIME form: {remedy}");
    }
}

/// The MIME form (both bodies) too: the form Graph has been seen to answer 200 without
/// taking the message. The remedy names that cause, with the message's size, before the
/// hint about a proxy.
#[tokio::test]
async fn a_mime_send_answered_200_is_uncertain() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    let send = server.mock(|when, then| {
        when.method(POST)
            .path(SEND_PATH)
            .header("content-type", "text/plain");
        then.status(200).header("request-id", "req-200");
    });
    let email = Email::builder()
        .to("ann@example.org")
        .subject("both bodies")
        .text("text")
        .html("<p>html</p>")
        .build()
        .unwrap();
    let error = transport(&settings(&server))
        .send(&email)
        .await
        .expect_err("a MIME send answered 200 was reported sent");
    send.assert_calls(1);
    assert_not_accepted(&error, 200);
    // The remedy does not guess: a message this small is under the size at which Graph has
    // been seen to answer 200, so it names no cause and says to check before resending.
    let remedy = error.remedy().unwrap();
    assert!(!remedy.contains("probably not sent"), "{remedy}");
    assert!(remedy.contains("before sending it again"), "{remedy}");
}

/// A draft's `/send` answered 200, whether the draft was made in Graph's JSON form or from
/// MIME: uncertain, and the draft is left where it is (it may be the message Graph sent),
/// the error saying where. No deletion is started in the background either: the send
/// leaves no task behind it, and no DELETE comes.
#[tokio::test]
async fn a_drafts_send_answered_200_is_uncertain_and_keeps_the_draft() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let messages = "/v1.0/users/no-reply@contoso.com/messages";
    // The draft of the email in Graph's JSON form, and that of the email made from MIME.
    let [json_draft, mime_draft] = ["application/json", "text/plain"].map(|form| {
        server.mock(|when, then| {
            when.method(POST)
                .path(messages)
                .header("content-type", form);
            then.status(201).json_body(json!({"id": "d9"}));
        })
    });
    server.mock(|when, then| {
        when.method(POST).path(format!("{messages}/d9/attachments"));
        then.status(201).json_body(json!({"id": "a"}));
    });
    let send = server.mock(|when, then| {
        when.method(POST).path(format!("{messages}/d9/send"));
        then.status(200).header("request-id", "req-200");
    });
    // A deletion, were one started, would hold the only request slot: Graph does not answer
    // it, and it has 15 s of its own, more than the next send's deadline.
    let delete = server.mock(|when, then| {
        when.method(DELETE).path(format!("{messages}/d9"));
        then.status(204).delay(std::time::Duration::from_secs(3600));
    });
    let send_mail = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(202);
    });
    let transport = settings(&server)
        .graph_builder()
        .unwrap()
        .retry_policy(fast_retry(3))
        .send_deadline(std::time::Duration::from_secs(10))
        .max_concurrency(1)
        .build()
        .unwrap();
    // A first send fetches the token and opens the connection that the drafts' requests
    // reuse: the HTTP client's tasks for it (the connection's, its pool's) are alive from
    // now on.
    transport.send(&simple_email()).await.unwrap();
    let tasks = alive_tasks();
    // A draft made in Graph's JSON form, and one made from MIME (both bodies need it): each
    // is sent and kept the same way.
    let both_bodies = Email::builder()
        .to("ann@example.org")
        .subject("parts")
        .text("text")
        .html("<p>html</p>");
    for email in [parts_email(), with_parts(both_bodies)] {
        let error = transport
            .send(&email)
            .await
            .expect_err("a draft's send answered 200 was reported sent");
        // Read before anything else runs: on this runtime (one thread) a task the send
        // spawned runs only once the test waits, and a deletion needs Graph's answer to end.
        assert_eq!(
            alive_tasks(),
            tasks,
            "the send left a task running: a deletion of the draft was started, although the \
             draft may be the message Graph sent"
        );
        assert_not_accepted(&error, 200);
        assert!(
            error
                .to_string()
                .contains("its draft is still in the Drafts folder of `no-reply@contoso.com`"),
            "{error}"
        );
    }
    json_draft.assert_calls(1);
    mime_draft.assert_calls(1);
    send.assert_calls(2);
    // A deletion, had one been started, would run while the next send waits for Graph's
    // answer, and take the slot or queue for it (first come, first served): one of the two
    // next sends would then find no slot free before its deadline.
    for _ in 0..2 {
        transport.send(&simple_email()).await.expect(
            "a send found no free request slot: a deletion of the draft was started, \
             although the draft may be the message Graph sent",
        );
    }
    send_mail.assert_calls(3);
    delete.assert_calls(0);
}

/// An attachment added to a draft and answered with another success than 201 Created (a
/// proxy's page) may not be on the draft: the draft is not sent without it, but deleted, and
/// the message was not sent.
#[tokio::test]
async fn a_draft_whose_attachment_was_not_created_is_not_sent() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    let messages = "/v1.0/users/no-reply@contoso.com/messages";
    server.mock(|when, then| {
        when.method(POST).path(messages);
        then.status(201).json_body(json!({"id": "d8"}));
    });
    let attach = server.mock(|when, then| {
        when.method(POST).path(format!("{messages}/d8/attachments"));
        then.status(200)
            .header("request-id", "req-200")
            .body("<html>Your request is being checked</html>");
    });
    let send = server.mock(|when, then| {
        when.method(POST).path(format!("{messages}/d8/send"));
        then.status(202);
    });
    let delete = server.mock(|when, then| {
        when.method(DELETE).path(format!("{messages}/d8"));
        then.status(204);
    });
    let email = Email::builder()
        .to("ann@example.org")
        .subject("one part")
        .text("x".repeat(200_000))
        .attachment(Attachment::from_bytes("p.bin", vec![1u8; 2_900_000]))
        .build()
        .unwrap();
    let error = transport(&settings(&server))
        .send(&email)
        .await
        .expect_err("a draft whose attachment Graph did not create was sent");
    attach.assert_calls(1);
    send.assert_calls(0);
    delete.assert_calls(1);
    assert_eq!(error.delivery(), Delivery::NotSent, "{error}");
    let Error::Graph {
        status: Some(200),
        code: Some(code),
        request_id,
        ..
    } = &error
    else {
        panic!("not a Graph error with HTTP 200: {error:?}");
    };
    assert_eq!(code, "UnexpectedSuccessStatus");
    // The answer's `request-id`, for the admin to look the request up.
    assert_eq!(request_id.as_deref(), Some("req-200"));
    let text = error.to_string();
    assert!(
        text.contains("201 Created")
            && text.contains("(HTTP 200 UnexpectedSuccessStatus)")
            && text.contains("[request-id req-200]")
            && text.contains("— the mail was not sent (its draft was deleted)"),
        "{text}"
    );
}
