//! Serial devices: CDC-ACM, USB-serial adapters, udev symlinks and pseudo-terminals.

use std::path::Path;

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
    builder.open_native_async().map_err(|e| classify(what, e))
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
}
