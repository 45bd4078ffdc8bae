//! Opening the ledger file: its directory and file modes, the `-wal` and `-shm`
//! files SQLite keeps beside it, the pragmas every connection needs, the schema
//! migration, and the second connection that checkpoints in the background.

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::Connection;

use super::{FileCause, LedgerError, schema};

/// The ledger file.
pub struct Ledger {
    pub(super) conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("path", &self.path).finish()
    }
}

/// A file error: `reason` says what went wrong in words that include the system's,
/// and `cause` keeps the system's error itself.
fn file_error(
    path: &Path,
    reason: impl std::fmt::Display,
    cause: Option<FileCause>,
) -> LedgerError {
    LedgerError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
        cause,
    }
}

fn io_cause(e: std::io::Error) -> Option<FileCause> {
    Some(FileCause::Io(Arc::new(e)))
}

/// SQLite could not open or set up the file at `path`.
fn open_error(path: &Path, e: rusqlite::Error) -> LedgerError {
    LedgerError::Open {
        path: path.display().to_string(),
        source: Arc::new(e),
    }
}

/// Creates the ledger's directory (0700, and any parents) if it is not there yet.
pub fn ensure_directory(path: &Path) -> Result<(), LedgerError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| {
                file_error(
                    dir,
                    format!("cannot create the directory: {e}"),
                    io_cause(e),
                )
            })?;
    }
    Ok(())
}

/// The files SQLite keeps for a ledger: the database, its write-ahead log and its
/// shared-memory index.
fn ledger_files(path: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [path.to_path_buf(), with("-wal"), with("-shm")]
}

/// Takes every permission from group and others on the ledger's files: they hold
/// every refund. SQLite gives new `-wal` and `-shm` files the database's mode, so
/// fixing all three keeps them private from now on.
fn make_private(path: &Path) -> Result<(), LedgerError> {
    for file in ledger_files(path) {
        let Ok(meta) = std::fs::metadata(&file) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 == 0 {
            continue;
        }
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode & 0o700)).map_err(
            |e| {
                file_error(
                    &file,
                    format!(
                        "is readable by others (mode {mode:o}) and its mode cannot be changed \
                         ({e}); run chmod 600 {}",
                        file.display()
                    ),
                    io_cause(e),
                )
            },
        )?;
        tracing::warn!(
            file = %file.display(),
            "ledger file was mode {mode:o}, readable by others; made {:o}",
            mode & 0o700
        );
    }
    Ok(())
}

/// SQLite needs to write the file and to create its `-wal` and `-shm` beside it;
/// without this check it says only "attempt to write a readonly database".
fn check_writable(path: &Path) -> Result<(), LedgerError> {
    use nix::unistd::{AccessFlags, access};
    let user = || {
        let uid = nix::unistd::geteuid();
        nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| format!("{} (uid {uid})", u.name))
            .unwrap_or_else(|| format!("uid {uid}"))
    };
    if let Err(e) = access(path, AccessFlags::R_OK | AccessFlags::W_OK) {
        return Err(file_error(
            path,
            format!(
                "the file is not writable by {}: {}; chown it to the service user and chmod 600 it",
                user(),
                e.desc()
            ),
            Some(FileCause::Access(e)),
        ));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Err(e) = access(dir, AccessFlags::W_OK | AccessFlags::X_OK) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return Err(file_error(
            path,
            format!(
                "its directory {} is not writable by {} ({}), and SQLite keeps {name}-wal \
                 and {name}-shm there; chown the directory to the service user and chmod 700 it",
                dir.display(),
                user(),
                e.desc()
            ),
            Some(FileCause::Access(e)),
        ));
    }
    Ok(())
}

impl Ledger {
    /// Opens the ledger at `path`, creating it (0600, its directory 0700) if it does
    /// not exist, and brings its schema up to date. A ledger others could read is
    /// made private again (with its `-wal` and `-shm`), and said so.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        ensure_directory(path)?;
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => make_private(path)?,
            Err(e) => return Err(file_error(path, format!("cannot create: {e}"), io_cause(e))),
        }
        check_writable(path)?;
        let mut conn = Connection::open(path).map_err(|e| open_error(path, e))?;
        let sqlite = |e: rusqlite::Error| open_error(path, e);
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sqlite)?;
        let mode: String = conn
            .prepare_cached("PRAGMA journal_mode = WAL")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(sqlite)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(file_error(
                path,
                format!("cannot use WAL (journal mode {mode})"),
                None,
            ));
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sqlite)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sqlite)?;
        schema::migrate(&mut conn).map_err(|e| match e {
            LedgerError::Sqlite(source) => LedgerError::Open {
                path: path.display().to_string(),
                source,
            },
            e => e,
        })?;
        Ok(Ledger {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Whether a ledger at `path` could be opened for writing, without creating or
    /// changing anything: an existing one and its directory must be writable, and
    /// for a new one the nearest directory that exists.
    pub fn check_location(path: &Path) -> Result<(), LedgerError> {
        if path.exists() {
            return check_writable(path);
        }
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
            if d.exists() {
                use nix::unistd::{AccessFlags, access};
                return access(d, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|e| {
                    file_error(
                        path,
                        format!(
                            "cannot be created: {} is not writable by uid {} ({})",
                            d.display(),
                            nix::unistd::geteuid(),
                            e.desc()
                        ),
                        Some(FileCause::Access(e)),
                    )
                });
            }
            dir = d.parent();
        }
        Ok(())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    #[cfg(test)]
    pub(super) fn conn_for_tests(&self) -> &Connection {
        &self.conn
    }

    /// A second connection to the same file, for background checkpoints.
    pub(super) fn checkpointer(&self) -> Result<Checkpointer, LedgerError> {
        let conn = Connection::open(&self.path).map_err(|e| open_error(&self.path, e))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(Checkpointer { conn })
    }

    /// Leaves checkpoints to a [`Checkpointer`]: commits then only append to the
    /// write-ahead log. A large automatic threshold stays as a safety net.
    pub(super) fn leave_checkpoints_to_background(&mut self) -> Result<(), LedgerError> {
        self.conn
            .pragma_update(None, "wal_autocheckpoint", 20_000)?;
        Ok(())
    }
}

/// Folds the write-ahead log into the database file without blocking writers.
pub(super) struct Checkpointer {
    conn: Connection,
}

impl Checkpointer {
    /// A passive checkpoint: copies what no reader still needs, never waits.
    pub(super) fn checkpoint(&mut self) -> Result<(), LedgerError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(())
    }
}
