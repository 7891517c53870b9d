//! What `mailctl` prints for people and for scripts: `--help`, `--json` on `send` and
//! `check`, and `check`'s columns.

use super::helpers::*;
use crate::support::smtp_server::{ServerOptions, TestServer};

/// The step lines of a text `check` report have their status in one column, whatever the
/// length of the step names.
pub(crate) fn assert_columns(stdout: &str) {
    let steps: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("using "))
        .skip(1)
        .take_while(|l| !l.starts_with("overall: "))
        .collect();
    assert!(!steps.is_empty(), "{stdout}");
    let column = |line: &str| {
        ["ok", "warning", "failed"]
            .iter()
            .filter_map(|status| line.find(&format!("  {status} ")))
            .min()
            .unwrap_or_else(|| panic!("no status in {line:?}"))
    };
    let first = column(steps[0]);
    for line in &steps {
        assert_eq!(column(line), first, "misaligned:\n{stdout}");
        let name = line[..first].trim_end();
        assert!(!name.contains("  "), "{line:?}");
    }
}

#[test]
fn help_names_the_settings_sources_the_variables_the_outbox_and_the_exit_codes() {
    for args in [vec!["--help"], vec!["send", "--help"], vec!["check", "-h"]] {
        let (output, stdout, _) = run(mailctl().args(&args));
        assert!(output.status.success(), "{args:?}");
        for needle in [
            "--config FILE",
            "MAIL_CONNECTOR_CONFIG",
            "MAIL_CONNECTOR_<KEY>",
            "MAIL_CONNECTOR_CLIENT_SECRET",
            "./outbox",
            "NO_COLOR",
            "--json",
            "Exit codes:",
        ] {
            assert!(
                stdout.contains(needle),
                "{args:?} lacks {needle}:\n{stdout}"
            );
        }
        for code in 0..=6 {
            assert!(
                stdout
                    .lines()
                    .any(|l| l.starts_with(&format!("  {code}  "))),
                "{args:?} lacks exit code {code}:\n{stdout}"
            );
        }
    }
}

#[test]
fn send_json_lists_the_messages_ids_and_every_recipient_with_its_role() {
    let dir = tempfile::tempdir().unwrap();
    let (output, stdout, stderr) = run(mailctl().current_dir(dir.path()).args([
        "send",
        "--json",
        "--to",
        "Ann Example <ann@example.org>",
        "--cc",
        "cy@example.org",
        "--bcc",
        "dee@example.org",
        "--subject",
        "Hello",
    ]));
    assert!(output.status.success(), "{stderr}");
    let document = json(&stdout);
    assert_eq!(document["status"], "sent");
    // Nobody got it yet: it is an .eml file in the outbox, and the document says so.
    assert_eq!(document["transport"], "outbox");
    assert_eq!(document["exit_code"], 0);
    assert!(document["error"].is_null());
    assert_eq!(
        addresses(&document, "delivered"),
        ["ann@example.org", "cy@example.org", "dee@example.org"]
    );
    assert!(addresses(&document, "not_sent").is_empty());
    let recipients = &document["messages"][0]["recipients"];
    assert_eq!(recipients[0]["kind"], "to");
    assert_eq!(recipients[0]["name"], "Ann Example");
    assert_eq!(recipients[1]["kind"], "cc");
    assert_eq!(recipients[2]["kind"], "bcc");
    let id = document["messages"][0]["id"].as_str().unwrap();
    assert!(
        dir.path().join(id).exists(),
        "the id is the outbox file: {id}"
    );
}

#[tokio::test]
async fn check_json_and_text_show_each_step_and_the_ehlo_extensions_in_words() {
    let server = TestServer::start(ServerOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("smtp.toml");
    std::fs::write(
        &config,
        format!(
            "smtp_host = \"127.0.0.1\"\nsmtp_port = {}\ntls_ca_file = {:?}\n\
             user_name = \"no-reply@example.org\"\nauth_mode = \"basic\"\n\
             password = \"correct horse\"\n",
            server.port(),
            server.ca_file.path().display().to_string()
        ),
    )
    .unwrap();
    let mut command = mailctl();
    command.args(["check", "--json", "--config"]).arg(&config);
    let (output, stdout, stderr) = run_async(command).await;
    assert!(output.status.success(), "{stdout}{stderr}");
    let document = json(&stdout);
    assert_eq!(document["status"], "ok");
    assert!(
        document["using"].as_str().unwrap().starts_with("SMTP"),
        "{document}"
    );
    let steps = document["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["connect", "tls", "ehlo", "auth", "quit"]);
    let ehlo = steps[2]["detail"].as_str().unwrap();
    assert_eq!(
        ehlo, "localhost offers 8BITMIME, SMTPUTF8, AUTH PLAIN LOGIN",
        "{document}"
    );

    let mut command = mailctl();
    command.args(["check", "--config"]).arg(&config);
    let (output, stdout, _) = run_async(command).await;
    assert!(output.status.success(), "{stdout}");
    assert_columns(&stdout);
    assert!(stdout.ends_with("overall: ok\n"), "{stdout}");
}
