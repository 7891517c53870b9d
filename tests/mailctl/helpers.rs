//! Helpers shared by the `mailctl` tests.

use std::process::{Command, Output};

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn run(command: &mut Command) -> (Output, String, String) {
    let output = command.output().unwrap();
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    (output, stdout, stderr)
}

/// The `mailctl` binary that `cargo test --features cli` built, with no `MAIL_CONNECTOR_*`
/// variable inherited from the environment running the tests.
pub(crate) fn mailctl() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mailctl"));
    for (key, _) in std::env::vars() {
        if key.starts_with("MAIL_CONNECTOR_") {
            command.env_remove(key);
        }
    }
    command
}
