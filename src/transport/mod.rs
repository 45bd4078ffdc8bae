//! Transports: where a link's bytes come from.
//!
//! A terminal is reached through a serial device (USB CDC-ACM, USB-serial, a udev
//! symlink, or a pseudo-terminal) or through a pair of USB bulk endpoints. Both give
//! the link the same byte stream; nothing above this module knows which one it is on.
//! [`Reopen`] is the link's [`Connector`]: it opens the device, and after an unplug it
//! polls until the device is back and opens it again, without restarting the process.

mod bulk;
mod pty;
mod serial;
mod usb;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

pub use bulk::{BulkPipe, BulkStream};
pub use pty::{PtyLink, PtyMaster, SymlinkGuard, open_pty};
pub use serial::open_serial;
pub use usb::{
    EndpointSummary, InterfaceSummary, UsbConfig, UsbDeviceSummary, UsbStream, bound_driver,
    check_descriptors, parse_vid_pid, select_device,
};

use crate::link::{BoxIo, Connector};

/// The default serial line rate (8N1, no flow control).
pub const DEFAULT_BAUD: u32 = 115_200;

/// How a terminal is attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportConfig {
    /// A serial device path at a baud rate.
    Serial {
        /// `/dev/ttyACM0`, a udev name such as `/dev/posterminal-A1B2C3`, a pseudo-terminal...
        path: PathBuf,
        /// The line rate; 115200 unless the terminal is set otherwise.
        baud: u32,
    },
    /// A USB bulk endpoint pair.
    Usb(UsbConfig),
}

impl TransportConfig {
    /// A serial device at the default baud rate.
    pub fn serial(path: impl Into<PathBuf>) -> TransportConfig {
        TransportConfig::Serial {
            path: path.into(),
            baud: DEFAULT_BAUD,
        }
    }

    /// The line's baud rate, which sizes the link's ACK timeout; USB has none.
    pub fn baud(&self) -> Option<u32> {
        match self {
            TransportConfig::Serial { baud, .. } => Some(*baud),
            TransportConfig::Usb(_) => None,
        }
    }
}

impl fmt::Display for TransportConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportConfig::Serial { path, baud } => {
                write!(f, "{} at {baud} baud", path.display())
            }
            TransportConfig::Usb(usb) => write!(f, "{usb}"),
        }
    }
}

/// Why a transport could not be opened, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Nothing at the path or with the USB id: usually not plugged in.
    #[error("{what}: not found; is the terminal plugged in and switched on?")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The service user may not open the device.
    #[error("{what}: permission denied; {hint}")]
    PermissionDenied {
        /// The device.
        what: String,
        /// How to grant access.
        hint: &'static str,
    },
    /// Another program holds the device.
    #[error(
        "{what}: busy; another program holds it (ModemManager probes serial devices unless told to ignore them: see udev/)"
    )]
    Busy {
        /// The device.
        what: String,
    },
    /// Several USB devices match and none was chosen by serial number.
    #[error("{what}: {count} devices match; set the serial number to choose one ({serials})")]
    Ambiguous {
        /// What was looked for.
        what: String,
        /// How many matched.
        count: usize,
        /// Their serial numbers.
        serials: String,
    },
    /// The device is there but does not match the configuration (interface or
    /// endpoints): a configuration to fix, not a device to wait for.
    #[error("{what}: {detail}")]
    Mismatch {
        /// The device.
        what: String,
        /// What does not match, and what the device has instead.
        detail: String,
    },
    /// Anything else, with the system's words.
    #[error("{what}: {source}")]
    Other {
        /// The device.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// The udev hint shared by serial and USB permission errors.
pub const PERMISSION_HINT: &str = "install udev/99-posbridge.rules (it gives the terminal to group posbridge) \
     or add the service user to the device's group (dialout for serial), then replug the terminal";

impl OpenError {
    /// True when waiting will not help: the configuration must change (several devices
    /// match and none is chosen, or the interface or endpoints do not match).
    pub fn needs_configuration(&self) -> bool {
        matches!(
            self,
            OpenError::Ambiguous { .. } | OpenError::Mismatch { .. }
        )
    }

    /// Classifies an I/O error from opening `what`.
    pub fn from_io(what: String, err: std::io::Error) -> OpenError {
        use std::io::ErrorKind;
        match err.kind() {
            ErrorKind::NotFound => OpenError::NotFound { what },
            ErrorKind::PermissionDenied => OpenError::PermissionDenied {
                what,
                hint: PERMISSION_HINT,
            },
            _ if err.raw_os_error() == Some(nix::libc::EBUSY) => OpenError::Busy { what },
            _ => OpenError::Other { what, source: err },
        }
    }
}

/// Opens a transport once.
pub async fn open(config: &TransportConfig) -> Result<BoxIo, OpenError> {
    match config {
        TransportConfig::Serial { path, baud } => {
            let (path, baud) = (path.clone(), *baud);
            let what = path.display().to_string();
            let stream = off_the_runtime(what, move || open_serial(&path, baud)).await?;
            Ok(Box::new(stream))
        }
        TransportConfig::Usb(usb) => {
            let config = usb.clone();
            let stream = off_the_runtime(usb.to_string(), move || usb::open_usb(&config)).await?;
            Ok(Box::new(stream))
        }
    }
}

/// Runs a device open on tokio's blocking pool. Opening waits in the kernel: a
/// CDC-ACM line's termios change is a USB control request, and reading a USB device's
/// sysfs attributes takes the device's lock, held while the kernel enumerates it. On a
/// runtime worker such a wait stalls every task scheduled there, the watchdog's included.
async fn off_the_runtime<T: Send + 'static>(
    what: String,
    open: impl FnOnce() -> Result<T, OpenError> + Send + 'static,
) -> Result<T, OpenError> {
    match tokio::task::spawn_blocking(open).await {
        Ok(opened) => opened,
        Err(e) => Err(OpenError::Other {
            what,
            source: std::io::Error::other(format!("the open did not finish: {e}")),
        }),
    }
}

/// A [`Connector`] that opens a transport and, whenever the link loses it, polls until
/// it can be opened again. Errors are logged once each, not on every poll.
pub struct Reopen {
    config: TransportConfig,
    poll: Duration,
    last_error: Option<String>,
    opened: Option<BoxIo>,
}

impl Reopen {
    /// Reopens `config`, trying every `poll` while the device is away.
    pub fn new(config: TransportConfig, poll: Duration) -> Reopen {
        Reopen {
            config,
            poll,
            last_error: None,
            opened: None,
        }
    }

    /// The same, handing out `io` (already opened from `config`) first.
    pub fn starting_with(config: TransportConfig, poll: Duration, io: BoxIo) -> Reopen {
        Reopen {
            opened: Some(io),
            ..Reopen::new(config, poll)
        }
    }
}

impl Connector for Reopen {
    fn connect(&mut self) -> Pin<Box<dyn Future<Output = Option<BoxIo>> + Send + '_>> {
        Box::pin(async move {
            if let Some(io) = self.opened.take() {
                return Some(io);
            }
            loop {
                match open(&self.config).await {
                    Ok(io) => {
                        tracing::info!(device = %self.config, "terminal line open");
                        self.last_error = None;
                        return Some(io);
                    }
                    Err(e) => {
                        let text = e.to_string();
                        if self.last_error.as_deref() != Some(text.as_str()) {
                            if e.needs_configuration() {
                                tracing::error!("{text}");
                            } else {
                                tracing::warn!("{text}");
                            }
                            self.last_error = Some(text);
                        }
                        tokio::time::sleep(self.poll).await;
                    }
                }
            }
        })
    }
}
