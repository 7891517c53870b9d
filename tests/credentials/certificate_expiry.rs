//! `check` reads the client certificate's notAfter: a warning within 30 days, a failure once
//! it has passed, ok otherwise. A private key of another certificate is refused at build.

use httpmock::MockServer;
use mail_connector::{CheckStatus, CheckStep, Credentials};
use time::{Duration, OffsetDateTime};

use super::federated::recording_endpoint;
use crate::support::*;

/// A certificate for the fixture key, valid until `not_after`, written to `dir`.
fn certificate_until(dir: &std::path::Path, not_after: OffsetDateTime) -> std::path::PathBuf {
    let key_pem = std::fs::read_to_string(fixture("test-client.key")).unwrap();
    let key = rcgen::KeyPair::from_pem_and_sign_algo(&key_pem, &rcgen::PKCS_RSA_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["mail-connector-test".to_owned()]).unwrap();
    params.not_before = OffsetDateTime::now_utc() - Duration::days(400);
    params.not_after = not_after;
    let certificate = params.self_signed(&key).unwrap();
    let path = dir.join("client.pem");
    std::fs::write(&path, certificate.pem()).unwrap();
    path
}

/// The `certificate expiry` step for a certificate valid until `not_after`.
async fn expiry_step(not_after: OffsetDateTime) -> (CheckStep, Vec<CheckStep>, String) {
    let server = MockServer::start_async().await;
    recording_endpoint(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let certificate = certificate_until(dir.path(), not_after);
    let credentials = Credentials::client_certificate(
        TENANT,
        CLIENT_ID,
        &certificate,
        fixture("test-client.key"),
    )
    .authority_host(server.base_url())
    .build()
    .unwrap();
    let steps = credentials.check_steps(GRAPH_SCOPE, &[]).await;
    let step = steps
        .iter()
        .find(|s| s.name == "certificate expiry")
        .cloned()
        .unwrap_or_else(|| panic!("no certificate expiry step in {steps:?}"));
    (step, steps, certificate.display().to_string())
}

#[tokio::test]
async fn a_certificate_expiring_in_ten_days_warns() {
    let not_after = OffsetDateTime::now_utc() + Duration::days(10) + Duration::hours(1);
    let (step, steps, path) = expiry_step(not_after).await;
    assert_eq!(step.status, CheckStatus::Warning, "{step:?}");
    assert!(step.detail.contains("in 10 days"), "{}", step.detail);
    assert!(
        step.detail.contains(&not_after.date().to_string()),
        "{}",
        step.detail
    );
    let remedy = step.remedy.unwrap();
    assert!(remedy.contains("client_certificate_file"), "{remedy}");
    // Which credential, and from where.
    let credential = steps.iter().find(|s| s.name == "credential").unwrap();
    assert!(
        credential.detail.contains("certificate") && credential.detail.contains(&path),
        "{}",
        credential.detail
    );
    assert!(steps.iter().all(|s| s.name != "secret expiry"), "{steps:?}");
}

#[tokio::test]
async fn an_expired_certificate_fails() {
    let (step, _, _) = expiry_step(OffsetDateTime::now_utc() - Duration::days(3)).await;
    assert_eq!(step.status, CheckStatus::Failed, "{step:?}");
    assert!(step.detail.contains("expired"), "{}", step.detail);
    assert!(step.remedy.unwrap().contains("Certificates & secrets"));
}

#[tokio::test]
async fn a_certificate_valid_for_a_year_is_ok() {
    let (step, _, _) = expiry_step(OffsetDateTime::now_utc() + Duration::days(365)).await;
    assert_eq!(step.status, CheckStatus::Ok, "{step:?}");
    assert!(step.remedy.is_none());
}

/// A renewed certificate next to the old one's private key (or two files that were never a
/// pair): every assertion would be refused by Entra ID, so the credentials are not built,
/// and the error names both files — in PKCS#8 and PKCS#1 alike.
#[test]
fn a_private_key_of_another_certificate_is_refused_at_build() {
    let dir = tempfile::tempdir().unwrap();
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let params = rcgen::CertificateParams::new(vec!["renewed".to_owned()]).unwrap();
    let certificate = dir.path().join("renewed.pem");
    std::fs::write(&certificate, params.self_signed(&other).unwrap().pem()).unwrap();
    for key in ["test-client.key", "test-client-pkcs1.key"] {
        let error = Credentials::client_certificate(TENANT, CLIENT_ID, &certificate, fixture(key))
            .build()
            .unwrap_err();
        assert!(error.is_settings(), "{key}: {error:?}");
        let text = format!("{error} {}", error.remedy().unwrap_or_default());
        assert!(
            text.contains("client_private_key_file") && text.contains("client_certificate_file"),
            "{key}: {text}"
        );
    }
    // The matching pair still builds.
    let matching = certificate_until(dir.path(), OffsetDateTime::now_utc() + Duration::days(90));
    for key in ["test-client.key", "test-client-pkcs1.key"] {
        Credentials::client_certificate(TENANT, CLIENT_ID, &matching, fixture(key))
            .build()
            .unwrap();
    }
}
