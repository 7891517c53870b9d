//! A credential kept in a file that something else rotates (a vault agent, the Kubernetes
//! token projection): read afresh for every token request, never cached, never printed.

use std::path::Path;

use crate::error::{Error, Result};
use crate::secret::Secret;

/// The most bytes read from a credential file: a Key Vault secret is at most 25 KB, a workload
/// token a few KB.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// The file's content, trimmed, as a [`Secret`]. An unreadable or blank file is an
/// [`Error::InvalidCredential`] naming `setting`, the path and `fix` — never the content.
pub(super) async fn read_credential_file(
    setting: &'static str,
    what: &str,
    path: &Path,
    fix: &str,
) -> Result<Secret> {
    let unreadable = |e: std::io::Error| {
        // The OS error text names the failure (not found, permission denied), not the data.
        Error::InvalidCredential {
            setting,
            reason: format!(
                "cannot read the {what} file `{}`: {e}; {fix}",
                path.display()
            ),
        }
    };
    // A regular file, read up to a bound: a secret or a workload token is a few KB, and a
    // FIFO or a device must not hold the token request (or memory) hostage.
    let metadata = tokio::fs::metadata(path).await.map_err(unreadable)?;
    if !metadata.is_file() {
        return Err(Error::InvalidCredential {
            setting,
            reason: format!("`{}` is not a regular file; {fix}", path.display()),
        });
    }
    let mut content = Vec::new();
    let file = tokio::fs::File::open(path).await.map_err(unreadable)?;
    tokio::io::AsyncReadExt::read_to_end(
        &mut tokio::io::AsyncReadExt::take(file, MAX_FILE_BYTES + 1),
        &mut content,
    )
    .await
    .map_err(unreadable)?;
    if content.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::InvalidCredential {
            setting,
            reason: format!(
                "the {what} file `{}` is larger than {MAX_FILE_BYTES} bytes; {fix}",
                path.display()
            ),
        });
    }
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
