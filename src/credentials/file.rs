//! A credential kept in a file that something else rotates (a vault agent, the Kubernetes
//! token projection): read afresh for every token request, never cached, never printed.

use std::path::Path;

use crate::error::{Error, Result};
use crate::secret::Secret;

/// The file's content, trimmed, as a [`Secret`]. An unreadable or blank file is an
/// [`Error::InvalidCredential`] naming `setting`, the path and `fix` — never the content.
pub(super) async fn read_credential_file(
    setting: &'static str,
    what: &str,
    path: &Path,
    fix: &str,
) -> Result<Secret> {
    let content = tokio::fs::read(path).await.map_err(|e| {
        // The OS error text names the failure (not found, permission denied), not the data.
        Error::InvalidCredential {
            setting,
            reason: format!(
                "cannot read the {what} file `{}`: {e}; {fix}",
                path.display()
            ),
        }
    })?;
    // Read as text without echoing any of it: invalid UTF-8 is reported by position only.
    let text = String::from_utf8(content).map_err(|e| Error::InvalidCredential {
        setting,
        reason: format!(
            "the {what} file `{}` is not UTF-8 text (invalid byte at offset {}); {fix}",
            path.display(),
            e.utf8_error().valid_up_to()
        ),
    })?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(Error::InvalidCredential {
            setting,
            reason: format!("the {what} file `{}` is empty; {fix}", path.display()),
        });
    }
    Ok(Secret::new(trimmed))
}
