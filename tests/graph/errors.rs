//! Errors: uncertain outcomes are never retried; mapped Graph errors give their remedies.

use std::time::Duration;

use httpmock::{Method::POST, MockServer};
use mail_connector::{Delivery, Error, MailTransport};

use super::helpers::*;
use crate::support::*;

#[tokio::test]
async fn uncertain_outcomes_are_never_retried() {
    for status in [500u16, 502, 504] {
        let server = MockServer::start_async().await;
        mock_token(&server, &token_for(&["Mail.Send"]));
        let send = server.mock(|when, then| {
            when.method(POST).path(SEND_PATH);
            then.status(status);
        });
        let error = transport(&settings(&server))
            .send(&simple_email())
            .await
            .unwrap_err();
        send.assert_calls(1);
        assert_eq!(error.delivery(), Delivery::Uncertain, "{status}");
        assert!(
            error.to_string().contains("delivery is uncertain"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn a_timeout_after_the_request_was_written_is_uncertain() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(202).delay(Duration::from_secs(3));
    });
    let graph = settings(&server)
        .graph_builder()
        .unwrap()
        .request_timeout(Duration::from_millis(300))
        .retry_policy(fast_retry(3))
        .build()
        .unwrap();
    let error = graph.send(&simple_email()).await.unwrap_err();
    assert_eq!(error.delivery(), Delivery::Uncertain);
    assert!(error.to_string().contains("timed out"), "{error}");
    send.assert_calls(1);
}

/// Built on its own, the transport's client applies the request timeout itself (the
/// request sets none of its own): it still ends a request the server holds.
#[tokio::test]
async fn the_own_clients_request_timeout_ends_a_held_request_as_uncertain() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(202).delay(Duration::from_secs(3));
    });
    let settings = settings(&server);
    let credentials = settings.credentials_builder().unwrap().build().unwrap();
    let graph = mail_connector::GraphTransport::builder(settings.sender().unwrap(), credentials)
        .graph_endpoint(server.base_url())
        .request_timeout(Duration::from_millis(300))
        .retry_policy(fast_retry(3))
        .build()
        .unwrap();
    let error = graph.send(&simple_email()).await.unwrap_err();
    assert_eq!(error.delivery(), Delivery::Uncertain);
    assert!(error.to_string().contains("timed out"), "{error}");
    send.assert_calls(1);
}

#[tokio::test]
async fn an_unreachable_graph_is_not_sent_and_says_where_to_look() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    let mut settings = settings(&server);
    // A port nothing listens on: bind one, then free it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    settings.graph_endpoint = Some(format!("http://{closed}"));
    let error = transport(&settings)
        .send(&simple_email())
        .await
        .unwrap_err();
    assert_eq!(error.delivery(), Delivery::NotSent);
    assert!(
        error.remedy().unwrap().contains("graph_endpoint"),
        "{:?}",
        error.remedy()
    );
}

#[tokio::test]
async fn mapped_graph_errors_give_their_remedies_and_keep_request_ids() {
    let cases = [
        // The token carries Mail.Send (below): not consent, Exchange's access policies.
        (
            403,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
            "Test-ApplicationAccessPolicy",
        ),
        (
            403,
            "ErrorAccessDenied",
            "Access to OData is disabled: Blocked by tenant configured AppOnly AccessPolicy settings.",
            "application access policy",
        ),
        (
            404,
            "ErrorInvalidUser",
            "The requested user 'no-reply@contoso.com' is invalid.",
            "`user_name`",
        ),
        (
            404,
            "ResourceNotFound",
            "Resource could not be discovered.",
            "`user_name`",
        ),
        (
            404,
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
            "Exchange Online licence",
        ),
        (
            403,
            "ErrorSendAsDenied",
            "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account.",
            "Send As",
        ),
        (
            400,
            "ErrorInvalidRecipients",
            "At least one recipient isn't valid.",
            "recipient",
        ),
        (
            400,
            "ErrorMessageSizeExceeded",
            "The message exceeds the maximum supported size.",
            "MaxSendSize",
        ),
        (
            400,
            "InvalidInternetMessageHeader",
            "The internet message header name 'Foo' should start with 'x-' or 'X-'.",
            "X-",
        ),
        (
            401,
            "NoPermissionsInAccessToken",
            "The token contains no permissions, or permissions can not be understood.",
            "Grant admin consent",
        ),
    ];
    for (status, code, message, remedy) in cases {
        let server = MockServer::start_async().await;
        mock_token(&server, &token_for(&["Mail.Send"]));
        let send = server.mock(|when, then| {
            when.method(POST).path(SEND_PATH);
            then.status(status)
                .header("request-id", "req-42")
                .json_body(graph_error(code, message));
        });
        let error = transport(&settings(&server))
            .send(&simple_email())
            .await
            .unwrap_err();
        send.assert_calls(1);
        let Error::Graph {
            code: got,
            request_id,
            client_request_id,
            ..
        } = &error
        else {
            panic!("{code}: {error:?}");
        };
        assert_eq!(got.as_deref(), Some(code));
        assert_eq!(request_id.as_deref(), Some("req-42"));
        assert!(
            client_request_id
                .as_deref()
                .is_some_and(|id| id.len() == 36)
        );
        assert_eq!(error.delivery(), Delivery::NotSent, "{code}");
        assert!(!error.is_transient(), "{code}");
        let fix = error.remedy().unwrap_or_default();
        assert!(fix.contains(remedy), "{code}: {fix}");
        assert!(error.to_string().contains(code), "{error}");
        // A refused permission and a missing mailbox are the admin's to fix; a message Graph
        // will not take (400) is the caller's.
        assert_eq!(error.is_auth(), status != 400, "{code}");
    }
}

