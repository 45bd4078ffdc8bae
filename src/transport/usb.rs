//! USB bulk endpoints: a terminal that exposes a vendor interface instead of a serial
//! port.
//!
//! The device-facing part is kept to [`open_usb`]: list, open, claim, two endpoints.
//! Everything around it (parsing ids, choosing among devices, wording errors) is plain
//! code, tested here; `docs/OPERATIONS.md` says how to test against a real terminal.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use nusb::io::{EndpointRead, EndpointWrite};
use nusb::transfer::{Bulk, In, Out};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{OpenError, PERMISSION_HINT};

/// Which USB device, interface and endpoints carry the link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsbConfig {
    /// Vendor id.
    pub vid: u16,
    /// Product id.
    pub pid: u16,
    /// The device's serial number, required when several terminals of one model are
    /// attached.
    pub serial: Option<String>,
    /// The vendor-specific interface number.
    pub interface: u8,
    /// The bulk IN endpoint address (device → host), such as `0x81`.
    pub endpoint_in: u8,
    /// The bulk OUT endpoint address (host → device), such as `0x01`.
    pub endpoint_out: u8,
}

impl UsbConfig {
    /// A device by VID:PID on interface 0 with endpoints 0x81 (IN) and 0x01 (OUT).
    pub fn new(vid: u16, pid: u16) -> UsbConfig {
        UsbConfig {
            vid,
            pid,
            serial: None,
            interface: 0,
            endpoint_in: 0x81,
            endpoint_out: 0x01,
        }
    }
}

impl fmt::Display for UsbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "USB {:04x}:{:04x}", self.vid, self.pid)?;
        if let Some(serial) = &self.serial {
            write!(f, " serial {serial}")?;
        }
        write!(
            f,
            " interface {} endpoints IN 0x{:02x} OUT 0x{:02x}",
            self.interface, self.endpoint_in, self.endpoint_out
        )
    }
}

/// Parses `"VID:PID"` in hexadecimal, as `lsusb` prints it (`"0b00:3070"`).
pub fn parse_vid_pid(text: &str) -> Result<(u16, u16), String> {
    let expected =
        || format!("expected VID:PID as two 4-digit hex numbers like 0b00:3070, got {text:?}");
    let (vid, pid) = text.trim().split_once(':').ok_or_else(expected)?;
    let hex = |part: &str| {
        let part = part.trim();
        let digits = part.strip_prefix("0x").unwrap_or(part);
        if digits.is_empty() || digits.len() > 4 {
            return Err(expected());
        }
        u16::from_str_radix(digits, 16).map_err(|_| expected())
    };
    Ok((hex(vid)?, hex(pid)?))
}

/// What the bridge needs to know of an attached USB device to choose it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsbDeviceSummary {
    /// Vendor id.
    pub vid: u16,
    /// Product id.
    pub pid: u16,
    /// Serial number, if the device reports one.
    pub serial: Option<String>,
}

