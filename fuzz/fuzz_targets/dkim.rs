//! Builds an `Email` from arbitrary parts, signs it as the outbox does (RSA, the repository's
//! test key) and has dkimpy, an independent verifier, check the signature.
#![no_main]

#[path = "input.rs"]
mod input;

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use input::{Input, build};
use libfuzzer_sys::fuzz_target;
use mail_connector::dkim::DkimSigner;
use mail_connector::{MailTransport, OutboxTransport};

const KEY: &str = include_str!("../../tests/fixtures/test-client-pkcs1.key");

struct Verifier {
    child: Child,
    answers: BufReader<ChildStdout>,
}

fn verifier() -> &'static Mutex<Verifier> {
    static VERIFIER: OnceLock<Mutex<Verifier>> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let public = Command::new("openssl")
            .args(["rsa", "-pubout", "-outform", "DER"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .and_then(|mut c| {
                c.stdin.take().unwrap().write_all(KEY.as_bytes())?;
                c.wait_with_output()
            })
            .expect("openssl derives the public key");
        let record = format!("v=DKIM1; k=rsa; p={}", base64(&public.stdout));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/dkim_verify.py");
        let mut child = Command::new("python3")
            .args([script, &record])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 with dkimpy");
        let answers = BufReader::new(child.stdout.take().unwrap());
        Mutex::new(Verifier { child, answers })
    })
}

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, &b| n << 8 | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(char::from(ABC[(n >> (18 - 6 * i) & 63) as usize]));
        }
        out.push_str(&"=".repeat(3 - chunk.len()));
    }
    out
}

fn verify(message: &[u8]) -> String {
    let mut v = verifier().lock().unwrap();
    let stdin = v.child.stdin.as_mut().unwrap();
    write!(stdin, "{}\n", message.len()).unwrap();
    stdin.write_all(message).unwrap();
    stdin.flush().unwrap();
    let mut answer = String::new();
    v.answers.read_line(&mut answer).unwrap();
    answer.trim().to_owned()
}

fuzz_target!(|input: Input| {
    static SETUP: OnceLock<(tokio::runtime::Runtime, OutboxTransport, std::path::PathBuf)> =
        OnceLock::new();
    let (runtime, outbox, dir) = SETUP.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("h-fuzz-dkim-{}", std::process::id()));
        let signer = DkimSigner::new("example.org", "mail", KEY).unwrap();
        let outbox = OutboxTransport::new(&dir)
            .with_sender("no-reply@example.org".parse().unwrap())
            .with_dkim(signer);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        (runtime, outbox, dir)
    });
    let Ok(email) = build(input) else { return };
    let report = match runtime.block_on(outbox.send(&email)) {
        Ok(report) => report,
        // Too many signed header bytes is a clear refusal, not a defect.
        Err(e) if e.to_string().contains("DKIM signs") => return,
        Err(e) => panic!("send failed: {e}"),
    };
    let path = report.messages[0].id.clone().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let _ = dir;
    let answer = verify(&bytes);
    assert_eq!(answer, "pass", "{}", String::from_utf8_lossy(&bytes));
});