/// A redirect is never followed (it would carry the token elsewhere), and the remedy says to
/// point `graph_endpoint` at Graph itself; an answer that is not Graph's JSON (a proxy's page)
/// says to check `graph_endpoint`.
#[tokio::test]
async fn a_redirect_or_a_foreign_answer_points_at_graph_endpoint() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.status(307)
            .header("location", "https://graph.example.net/v1.0/sendMail");
    });
    let error = send_error(&server, &simple_email()).await;
    assert_eq!(error.delivery(), Delivery::NotSent, "{error}");
    let remedy = error.remedy().unwrap_or_default();
    assert!(remedy.contains("never followed"), "{remedy}");
    assert!(remedy.contains("set `graph_endpoint`"), "{remedy}");

    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send", "Mail.ReadWrite"]));
    server.mock(|when, then| {
        when.method(POST).path(MESSAGES);
        then.status(201)
            .header("content-type", "text/html")
            .body("<html><body>Proxy login</body></html>");
    });
    let error = send_error(&server, &large_email()).await;
    let remedy = error.remedy().unwrap_or_default();
    assert!(remedy.contains("not Graph's JSON"), "{error}: {remedy}");
    assert!(remedy.contains("check `graph_endpoint`"), "{remedy}");
}

/// Each attempt carries a `client-request-id` of its own, a random UUID, and the error keeps
/// the one of the attempt Graph refused: the id an admin quotes to Microsoft support finds
/// that request in Graph's logs, not the one before it, nor every request of the service.
#[tokio::test]
async fn each_attempt_has_its_own_client_request_id_and_the_error_keeps_the_refused_ones() {
    let server = MockServer::start_async().await;
    mock_token(&server, &token_for(&["Mail.Send"]));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let answers = in_sequence(vec![
        json_response(503, &graph_error("ServiceUnavailable", "Try again.")),
        json_response(
            400,
            &graph_error(
                "ErrorInvalidRecipients",
                "At least one recipient is not valid.",
            ),
        ),
    ]);
    let recorded = std::sync::Arc::clone(&seen);
    let send = server.mock(|when, then| {
        when.method(POST).path(SEND_PATH);
        then.respond_with(move |request: &httpmock::HttpMockRequest| {
            let id = request.headers()["client-request-id"]
                .to_str()
                .unwrap()
                .to_owned();
            recorded.lock().unwrap().push(id);
            answers(request)
        });
    });
    let error = transport(&settings(&server))
        .send(&simple_email())
        .await
        .unwrap_err();
    send.assert_calls(2);
    let seen = seen.lock().unwrap().clone();
    for id in &seen {
        let parsed = uuid::Uuid::parse_str(id).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(parsed.get_version_num(), 4, "not a random UUID: {id}");
    }
    assert_ne!(seen[0], seen[1], "the retry reused the first attempt's id");
    let Error::Graph {
        client_request_id, ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(client_request_id.as_deref(), Some(seen[1].as_str()));
}
