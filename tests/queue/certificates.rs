//! A PostgreSQL server behind TLS whose certificate `sslmode=verify-ca`/`verify-full`
//! refuses (an unknown CA, another host name): a setting to fix, said at once with the fix
//! naming `sslrootcert` and `sslmode`, never an outage waited on forever.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mail_connector::queue::{OpenWait, Queue};

use crate::postgres::OwnCluster;

/// Far longer than any of these opens takes: an open still running then is waiting.
const HUNG: Duration = Duration::from_secs(20);

/// A self-signed certificate for `localhost`, as PEM: the certificate and its key.
fn certificate() -> (String, String) {
    let key_pair = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let cert = params.self_signed(&key_pair).unwrap();
    (cert.pem(), key_pair.serialize_pem())
}

/// Opens `url` waiting forever, counting the waits.
async fn open(url: &str) -> (mail_connector::Result<Queue>, usize) {
    let waits = Arc::new(AtomicUsize::new(0));
    let counted = waits.clone();
    let wait = OpenWait::forever().on_wait(move |_, _| {
        counted.fetch_add(1, Ordering::SeqCst);
    });
    let opened = tokio::time::timeout(HUNG, Queue::open_waiting(url, &wait))
        .await
        .expect("a refused certificate was waited on as if the database were down");
    (opened, waits.load(Ordering::SeqCst))
}

/// With the server's own certificate as the CA it opens; with another CA, or an address the
/// certificate was not made for, it fails at once, naming the settings to fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_verify_full_refuses_is_a_setting_to_fix() {
    let (cert, key) = certificate();
    let served = cert.clone();
    let cluster = tokio::task::spawn_blocking(move || OwnCluster::start_with_tls(&served, &key))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, certificate().0).unwrap();
    let own_ca = dir.path().join("own-ca.pem");
    std::fs::write(&own_ca, cert).unwrap();
    let port = cluster.port();
    let url =
        |host: &str, query: &str| format!("postgres://postgres@{host}:{port}/postgres?{query}");

    // The server's own certificate as the CA, and the name it was made for: it opens.
    let (opened, _) = open(&url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", own_ca.display()),
    ))
    .await;
    opened.expect("the right CA and host name must open");

    for (host, query) in [
        // Another CA.
        (
            "localhost",
            format!("sslmode=verify-ca&sslrootcert={}", other_ca.display()),
        ),
        // The right CA, but an address the certificate was not made for.
        (
            "127.0.0.1",
            format!("sslmode=verify-full&sslrootcert={}", own_ca.display()),
        ),
    ] {
        let (opened, waits) = open(&url(host, &query)).await;
        let error = opened.expect_err("opened with a refused certificate");
        assert_eq!(waits, 0, "waited on: {error}");
        assert!(!error.is_transient(), "{query}: {error}");
        assert!(error.to_string().contains("certificate"), "{error}");
        let remedy = error.remedy().unwrap_or_default();
        for setting in ["`queue_url`", "sslrootcert", "sslmode"] {
            assert!(remedy.contains(setting), "{setting}: {remedy}");
        }
    }
}
