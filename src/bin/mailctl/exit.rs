//! `mailctl`'s exit codes, the one place that maps an [`Error`] to one. Scripts depend on
//! these numbers: never renumber them.

use std::process::ExitCode;

use mail_connector::{CheckReport, Error, FailureKind};

/// What a run of `mailctl` ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// 0: done (for `check`: no step failed; warnings allowed).
    Ok,
    /// 1: any other failure (a recipient refused — but for a permission or policy, 4 —, a
    /// `check` step that failed for another reason than the ones below, an attachment that
    /// cannot be read).
    Failed,
    /// 2: the command line is wrong: an unknown flag, a missing value, an address that is
    /// not valid (clap exits with 2 for its own usage errors too).
    Usage,
    /// 3: the settings are invalid or missing, a file they name cannot be read, the outbox
    /// folder they name cannot be written, or the connector is disabled: the settings must
    /// change.
    Settings,
    /// 4: authentication or a permission was refused: the admin must act (secret, consent,
    /// mailbox permission, a recipient refused for a permission or policy such as
    /// `550 5.7.1` relay denied).
    Refused,
    /// 5: temporary: unreachable, timed out, throttled, unavailable. Retry later.
    Temporary,
    /// 6: some recipients got the message and others did not, or delivery is uncertain: do
    /// not resend blindly.
    Partial,
}

/// The exit codes as `--help` and docs/mailctl.md list them.
pub(crate) const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  ok (check: no step failed; warnings allowed)
  1  any other failure: a recipient refused, an attachment not readable
     (check: the code of its worst failed step, 1 when none of 3-5 fits)
  2  usage: an unknown flag, a missing value, an address that is not valid
  3  settings invalid or missing, a file they name unreadable, the outbox folder
     unwritable, or the connector disabled
  4  authentication or permission refused: the admin must act
     (a recipient refused for a permission or policy, e.g. 550 5.7.1, too)
  5  temporary: unreachable, timed out or throttled; retry later
  6  partial or uncertain delivery: do not resend blindly (--json says who got it)";

impl Exit {
    /// The exit code for `error`, from what the error says of itself. A partial delivery
    /// that delivered nothing (a recipient-limit split whose first part failed, an SMTP
    /// server that refused every recipient) exits as its source would, so that the code does
    /// not depend on `recipient_limit` — but, whatever its source, as a refused permission
    /// (4) when a recipient was refused permanently for a permission or policy (a `5.7.x`
    /// reply such as `550 5.7.1` relay denied, which a single refused recipient's error
    /// exits 4 for too: the admin must act), else as a refused recipient (1) when some were
    /// refused permanently beside a temporary source. Each refused recipient's reply is in
    /// the error's `refusals`, so the order of the refusals does not matter. An
    /// "authentication required" reply at `RCPT TO` is no recipient's refusal and exits 4 as
    /// the error itself. A partial delivery that delivered something, or left delivery
    /// uncertain, exits 6 whatever its refusals: do not resend blindly comes first.
    pub(crate) fn of(error: &Error) -> Self {
        let part_went_out = matches!(
            error,
            Error::PartialDelivery { delivered, .. } if !delivered.messages.is_empty()
        );
        if part_went_out || error.delivery() == mail_connector::Delivery::Uncertain {
            return Self::Partial;
        }
        if let Error::PartialDelivery {
            refused_permanently,
            source,
            ..
        } = error
        {
            // A permission or policy refused for good: the admin must act, whatever the
            // others' refusals say (the error's own rule, `is_auth`).
            if error.is_auth() {
                return Self::Refused;
            }
            // Every recipient refused, some for good: a recipient refused, whatever the
            // others' temporary refusal (the source) says.
            if !refused_permanently.is_empty() && source.is_transient() {
                return Self::Failed;
            }
            return Self::of(source);
        }
        if !error.is_settings() && matches!(error, Error::InvalidMessage { .. }) {
            // The email is built from the command line alone.
            return Self::Usage;
        }
        Self::of_failure(FailureKind::of(error))
    }

    /// The exit code for a failure of `kind`: the one mapping from an error's class to a
    /// code, shared by `send` (through [`Exit::of`]) and `check`.
    pub(crate) fn of_failure(kind: FailureKind) -> Self {
        match kind {
            FailureKind::Settings => Self::Settings,
            FailureKind::Auth => Self::Refused,
            FailureKind::Transient => Self::Temporary,
            _ => Self::Failed,
        }
    }

    /// The exit code for `check`'s report: 0 when no step failed, else the code of the
    /// worst failed step — a setting to change first, then a refused credential, then any
    /// other failure, and only then an outage (a check that is retried later still needs
    /// the other fixes).
    pub(crate) fn of_check(report: &CheckReport) -> Self {
        let rank = |exit: &Self| match exit {
            Self::Settings => 0,
            Self::Refused => 1,
            Self::Failed => 2,
            _ => 3,
        };
        report
            .failures()
            .map(Self::of_failure)
            .min_by_key(rank)
            .unwrap_or(Self::Ok)
    }

    /// The number the process exits with.
    pub(crate) fn code(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Failed => 1,
            Self::Usage => 2,
            Self::Settings => 3,
            Self::Refused => 4,
            Self::Temporary => 5,
            Self::Partial => 6,
        }
    }

    /// The name `--json` output gives it (`"kind"`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::Usage => "usage",
            Self::Settings => "settings",
            Self::Refused => "refused",
            Self::Temporary => "temporary",
            Self::Partial => "partial",
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_connector::{ConnectorSettings, Transience};

    #[test]
    fn errors_map_to_their_documented_codes() {
        let settings = ConnectorSettings::from_toml_str("auth_mode = 1").unwrap_err();
        assert_eq!(Exit::of(&settings), Exit::Settings);
        assert_eq!(Exit::of(&Error::Disabled), Exit::Settings);
        let outage = Error::transport("relay", "down", Transience::Transient);
        assert_eq!(Exit::of(&outage), Exit::Temporary);
        let refused = Error::transport("relay", "no", Transience::Permanent);
        assert_eq!(Exit::of(&refused), Exit::Failed);
        assert_eq!(Exit::of(&outage.with_uncertain_delivery()), Exit::Partial);
        let invalid = mail_connector::Email::builder()
            .to("nope")
            .build()
            .unwrap_err();
        assert_eq!(Exit::of(&invalid), Exit::Usage);
    }

    #[test]
    fn check_exits_with_its_worst_failed_step() {
        use mail_connector::CheckStep;
        let outage = Error::transport("relay", "down", Transience::Transient);
        let setting = ConnectorSettings::from_toml_str("auth_mode = 1").unwrap_err();
        let mut report = CheckReport::default();
        report.push(CheckStep::ok("connect", "fine"));
        assert_eq!(Exit::of_check(&report), Exit::Ok);
        report.push(CheckStep::from_error("connect", &outage));
        assert_eq!(Exit::of_check(&report), Exit::Temporary);
        report.push(CheckStep::failed("quit", "odd", None));
        assert_eq!(Exit::of_check(&report), Exit::Failed);
        report.push(CheckStep::from_error("dkim", &setting));
        assert_eq!(Exit::of_check(&report), Exit::Settings);
    }

    #[test]
    fn the_help_lists_every_code() {
        for exit in [
            Exit::Ok,
            Exit::Failed,
            Exit::Usage,
            Exit::Settings,
            Exit::Refused,
            Exit::Temporary,
            Exit::Partial,
        ] {
            let line = format!("\n  {}  ", exit.code());
            assert!(EXIT_CODES_HELP.contains(&line), "{exit:?}");
        }
    }
}
