//! What [`MailTransport::check`](crate::MailTransport::check) reports: one step per thing
//! verified, each `ok`, `warning` or `failed`, with the remedy for a failure.

use std::fmt;

use crate::error::Error;

/// The outcome of one [`CheckStep`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckStatus {
    /// The step passed.
    Ok,
    /// The step passed but needs attention soon (e.g. a secret that expires in 10 days).
    Warning,
    /// The step failed: mail cannot be sent until it is fixed.
    Failed,
}

impl fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ok => "ok",
            Self::Warning => "warning",
            Self::Failed => "failed",
        })
    }
}

/// What kind of failure a failed [`CheckStep`] is, from the [`Error`] it was made from: the
/// same classes as [`Error::is_settings`], [`Error::is_auth`] and [`Error::is_transient`], so
/// that a monitoring script can tell an outage from a wrong secret or a wrong setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// The settings must change (a missing or invalid value, an unreadable file they name,
    /// an outbox folder that cannot be written).
    Settings,
    /// Authentication or a permission was refused: the admin must act.
    Auth,
    /// Temporary: unreachable, timed out, throttled or unavailable; a later check may pass.
    Transient,
    /// Any other failure.
    Other,
}

impl FailureKind {
    /// The class of `error`: settings first, then authentication, then transient.
    #[must_use]
    pub fn of(error: &Error) -> Self {
        if error.is_settings() {
            Self::Settings
        } else if error.is_auth() {
            Self::Auth
        } else if error.is_transient() {
            Self::Transient
        } else {
            Self::Other
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Settings => "settings",
            Self::Auth => "auth",
            Self::Transient => "transient",
            Self::Other => "other",
        })
    }
}

/// One step of a configuration check (token, permission, mailbox, connection, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckStep {
    /// Short name of the step, e.g. `token` or `mailbox`.
    pub name: String,
    /// How it went.
    pub status: CheckStatus,
    /// What was found.
    pub detail: String,
    /// What to change, for a warning or failure.
    pub remedy: Option<String>,
    /// For a failed step, what kind of failure it is ([`FailureKind::Other`] unless the step
    /// was made from an error or given a kind); `None` for a step that did not fail.
    pub kind: Option<FailureKind>,
}

impl CheckStep {
    /// A passed step.
    #[must_use]
    pub fn ok(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status: CheckStatus::Ok,
            detail: detail.into(),
            remedy: None,
            kind: None,
        }
    }

    /// A step that needs attention.
    #[must_use]
    pub fn warning(
        name: impl Into<String>,
        detail: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            status: CheckStatus::Warning,
            detail: detail.into(),
            remedy: Some(remedy.into()),
            kind: None,
        }
    }

    /// A failed step, of [`FailureKind::Other`] until [`CheckStep::with_kind`] says otherwise.
    #[must_use]
    pub fn failed(
        name: impl Into<String>,
        detail: impl Into<String>,
        remedy: Option<String>,
    ) -> Self {
        Self {
            name: name.into(),
            status: CheckStatus::Failed,
            detail: detail.into(),
            remedy,
            kind: Some(FailureKind::Other),
        }
    }

    /// A failed step described by an error, its remedy and its [`FailureKind`].
    #[must_use]
    pub fn from_error(name: impl Into<String>, error: &Error) -> Self {
        Self::failed(name, error.to_string(), error.remedy()).with_kind(FailureKind::of(error))
    }

    /// This step with its failure classed as `kind`; a step that did not fail is returned
    /// as it is.
    #[must_use]
    pub fn with_kind(mut self, kind: FailureKind) -> Self {
        if self.status == CheckStatus::Failed {
            self.kind = Some(kind);
        }
        self
    }
}

impl CheckStep {
    /// The step on one line, its name padded to `width` characters.
    fn write_padded(&self, f: &mut fmt::Formatter<'_>, width: usize) -> fmt::Result {
        let status = self.status.to_string();
        write!(f, "{:<width$} {status:<8} {}", self.name, self.detail)?;
        if let Some(remedy) = &self.remedy {
            write!(f, " — fix: {remedy}")?;
        }
        Ok(())
    }
}

impl fmt::Display for CheckStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_padded(f, 10)
    }
}

/// The steps of a configuration check, in the order they ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// The steps.
    pub steps: Vec<CheckStep>,
}

impl CheckReport {
    /// Adds a step.
    pub fn push(&mut self, step: CheckStep) {
        self.steps.push(step);
    }

    /// The worst status of any step (`Ok` for an empty report).
    #[must_use]
    pub fn status(&self) -> CheckStatus {
        let worst = |s: &CheckStep| match s.status {
            CheckStatus::Ok => 0,
            CheckStatus::Warning => 1,
            CheckStatus::Failed => 2,
        };
        self.steps
            .iter()
            .max_by_key(|s| worst(s))
            .map_or(CheckStatus::Ok, |s| s.status)
    }

    /// The failed steps' [`FailureKind`]s, in the order the steps ran.
    pub fn failures(&self) -> impl Iterator<Item = FailureKind> + '_ {
        self.steps
            .iter()
            .filter(|s| s.status == CheckStatus::Failed)
            .map(|s| s.kind.unwrap_or(FailureKind::Other))
    }

    /// Whether no step failed (warnings allowed).
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.status() != CheckStatus::Failed
    }
}

/// One line per step, the statuses in one column however long the step names are.
impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .steps
            .iter()
            .map(|s| s.name.chars().count())
            .max()
            .unwrap_or(0)
            .max(10);
        for step in &self.steps {
            step.write_padded(f, width)?;
            writeln!(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Transience;

    #[test]
    fn a_step_from_an_error_keeps_its_class() {
        let outage = Error::transport("relay", "down", Transience::Transient);
        assert_eq!(
            CheckStep::from_error("connect", &outage).kind,
            Some(FailureKind::Transient)
        );
        let setting = Error::settings("smtp_host", "required");
        assert_eq!(
            CheckStep::from_error("connect", &setting).kind,
            Some(FailureKind::Settings)
        );
        let refused = Error::transport("relay", "no", Transience::Permanent);
        assert_eq!(
            CheckStep::from_error("connect", &refused).kind,
            Some(FailureKind::Other)
        );
        assert_eq!(CheckStep::ok("connect", "fine").kind, None);
        let ok = CheckStep::ok("connect", "fine").with_kind(FailureKind::Auth);
        assert_eq!(ok.kind, None);
    }

    #[test]
    fn the_report_keeps_its_columns_for_long_step_names() {
        let mut report = CheckReport::default();
        report.push(CheckStep::ok("token", "issued"));
        report.push(CheckStep::warning(
            "certificate expiry",
            "expires in 10 days",
            "renew it",
        ));
        let text = report.to_string();
        let columns: Vec<usize> = text
            .lines()
            .map(|l| l.find("ok ").or_else(|| l.find("warning ")).unwrap())
            .collect();
        assert_eq!(columns, [19, 19], "{text}");
    }
}
