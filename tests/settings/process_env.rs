//! The constructors that read this process's own `MAIL_CONNECTOR_*` variables — `from_env`,
//! `with_env` and `from_file_with_env` — run in a child process of this test binary with the
//! variables set there: tests run in parallel and must not change their own environment.

use std::ffi::OsString;

use mail_connector::ConnectorSettings;
use mail_connector::settings::ENV_PREFIX;

use super::loading::fields;
use crate::support::{KNOWN_SECRET, run_child_test};

/// Which of the child's checks to run (`overrides` or `not_unicode`).
const CASE_VAR: &str = "SETTINGS_CHILD_CASE";
/// The settings file the child reads with `from_file_with_env`.
const FILE_VAR: &str = "SETTINGS_CHILD_FILE";
/// The settings file, and a host's own settings, that the variables override.
const FILE: &str = "auth_mode = \"basic\"\nuser_name = \"no-reply@example.org\"\n\
                    smtp_host = \"smtp.file.example\"\nrecipient_limit = 5\n";

/// Runs [`child`] in a new process of this binary with `vars` set, and no other
/// `MAIL_CONNECTOR_*` variable; panics with its output unless it passed.
fn run_child(case: &str, vars: &[(&str, OsString)]) {
    run_child_test("process_env::child", case, |command| {
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with(ENV_PREFIX) {
                command.env_remove(name);
            }
        }
        command
            .envs(vars.iter().map(|(name, value)| (name, value)))
            .env(CASE_VAR, case);
    });
}

/// A settings file with [`FILE`] in `dir`, as the variable that tells the child where it is.
fn file_var(dir: &tempfile::TempDir) -> (&'static str, OsString) {
    let path = dir.path().join("mail.toml");
    std::fs::write(&path, FILE).unwrap();
    (FILE_VAR, path.into_os_string())
}

/// The reading constructors, as the child process sees its environment.
#[test]
#[ignore = "run in a child process by this module's tests, with the environment they set"]
fn child() {
    let path = std::env::var_os(FILE_VAR).unwrap();
    let host = || ConnectorSettings::from_toml_str(FILE).unwrap();
    match std::env::var(CASE_VAR).as_deref() {
        Ok("overrides") => {
            let alone = ConnectorSettings::from_env().unwrap();
            assert_eq!(alone.smtp_host.as_deref(), Some("smtp.env.example"));
            assert_eq!(alone.user_name, None);
            for settings in [
                host().with_env().unwrap(),
                ConnectorSettings::from_file_with_env(&path).unwrap(),
            ] {
                assert_eq!(settings.smtp_host.as_deref(), Some("smtp.env.example"));
                assert_eq!(settings.recipient_limit, 5, "the file's value stays");
                // A mounted secret's line break is not part of it.
                assert_eq!(settings.password.unwrap().expose_secret(), KNOWN_SECRET);
            }
        }
        Ok("not_unicode") => {
            for error in [
                ConnectorSettings::from_env().unwrap_err(),
                host().with_env().unwrap_err(),
                ConnectorSettings::from_file_with_env(&path).unwrap_err(),
            ] {
                let text = error.to_string();
                assert!(text.contains("`MAIL_CONNECTOR_USER_NAME`"), "{text}");
                assert!(text.contains("not valid Unicode"), "{text}");
                assert_eq!(fields(error), ["MAIL_CONNECTOR_USER_NAME"]);
            }
        }
        other => panic!("{CASE_VAR} is {other:?}"),
    }
}

/// `from_env`, `with_env` and `from_file_with_env` read the process's variables: a variable
/// wins over the file or the host's settings, which keep what no variable sets.
#[test]
fn the_process_environment_is_read_over_the_file_and_the_hosts_settings() {
    let dir = tempfile::tempdir().unwrap();
    run_child(
        "overrides",
        &[
            ("MAIL_CONNECTOR_SMTP_HOST", "smtp.env.example".into()),
            (
                "MAIL_CONNECTOR_PASSWORD",
                format!("{KNOWN_SECRET}\n").into(),
            ),
            file_var(&dir),
        ],
    );
}

/// A variable of ours that is not Unicode is refused by name, by each reading constructor.
#[cfg(unix)]
#[test]
fn a_variable_that_is_not_unicode_is_named() {
    use std::os::unix::ffi::OsStringExt;
    let dir = tempfile::tempdir().unwrap();
    let not_unicode = OsString::from_vec(b"no-reply\xff@example.org".to_vec());
    run_child(
        "not_unicode",
        &[("MAIL_CONNECTOR_USER_NAME", not_unicode), file_var(&dir)],
    );
}
