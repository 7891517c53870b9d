//! Helpers shared by the `mailctl` tests.

use std::process::{Command, Output};

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `command` with piped output, which must never carry a terminal escape code.
pub(crate) fn run(command: &mut Command) -> (Output, String, String) {
    let output = command.output().unwrap();
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(
        !stdout.contains('\u{1b}') && !stderr.contains('\u{1b}'),
        "escape codes in piped output:\n{stdout:?}\n{stderr:?}"
    );
    (output, stdout, stderr)
}

/// [`run`] from async tests (the loopback servers run on their runtime).
pub(crate) async fn run_async(mut command: Command) -> (Output, String, String) {
    tokio::task::spawn_blocking(move || run(&mut command))
        .await
        .unwrap()
}

/// The `mailctl` binary that `cargo test --features cli` built, with no `MAIL_CONNECTOR_*`,
/// `RUST_LOG` or `NO_COLOR` variable inherited from the environment running the tests.
pub(crate) fn mailctl() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mailctl"));
    for (key, _) in std::env::vars_os() {
        if key
            .to_str()
            .is_some_and(|k| k.starts_with("MAIL_CONNECTOR_"))
        {
            command.env_remove(key);
        }
    }
    command.env_remove("RUST_LOG").env_remove("NO_COLOR");
    command
}

/// The failure is said once: one `error:` line, at most one `fix:` line after it, and no
/// log line.
pub(crate) fn assert_one_failure(stderr: &str) {
    let errors = stderr.lines().filter(|l| l.starts_with("error:")).count();
    assert_eq!(errors, 1, "{stderr}");
    let fixes = stderr.lines().filter(|l| l.starts_with("fix:")).count();
    assert!(fixes <= 1, "{stderr}");
    for line in stderr.lines() {
        let known = ["error: ", "fix: ", "mailctl: "]
            .iter()
            .any(|p| line.starts_with(p));
        assert!(
            known,
            "a line that is not the failure, its fix or a note: {line:?}"
        );
    }
}

/// Parses the one JSON document `--json` prints on stdout.
pub(crate) fn json(stdout: &str) -> serde_json::Value {
    assert_eq!(stdout.trim().lines().count(), 1, "one document: {stdout}");
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// The addresses in one of `send --json`'s recipient lists.
pub(crate) fn addresses(document: &serde_json::Value, list: &str) -> Vec<String> {
    document[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list} in {document}"))
        .iter()
        .map(|r| r["address"].as_str().unwrap().to_owned())
        .collect()
}
