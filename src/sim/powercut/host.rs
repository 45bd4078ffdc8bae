//! This side of the VM: its QEMU process booted and cut, the unix sockets its
//! character devices connect to (the terminal's line, the cloud channel, the control
//! channel), and the ledger read from its disk image at the end.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use super::{Campaign, CampaignError, setup, tunnel};
use crate::ledger::Ledger;

/// The terminal's line: a cable whose far end is whichever QEMU is running.
pub(super) struct Line {
    /// Writes to the current QEMU (none between boots: bytes fall on the floor).
    to_vm: Arc<Mutex<Option<tokio::net::unix::OwnedWriteHalf>>>,
    /// The task carrying the current QEMU's bytes to the terminal.
    from_vm: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

/// How long the bytes a dead QEMU left in its socket may take to reach the terminal.
const DRAIN_WITHIN: Duration = Duration::from_secs(30);

impl Line {
    /// Accepts each QEMU's connection on `listener` and joins it to `far`, the far
    /// end of the terminal's duplex stream.
    pub(super) fn start(listener: UnixListener, far: tokio::io::DuplexStream) -> Line {
        let to_vm: Arc<Mutex<Option<tokio::net::unix::OwnedWriteHalf>>> = Arc::default();
        let from_vm: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (mut far_read, far_write) = tokio::io::split(far);
        let far_write = Arc::new(Mutex::new(far_write));
        let writer = to_vm.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = far_read.read(&mut buf).await {
                if n == 0 {
                    return;
                }
                let mut slot = writer.lock().await;
                if let Some(w) = slot.as_mut()
                    && w.write_all(buf.get(..n).unwrap_or_default()).await.is_err()
                {
                    *slot = None;
                }
            }
        });
        let slot = to_vm.clone();
        let reader_slot = from_vm.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (mut read, write) = stream.into_split();
                *slot.lock().await = Some(write);
                let far_write = far_write.clone();
                let reader = tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    while let Ok(n) = read.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        if far_write
                            .lock()
                            .await
                            .write_all(buf.get(..n).unwrap_or_default())
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                });
                *reader_slot.lock().await = Some(reader);
            }
        });
        Line { to_vm, from_vm }
    }

    /// The VM is gone (its process reaped): nothing more reaches it, and what it had
    /// written before the cut — the bytes still in its socket, like bytes on a cable
    /// when the power goes — reaches the terminal before anything of the next boot
    /// can. The next QEMU is started only after this returns, so a frame the terminal
    /// receives in a later session was sent by a later boot.
    pub(super) async fn cut(&self) -> Result<(), CampaignError> {
        *self.to_vm.lock().await = None;
        let Some(reader) = self.from_vm.lock().await.take() else {
            return Ok(());
        };
        let abort = reader.abort_handle();
        match tokio::time::timeout(DRAIN_WITHIN, reader).await {
            Ok(_) => Ok(()),
            Err(_) => {
                abort.abort();
                Err(CampaignError(format!(
                    "the terminal's line from the dead VM did not drain within {DRAIN_WITHIN:?}"
                )))
            }
        }
    }
}

/// Serves the cloud channel of each QEMU that connects.
pub(super) fn serve_cloud(listener: UnixListener, sim: std::net::SocketAddr) {
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(tunnel::serve(stream, tunnel::Side::Host(sim)));
        }
    });
}

/// Starts a VM with the campaign's boot command.
pub(super) async fn boot(campaign: &Campaign) -> Result<Child, CampaignError> {
    let (program, args) = campaign
        .boot
        .split_first()
        .ok_or_else(|| CampaignError("no boot command".into()))?;
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(setup("boot command"))
}

/// The power cut: SIGKILL, no chance to flush anything.
pub(super) async fn cut(vm: &mut Child) {
    let _ = vm.start_kill();
    let _ = vm.wait().await;
}

/// Reads the guest's ledger (and its write-ahead log, if any) out of the disk image.
pub(super) async fn read_ledger(campaign: &Campaign) -> Result<Ledger, CampaignError> {
    let dir = campaign.work.join("ledger-after");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(setup("ledger directory"))?;
    let local = dir.join("ledger.sqlite");
    for suffix in ["", "-wal"] {
        let out = Command::new("debugfs")
            .arg("-R")
            .arg(format!(
                "dump {}{suffix} {}{suffix}",
                campaign.guest_ledger,
                local.display()
            ))
            .arg(&campaign.disk)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(setup("debugfs"))?;
        if suffix.is_empty() && !local.exists() {
            return Err(CampaignError(format!(
                "no ledger at {} in {}: {}",
                campaign.guest_ledger,
                campaign.disk.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    Ledger::open(&local).map_err(setup("the ledger read from the disk"))
}

/// The control channel of each QEMU that connects; the latest is kept.
pub(super) fn serve_control(listener: UnixListener) -> Arc<Mutex<Option<UnixStream>>> {
    let latest: Arc<Mutex<Option<UnixStream>>> = Arc::default();
    let slot = latest.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            *slot.lock().await = Some(stream);
        }
    });
    latest
}

/// Asks the guest to shut down and waits for QEMU to exit; cuts the power if it
/// does not.
pub(super) async fn shut_down(control: &Mutex<Option<UnixStream>>, vm: &mut Child) -> bool {
    if let Some(stream) = control.lock().await.as_mut()
        && stream.write_all(b"poweroff\n").await.is_ok()
        && tokio::time::timeout(Duration::from_secs(180), vm.wait())
            .await
            .is_ok()
    {
        return true;
    }
    cut(vm).await;
    false
}
