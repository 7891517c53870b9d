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

/// Copied into a service, an example builds with what the README tells its author to add:
/// the `[dependencies]` lines (`tokio` with the runtime `#[tokio::main]` starts), and the
/// crate or feature of its own that an example needs beyond them, named in the README too.
#[test]
fn the_readme_names_what_each_example_needs_outside_the_repo() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let lines = readme
        .split("```toml\n[dependencies]\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the README shows the `[dependencies]` lines a service adds");
    assert!(lines.contains("mail-connector = "), "{lines}");
    assert!(
        lines.contains(r#"tokio = { version = "1", features = ["macros", "rt-multi-thread"] }"#),
        "{lines}"
    );
    let manifest: mail_connector::toml::Table =
        mail_connector::toml::from_str(&std::fs::read_to_string(root.join("Cargo.toml")).unwrap())
            .unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("examples")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let source = std::fs::read_to_string(&path).unwrap();
        for krate in crates_named(&source) {
            let line = format!("{} = ", krate.replace('_', "-"));
            assert!(
                readme.contains(&line),
                "examples/{name}.rs uses `{krate}`, which the README does not tell a service to add"
            );
        }
        let features = manifest["example"]
            .as_array()
            .unwrap()
            .iter()
            .find(|example| example["name"].as_str() == Some(&name))
            .and_then(|example| example.get("required-features"))
            .and_then(|features| features.as_array().cloned())
            .unwrap_or_default();
        for feature in features.iter().filter_map(|f| f.as_str()) {
            // Default features need no line.
            if ["graph", "smtp", "oauth"].contains(&feature) {
                continue;
            }
            assert!(
                readme.contains(&format!("`{name}` needs `features = [\"{feature}\"]`")),
                "examples/{name}.rs needs the feature `{feature}`, which the README does not name"
            );
        }
        checked += 1;
    }
    assert!(checked >= 4, "{checked}");
}

/// The crates a source file names other than the standard library, this crate and tokio:
/// the first segment of each `use` path, and each path root that no `use` brought in.
fn crates_named(source: &str) -> Vec<String> {
    let code: Vec<&str> = source
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with("//"))
        .collect();
    let used: Vec<&str> = code
        .iter()
        .copied()
        .filter(|l| l.starts_with("use "))
        .collect();
    let imported = |name: &str| {
        used.iter().any(|line| {
            line.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|word| word == name)
        })
    };
    let mut roots: Vec<String> = used
        .iter()
        .filter_map(|line| line["use ".len()..].split("::").next())
        .map(str::to_owned)
        .collect();
    for line in code.iter().filter(|l| !l.starts_with("use ")) {
        for (at, _) in line.match_indices("::") {
            let before = &line[..at];
            let start = before
                .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
                .map_or(0, |i| i + 1);
            let root = &before[start..];
            let first = root.chars().next();
            // Not a path's later segment, a method's or a turbofish (`f::<T>`).
            if !before[..start].ends_with([':', '.'])
                && !line[at..].starts_with("::<")
                && first.is_some_and(|c| c.is_ascii_lowercase())
                && !imported(root)
            {
                roots.push(root.to_owned());
            }
        }
    }
    roots.retain(|root| {
        ![
            "std",
            "core",
            "crate",
            "self",
            "super",
            "mail_connector",
            "tokio",
        ]
        .contains(&root.as_str())
    });
    roots.sort();
    roots.dedup();
    roots
}
