//! Issue 12: `mailctl send --header "Name: value"` and `--eml FILE`, end to end against the
//! loopback SMTP server.

use mail_parser::MessageParser;

use super::helpers::{mailctl, run_async};
use crate::support::smtp_server::{ServerOptions, TestServer};

async fn run(args: Vec<String>, config: &std::path::Path) -> (bool, String) {
    let config = config.to_owned();
    tokio::task::spawn_blocking(move || {
        let output = mailctl()
            .args(&args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    })
    .await
    .unwrap()
}

fn config(dir: &std::path::Path, server: &TestServer) -> std::path::PathBuf {
    let path = dir.join("smtp.toml");
    std::fs::write(
        &path,
        format!(
            "auth_mode = \"basic\"\nuser_name = \"no-reply@example.org\"\n\
             password = \"correct horse\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\n\
             tls_ca_file = {:?}\n",
            server.port(),
            server.ca_file.path().display().to_string()
        ),
    )
    .unwrap();
    path
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn headers_given_on_the_command_line_arrive() {
    let server = TestServer::start(ServerOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &server);
    let (ok, output) = run(
        args(&[
            "send",
            "--to",
            "ann@example.org",
            "--subject",
            "Digest",
            "--text",
            "text",
            "--html",
            "<p>html</p>",
            "--header",
            "Message-ID: <cli-1@example.org>",
            "--header",
            "List-Unsubscribe: <https://example.org/u?id=1>",
            "--header",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            "--header",
            "In-Reply-To:<q@example.org>",
        ]),
        &config,
    )
    .await;
    assert!(ok, "{output}");
    let data = server.messages().remove(0).data;
    let message = MessageParser::default().parse(&data).unwrap();
    assert_eq!(message.message_id(), Some("cli-1@example.org"));
    assert_eq!(message.in_reply_to().as_text(), Some("q@example.org"));
    assert_eq!(
        message.header_raw("List-Unsubscribe-Post").map(str::trim),
        Some("List-Unsubscribe=One-Click")
    );
    assert!(message.header("List-Unsubscribe").is_some());

    // A header the crate writes, and one without a colon: refused, nothing sent.
    let (ok, output) = run(
        args(&[
            "send",
            "--to",
            "a@example.org",
            "--subject",
            "x",
            "--header",
            "From: evil@example.org",
        ]),
        &config,
    )
    .await;
    assert!(!ok);
    assert!(output.contains("cannot be set as a header"), "{output}");
    let (ok, output) = run(
        args(&[
            "send",
            "--to",
            "a@example.org",
            "--subject",
            "x",
            "--header",
            "NoColon",
        ]),
        &config,
    )
    .await;
    assert!(!ok);
    assert!(output.contains("is not `Name: value`"), "{output}");
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn an_eml_file_is_sent_as_it_is_and_to_overrides_the_envelope() {
    let server = TestServer::start(ServerOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &server);
    let raw = "From: no-reply@example.org\r\nTo: ann@example.org\r\nBcc: audit@example.org\r\n\
               Subject: From a file\r\nMessage-ID: <eml-1@example.org>\r\n\
               Date: Mon, 2 Feb 2026 10:00:00 +0000\r\n\r\nBody\r\n";
    let eml = dir.path().join("message.eml");
    std::fs::write(&eml, raw).unwrap();
    let eml = eml.display().to_string();

    let (ok, output) = run(args(&["send", "--eml", &eml]), &config).await;
    assert!(ok, "{output}");
    let received = server.messages().remove(0);
    assert_eq!(
        String::from_utf8(received.data).unwrap(),
        raw.replace("Bcc: audit@example.org\r\n", "")
    );
    assert_eq!(received.rcpt_to.len(), 2, "{:?}", received.rcpt_to);

    let (ok, output) = run(
        args(&["send", "--eml", &eml, "--to", "zoe@example.org"]),
        &config,
    )
    .await;
    assert!(ok, "{output}");
    let received = server.messages().remove(1);
    assert_eq!(received.rcpt_to.len(), 1, "{:?}", received.rcpt_to);
    assert!(received.rcpt_to[0].contains("zoe@example.org"));

    // --eml with building flags is a usage error; a missing file names the file.
    let (ok, output) = run(args(&["send", "--eml", &eml, "--subject", "x"]), &config).await;
    assert!(!ok);
    assert!(output.contains("cannot be used with"), "{output}");
    let missing = dir.path().join("missing.eml").display().to_string();
    let (ok, output) = run(args(&["send", "--eml", &missing]), &config).await;
    assert!(!ok);
    assert!(output.contains("missing.eml"), "{output}");
    assert_eq!(server.messages().len(), 2);
}

#[tokio::test]
async fn check_validates_the_dkim_key() {
    let server = TestServer::start(ServerOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &server);
    let key = crate::support::fixture("test-client-pkcs1.key");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "dkim_domain = \"example.org\"\ndkim_selector = \"mail\"\ndkim_private_key_file = {:?}\n",
        key.display().to_string()
    ));
    std::fs::write(&config, &text).unwrap();
    let (ok, output) = run(args(&["check"]), &config).await;
    assert!(ok, "{output}");
    assert!(
        output
            .lines()
            .any(|l| l.starts_with("dkim") && l.contains(" ok ") && l.contains("rsa-sha256")),
        "{output}"
    );
    // A certificate is not a key: check fails and names the setting.
    let bad = text.replace(
        &format!("{:?}", key.display().to_string()),
        &format!(
            "{:?}",
            crate::support::fixture("test-client.pem")
                .display()
                .to_string()
        ),
    );
    std::fs::write(&config, bad).unwrap();
    let (ok, output) = run(args(&["check"]), &config).await;
    assert!(!ok);
    assert!(output.contains("dkim_private_key_file"), "{output}");
}

/// A prepared message is sent as it is, unsigned, although DKIM is configured: without `-v`
/// the user is told so on stderr, once.
#[tokio::test]
async fn an_eml_sent_unsigned_with_dkim_configured_is_warned_about_once() {
    let server = TestServer::start(ServerOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &server);
    let key = crate::support::fixture("test-client-pkcs1.key");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "dkim_domain = \"example.org\"\ndkim_selector = \"mail\"\ndkim_private_key_file = {:?}\n",
        key.display().to_string()
    ));
    std::fs::write(&config, &text).unwrap();
    let eml = dir.path().join("message.eml");
    std::fs::write(
        &eml,
        "From: no-reply@example.org\r\nTo: ann@example.org\r\nSubject: Prepared\r\n\
         Message-ID: <eml-dkim@example.org>\r\n\r\nBody.\r\n",
    )
    .unwrap();
    let mut command = mailctl();
    command
        .arg("send")
        .arg("--eml")
        .arg(&eml)
        .arg("--config")
        .arg(&config);
    let (output, stdout, stderr) = run_async(command).await;
    assert!(output.status.success(), "{stdout}{stderr}");
    assert_eq!(server.messages().len(), 1);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("prepared message is sent unsigned"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("WARN"), "{stderr}");
    assert!(!stdout.contains("unsigned"), "{stdout}");
}