/// Chooses the one device `config` means: matching VID:PID and, if set, serial number.
/// Several matches without a serial number configured is an error that lists them.
pub fn select_device(devices: &[UsbDeviceSummary], config: &UsbConfig) -> Result<usize, OpenError> {
    let what = config.to_string();
    let matches: Vec<usize> = devices
        .iter()
        .enumerate()
        .filter(|(_, d)| d.vid == config.vid && d.pid == config.pid)
        .filter(|(_, d)| match &config.serial {
            Some(wanted) => d.serial.as_deref() == Some(wanted.as_str()),
            None => true,
        })
        .map(|(i, _)| i)
        .collect();
    match matches.as_slice() {
        [] => Err(OpenError::NotFound { what }),
        [one] => Ok(*one),
        many => Err(OpenError::Ambiguous {
            what,
            count: many.len(),
            serials: many
                .iter()
                .filter_map(|&i| devices.get(i))
                .map(|d| d.serial.clone().unwrap_or_else(|| "no serial".into()))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn usb_error(what: &str, step: &str, err: nusb::Error) -> OpenError {
    classify(what, step, err.kind(), err.to_string())
}

fn classify(what: &str, step: &str, kind: nusb::ErrorKind, message: String) -> OpenError {
    let what = format!("{what} ({step})");
    match kind {
        nusb::ErrorKind::Disconnected | nusb::ErrorKind::NotFound => OpenError::NotFound { what },
        nusb::ErrorKind::PermissionDenied => OpenError::PermissionDenied {
            what,
            hint: PERMISSION_HINT,
        },
        nusb::ErrorKind::Busy => OpenError::Busy { what },
        _ => OpenError::Other {
            what,
            source: io::Error::other(message),
        },
    }
}

/// Opens the configured device's bulk endpoint pair as a byte stream.
pub async fn open_usb(config: &UsbConfig) -> Result<UsbStream, OpenError> {
    let what = config.to_string();
    let infos: Vec<nusb::DeviceInfo> = nusb::list_devices()
        .await
        .map_err(|e| usb_error(&what, "listing devices", e))?
        .collect();
    let summaries: Vec<UsbDeviceSummary> = infos
        .iter()
        .map(|d| UsbDeviceSummary {
            vid: d.vendor_id(),
            pid: d.product_id(),
            serial: d.serial_number().map(str::to_owned),
        })
        .collect();
    let index = select_device(&summaries, config)?;
    let Some(info) = infos.get(index) else {
        return Err(OpenError::NotFound { what });
    };
    let device = info
        .open()
        .await
        .map_err(|e| usb_error(&what, "opening", e))?;
    let interface = device
        .claim_interface(config.interface)
        .await
        .map_err(|e| usb_error(&what, "claiming the interface", e))?;
    let ep_in = interface
        .endpoint::<Bulk, In>(config.endpoint_in)
        .map_err(|e| usb_error(&what, "bulk IN endpoint", e))?;
    let ep_out = interface
        .endpoint::<Bulk, Out>(config.endpoint_out)
        .map_err(|e| usb_error(&what, "bulk OUT endpoint", e))?;
    // One packet per transfer: a device that sends exactly a packet's worth and then
    // pauses must not leave bytes waiting in a half-filled transfer.
    let packet = ep_in.max_packet_size().max(8);
    Ok(UsbStream {
        reader: ep_in.reader(packet).with_num_transfers(4),
        writer: ep_out.writer(4096).with_num_transfers(2),
    })
}

/// A USB bulk IN/OUT endpoint pair as one async byte stream. A disconnect surfaces as
/// a read or write error, which ends the link's connection and starts reopening.
pub struct UsbStream {
    reader: EndpointRead<Bulk>,
    writer: EndpointWrite<Bulk>,
}

impl AsyncRead for UsbStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.reader).poll_read(cx, buf)
    }
}

impl AsyncWrite for UsbStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.writer).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.writer).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.writer).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(vid: u16, pid: u16, serial: Option<&str>) -> UsbDeviceSummary {
        UsbDeviceSummary {
            vid,
            pid,
            serial: serial.map(str::to_owned),
        }
    }

    #[test]
    fn parses_lsusb_ids() {
        assert_eq!(parse_vid_pid("0b00:3070"), Ok((0x0b00, 0x3070)));
        assert_eq!(parse_vid_pid("0x0B00:0x3070"), Ok((0x0b00, 0x3070)));
        for bad in ["", "0b00", "0b00:", "zzzz:0001", "12345:1", "0b00-3070"] {
            let err = parse_vid_pid(bad).unwrap_err();
            assert!(err.contains("VID:PID"), "{bad}: {err}");
        }
    }

    #[test]
    fn selects_by_id_and_serial() {
        let devices = [
            dev(0x1d6b, 0x0002, None),
            dev(0x0b00, 0x3070, Some("A1")),
            dev(0x0b00, 0x3070, Some("B2")),
        ];
        let mut config = UsbConfig::new(0x0b00, 0x3070);
        let err = select_device(&devices, &config).unwrap_err();
        assert!(
            matches!(err, OpenError::Ambiguous { count: 2, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("A1, B2"), "{err}");
        config.serial = Some("B2".into());
        assert_eq!(select_device(&devices, &config).unwrap(), 2);
        config.serial = Some("C3".into());
        assert!(matches!(
            select_device(&devices, &config),
            Err(OpenError::NotFound { .. })
        ));
        let single = UsbConfig::new(0x1d6b, 0x0002);
        assert_eq!(select_device(&devices, &single).unwrap(), 0);
    }

    #[test]
    fn errors_name_the_device_and_the_step() {
        let config = UsbConfig::new(0x0b00, 0x3070);
        let err = classify(
            &config.to_string(),
            "claiming the interface",
            nusb::ErrorKind::PermissionDenied,
            "denied".into(),
        );
        let text = err.to_string();
        assert!(text.contains("0b00:3070"), "{text}");
        assert!(text.contains("claiming the interface"), "{text}");
        assert!(text.contains("udev"), "{text}");
    }
}
