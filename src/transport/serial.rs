//! Serial devices: CDC-ACM, USB-serial adapters, udev symlinks and pseudo-terminals.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;

use nix::sys::termios::{BaudRate, SetArg, cfsetspeed, tcgetattr, tcsetattr};
use tokio_serial::{DataBits, FlowControl, Parity, SerialPortBuilderExt, SerialStream, StopBits};

use super::{OpenError, PERMISSION_HINT};

/// Opens a serial device for the link: raw 8N1, no flow control, `baud`, and
/// exclusive (a second bridge on the same terminal would corrupt both sessions).
pub fn open_serial(path: &Path, baud: u32) -> Result<SerialStream, OpenError> {
    let what = path.display().to_string();
    let builder = tokio_serial::new(what.clone(), baud)
        .data_bits(DataBits::Eight)
        .parity(Parity::None)
        .stop_bits(StopBits::One)
        .flow_control(FlowControl::None);
    let stream = builder
        .open_native_async()
        .map_err(|e| classify(what.clone(), e))?;
    if let Some(speed) = standard_speed(baud) {
        set_classic_speed(&stream, speed).map_err(|e| OpenError::Other {
            what: format!("{what} (setting {baud} baud)"),
            source: e.into(),
        })?;
    }
    Ok(stream)
}

/// The classic termios speed for a standard rate.
pub fn standard_speed(baud: u32) -> Option<BaudRate> {
    use BaudRate::*;
    Some(match baud {
        1200 => B1200,
        2400 => B2400,
        4800 => B4800,
        9600 => B9600,
        19_200 => B19200,
        38_400 => B38400,
        57_600 => B57600,
        115_200 => B115200,
        230_400 => B230400,
        460_800 => B460800,
        500_000 => B500000,
        576_000 => B576000,
        921_600 => B921600,
        1_000_000 => B1000000,
        1_152_000 => B1152000,
        1_500_000 => B1500000,
        2_000_000 => B2000000,
        2_500_000 => B2500000,
        3_000_000 => B3000000,
        3_500_000 => B3500000,
        4_000_000 => B4000000,
        _ => return None,
    })
}

/// tokio-serial sets every rate as a custom one (termios2 with `BOTHER`), which the
/// classic termios interface reads as an unknown speed: `stty` says "speed 0 baud",
/// and a tool that reads the settings and writes them back may hang the line up. A
/// standard rate is set again through the classic interface so both views agree.
fn set_classic_speed(stream: &SerialStream, speed: BaudRate) -> nix::Result<()> {
    // SAFETY: the descriptor belongs to `stream`, which outlives this borrow.
    let fd = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    let mut termios = tcgetattr(fd)?;
    cfsetspeed(&mut termios, speed)?;
    tcsetattr(fd, SetArg::TCSANOW, &termios)
}

fn classify(what: String, err: tokio_serial::Error) -> OpenError {
    use tokio_serial::ErrorKind;
    match err.kind {
        ErrorKind::NoDevice => OpenError::Busy { what },
        ErrorKind::Io(std::io::ErrorKind::NotFound) => OpenError::NotFound { what },
        ErrorKind::Io(std::io::ErrorKind::PermissionDenied) => OpenError::PermissionDenied {
            what,
            hint: PERMISSION_HINT,
        },
        ErrorKind::Io(kind) => OpenError::Other {
            what,
            source: std::io::Error::new(kind, err.description),
        },
        ErrorKind::InvalidInput | ErrorKind::Unknown => OpenError::Other {
            what,
            source: std::io::Error::other(err.description),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_device_says_plug_it_in() {
        let err = open_serial(Path::new("/dev/posbridge-no-such-device"), 115_200).unwrap_err();
        assert!(matches!(err, OpenError::NotFound { .. }), "{err}");
        assert!(err.to_string().contains("plugged in"), "{err}");
    }

    #[tokio::test]
    async fn opens_a_pseudo_terminal() {
        let pty = super::super::open_pty().unwrap();
        let stream = open_serial(&pty.path, 115_200);
        assert!(stream.is_ok(), "{:?}", stream.err());
    }

    #[tokio::test]
    async fn a_standard_rate_reads_back_through_classic_termios() {
        let pty = super::super::open_pty().unwrap();
        let stream = open_serial(&pty.path, 57_600).unwrap();
        let fd = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
        let termios: nix::libc::termios = tcgetattr(fd).unwrap().into();
        // What stty and every classic tool read: B57600, not BOTHER ("speed 0 baud").
        assert_eq!(
            unsafe { nix::libc::cfgetospeed(&termios) },
            nix::libc::B57600
        );
        assert_eq!(
            unsafe { nix::libc::cfgetispeed(&termios) },
            nix::libc::B57600
        );
        assert_eq!(termios.c_cflag & nix::libc::CSIZE, nix::libc::CS8);
        assert_eq!(termios.c_lflag & nix::libc::ICANON, 0);
        assert!(standard_speed(12_345).is_none());
    }
}
