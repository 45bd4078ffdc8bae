//! Pseudo-terminals: the virtual serial line for loopback tests and field techs.
//!
//! [`open_pty`] makes a pair in raw mode (no echo, no line editing, every byte passed
//! as is) and keeps the terminal side open itself, so the bridge side reads nothing
//! but the terminal's bytes and never sees a hang-up while no terminal is attached.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The bridge side of a pseudo-terminal, as an async byte stream.
pub struct PtyMaster {
    fd: AsyncFd<OwnedFd>,
}

/// A pseudo-terminal pair: the master as a stream, and the path a terminal opens.
pub struct PtyLink {
    /// The bridge side.
    pub master: PtyMaster,
    /// The terminal side's device path, such as `/dev/pts/7`.
    pub path: PathBuf,
    /// Held open so the master never reads a hang-up between terminals.
    _terminal_side: OwnedFd,
}

/// Creates a pseudo-terminal pair in raw mode.
pub fn open_pty() -> io::Result<PtyLink> {
    let pair = nix::pty::openpty(None, None).map_err(io::Error::from)?;
    // Neither end may leak into processes started later: a child holding the master
    // would keep the line "plugged in" for whoever has the other end open.
    for fd in [&pair.master, &pair.slave] {
        fcntl(fd.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(io::Error::from)?;
    }
    let mut termios = tcgetattr(pair.slave.as_fd()).map_err(io::Error::from)?;
    cfmakeraw(&mut termios);
    tcsetattr(pair.slave.as_fd(), SetArg::TCSANOW, &termios).map_err(io::Error::from)?;
    let path = nix::unistd::ttyname(pair.slave.as_fd()).map_err(io::Error::from)?;
    let flags = fcntl(pair.master.as_fd(), FcntlArg::F_GETFL).map_err(io::Error::from)?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(pair.master.as_fd(), FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
    // SAFETY: an OwnedFd is open for as long as it lives and always names the same
    // descriptor, and the AsyncFd owns it from here on.
    let fd = unsafe { AsyncFd::register(pair.master) }.map_err(io::Error::from)?;
    Ok(PtyLink {
        master: PtyMaster { fd },
        path,
        _terminal_side: pair.slave,
    })
}

impl AsyncRead for PtyMaster {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| {
                nix::unistd::read(fd.get_ref().as_fd(), unfilled).map_err(io::Error::from)
            }) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for PtyMaster {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard
                .try_io(|fd| nix::unistd::write(fd.get_ref().as_fd(), buf).map_err(io::Error::from))
            {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A symlink to a device path that is removed again when dropped, so field techs can
/// give a virtual line a stable, memorable name (`/tmp/posterminal`).
pub struct SymlinkGuard {
    link: PathBuf,
}

impl SymlinkGuard {
    /// Creates `link` pointing at `target`, replacing an old symlink but never a file.
    pub fn create(link: &Path, target: &Path) -> io::Result<SymlinkGuard> {
        if let Ok(meta) = std::fs::symlink_metadata(link) {
            if !meta.file_type().is_symlink() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} exists and is not a symlink; not replacing it",
                        link.display()
                    ),
                ));
            }
            std::fs::remove_file(link)?;
        }
        std::os::unix::fs::symlink(target, link)?;
        Ok(SymlinkGuard {
            link: link.to_path_buf(),
        })
    }

    /// The symlink's path.
    pub fn path(&self) -> &Path {
        &self.link
    }
}

impl Drop for SymlinkGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.link);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn neither_end_leaks_into_children() {
        let pty = open_pty().unwrap();
        for fd in [pty.master.fd.get_ref().as_fd(), pty._terminal_side.as_fd()] {
            let flags = fcntl(fd, FcntlArg::F_GETFD).unwrap();
            assert!(FdFlag::from_bits_truncate(flags).contains(FdFlag::FD_CLOEXEC));
        }
    }
}
