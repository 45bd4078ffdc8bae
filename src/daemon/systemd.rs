//! systemd integration: readiness, status, the watchdog, and credentials.
//!
//! Everything here is a no-op when the daemon is not started by systemd (no
//! `NOTIFY_SOCKET`, no `CREDENTIALS_DIRECTORY`), so `posbridge run` behaves the same
//! from a shell.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sd_notify::NotifyState;

fn send(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!("cannot notify systemd: {e}");
    }
}

/// Tells systemd the service is ready (`Type=notify`): the ledger is open and every
/// terminal line is being served or waited for.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells systemd the service is stopping.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// Updates the one-line status `systemctl status` shows.
pub fn status(text: &str) {
    send(&[NotifyState::Status(text)]);
}

/// Pets the watchdog.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// The watchdog's timeout (`WatchdogSec=`), if systemd set one for us.
pub fn watchdog_timeout() -> Option<Duration> {
    sd_notify::watchdog_enabled()
}

/// Where systemd put a credential (`LoadCredential=NAME:PATH`), if it did.
pub fn credential_path(name: &str) -> Option<PathBuf> {
    credential_in(
        std::env::var_os("CREDENTIALS_DIRECTORY")
            .map(PathBuf::from)
            .as_deref(),
        name,
    )
}

fn credential_in(dir: Option<&Path>, name: &str) -> Option<PathBuf> {
    let path = dir?.join(name);
    path.is_file().then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_found_only_where_systemd_put_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("antom-private-key"), "x").unwrap();
        assert_eq!(
            credential_in(Some(dir.path()), "antom-private-key"),
            Some(dir.path().join("antom-private-key"))
        );
        assert_eq!(credential_in(Some(dir.path()), "other"), None);
        assert_eq!(credential_in(None, "antom-private-key"), None);
    }
}
