//! One SMTP session of the loopback server in `smtp_server.rs`: the commands, the replies
//! its options ask for, and what it records.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio_rustls::TlsAcceptor;

use super::{AuthRecord, Io, Received, ServerOptions, ServerTls, State};

/// A socket that sends any pending ACK before each read ([`ServerOptions::quick_ack`]).
struct QuickAck(tokio::net::TcpStream);

impl AsyncRead for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        // Not permanent in Linux: the kernel goes back to delaying once the server replies.
        #[cfg(target_os = "linux")]
        let _ = socket2::SockRef::from(&self.0).set_tcp_quickack(true);
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

async fn reply(io: &mut BufReader<Box<dyn Io>>, line: &str) -> std::io::Result<()> {
    io.get_mut()
        .write_all(format!("{line}\r\n").as_bytes())
        .await?;
    io.get_mut().flush().await
}

async fn read_line(io: &mut BufReader<Box<dyn Io>>) -> std::io::Result<Option<String>> {
    let mut line = String::new();
    if io.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()))
}

/// The client's answer to an empty `334` challenge (an AUTH mechanism sent without its
/// initial response), recorded with what it sent.
async fn continuation(
    io: &mut BufReader<Box<dyn Io>>,
    sent: &mut Vec<String>,
) -> std::io::Result<String> {
    reply(io, "334 ").await?;
    let response = read_line(io).await?.unwrap_or_default();
    sent.push(response.clone());
    Ok(response)
}

fn decode(b64: &str) -> String {
    BASE64
        .decode(b64.trim())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|_| format!("<invalid base64 {b64}>"))
}

/// Counts this session as inside a mail transaction while `active`; dropping it (the
/// session ends) ends the transaction.
struct Transaction<'a> {
    state: &'a State,
    active: bool,
}

impl Transaction<'_> {
    fn begin(&mut self) {
        if !self.active {
            self.active = true;
            let now = self.state.in_transaction.fetch_add(1, Ordering::SeqCst) + 1;
            self.state
                .max_in_transaction
                .fetch_max(now, Ordering::SeqCst);
        }
    }

    fn end(&mut self) {
        if self.active {
            self.active = false;
            self.state.in_transaction.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        self.end();
    }
}

async fn hold(options: &ServerOptions) {
    if let Some(delay) = options.hold_replies {
        tokio::time::sleep(delay).await;
    }
}

