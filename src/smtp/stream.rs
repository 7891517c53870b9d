//! The TCP stream handed to lettre, guarding what lettre may read from it.
//!
//! lettre reads replies through a `BufReader` that it keeps across `STARTTLS`, and reads a
//! reply line whole before it checks its length. [`GuardedStream`] sits between the socket
//! and lettre (and, after STARTTLS, under the TLS layer) and enforces two rules:
//!
//! - **Nothing after the reply to STARTTLS** (RFC 3207, section 4.2; the "STARTTLS command
//!   injection" class of bugs). After the client writes `STARTTLS`, the reply is delivered
//!   only once complete, and only up to the end of its final line. Any further byte received
//!   before the TLS handshake — in the same packet, or found waiting when the handshake
//!   starts — fails the connection: it can only be an attacker's (or a broken server's)
//!   plaintext that would otherwise be read as if it had come over TLS.
//! - **A bounded reply.** SMTP is lock-step here: after each write the client reads one
//!   reply. The bytes read since the client last wrote bound that reply; past
//!   [`MAX_REPLY_BYTES`] the read fails, instead of lettre buffering a line without CRLF of
//!   any size.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use lettre::transport::smtp::client::AsyncTokioStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The most bytes read between two writes of the client.
///
/// lettre itself refuses a reply of more than 100,000 bytes (and a line of more than 1,000),
/// but only after reading it whole. Under STARTTLS the count is of TLS records: the server's
/// handshake flight after the client's hello (certificate chain included; rustls caps a
/// handshake message at 64 KiB) and TLS 1.3 session tickets arrive between two writes, with
/// about 22 bytes of overhead per 16 KiB record. 256 KiB leaves room for all of that and
/// still stops a hostile server long before it costs memory.
pub(crate) const MAX_REPLY_BYTES: usize = 256 * 1024;

/// Why the guard failed a read or write; kept as the source of an `io::Error` so the error
/// mapping can recognise it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Violation {
    /// Bytes arrived after the reply to STARTTLS, before the TLS handshake.
    StarttlsInjection,
    /// More than [`MAX_REPLY_BYTES`] without the client writing.
    ReplyTooLong,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::StarttlsInjection => f.write_str(
                "the server sent data after its reply to STARTTLS, before the TLS handshake \
                 (RFC 3207): someone on the network path may be injecting commands; the \
                 connection was closed",
            ),
            Self::ReplyTooLong => write!(
                f,
                "the server's reply is too long (more than {MAX_REPLY_BYTES} bytes without an \
                 end); the connection was closed"
            ),
        }
    }
}

impl std::error::Error for Violation {}

impl From<Violation> for io::Error {
    fn from(violation: Violation) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, violation)
    }
}

/// The guard's violation behind a lettre error, if that is what it is.
pub(crate) fn violation(error: &(dyn std::error::Error + 'static)) -> Option<Violation> {
    let mut source = Some(error);
    while let Some(error) = source {
        if let Some(violation) = error.downcast_ref::<Violation>() {
            return Some(*violation);
        }
        let inner = error
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
            .and_then(|e| e.downcast_ref::<Violation>());
        if let Some(violation) = inner {
            return Some(*violation);
        }
        source = error.source();
    }
    None
}

const STARTTLS: &[u8] = b"STARTTLS\r\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Replies pass through, counted.
    Normal,
    /// The client wrote STARTTLS: collect the whole reply before delivering it.
    StarttlsReply,
    /// The reply to STARTTLS was delivered; the next write is the TLS client hello.
    BeforeHandshake,
}

/// A TCP stream that enforces the rules of the [module documentation](self).
#[derive(Debug)]
pub(crate) struct GuardedStream {
    inner: TcpStream,
    phase: Phase,
    /// Bytes read since the client last wrote.
    read_since_write: usize,
    /// Whether the last operation was a read (the next write starts a new command).
    reading: bool,
    /// The start of what was written since the last read, to recognise `STARTTLS`.
    written: Vec<u8>,
    /// The reply to STARTTLS: collected, then delivered from `delivered` on.
    reply: Vec<u8>,
    delivered: usize,
}

impl GuardedStream {
    pub(crate) fn new(inner: TcpStream) -> Self {
        Self {
            inner,
            phase: Phase::Normal,
            read_since_write: 0,
            reading: true,
            written: Vec::new(),
            reply: Vec::new(),
            delivered: 0,
        }
    }

    fn count(&mut self, n: usize) -> io::Result<()> {
        self.read_since_write = self.read_since_write.saturating_add(n);
        if self.read_since_write > MAX_REPLY_BYTES {
            return Err(Violation::ReplyTooLong.into());
        }
        Ok(())
    }

