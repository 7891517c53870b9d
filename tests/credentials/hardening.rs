//! The token side under attack (issue 8): a redirecting login host, absurd token lifetimes,
//! oversized answers, error descriptions that echo the credential, and an answer cut off midway.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use httpmock::{HttpMockRequest, HttpMockResponse, Method::POST, MockServer};
use mail_connector::{ConnectorSettings, Credentials};

use crate::support::*;

fn credentials(settings: &ConnectorSettings) -> Credentials {
    settings
        .credentials_builder()
        .unwrap()
        .retry_policy(fast_retry(2))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_redirecting_token_endpoint_never_gets_the_secret_re_sent() {
    let elsewhere = MockServer::start_async().await;
    let stolen = elsewhere.mock(|_, then| {
        then.status(200).json_body(token_body("stolen", 3600));
    });
    let server = MockServer::start_async().await;
    let target = elsewhere.url("/collect");
    let redirect = server.mock(|when, then| {
        when.method(POST).path(token_path(TENANT));
        then.status(307).header("location", target);
    });
    let error = credentials(&secret_settings(&server, TENANT))
        .access_token(GRAPH_SCOPE)
        .await
        .unwrap_err();
    assert_eq!(stolen.calls(), 0, "the redirect was followed");
    redirect.assert_calls(1);
    assert!(!error.is_transient(), "{error}");
    let text = format!("{error} {}", error.remedy().unwrap_or_default());
    assert!(text.contains("authority_host"), "{text}");
    assert!(text.contains("redirect"), "{text}");
}

#[tokio::test]
async fn absurd_token_lifetimes_are_capped_not_a_panic() {
    for value in [
        "18446744073709551615",
        "9223372036854775807",
        "1e19",
        "1e300",
    ] {
        let server = MockServer::start_async().await;
        let body = format!(
            r#"{{"token_type":"Bearer","expires_in":{value},"ext_expires_in":{value},"refresh_in":{value},"access_token":"tok"}}"#
        );
        let tokens = server.mock(|when, then| {
            when.method(POST).path(token_path(TENANT));
            then.status(200)
                .header("content-type", "application/json")
                .body(body);
        });
        let credentials = credentials(&secret_settings(&server, TENANT));
        let token = credentials.access_token(GRAPH_SCOPE).await.unwrap();
        let lifetime = token
            .expires_at()
            .duration_since(SystemTime::now())
            .unwrap();
        assert!(lifetime <= Duration::from_secs(24 * 3600), "{value}");
        // Cached, not refetched, and usable again.
        credentials.access_token(GRAPH_SCOPE).await.unwrap();
        tokens.assert_calls(1);
    }
}

#[tokio::test]
async fn huge_token_answers_are_not_read_whole() {
    for status in [200u16, 400, 503] {
        let (base, sent) = hostile::endless_body(status).await;
        let mut settings = ConnectorSettings::default();
        settings.auth_mode = Some(mail_connector::AuthMode::OAuth);
        settings.oauth_client_id = Some(CLIENT_ID.into());
        settings.tenant_id = Some(TENANT.into());
        settings.client_secret = Some(SECRET.into());
        settings.authority_host = Some(base);
        let error = tokio::time::timeout(
            Duration::from_secs(60),
            settings
                .credentials_builder()
                .unwrap()
                .retry_policy(fast_retry(0))
                .build()
                .unwrap()
                .access_token(GRAPH_SCOPE),
        )
        .await
        .expect("the request ends by itself")
        .unwrap_err();
        let sent = sent.load(Ordering::SeqCst);
        assert!(
            sent < 32 * 1024 * 1024,
            "HTTP {status}: the client read {sent} bytes"
        );
        assert!(error.to_string().contains("larger than"), "{error}");
    }
}

/// Echoes the request form into `error_description`, raw and decoded.
fn echo(request: &HttpMockRequest) -> HttpMockResponse {
    let form = String::from_utf8_lossy(request.body().as_ref()).into_owned();
    let decoded: Vec<String> = url::form_urlencoded::parse(form.as_bytes())
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let body = serde_json::json!({
        "error": "invalid_client",
        "error_description": format!("AADSTS7000215: bad request {form} / {}", decoded.join("&")),
        "error_codes": [7000215],
        "trace_id": form,
        "correlation_id": decoded.join("&"),
    });
    HttpMockResponse::builder()
        .status(401)
        .header("content-type", "application/json")
        .body(body.to_string())
        .build()
}

#[tokio::test]
async fn an_echoed_secret_or_assertion_is_redacted_everywhere() {
    // A secret whose form-encoding differs from it.
    let secret = "Zx8Q~a+b/c=d&e SECRET%zz";
    let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    for certificate in [false, true] {
        let (logs, _guard) = capture_logs();
        let server = MockServer::start_async().await;
        // A token endpoint only this pass uses: the next pass (or test) is likely handed
        // the same pooled server, and its refusal would be at the same address.
        let tenant = own_tenant();
        server.mock(|when, then| {
            when.method(POST).path(token_path(&tenant));
            then.respond_with(echo);
        });
        let mut settings = match certificate {
            true => certificate_settings(&server, &tenant),
            false => secret_settings(&server, &tenant),
        };
        if !certificate {
            settings.client_secret = Some(secret.into());
        }
        let error = credentials(&settings)
            .access_token(GRAPH_SCOPE)
            .await
            .unwrap_err();
        let printed = format!(
            "{error}\n{error:?}\n{}\n{}",
            error.remedy().unwrap_or_default(),
            logs.text()
        );
        assert!(printed.contains("bad request"), "{printed}");
        assert!(printed.contains("client_id"), "{printed}");
        // The logs hold this refusal (the error alone would make the check below pass).
        logged_line(
            &logs,
            &["token request refused", &server.url(token_path(&tenant))],
        );
        assert_no_secrets(&printed, &[secret, encoded.as_str(), "SECRET"]);
        // The assertion is a JWT: its header is always `eyJ…`.
        assert_no_secrets(&printed, &["eyJ"]);
    }
}

#[tokio::test]
async fn a_login_host_with_a_refused_certificate_is_tried_once() {
    let (base, handshakes) = hostile::self_signed_tls().await;
    let mut settings = ConnectorSettings::default();
    settings.auth_mode = Some(mail_connector::AuthMode::OAuth);
    settings.oauth_client_id = Some(CLIENT_ID.into());
    settings.tenant_id = Some(TENANT.into());
    settings.client_secret = Some(SECRET.into());
    settings.authority_host = Some(base);
    let error = settings
        .credentials_builder()
        .unwrap()
        .retry_policy(fast_retry(3))
        .build()
        .unwrap()
        .access_token(GRAPH_SCOPE)
        .await
        .unwrap_err();
    assert_eq!(handshakes.load(Ordering::SeqCst), 1, "retried: {error}");
    assert!(!error.is_transient(), "{error}");
    let remedy = error.remedy().unwrap();
    for word in ["tls_ca_file", "authority_host", "clock"] {
        assert!(remedy.contains(word), "{word} missing from: {remedy}");
    }
}

#[test]
fn a_tls_ca_file_that_cannot_be_read_is_a_settings_error_that_names_it() {
    // A folder: it exists, and reading it as a file fails whoever runs the test.
    let dir = tempfile::tempdir().unwrap();
    let error = Credentials::client_secret(TENANT, CLIENT_ID, mail_connector::Secret::new(SECRET))
        .tls_ca_file(dir.path())
        .build()
        .unwrap_err();
    assert!(error.is_settings(), "{error:?}");
    let remedy = error.remedy().unwrap();
    assert!(remedy.contains("`tls_ca_file`"), "{remedy}");
}

/// A login host whose first answer is cut off after its headers (a connection reset while
/// the token is on its way): a connection failure like any other, retried — the token
/// request is safe to repeat.
#[tokio::test]
async fn a_token_answer_cut_off_midway_is_retried() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = format!("http://{}", listener.local_addr().unwrap());
    let answers = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&answers);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            // The whole request, head and form, before the answer.
            let mut request = Vec::new();
            let mut chunk = [0u8; 4096];
            while !whole_request(&request) {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&chunk[..n]),
                }
            }
            let body = token_body("after-the-cut", 3599).to_string();
            let answer = match counter.fetch_add(1, Ordering::SeqCst) {
                // Promises the whole body, sends its first bytes, and hangs up.
                0 => format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{}",
                    body.len(),
                    &body[..10]
                ),
                _ => format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                ),
            };
            let _ = stream.write_all(answer.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    let credentials = Credentials::client_secret(TENANT, CLIENT_ID, SECRET.into())
        .authority_host(host)
        .retry_policy(fast_retry(2))
        .build()
        .unwrap();
    let token = credentials.access_token(GRAPH_SCOPE).await.unwrap();
    assert_eq!(token.expose_secret(), "after-the-cut");
    assert_eq!(answers.load(Ordering::SeqCst), 2);
}

/// Whether `request` holds an HTTP/1.1 request's head and its whole `content-length` body.
fn whole_request(request: &[u8]) -> bool {
    let text = String::from_utf8_lossy(request);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    body.len() >= length
}
