//! One daemon per ledger: an exclusive `flock` on a file beside it
//! (`ledger.sqlite.lock`), held for the daemon's whole life.
//!
//! Two daemons on one ledger would each resume the other's refunds in flight, and
//! could send them twice. The lock is the kernel's, so it goes with the process however
//! it ends (a SIGKILL or a power cut included) and a stale lock file never blocks a
//! start. The file holds the holder's pid, for the refusal and for `doctor`. Operator
//! commands do not take it: SQLite's own locking lets them work beside the daemon.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct LedgerLock {
    _file: Flock<File>,
}

/// The lock file of the ledger at `ledger`, named after the file the path leads to:
/// a second daemon given a symlink (or `..` detour) to a running daemon's ledger must
/// meet the same lock, since SQLite follows the link to the same file.
pub fn path_for(ledger: &Path) -> PathBuf {
    let mut name = real_path(ledger).into_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

/// The ledger's path with every link resolved: the file's own if it exists, else its
/// directory's (it is created there); the path as given when neither resolves.
fn real_path(ledger: &Path) -> PathBuf {
    if let Ok(real) = std::fs::canonicalize(ledger) {
        return real;
    }
    match (ledger.parent(), ledger.file_name()) {
        (Some(dir), Some(name)) => {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            std::fs::canonicalize(dir)
                .map(|real| real.join(name))
                .unwrap_or_else(|_| ledger.to_path_buf())
        }
        _ => ledger.to_path_buf(),
    }
}

/// Why the lock cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "another posbridge ({}) is running on the ledger {ledger}; stop it first \
         (systemctl stop posbridge), or give this one a ledger of its own",
        holder.map(|p| format!("pid {p}")).unwrap_or_else(|| "pid unknown".into())
    )]
    Held {
        /// The ledger.
        ledger: String,
        /// The holder's pid, as it wrote it.
        holder: Option<u32>,
    },
    /// The lock file could not be created or locked.
    #[error("lock file {path}: {reason}")]
    File {
        /// The lock file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

impl LedgerLock {
    /// Takes the lock for the ledger at `ledger` without waiting, creating the lock
    /// file (0600; the ledger's directory must exist) and writing this process's pid
    /// into it.
    pub fn acquire(ledger: &Path) -> Result<LedgerLock, LockError> {
        let path = path_for(ledger);
        let failed = |reason: String| LockError::File {
            path: path.display().to_string(),
            reason,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| failed(format!("cannot open: {e}")))?;
        let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => locked,
            Err((mut file, Errno::EWOULDBLOCK)) => {
                return Err(LockError::Held {
                    ledger: ledger.display().to_string(),
                    holder: read_pid(&mut file),
                });
            }
            Err((_, errno)) => return Err(failed(format!("cannot lock: {}", errno.desc()))),
        };
        let pid = format!("{}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(pid.as_bytes()))
            .map_err(|e| failed(format!("cannot write the pid: {e}")))?;
        Ok(LedgerLock { _file: file })
    }
}

/// Who holds a ledger's lock, as far as this process can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// No daemon runs on the ledger (or there is no lock file yet).
    Nobody,
    /// A daemon runs on it; its pid, as it wrote it.
    Daemon(Option<u32>),
    /// This process cannot tell: the lock file cannot be opened or tried (another
    /// user's file, say). The reason names the file.
    Unknown(String),
}

/// Who holds the lock of the ledger at `ledger`. Takes the lock for a moment to find
/// out, so a daemon starting at that very moment may be refused once; it creates
/// nothing. A lock file this process may not open is [`Holder::Unknown`], never
/// "nobody": an operator running `doctor` as another user must not read that no
/// daemon runs.
pub fn holder(ledger: &Path) -> Holder {
    let path = path_for(ledger);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Holder::Nobody,
        Err(e) => return Holder::Unknown(format!("lock file {}: {e}", path.display())),
    };
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(_) => Holder::Nobody,
        Err((mut file, Errno::EWOULDBLOCK)) => Holder::Daemon(read_pid(&mut file)),
        Err((_, errno)) => Holder::Unknown(format!(
            "lock file {}: cannot try its lock: {}",
            path.display(),
            errno.desc()
        )),
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_to_a_held_ledger_meets_the_same_lock() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("ledger.sqlite");
        std::fs::write(&real, b"").unwrap();
        let alias = dir.path().join("alias.sqlite");
        std::os::unix::fs::symlink(&real, &alias).unwrap();
        let detour = dir.path().join("sub");
        std::fs::create_dir(&detour).unwrap();
        let through_dots = detour.join("..").join("ledger.sqlite");
        let _held = LedgerLock::acquire(&real).unwrap();
        for other in [&alias, &through_dots] {
            assert!(
                matches!(LedgerLock::acquire(other), Err(LockError::Held { .. })),
                "{} took a lock of its own",
                other.display()
            );
            assert_eq!(holder(other), Holder::Daemon(Some(std::process::id())));
        }
        // Not yet created: named after its directory's real path.
        let fresh = detour.join("..").join("new.sqlite");
        assert_eq!(path_for(&fresh), path_for(&dir.path().join("new.sqlite")));
    }

    #[test]
    fn one_holder_at_a_time_named_by_pid_and_free_once_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("ledger.sqlite");
        assert_eq!(holder(&ledger), Holder::Nobody, "no lock file: nobody");
        let first = LedgerLock::acquire(&ledger).unwrap();
        assert_eq!(holder(&ledger), Holder::Daemon(Some(std::process::id())));
        // A second open of the file is another lock, refused as another process's is.
        match LedgerLock::acquire(&ledger) {
            Err(LockError::Held {
                holder,
                ledger: named,
            }) => {
                assert_eq!(holder, Some(std::process::id()));
                assert_eq!(named, ledger.display().to_string());
            }
            other => panic!("{other:?}"),
        }
        drop(first);
        assert_eq!(holder(&ledger), Holder::Nobody, "released");
        let again = LedgerLock::acquire(&ledger).unwrap();
        drop(again);
    }

    #[test]
    fn a_lock_file_that_cannot_be_opened_is_unknown_not_nobody() {
        let dir = tempfile::tempdir().unwrap();
        // A regular file where a directory should be: even root cannot open the lock.
        let not_a_dir = dir.path().join("state");
        std::fs::write(&not_a_dir, b"").unwrap();
        match holder(&not_a_dir.join("ledger.sqlite")) {
            Holder::Unknown(why) => assert!(why.contains("ledger.sqlite.lock"), "{why}"),
            other => panic!("{other:?}"),
        }
        // Another user's lock file (only meaningful when not root, who opens anything).
        if !nix::unistd::geteuid().is_root() {
            use std::os::unix::fs::PermissionsExt;
            let ledger = dir.path().join("ledger.sqlite");
            let _held = LedgerLock::acquire(&ledger).unwrap();
            let lock = path_for(&ledger);
            std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o000)).unwrap();
            assert!(matches!(holder(&ledger), Holder::Unknown(_)));
        }
    }
}
