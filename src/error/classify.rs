//! What an [`Error`] says of itself: whether to retry, whether the settings or a permission
//! must change, whether the email may have gone out, what to fix, and what the server
//! answered. Callers ask these rather than matching on variants.

use std::time::Duration;

use super::{Delivery, Error, OUTBOX_DIR, WHOLE_SETTINGS, partial};

impl Error {
    /// Whether sending again later may succeed *and* cannot duplicate the mail: throttling, a
    /// server that is temporarily unavailable, a connection that was never made. Errors caused
    /// by settings, the email itself or permissions are not transient, and neither is any error
    /// after which delivery is [`Delivery::Uncertain`] — resending then is the caller's call —
    /// nor an [`Error::PartialDelivery`] after which some recipients already have the mail
    /// or some were refused for good (resend only to its `not_sent` recipients that are not
    /// `refused_permanently`).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        if self.delivery() == Delivery::Uncertain {
            return false;
        }
        match self {
            Self::Transport { transient, .. } => *transient,
            // A full disk or used-up quota passes once space is freed: retrying later helps.
            Self::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::WouldBlock
                    | std::io::ErrorKind::StorageFull
                    | std::io::ErrorKind::QuotaExceeded
            ),
            // Once a part went out, resending the email would duplicate it: resend to
            // `not_sent` instead.
            Self::PartialDelivery {
                delivered,
                refused_permanently,
                source,
                ..
            } => {
                delivered.messages.is_empty()
                    && refused_permanently.is_empty()
                    && source.is_transient()
            }
            Self::Graph { transient, .. } => *transient,
            Self::TokenRequest {
                status, transient, ..
            } => *transient || *status == 429 || *status >= 500,
            Self::TokenEndpoint { transient, .. } => *transient,
            Self::Smtp { transient, .. } => *transient,
            Self::Queue { transient, .. } => *transient,
            Self::InvalidCredential { .. }
            | Self::InvalidMessage { .. }
            | Self::InvalidSettings { .. }
            | Self::Disabled
            | Self::NotAvailable { .. } => false,
        }
    }

    /// Whether the settings must change before anything can be sent: a missing, invalid or
    /// contradictory value ([`Error::InvalidSettings`]), a settings file — or a file it names
    /// (certificate, key, DKIM key, trusted CA file) — that cannot be read, the outbox folder
    /// they name (`outbox_dir`) that cannot be written (a full disk is
    /// [transient](Error::is_transient) instead), an SMTP TLS mode
    /// that does not match the server's port, a recipient-limit split whose first part failed
    /// for one of these reasons, a credential in them that cannot be used
    /// ([`Error::InvalidCredential`]), a transport this build lacks, or the connector switched
    /// off ([`Error::Disabled`]), or an error a transport marked so
    /// ([`Error::with_settings`]). Waiting or retrying does not help; neither does anything on
    /// the server's side (for credentials the server refused, see [`Error::is_auth`]).
    ///
    /// ```
    /// use mail_connector::ConnectorSettings;
    ///
    /// let error = ConnectorSettings::from_toml_str("auth_mode = \"kerberos\"").unwrap_err();
    /// assert!(error.is_settings());
    /// ```
    #[must_use]
    pub fn is_settings(&self) -> bool {
        match self {
            Self::InvalidSettings { .. }
            | Self::InvalidCredential { .. }
            | Self::NotAvailable { .. }
            | Self::Disabled => true,
            // A full disk is no setting's fault: it passes once space is freed.
            Self::Io { setting, .. } => setting.is_some() && !self.is_transient(),
            // E.g. an SMTP TLS mode that does not match the port, or a transport of the
            // caller's own marked by `Error::with_settings`.
            Self::Smtp { advice, .. }
            | Self::Graph { advice, .. }
            | Self::Transport { advice, .. } => advice.is_settings(),
            // A split that delivered nothing and left nothing uncertain failed as its first
            // part did.
            Self::PartialDelivery {
                delivered,
                uncertain,
                source,
                ..
            } => delivered.messages.is_empty() && uncertain.is_empty() && source.is_settings(),
            _ => false,
        }
    }

    /// Whether the error comes from authentication or authorization: a wrong or expired
    /// secret, a missing permission or consent, a mailbox the app may not send from. For an
    /// [`Error::PartialDelivery`], when its source is, or when a recipient was refused for
    /// good for a permission or policy ([`Refusal::is_auth`](super::Refusal::is_auth), a
    /// `550 5.7.1` relay denied say), whatever the other recipients' refusals: the admin
    /// must act before those recipients can get it. That does not say the session's
    /// credentials are wrong: the others may have got it.
    #[must_use]
    pub fn is_auth(&self) -> bool {
        match self {
            Self::PartialDelivery {
                source, refusals, ..
            } => source.is_auth() || refusals.iter().any(|r| r.is_permanent() && r.is_auth()),
            Self::TokenRequest { .. } => !self.is_transient(),
            Self::InvalidCredential { .. } => true,
            Self::Graph { advice, .. }
            | Self::Smtp { advice, .. }
            | Self::Transport { advice, .. } => advice.is_auth(),
            _ => false,
        }
    }

    /// Whether the message may have been delivered despite this error.
    ///
    /// For [`Error::PartialDelivery`] this is [`Delivery::Uncertain`] when any recipient's
    /// delivery is uncertain; use its fields for the exact split. For [`Error::Queue`] it is
    /// [`Delivery::Uncertain`] when an enqueue may have stored the email although it failed
    /// (a worker would then deliver it).
    #[must_use]
    pub fn delivery(&self) -> Delivery {
        match self {
            Self::Transport { delivery, .. }
            | Self::Graph { delivery, .. }
            | Self::Smtp { delivery, .. }
            | Self::Queue { delivery, .. } => *delivery,
            Self::PartialDelivery { uncertain, .. } if !uncertain.is_empty() => Delivery::Uncertain,
            _ => Delivery::NotSent,
        }
    }

    /// What an admin or developer should change to fix this error: which setting, which
    /// setup step. `None` when there is nothing to change (for example a transient failure
    /// that a retry will fix).
    #[must_use]
    pub fn remedy(&self) -> Option<String> {
        match self {
            Self::InvalidMessage { field, .. } => Some(format!(
                "correct `{field}` in the email before sending it again"
            )),
            Self::InvalidSettings { problems } => {
                let fields: Vec<String> = problems
                    .iter()
                    .filter(|p| p.field != WHOLE_SETTINGS)
                    .map(|p| format!("`{}`", p.field))
                    .collect();
                let mut steps = Vec::new();
                if problems.iter().any(|p| p.field == WHOLE_SETTINGS) {
                    steps.push(
                        "correct the settings where the error points (the line and column, or \
                         the key it names): text in double quotes, and only the keys of the \
                         settings table in the documentation"
                            .to_owned(),
                    );
                }
                if !fields.is_empty() {
                    steps.push(format!("fix these settings: {}", fields.join(", ")));
                }
                Some(steps.join("; "))
            }
            Self::Disabled => Some(
                "enable the connector (set `enabled = true`, the admin screen's Enable/Disable) \
                 to send mail"
                    .to_owned(),
            ),
            Self::NotAvailable { reason, .. } => Some((*reason).to_owned()),
            Self::Io { source, .. }
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                ) =>
            {
                Some(
                    "the disk (or this user's quota) is full: free space on it, or point the \
                     setting that names this path elsewhere; retrying after that succeeds"
                        .to_owned(),
                )
            }
            Self::Io {
                setting: Some(OUTBOX_DIR),
                path,
                ..
            } => Some(format!(
                "check that the folder `{}` exists or can be created, and that this process \
                 may write into it (its owner and permissions); or set Outbox folder \
                 (`{OUTBOX_DIR}`) to a folder it can write",
                path.display()
            )),
            Self::Io {
                setting: Some(setting),
                ..
            } if *setting != WHOLE_SETTINGS => Some(format!(
                "check that the path exists and that this process may read it, or correct \
                 `{setting}`"
            )),
            Self::Io { .. } => Some(
                "check that the path exists and that this process may read or write it".to_owned(),
            ),
            Self::PartialDelivery {
                delivered,
                uncertain,
                not_sent,
                refused_permanently,
                source,
                ..
            } => partial::remedy(delivered, uncertain, not_sent, refused_permanently, source),
            Self::Transport { advice, .. } => advice.remedy_text(),
            Self::Graph { advice, .. }
            | Self::TokenRequest { advice, .. }
            | Self::TokenEndpoint { advice, .. }
            | Self::Smtp { advice, .. }
            | Self::Queue { advice, .. } => advice.remedy_text(),
            Self::InvalidCredential { setting, .. } => Some(format!(
                "fix `{setting}`: see the credentials setup steps in the documentation"
            )),
        }
    }

    /// The HTTP status or SMTP reply code the server answered with, if any.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Graph { status, .. } => *status,
            Self::TokenRequest { status, .. } => Some(*status),
            Self::Smtp { code, .. } => *code,
            Self::PartialDelivery { source, .. } => source.status(),
            _ => None,
        }
    }

    /// How long the server asked callers to wait before trying again (`Retry-After`), when
    /// it did. The transports already honour it within their send deadline; this is for
    /// callers (or queues) that schedule their own retries.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Graph { advice, .. }
            | Self::TokenRequest { advice, .. }
            | Self::TokenEndpoint { advice, .. }
            | Self::Transport { advice, .. } => advice.retry_after(),
            Self::PartialDelivery { source, .. } => source.retry_after(),
            _ => None,
        }
    }
}
