//! [`GraphTransportBuilder`]: limits, timeouts, endpoint and scope of a [`GraphTransport`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::client::{GraphClient, MailboxState};
use super::{DEFAULT_ENDPOINT, DEFAULT_SCOPE, GraphTransport, MAX_CONCURRENCY};
use crate::credentials::TokenProvider;
use crate::error::{Error, Result};
use crate::http::{HttpOptions, capped, http_client};
use crate::message::Mailbox;
use crate::net::https_url;
use crate::retry::RetryPolicy;

/// Configures a [`GraphTransport`]; start from [`GraphTransport::builder`].
#[derive(Debug)]
#[must_use]
pub struct GraphTransportBuilder {
    tokens: Arc<dyn TokenProvider>,
    scope: String,
    endpoint: String,
    mailbox: Mailbox,
    http: HttpOptions,
    http_client: Option<reqwest::Client>,
    /// The timeout the given client applies to each request by itself, when this crate made
    /// it; `None` for a caller's client.
    http_client_timeout: Option<Duration>,
    /// The connect timeout of a client made here (unknown for a caller's).
    http_client_connect_timeout: Option<Duration>,
    max_concurrency: usize,
    retry: RetryPolicy,
    send_deadline: Duration,
    save_to_sent_items: bool,
    allow_send_as: bool,
}

impl GraphTransportBuilder {
    pub(super) fn new(mailbox: Mailbox, tokens: Arc<dyn TokenProvider>) -> Self {
        Self {
            tokens,
            scope: DEFAULT_SCOPE.to_owned(),
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            mailbox,
            http: HttpOptions::default(),
            http_client: None,
            http_client_timeout: None,
            http_client_connect_timeout: None,
            max_concurrency: 4,
            retry: RetryPolicy::default(),
            send_deadline: Duration::from_secs(120),
            save_to_sent_items: true,
            allow_send_as: false,
        }
    }

    /// The most Graph requests in flight at once for this mailbox (default 4, Exchange
    /// Online's limit). 0 is treated as 1, and values over 1,024 as 1,024.
    pub fn max_concurrency(mut self, requests: usize) -> Self {
        self.max_concurrency = requests.clamp(1, MAX_CONCURRENCY);
        self
    }

    /// How long the whole send may take, retries and uploads included (default 120 s).
    /// It also bounds [`MailTransport::check`](crate::MailTransport::check) as a whole. Values over a day count as a day.
    pub fn send_deadline(mut self, deadline: Duration) -> Self {
        self.send_deadline = capped(deadline);
        self
    }

