//! Every example in `examples/`, built and run as a service author runs it: with nothing
//! configured where it says it needs nothing, and against the loopback SMTP server and the
//! throwaway PostgreSQL cluster where it needs a server.
//!
//! The examples are built here by `cargo build --examples --all-features` in the target folder
//! of this test (the README's test command builds the same there, so this only finds them),
//! and run as processes of their own, each in a temporary folder.

#[path = "support/postgres.rs"]
mod postgres;
mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use support::smtp_server::{ServerOptions, TestServer};

/// Each example's executable, built once for all tests.
fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        // The target folder this test was built in (its `tmp` is in it), however it was
        // named (`--target-dir` or `CARGO_TARGET_DIR`): the examples reuse what it holds.
        let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("the target folder");
        let output = Command::new(env!("CARGO"))
            .args([
                "build",
                "--examples",
                "--all-features",
                "--message-format=json",
            ])
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--target-dir")
            .arg(target_dir)
            .output()
            .expect("run cargo build --examples");
        assert!(
            output.status.success(),
            "the examples do not build:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|message| message["target"]["kind"][0] == "example")
            .filter_map(|message| {
                let name = message["target"]["name"].as_str()?.to_owned();
                let executable = message["executable"].as_str()?;
                Some((name, PathBuf::from(executable)))
            })
            .collect()
    });
    built
        .get(name)
        .unwrap_or_else(|| panic!("no example `{name}` was built: {built:?}"))
        .clone()
}

/// Runs an example in `dir` with only the environment given (and `PATH`), off the runtime.
async fn run(name: &str, dir: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    let mut command = Command::new(example(name));
    command.current_dir(dir).args(args).env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    tokio::task::spawn_blocking(move || command.output().expect("run the example"))
        .await
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn eml_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|entry| entry.unwrap().path())
                .filter(|path| path.extension().is_some_and(|e| e == "eml"))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn custom_transport_splits_by_the_recipient_limit_and_its_worker_gets_both() {
    let dir = tempfile::tempdir().unwrap();
    let output = run("custom_transport", dir.path(), &[], &[]).await;
    let said = text(&output);
    assert!(output.status.success(), "{said}");
    assert!(said.contains("queued as 2 message(s)"), "{said}");
}

#[tokio::test]
async fn send_with_settings_writes_to_the_outbox_with_nothing_configured() {
    let dir = tempfile::tempdir().unwrap();
    let output = run("send_with_settings", dir.path(), &[], &[]).await;
    let said = text(&output);
    assert!(output.status.success(), "{said}");
    assert!(
        said.contains("written to outbox for 1 recipient(s)"),
        "{said}"
    );
    assert_eq!(eml_files(&dir.path().join("outbox")).len(), 1, "{said}");
}

/// A settings file an admin left half-filled: what the example prints is the crate's error
/// and its fix, as lines an admin reads, not a `Debug` dump of the error.
#[tokio::test]
async fn send_with_settings_reports_bad_settings_with_their_fix() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("settings.toml");
    std::fs::write(&file, "enabled = true\nauth_mode = \"basic\"\n").unwrap();
    let output = run(
        "send_with_settings",
        dir.path(),
        &[file.to_str().unwrap()],
        &[],
    )
    .await;
    let said = text(&output);
    assert!(!output.status.success(), "{said}");
    assert!(
        said.contains("error: invalid mail connector settings: User Name (`user_name`)"),
        "{said}"
    );
    assert!(
        said.contains("fix: fix these settings: `user_name`, `password`"),
        "{said}"
    );
    assert!(!said.contains("InvalidSettings {"), "{said}");
}

#[tokio::test]
async fn smtp_checks_and_sends_with_basic_auth() {
    let server = TestServer::start(ServerOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("MAIL_CONNECTOR_SMTP_HOST", "127.0.0.1".to_owned()),
        ("MAIL_CONNECTOR_SMTP_PORT", server.port().to_string()),
        (
            "MAIL_CONNECTOR_TLS_CA_FILE",
            server.ca_file.path().display().to_string(),
        ),
        (
            "MAIL_CONNECTOR_USER_NAME",
            "no-reply@example.org".to_owned(),
        ),
        ("MAIL_CONNECTOR_PASSWORD", "correct horse".to_owned()),
    ];
    let output = run("smtp", dir.path(), &["ann@example.org"], &env).await;
    let said = text(&output);
    assert!(output.status.success(), "{said}");
    assert!(!said.contains("correct horse"), "{said}");
    let messages = server.messages();
    assert_eq!(messages.len(), 1, "{said}");
    assert_eq!(messages[0].rcpt_to, ["ann@example.org"]);

    // A wrong password: it fails, saying so, and sends nothing.
    let mut wrong = env.clone();
    wrong[4].1 = "wrong horse".to_owned();
    let output = run("smtp", dir.path(), &["ann@example.org"], &wrong).await;
    assert!(!output.status.success(), "{}", text(&output));
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn queue_outbox_commits_the_order_and_its_email_and_delivers_it_once() {
    let url = postgres::database().await;
    let dir = tempfile::tempdir().unwrap();
    let env = [("DATABASE_URL", url)];
    let output = run("queue_outbox", dir.path(), &[], &env).await;
    let said = text(&output);
    assert!(output.status.success(), "{said}");
    assert!(said.contains("written to ./outbox: 1;"), "{said}");
    assert_eq!(eml_files(&dir.path().join("outbox")).len(), 1, "{said}");
    // Run again (a retried request): the key enqueues nothing new, nothing more is written.
    let again = run("queue_outbox", dir.path(), &[], &env).await;
    let said_again = text(&again);
    assert!(again.status.success(), "{said_again}");
    assert!(
        said_again.contains("written to ./outbox: 0;"),
        "{said_again}"
    );
    assert_eq!(eml_files(&dir.path().join("outbox")).len(), 1);
    let id = |said: &str| {
        said.split("queued as ")
            .nth(1)
            .map(|rest| rest.lines().next().unwrap_or_default().to_owned())
    };
    assert_eq!(id(&said), id(&said_again), "{said}\n{said_again}");

    // Without a database it says what to set, and exits with the usage code: a script
    // that runs it learns that nothing was done.
    let output = run("queue_outbox", dir.path(), &[], &[]).await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("set DATABASE_URL"));
}

/// A database that is down: the example fails with the crate's error and its fix, as lines
/// an admin reads (not a `Debug` dump), never showing the URL's password, and writes nothing.
#[tokio::test]
async fn queue_outbox_reports_a_database_that_refuses_with_its_fix() {
    // A port nobody listens on: bound, then freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let password = "s3cret-Pw-42";
    let dir = tempfile::tempdir().unwrap();
    let env = [(
        "DATABASE_URL",
        format!("postgres://app:{password}@127.0.0.1:{port}/shop"),
    )];
    let output = run("queue_outbox", dir.path(), &[], &env).await;
    let said = text(&output);
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(
        said.contains("\nerror: ") || said.starts_with("error: "),
        "{said}"
    );
    assert!(said.contains("\nfix: "), "{said}");
    assert!(said.contains("is running"), "{said}");
    assert!(!said.contains("Error: "), "a Debug dump: {said}");
    assert!(!said.contains(password), "{said}");
    assert!(eml_files(&dir.path().join("outbox")).is_empty(), "{said}");
}
