//! Hostile servers: redirects are not followed, huge bodies not read whole, echoed tokens redacted.

use std::sync::atomic::Ordering;
use std::time::Duration;

use httpmock::{HttpMockRequest, HttpMockResponse, Method::POST, MockServer};
use mail_connector::{Delivery, MailTransport};
use serde_json::json;

use super::helpers::*;
use crate::support::*;

#[tokio::test]
async fn a_redirecting_graph_endpoint_is_not_followed() {
    let elsewhere = MockServer::start_async().await;
    let stolen = elsewhere.mock(|_, then| {
        then.status(202);
    });
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    let target = elsewhere.url("/collect");
    server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(307).header("location", target);
    });
    let error = transport(&settings(&server, &server.base_url()))
        .send(&email())
        .await
        .unwrap_err();
    assert_eq!(stolen.calls(), 0, "the redirect was followed");
    assert!(!error.is_transient(), "{error}");
    assert_eq!(error.delivery(), Delivery::NotSent);
    let text = format!("{error} {}", error.remedy().unwrap_or_default());
    assert!(
        text.contains("graph_endpoint") && text.contains("127.0.0.1"),
        "{text}"
    );
}

#[tokio::test]
async fn huge_graph_bodies_are_not_read_whole() {
    let login = MockServer::start_async().await;
    mock_token(&login, &token_for(&["Mail.Send"]));
    // An error answer and a success answer, each with an endless body.
    for status in [400u16, 202] {
        let (base, sent) = hostile::endless_body(status).await;
        let result = tokio::time::timeout(
            Duration::from_secs(60),
            transport(&settings(&login, &base)).send(&email()),
        )
        .await
        .expect("the send ends by itself");
        let sent = sent.load(Ordering::SeqCst);
        assert!(
            sent < 32 * 1024 * 1024,
            "HTTP {status}: the client read {sent} bytes of the body"
        );
        match status {
            // The status is the answer: the mail was accepted whatever followed it.
            202 => {
                result.unwrap();
            }
            _ => {
                let error = result.unwrap_err();
                assert!(error.to_string().contains("larger than"), "{error}");
            }
        }
    }
}

#[tokio::test]
async fn a_token_echoed_by_graph_is_redacted_everywhere() {
    let (logs, _guard) = capture_logs();
    let server = MockServer::start_async().await;
    let token = token_for(&["Mail.Send"]);
    mock_token(&server, &token);
    // A mailbox only this test sends from: the send's span names it on each of its events.
    let mailbox = crate::helpers::own_mailbox("echoed");
    // Echoes the Authorization header back, as a careless proxy or a hostile server would.
    server.mock(|when, then| {
        when.method(POST)
            .path(format!("/v1.0/users/{mailbox}/sendMail"));
        then.respond_with(|request: &HttpMockRequest| {
            let auth = request
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let body = json!({"error": {"code": "InvalidAuthenticationToken",
                "message": format!("bad header: {auth}"),
                "innerError": {"request-id": format!("id {auth}")}}});
            HttpMockResponse::builder()
                .status(401)
                .header("request-id", format!("hdr {auth}"))
                .body(body.to_string())
                .build()
        });
    });
    let mut settings = settings(&server, &server.base_url());
    settings.user_name = Some(mailbox.clone());
    let error = transport(&settings).send(&email()).await.unwrap_err();
    let printed = format!(
        "{error}\n{error:?}\n{}\n{}",
        error.remedy().unwrap_or_default(),
        logs.text()
    );
    assert!(printed.contains("bad header"), "{printed}");
    // The logs hold this send's failure, not only the error: the checks below are not vacuous.
    let sent_from = crate::helpers::sent_from(&mailbox);
    logged_line(&logs, &[&sent_from, "access token issued"]);
    logged_line(&logs, &[&sent_from, "Graph refused the access token"]);
    // The token's signature part is the tail of every echo.
    assert_no_secrets(&printed, &[&token]);
    assert_no_secrets(&printed, &["c2lnbmF0dXJl"]);
}

#[tokio::test]
async fn a_redirecting_upload_url_is_not_followed() {
    let elsewhere = MockServer::start_async().await;
    let stolen = elsewhere.mock(|_, then| {
        then.status(200).body("{}");
    });
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    server.mock(|when, then| {
        when.method(POST)
            .path("/v1.0/users/no-reply@contoso.com/messages");
        then.status(201).json_body(json!({"id": "d1"}));
    });
    let upload_url = server.url("/upload/session?authtoken=UPLOAD-CREDENTIAL");
    server.mock(|when, then| {
        when.method(POST)
            .path("/v1.0/users/no-reply@contoso.com/messages/d1/attachments/createUploadSession");
        then.status(201).json_body(json!({"uploadUrl": upload_url}));
    });
    let target = elsewhere.url("/collect");
    let put = server.mock(|when, then| {
        when.method(httpmock::Method::PUT).path("/upload/session");
        then.status(308).header("location", target);
    });
    let delete = server.mock(|when, then| {
        when.method(httpmock::Method::DELETE)
            .path("/v1.0/users/no-reply@contoso.com/messages/d1");
        then.status(204);
    });
    let big = large_email();
    let error = transport(&settings(&server, &server.base_url()))
        .send(&big)
        .await
        .unwrap_err();
    assert_eq!(stolen.calls(), 0, "the upload was redirected");
    put.assert_calls(1);
    delete.assert_calls(1);
    assert!(!error.is_transient(), "{error}");
    assert_no_secrets(&format!("{error:?}"), &["UPLOAD-CREDENTIAL"]);
}