    /// How long connecting (TCP and the TLS handshake) may take (default 10 s; values over a
    /// day count as a day).
    ///
    /// On a builder from the settings ([`ConnectorSettings::graph_builder`]), whose one HTTP
    /// client serves Graph and the token endpoint, this gives Graph a client of its own, made
    /// with the settings' options (`tls_ca_file`) and this timeout; the token endpoint keeps
    /// the shared one. With a caller's client ([`http_client`](Self::http_client)) it does
    /// nothing: that client's own connect timeout applies.
    ///
    /// [`ConnectorSettings::graph_builder`]: crate::ConnectorSettings::graph_builder
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.http.connect_timeout = capped(timeout);
        self.leave_shared_client();
        self
    }

    /// How long one request may take (default 30 s; the send deadline still applies;
    /// values over a day count as a day).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.http.request_timeout = capped(timeout);
        self
    }

    /// How throttled and failed requests are retried.
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Uses this HTTP client instead of one of its own (proxies, custom TLS, a shared pool),
    /// as it is: [`connect_timeout`](Self::connect_timeout) and
    /// [`tls_ca_file`](Self::tls_ca_file) do not change it.
    ///
    /// # Security
    ///
    /// Build it with `redirect(reqwest::redirect::Policy::none())`. The transport's own client
    /// follows no redirect, but it cannot see a caller's client's policy: one that follows
    /// redirects would send the bearer token wherever an answer points, before the transport
    /// sees the redirect.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self.http_client_timeout = None;
        self.http_client_connect_timeout = None;
        self
    }

    /// As [`http_client`](Self::http_client), for a client this crate made with `options`:
    /// their request timeout (requests whose timeout is that one need not set their own)
    /// and connect timeout are known. The options become this builder's, so that a client
    /// of Graph's own (after [`connect_timeout`](Self::connect_timeout) or
    /// [`tls_ca_file`](Self::tls_ca_file)) loses nothing they set.
    pub(crate) fn http_client_made_here(
        mut self,
        client: reqwest::Client,
        options: &crate::http::HttpOptions,
    ) -> Self {
        self.http = HttpOptions {
            request_timeout: self.http.request_timeout,
            ..options.clone()
        };
        self.http_client = Some(client);
        self.http_client_timeout = Some(options.request_timeout);
        self.http_client_connect_timeout = Some(options.connect_timeout);
        self
    }

    /// The Graph endpoint (default [`DEFAULT_ENDPOINT`]): a national cloud's, a proxy's or a
    /// test server's. `https`, or plain `http` for localhost only. It does not change the
    /// token scope: see [`scope`](Self::scope).
    pub fn graph_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into();
        self
    }

    /// The scope of the tokens Graph is sent (default [`DEFAULT_SCOPE`]): the cloud's Graph
    /// resource with `/.default`, e.g. `https://graph.microsoft.us/.default`.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }

    /// Trust the root certificates in this PEM file too, for Graph (in place of the
    /// settings' `tls_ca_file`, if any).
    ///
    /// On a builder from the settings ([`ConnectorSettings::graph_builder`]), whose one HTTP
    /// client serves Graph and the token endpoint, this gives Graph a client of its own, made
    /// with the settings' options and this file; the token endpoint keeps the shared one and
    /// the settings' `tls_ca_file`. With a caller's client ([`http_client`](Self::http_client))
    /// it does nothing: that client's own trusted roots apply.
    ///
    /// [`ConnectorSettings::graph_builder`]: crate::ConnectorSettings::graph_builder
    pub fn tls_ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.http.tls_ca_file = Some(path.into());
        self.leave_shared_client();
        self
    }

    /// Lets go of a client made here and shared with the token endpoint, whose connect
    /// timeout and trusted roots are fixed: `build` makes Graph its own from `self.http`,
    /// which holds the options that client was made with. A caller's client is kept.
    fn leave_shared_client(&mut self) {
        if self.http_client_timeout.is_some() {
            self.http_client = None;
            self.http_client_timeout = None;
            self.http_client_connect_timeout = None;
        }
    }

    /// Whether Graph keeps a copy in the mailbox's Sent Items (default `true`). Only the JSON
    /// form of `sendMail` can leave it out: a message sent in MIME form or through a draft
    /// (large attachments) is always kept there (see [the module page](super)).
    pub fn save_to_sent_items(mut self, save: bool) -> Self {
        self.save_to_sent_items = save;
        self
    }

    /// Whether emails may name another From address (needs Exchange Send As rights).
    pub fn allow_send_as(mut self, allow: bool) -> Self {
        self.allow_send_as = allow;
        self
    }

    /// Builds the transport.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSettings`] naming `graph_endpoint` when it is not an `https` URL (or
    /// `http` on localhost) that can hold a path, or naming `tls_ca_file` when its
    /// certificates cannot be used.
    pub fn build(self) -> Result<GraphTransport> {
        let endpoint = https_url("graph_endpoint", "Graph endpoint", &self.endpoint)?;
        if endpoint.cannot_be_a_base() {
            return Err(Error::settings(
                "graph_endpoint",
                "Graph endpoint (`graph_endpoint`) cannot hold a path",
            ));
        }
        let (http, client_timeout, connect_timeout) = match self.http_client {
            Some(client) => (
                client,
                self.http_client_timeout,
                self.http_client_connect_timeout,
            ),
            None => (
                http_client(&self.http)?,
                Some(self.http.request_timeout),
                Some(self.http.connect_timeout),
            ),
        };
        let send_mail_url = super::mailbox_url(&endpoint, &self.mailbox, &["sendMail"]);
        Ok(GraphTransport {
            client: GraphClient {
                http,
                tokens: self.tokens,
                scope: self.scope,
                permits: Arc::new(Semaphore::new(self.max_concurrency)),
                retry: RetryPolicy {
                    deadline: Some(self.send_deadline),
                    ..self.retry
                },
                request_timeout: self.http.request_timeout,
                client_timeout,
                connect_timeout,
                state: Arc::new(MailboxState::default()),
                bearer: Arc::default(),
            },
            endpoint,
            send_mail_url,
            mailbox: self.mailbox,
            save_to_sent_items: self.save_to_sent_items,
            allow_send_as: self.allow_send_as,
            send_deadline: self.send_deadline,
        })
    }
}