pub(super) async fn session(
    socket: tokio::net::TcpStream,
    options: &ServerOptions,
    state: &State,
    acceptor: &TlsAcceptor,
) -> std::io::Result<()> {
    if options.no_greeting {
        // Hold the socket open, silent.
        std::future::pending::<()>().await;
    }
    let socket: Box<dyn Io> = match options.quick_ack {
        true => Box::new(QuickAck(socket)),
        false => Box::new(socket),
    };
    let mut encrypted = false;
    let stream: Box<dyn Io> = if options.tls == ServerTls::Implicit {
        encrypted = true;
        Box::new(acceptor.accept(socket).await?)
    } else {
        socket
    };
    let mut io = BufReader::new(stream);
    if let Some(delay) = options.greeting_delay {
        // The behaviour under test (a slow greeting), not a synchronisation.
        tokio::time::sleep(delay).await;
    }
    reply(&mut io, "220 localhost test ESMTP ready").await?;
    let mut authenticated = false;
    let mut mail_from: Option<String> = None;
    let mut rcpt_to = Vec::new();
    let mut transaction = Transaction {
        state,
        active: false,
    };
    while let Some(line) = read_line(&mut io).await? {
        let upper = line.to_ascii_uppercase();
        let verb = upper.split_whitespace().next().unwrap_or("").to_owned();
        match verb.as_str() {
            "EHLO" | "HELO" => {
                let mut lines = vec![
                    "localhost greets you".to_owned(),
                    "8BITMIME".into(),
                    "SMTPUTF8".into(),
                    "SIZE 157286400".into(),
                ];
                if options.no_smtputf8 {
                    lines.retain(|line| line != "SMTPUTF8");
                }
                if options.no_8bitmime {
                    lines.retain(|line| line != "8BITMIME");
                }
                if options.tls == ServerTls::Starttls && !encrypted {
                    lines.push("STARTTLS".into());
                }
                let auth_offered = options.tls != ServerTls::Starttls || encrypted;
                if auth_offered && !options.mechanisms.is_empty() {
                    lines.push(format!("AUTH {}", options.mechanisms.join(" ")));
                }
                let last = lines.len() - 1;
                for (i, l) in lines.iter().enumerate() {
                    let sep = if i == last { ' ' } else { '-' };
                    reply(&mut io, &format!("250{sep}{l}")).await?;
                }
            }
            "STARTTLS" if options.tls == ServerTls::Starttls && !encrypted => {
                reply(&mut io, "220 2.0.0 SMTP server ready").await?;
                let raw = io.into_inner();
                let tls = acceptor.accept(raw).await?;
                io = BufReader::new(Box::new(tls));
                encrypted = true;
            }
            "AUTH" => {
                let mut sent = vec![line.clone()];
                let mut words = line.split_whitespace().skip(1);
                let mechanism = words.next().unwrap_or("").to_ascii_uppercase();
                let initial = words.next().map(str::to_owned);
                if !options.mechanisms.iter().any(|m| *m == mechanism) {
                    reply(&mut io, "504 5.5.4 Unrecognized authentication type").await?;
                    continue;
                }
                let (decoded, accepted) = match mechanism.as_str() {
                    "PLAIN" => {
                        let response = match initial {
                            Some(r) => r,
                            None => continuation(&mut io, &mut sent).await?,
                        };
                        let decoded = decode(&response);
                        let mut parts = decoded.split('\0').skip(1);
                        let (user, pass) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                        let ok = options.users.iter().any(|(u, p)| u == user && p == pass);
                        (decoded, ok)
                    }
                    "LOGIN" => {
                        reply(&mut io, "334 VXNlcm5hbWU6").await?;
                        let user = read_line(&mut io).await?.unwrap_or_default();
                        sent.push(user.clone());
                        let user = decode(&user);
                        reply(&mut io, "334 UGFzc3dvcmQ6").await?;
                        let pass = read_line(&mut io).await?.unwrap_or_default();
                        sent.push(pass.clone());
                        let pass = decode(&pass);
                        let ok = options.users.iter().any(|(u, p)| *u == user && *p == pass);
                        (format!("{user}\n{pass}"), ok)
                    }
                    "XOAUTH2" => {
                        let response = match initial {
                            Some(r) => r,
                            None => continuation(&mut io, &mut sent).await?,
                        };
                        let decoded = decode(&response);
                        let ok = options.tokens.iter().any(|t| {
                            decoded
                                == format!(
                                    "user={}\x01auth=Bearer {t}\x01\x01",
                                    options.xoauth2_user
                                )
                        });
                        (decoded, ok)
                    }
                    _ => unreachable!(),
                };
                state.auths.lock().unwrap().push(AuthRecord {
                    mechanism,
                    decoded,
                    accepted,
                });
                if let Some(gate) = &options.gated_auth_verdict {
                    gate.acquire()
                        .await
                        .expect("the gate is never closed")
                        .forget();
                }
                if accepted {
                    authenticated = true;
                    reply(&mut io, "235 2.7.0 Authentication successful").await?;
                } else if options.echo_auth_on_failure {
                    let echoed =
                        format!("{} (received: {})", options.auth_failure, sent.join(" | "));
                    reply(&mut io, &echoed).await?;
                } else {
                    reply(&mut io, &options.auth_failure).await?;
                }
            }
            "MAIL" => {
                state.mail_from_commands.fetch_add(1, Ordering::SeqCst);
                if !options.mechanisms.is_empty() && !authenticated {
                    reply(&mut io, "530 5.7.57 Client not authenticated to send mail").await?;
                    continue;
                }
                let took = state
                    .transient_left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if took {
                    reply(&mut io, &options.transient_reply).await?;
                    continue;
                }
                // As real servers do (Postfix: `nested MAIL command`; Exchange: `Sender
                // already specified`): a client must end a transaction it gave up on (RSET)
                // before it starts the next one on the same connection.
                if mail_from.is_some() {
                    reply(&mut io, "503 5.5.1 Error: nested MAIL command").await?;
                    continue;
                }
                transaction.begin();
                mail_from = Some(angle(&line));
                rcpt_to.clear();
                reply(&mut io, "250 2.1.0 Sender OK").await?;
            }
            "RCPT" => {
                hold(options).await;
                let address = angle(&line);
                let earlier = {
                    let mut commands = state.rcpt_commands.lock().unwrap();
                    let count = commands.entry(address.to_ascii_lowercase()).or_default();
                    *count += 1;
                    *count - 1
                };
                state.received.notify_waiters();
                if let Some((gated, gate)) = &options.gated_recipient
                    && gated.eq_ignore_ascii_case(&address)
                {
                    let _ = gate.acquire().await.map(|permit| permit.forget());
                }
                let scripted = options
                    .rcpt_replies
                    .iter()
                    .find(|r| r.address.eq_ignore_ascii_case(&address) && earlier < r.times);
                if let Some(scripted) = scripted {
                    reply(&mut io, &scripted.reply).await?;
                } else if options
                    .refused
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(&address))
                {
                    reply(&mut io, &options.refused_reply).await?;
                    if options.refused_reply.starts_with("421") {
                        return Ok(());
                    }
                } else {
                    rcpt_to.push(address);
                    reply(&mut io, "250 2.1.5 Recipient OK").await?;
                }
            }
            "DATA" => {
                if mail_from.is_none() || rcpt_to.is_empty() {
                    reply(&mut io, "503 5.5.1 Bad sequence of commands").await?;
                    continue;
                }
                reply(&mut io, "354 Start mail input; end with <CRLF>.<CRLF>").await?;
                let cut = options.cut_data.filter(|_| {
                    state
                        .cuts_left
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                });
                let mut data = Vec::new();
                loop {
                    if let Some(cut) = cut
                        && data.len() >= cut.after
                    {
                        if cut.stall {
                            std::future::pending::<()>().await;
                        }
                        return Ok(());
                    }
                    let mut raw = Vec::new();
                    if io.read_until(b'\n', &mut raw).await? == 0 {
                        return Ok(());
                    }
                    if raw == b".\r\n" {
                        break;
                    }
                    if raw.starts_with(b"..") {
                        raw.remove(0);
                    }
                    data.extend_from_slice(&raw);
                }
                state.data_ends.fetch_add(1, Ordering::SeqCst);
                state.received.notify_waiters();
                hold(options).await;
                if let Some(gate) = &options.gated_data_end {
                    gate.acquire().await.unwrap().forget();
                }
                let rejected = state
                    .transient_data_left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if rejected {
                    state.rejected_data.fetch_add(1, Ordering::SeqCst);
                    transaction.end();
                    mail_from = None;
                    rcpt_to.clear();
                    reply(&mut io, &options.transient_data_reply).await?;
                    continue;
                }
                state.messages.lock().unwrap().push(Received {
                    mail_from: mail_from.take().unwrap_or_default(),
                    rcpt_to: std::mem::take(&mut rcpt_to),
                    data,
                });
                state.received.notify_waiters();
                if options.silent_after_data {
                    std::future::pending::<()>().await;
                }
                transaction.end();
                reply(&mut io, "250 2.0.0 OK queued").await?;
                if options.close_after_message {
                    return Ok(());
                }
                if let Some(farewell) = &options.farewell_after_message {
                    reply(&mut io, farewell).await?;
                    return Ok(());
                }
                if let Some(unasked) = &options.unsolicited_after_message {
                    reply(&mut io, unasked).await?;
                }
                if options.silent_after_message {
                    while read_line(&mut io).await?.is_some() {
                        state.ignored_lines.fetch_add(1, Ordering::SeqCst);
                        state.received.notify_waiters();
                    }
                    return Ok(());
                }
            }
            "RSET" => {
                transaction.end();
                mail_from = None;
                rcpt_to.clear();
                reply(&mut io, "250 2.0.0 Resetting").await?;
            }
            "NOOP" => reply(&mut io, "250 2.0.0 OK").await?,
            "QUIT" => {
                transaction.end();
                state.quits.fetch_add(1, Ordering::SeqCst);
                state.received.notify_waiters();
                if let Some(gate) = &options.gated_quit {
                    gate.acquire()
                        .await
                        .expect("the gate is never closed")
                        .forget();
                }
                reply(&mut io, "221 2.0.0 Bye").await?;
                return Ok(());
            }
            _ => reply(&mut io, "500 5.5.2 Command not recognized").await?,
        }
    }
    Ok(())
}

/// The address between `<` and `>` in a MAIL/RCPT line.
fn angle(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line[start..].find('>').map_or(line.len(), |i| start + i);
    line[start..end].to_owned()
}
