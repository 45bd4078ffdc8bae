//! Whether a ledger file is there for this user, told by the error's kind: a file
//! that is missing is created on the daemon's first start, but one this user may not
//! read belongs to the service user, whose commands must be run as that user.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// What is at a ledger's path, for this user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Presence {
    /// The file is there and this user may open it.
    Present,
    /// Nothing is there; `dir_exists` says whether its directory is.
    Missing {
        /// Whether the directory is there.
        dir_exists: bool,
    },
    /// Something is there (or may be), but this user may not look or open it.
    Denied {
        /// The path that refused (the ledger or one of its directories).
        path: PathBuf,
        /// The system's words.
        reason: String,
    },
    /// It cannot be looked at for another reason.
    Unreadable {
        /// The system's words.
        reason: String,
    },
}

/// Looks at the ledger at `path` as this user would open it (read and write, since
/// even reading a WAL ledger writes its shared-memory file).
pub fn presence(path: &Path) -> Presence {
    let denied = |path: &Path, e: std::io::Error| Presence::Denied {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    match std::fs::metadata(path) {
        Ok(_) => match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
        {
            Ok(_) => Presence::Present,
            Err(e) if e.kind() == ErrorKind::PermissionDenied => denied(path, e),
            Err(e) => Presence::Unreadable {
                reason: e.to_string(),
            },
        },
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            match dir.map(std::fs::metadata) {
                None | Some(Ok(_)) => Presence::Missing { dir_exists: true },
                Some(Err(e)) if e.kind() == ErrorKind::NotFound => {
                    Presence::Missing { dir_exists: false }
                }
                Some(Err(e)) if e.kind() == ErrorKind::PermissionDenied => {
                    denied(dir.unwrap_or(path), e)
                }
                Some(Err(e)) => Presence::Unreadable {
                    reason: e.to_string(),
                },
            }
        }
        Err(e) if e.kind() == ErrorKind::PermissionDenied => denied(path, e),
        Err(e) => Presence::Unreadable {
            reason: e.to_string(),
        },
    }
}

/// What to tell a user the ledger refused: whose it is and the command to run as
/// that user instead (`command` is the posbridge command line, `queue`...).
pub fn denied_text(ledger: &Path, refused: &Path, reason: &str, command: &str) -> String {
    let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid {}", nix::unistd::geteuid()));
    format!(
        "the ledger {} exists but user {me} may not open it ({}: {reason}): it belongs to the \
         service user; run the command as that user: sudo -u posbridge posbridge {command}",
        ledger.display(),
        refused.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_present_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ledger.sqlite");
        assert_eq!(presence(&file), Presence::Missing { dir_exists: true });
        assert_eq!(
            presence(&dir.path().join("no/ledger.sqlite")),
            Presence::Missing { dir_exists: false }
        );
        std::fs::write(&file, b"").unwrap();
        assert_eq!(presence(&file), Presence::Present);
    }
}
