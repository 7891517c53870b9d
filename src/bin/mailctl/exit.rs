//! `mailctl`'s exit codes, the one place that maps an [`Error`] to one. Scripts depend on
//! these numbers: never renumber them.

use std::process::ExitCode;

use mail_connector::Error;

/// What a run of `mailctl` ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// 0: done (for `check`: no step failed; warnings allowed).
    Ok,
    /// 1: any other failure (a recipient refused, a failed `check` step, a file not written).
    Failed,
    /// 2: the command line is wrong: an unknown flag, a missing value, an address that is
    /// not valid (clap exits with 2 for its own usage errors too).
    Usage,
    /// 3: the settings are invalid or missing, a file they name cannot be read, or the
    /// connector is disabled: the settings must change.
    Settings,
    /// 4: authentication or a permission was refused: the admin must act (secret, consent,
    /// mailbox permission).
    Refused,
    /// 5: temporary: unreachable, timed out, throttled, unavailable. Retry later.
    Temporary,
    /// 6: some recipients got the message and others did not, or delivery is uncertain: do
    /// not resend blindly.
    Partial,
}

/// The exit codes as `--help` and the README list them.
pub(crate) const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  ok (check: no step failed; warnings allowed)
  1  any other failure: a recipient refused, a failed check step, a file not written
  2  usage: an unknown flag, a missing value, an address that is not valid
  3  settings invalid or missing, a file they name unreadable, or the connector disabled
  4  authentication or permission refused: the admin must act
  5  temporary: unreachable, timed out or throttled; retry later
  6  partial or uncertain delivery: do not resend blindly (--json says who got it)";

impl Exit {
    /// The exit code for `error`, from what the error says of itself.
    pub(crate) fn of(error: &Error) -> Self {
        let part_went_out = matches!(
            error,
            Error::PartialDelivery { delivered, .. } if !delivered.messages.is_empty()
        );
        if part_went_out || error.delivery() == mail_connector::Delivery::Uncertain {
            Self::Partial
        } else if error.is_settings() {
            Self::Settings
        } else if matches!(error, Error::InvalidMessage { .. }) {
            // The email is built from the command line alone.
            Self::Usage
        } else if error.is_auth() {
            Self::Refused
        } else if error.is_transient() {
            Self::Temporary
        } else {
            Self::Failed
        }
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