    /// Collects the reply to STARTTLS until its final line is complete (RFC 5321, section
    /// 4.2.1: the final line has no `-` after the code); fails if anything follows it.
    fn poll_starttls_reply(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let mut chunk = [0u8; 1024];
            let mut buf = ReadBuf::new(&mut chunk);
            match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                // The server closed: hand over what came; lettre reports the cut reply.
                Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                    self.phase = Phase::Normal;
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Ok(())) => {
                    let n = buf.filled().len();
                    self.count(n)?;
                    self.reply.extend_from_slice(buf.filled());
                }
            }
            let mut start = 0;
            while let Some(end) = self.reply[start..].iter().position(|&b| b == b'\n') {
                let line = &self.reply[start..start + end + 1];
                // A line ends in CRLF (RFC 5321, section 2.3.8). lettre reads on after a bare
                // LF, and whatever it read then would come from the plaintext socket.
                if !line.ends_with(b"\r\n") {
                    return Poll::Ready(Err(Violation::StarttlsInjection.into()));
                }
                start += end + 1;
                if line.get(3) != Some(&b'-') {
                    if start < self.reply.len() {
                        return Poll::Ready(Err(Violation::StarttlsInjection.into()));
                    }
                    self.phase = Phase::BeforeHandshake;
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.reading {
            this.reading = true;
            if this.written.eq_ignore_ascii_case(STARTTLS) && this.phase == Phase::Normal {
                this.phase = Phase::StarttlsReply;
                this.reply.clear();
                this.delivered = 0;
            }
        }
        if this.phase == Phase::StarttlsReply {
            match this.poll_starttls_reply(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
        }
        if this.delivered < this.reply.len() {
            let rest = &this.reply[this.delivered..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.delivered += n;
            return Poll::Ready(Ok(()));
        }
        if this.phase == Phase::BeforeHandshake {
            // The whole reply was handed over; the next step is the TLS client hello. A read
            // now could only take plaintext that arrived after the reply.
            return Poll::Ready(Err(Violation::StarttlsInjection.into()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len() - before;
                Poll::Ready(this.count(n))
            }
            other => other,
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.phase == Phase::BeforeHandshake {
            // The TLS client hello: whatever already waits on the socket was sent in plain
            // text after the reply to STARTTLS.
            let mut byte = [0u8; 1];
            let mut peek = ReadBuf::new(&mut byte);
            if matches!(this.inner.poll_peek(cx, &mut peek), Poll::Ready(Ok(n)) if n > 0) {
                return Poll::Ready(Err(Violation::StarttlsInjection.into()));
            }
            this.phase = Phase::Normal;
            this.reply = Vec::new();
            this.delivered = 0;
        }
        if this.reading {
            this.reading = false;
            this.read_since_write = 0;
            this.written.clear();
        }
        let result = Pin::new(&mut this.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = &result {
            let room = (STARTTLS.len() + 1).saturating_sub(this.written.len());
            this.written.extend_from_slice(&data[..(*n).min(room)]);
        }
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for GuardedStream {
    fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.inner.peer_addr()
    }
}

/// An implicit-TLS stream over a [`GuardedStream`], handed to lettre as a plain stream.
///
/// lettre builds an `AsyncSmtpConnection` with implicit TLS only over a socket of its own,
/// which would leave replies unguarded. So the TLS handshake is done here with lettre's own
/// code and `TlsParameters` (`AsyncNetworkStream::upgrade_tls`: the same roots, the same
/// verification), and the result is given to lettre like a socket. lettre then believes
/// the stream unencrypted, which only matters for STARTTLS, never used with implicit TLS.
#[allow(deprecated)] // `AsyncNetworkStream`: public, but marked "not meant to be public"
#[derive(Debug)]
pub(crate) struct ImplicitTls(lettre::transport::smtp::client::AsyncNetworkStream);

#[allow(deprecated)]
impl ImplicitTls {
    /// The TLS handshake over `stream`, verifying the server as `params` say.
    pub(crate) async fn handshake(
        stream: Box<GuardedStream>,
        params: lettre::transport::smtp::client::TlsParameters,
    ) -> Result<Self, lettre::transport::smtp::Error> {
        let mut stream =
            lettre::transport::smtp::client::AsyncNetworkStream::use_existing_tokio1(stream);
        stream.upgrade_tls(params).await?;
        Ok(Self(stream))
    }
}

impl AsyncRead for ImplicitTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let unfilled = buf.initialize_unfilled();
        match futures_io::AsyncRead::poll_read(Pin::new(&mut self.get_mut().0), cx, unfilled) {
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for ImplicitTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        futures_io::AsyncWrite::poll_write(Pin::new(&mut self.get_mut().0), cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_flush(Pin::new(&mut self.get_mut().0), cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_close(Pin::new(&mut self.get_mut().0), cx)
    }
}

impl AsyncTokioStream for ImplicitTls {
    fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.0.peer_addr()
    }
}

#[cfg(test)]
mod tests;
