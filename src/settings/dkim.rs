//! The DKIM settings (`dkim_domain`, `dkim_selector`, `dkim_private_key_file`): checked
//! together, and made into the signer the SMTP and outbox transports use.

use super::validate::problem;
use super::{ConnectorSettings, TransportKind};
use crate::error::SettingsProblem;

const FIELDS: [&str; 3] = ["dkim_domain", "dkim_selector", "dkim_private_key_file"];

impl ConnectorSettings {
    /// Which of the three DKIM settings are set.
    fn dkim_fields_set(&self) -> [bool; 3] {
        let text = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        [
            text(&self.dkim_domain),
            text(&self.dkim_selector),
            self.dkim_private_key_file
                .as_ref()
                .is_some_and(|p| !p.as_os_str().is_empty()),
        ]
    }

    /// The DKIM settings come as three, only where a message is signed here, and only in a
    /// build with the `dkim` feature.
    pub(super) fn dkim_problems(&self, problems: &mut Vec<SettingsProblem>) {
        let set = self.dkim_fields_set();
        if !set.iter().any(|s| *s) {
            return;
        }
        if let Some(missing) = FIELDS.iter().zip(set).find(|(_, set)| !set) {
            problem(
                problems,
                missing.0,
                format!(
                    "`{}` is required with the other DKIM settings: set `dkim_domain`, \
                     `dkim_selector` and `dkim_private_key_file` together, or none",
                    missing.0
                ),
            );
        }
        if self.outbox_dir.is_none() && self.transport_kind() == TransportKind::Graph {
            problem(
                problems,
                "dkim_domain",
                "DKIM settings apply to SMTP and the outbox; Exchange Online signs Graph \
                 messages with the tenant's DKIM keys (Defender portal, Email authentication \
                 settings): remove them, or send with `transport = \"smtp\"`",
            );
        }
        if cfg!(not(feature = "dkim")) {
            problem(
                problems,
                "dkim_domain",
                "this build of mail-connector has no `dkim` feature; enable it in Cargo.toml \
                 (`mailctl`, installed with `--features cli`, has it) to sign messages",
            );
        }
    }

    /// The signer the DKIM settings describe (settings already validated), with its key read
    /// and checked now, so that a bad key fails `build` and `check` rather than a send.
    #[cfg(feature = "dkim")]
    pub(super) fn dkim_signer(&self) -> crate::Result<Option<crate::dkim::DkimSigner>> {
        let (Some(domain), Some(selector), Some(path)) = (
            &self.dkim_domain,
            &self.dkim_selector,
            &self.dkim_private_key_file,
        ) else {
            return Ok(None);
        };
        crate::dkim::DkimSigner::from_key_file(domain.trim(), selector.trim(), path).map(Some)
    }
}
