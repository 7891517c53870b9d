//! A lenient SMTP receiver on loopback, the kind SMTP smuggling exploits: plaintext, no AUTH,
//! and it takes a `.` alone between *any* line breaks — `<CR>.<CR>`, `<LF>.<LF>`,
//! `<CR>.<CR><LF>` as well as `<CR><LF>.<CR><LF>` — as the end of the data, then reads
//! whatever follows as new commands. A client that lets a bare CR or LF reach the wire can make
//! it record a second, forged message.
//!
//! It is used by the tests through `#[path]` (it is not part of `support/mod.rs`).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One message as the lenient receiver understood it.
#[derive(Debug, Clone)]
pub struct LenientMessage {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: Vec<u8>,
}

/// The receiver and what it recorded.
pub struct LenientServer {
    port: u16,
    messages: Arc<Mutex<Vec<LenientMessage>>>,
}

impl LenientServer {
    /// Listens on an ephemeral loopback port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&messages);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let record = Arc::clone(&record);
                tokio::spawn(async move {
                    let _ = session(socket, record).await;
                });
            }
        });
        Self { port, messages }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The messages recorded so far.
    pub fn messages(&self) -> Vec<LenientMessage> {
        self.messages.lock().unwrap().clone()
    }
}

fn angle(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line[start..].find('>').map_or(line.len(), |i| start + i);
    line[start..end].to_owned()
}

async fn session(
    socket: tokio::net::TcpStream,
    record: Arc<Mutex<Vec<LenientMessage>>>,
) -> std::io::Result<()> {
    let mut io = BufReader::new(socket);
    io.get_mut().write_all(b"220 lenient ESMTP\r\n").await?;
    let mut mail_from = String::new();
    let mut rcpt_to = Vec::new();
    let mut line = Vec::new();
    let mut after_cr = false;
    loop {
        let Ok(byte) = io.read_u8().await else {
            return Ok(());
        };
        // Commands end at a CR or an LF, whichever comes first (the LF of a CRLF is skipped).
        let skip = after_cr && byte == b'\n';
        after_cr = byte == b'\r';
        if skip {
            continue;
        }
        if byte != b'\r' && byte != b'\n' {
            line.push(byte);
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let command = String::from_utf8_lossy(&std::mem::take(&mut line)).into_owned();
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 lenient\r\n",
            "MAIL" => {
                mail_from = angle(&command);
                b"250 OK\r\n"
            }
            "RCPT" => {
                rcpt_to.push(angle(&command));
                b"250 OK\r\n"
            }
            "DATA" => {
                io.get_mut()
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let data = read_data(&mut io, after_cr).await?;
                after_cr = false;
                record.lock().unwrap().push(LenientMessage {
                    mail_from: std::mem::take(&mut mail_from),
                    rcpt_to: std::mem::take(&mut rcpt_to),
                    data,
                });
                b"250 OK queued\r\n"
            }
            "RSET" | "NOOP" => b"250 OK\r\n",
            "QUIT" => {
                io.get_mut().write_all(b"221 Bye\r\n").await?;
                return Ok(());
            }
            _ => b"500 Command not recognized\r\n",
        };
        io.get_mut().write_all(reply).await?;
    }
}

/// Reads the data up to a `.` alone between any line breaks, undoing dot-stuffing.
/// `after_cr`: the DATA command ended with a CR, whose LF (if it comes) is not data.
async fn read_data(
    io: &mut BufReader<tokio::net::TcpStream>,
    after_cr: bool,
) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut at_line_start = true;
    let mut dot_at_line_start = false;
    let mut skip_lf = after_cr;
    loop {
        let byte = io.read_u8().await?;
        if std::mem::take(&mut skip_lf) && byte == b'\n' {
            continue;
        }
        if dot_at_line_start {
            dot_at_line_start = false;
            if byte == b'\r' || byte == b'\n' {
                return Ok(data);
            }
            if byte != b'.' {
                data.push(b'.');
            }
            data.push(byte);
            at_line_start = false;
            continue;
        }
        if at_line_start && byte == b'.' {
            dot_at_line_start = true;
            continue;
        }
        data.push(byte);
        at_line_start = byte == b'\r' || byte == b'\n';
    }
}
