//! USB bulk endpoints: a terminal that exposes a vendor interface instead of a serial
//! port.
//!
//! The device-facing part is kept to [`open_usb`]: list, open, check the descriptors,
//! detach a kernel driver if one holds the interface, claim it, two endpoints, and the
//! pump ([`super::bulk`]) over them. Everything around it (parsing ids, choosing among
//! devices, checking the configured interface and endpoints against the descriptors,
//! wording errors) is plain code, tested here. `tests/vm/` runs it against the
//! kernel's USB stack with a FunctionFS gadget as the terminal.

use std::fmt;
use std::io;
use std::path::Path;

use nusb::MaybeFuture;
use nusb::descriptors::TransferType;
use nusb::transfer::{Bulk, In, Out};

use super::bulk::BulkStream;
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

/// An endpoint as its descriptor describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointSummary {
    /// The address: number, and bit 7 set for IN.
    pub address: u8,
    /// Bulk, interrupt, isochronous or control.
    pub kind: TransferType,
    /// Its maximum packet size.
    pub max_packet: usize,
}

/// An interface (its first alternate setting) as its descriptor describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceSummary {
    /// The interface number.
    pub number: u8,
    /// The interface class (0xff: vendor-specific).
    pub class: u8,
    /// Its endpoints.
    pub endpoints: Vec<EndpointSummary>,
}

fn kind_name(kind: TransferType) -> &'static str {
    match kind {
        TransferType::Bulk => "bulk",
        TransferType::Interrupt => "interrupt",
        TransferType::Isochronous => "isochronous",
        TransferType::Control => "control",
    }
}

fn describe_endpoints(endpoints: &[EndpointSummary]) -> String {
    if endpoints.is_empty() {
        return "no endpoints".into();
    }
    endpoints
        .iter()
        .map(|e| {
            format!(
                "{} {} 0x{:02x}",
                kind_name(e.kind),
                if e.address & 0x80 != 0 { "IN" } else { "OUT" },
                e.address
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_interfaces(interfaces: &[InterfaceSummary]) -> String {
    if interfaces.is_empty() {
        return "none".into();
    }
    interfaces
        .iter()
        .map(|i| {
            let class = if i.class == 0xff {
                "vendor-specific".to_owned()
            } else {
                format!("class 0x{:02x}", i.class)
            };
            format!(
                "{} ({class}: {})",
                i.number,
                describe_endpoints(&i.endpoints)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Checks the configured interface and endpoints against the device's descriptors, and
/// says exactly what does not match and what the device has instead.
pub fn check_descriptors(
    interfaces: &[InterfaceSummary],
    config: &UsbConfig,
) -> Result<(), OpenError> {
    let what = config.to_string();
    let mismatch = |detail: String| OpenError::Mismatch {
        what: what.clone(),
        detail,
    };
    let Some(interface) = interfaces.iter().find(|i| i.number == config.interface) else {
        return Err(mismatch(format!(
            "the device has no interface {} (usb_interface); its interfaces: {}",
            config.interface,
            describe_interfaces(interfaces)
        )));
    };
    let has = describe_endpoints(&interface.endpoints);
    for (key, address, want_in) in [
        ("usb_endpoint_in", config.endpoint_in, true),
        ("usb_endpoint_out", config.endpoint_out, false),
    ] {
        let direction = if want_in { "IN" } else { "OUT" };
        if (address & 0x80 != 0) != want_in {
            return Err(mismatch(format!(
                "{key} = 0x{address:02x} is not an {direction} endpoint address ({}); \
                 interface {} has: {has}",
                if want_in {
                    "IN addresses have bit 7 set, such as 0x81"
                } else {
                    "OUT addresses have bit 7 clear, such as 0x01"
                },
                interface.number
            )));
        }
        let Some(endpoint) = interface.endpoints.iter().find(|e| e.address == address) else {
            return Err(mismatch(format!(
                "{key} = 0x{address:02x}: interface {} has no such endpoint; it has: {has}",
                interface.number
            )));
        };
        if endpoint.kind != TransferType::Bulk {
            return Err(mismatch(format!(
                "{key} = 0x{address:02x} is an {} endpoint, not bulk; interface {} has: {has}",
                kind_name(endpoint.kind),
                interface.number
            )));
        }
    }
    Ok(())
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

/// The kernel driver bound to `interface` of the device at `sysfs` (such as
/// `/sys/bus/usb/devices/3-1`), read from its interface directory (`3-1:1.0`).
pub fn bound_driver(sysfs: &Path, interface: u8) -> Option<String> {
    let device = sysfs.file_name()?.to_str()?.to_owned();
    std::fs::read_dir(sysfs)
        .ok()?
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.starts_with(&format!("{device}:")))
        })
        .find(|entry| {
            std::fs::read_to_string(entry.path().join("bInterfaceNumber"))
                .ok()
                .and_then(|n| u8::from_str_radix(n.trim(), 16).ok())
                == Some(interface)
        })
        .and_then(|entry| std::fs::read_link(entry.path().join("driver")).ok())
        .and_then(|driver| Some(driver.file_name()?.to_str()?.to_owned()))
}

/// Opens the configured device's bulk endpoint pair as a byte stream. It blocks (sysfs
/// reads, usbfs ioctls): call it from a blocking thread.
pub fn open_usb(config: &UsbConfig) -> Result<UsbStream, OpenError> {
    let what = config.to_string();
    let infos: Vec<nusb::DeviceInfo> = nusb::list_devices()
        .wait()
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
        .wait()
        .map_err(|e| usb_error(&what, "opening", e))?;
    let interfaces: Vec<InterfaceSummary> = match device.active_configuration() {
        Ok(configuration) => configuration
            .interfaces()
            .map(|i| {
                let first = i.first_alt_setting();
                InterfaceSummary {
                    number: i.interface_number(),
                    class: first.class(),
                    endpoints: first
                        .endpoints()
                        .map(|e| EndpointSummary {
                            address: e.address(),
                            kind: e.transfer_type(),
                            max_packet: e.max_packet_size(),
                        })
                        .collect(),
                }
            })
            .collect(),
        Err(e) => {
            return Err(OpenError::Other {
                what: format!("{what} (reading its configuration)"),
                source: io::Error::other(e.to_string()),
            });
        }
    };
    check_descriptors(&interfaces, config)?;
    let interface = match bound_driver(info.sysfs_path(), config.interface) {
        // usbfs is another program holding it, which claiming reports as busy.
        Some(driver) if driver != "usbfs" => {
            tracing::info!(device = %what, driver = %driver, "detaching the kernel driver bound to the terminal's interface");
            device
                .detach_and_claim_interface(config.interface)
                .wait()
                .map_err(|e| {
                    usb_error(
                        &what,
                        "detaching the kernel driver and claiming the interface",
                        e,
                    )
                })?
        }
        _ => device
            .claim_interface(config.interface)
            .wait()
            .map_err(|e| usb_error(&what, "claiming the interface", e))?,
    };
    let ep_in = interface
        .endpoint::<Bulk, In>(config.endpoint_in)
        .map_err(|e| usb_error(&what, "bulk IN endpoint", e))?;
    let ep_out = interface
        .endpoint::<Bulk, Out>(config.endpoint_out)
        .map_err(|e| usb_error(&what, "bulk OUT endpoint", e))?;
    Ok(BulkStream::new(ep_in, ep_out))
}

/// A USB bulk IN/OUT endpoint pair as one async byte stream. A disconnect surfaces as
/// a read or write error, which ends the link's connection and starts reopening.
pub type UsbStream = BulkStream<nusb::Endpoint<Bulk, In>, nusb::Endpoint<Bulk, Out>>;

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

    fn vendor_interface() -> Vec<InterfaceSummary> {
        let ep = |address, kind| EndpointSummary {
            address,
            kind,
            max_packet: 512,
        };
        vec![
            InterfaceSummary {
                number: 0,
                class: 0xff,
                endpoints: vec![ep(0x81, TransferType::Bulk), ep(0x02, TransferType::Bulk)],
            },
            InterfaceSummary {
                number: 1,
                class: 0x03,
                endpoints: vec![ep(0x83, TransferType::Interrupt)],
            },
        ]
    }

    fn mismatch(config: &UsbConfig) -> String {
        match check_descriptors(&vendor_interface(), config) {
            Err(e @ OpenError::Mismatch { .. }) => {
                assert!(e.needs_configuration());
                e.to_string()
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_configured_endpoints_are_checked_against_the_descriptors() {
        let good = UsbConfig {
            endpoint_out: 0x02,
            ..UsbConfig::new(0x0b00, 0x3070)
        };
        assert!(check_descriptors(&vendor_interface(), &good).is_ok());

        // The default OUT endpoint 0x01 is not there: say what is.
        let text = mismatch(&UsbConfig::new(0x0b00, 0x3070));
        assert!(
            text.contains("usb_endpoint_out = 0x01: interface 0 has no such endpoint; it has: bulk IN 0x81, bulk OUT 0x02"),
            "{text}"
        );
        // Directions swapped.
        let text = mismatch(&UsbConfig {
            endpoint_in: 0x02,
            ..good.clone()
        });
        assert!(
            text.contains("usb_endpoint_in = 0x02 is not an IN endpoint address"),
            "{text}"
        );
        assert!(text.contains("bit 7 set"), "{text}");
        let text = mismatch(&UsbConfig {
            endpoint_out: 0x81,
            ..good.clone()
        });
        assert!(
            text.contains("usb_endpoint_out = 0x81 is not an OUT endpoint address"),
            "{text}"
        );
        // Not bulk.
        let text = mismatch(&UsbConfig {
            interface: 1,
            endpoint_in: 0x83,
            ..good.clone()
        });
        assert!(
            text.contains("0x83 is an interrupt endpoint, not bulk"),
            "{text}"
        );
        // No such interface: list the ones there are.
        let text = mismatch(&UsbConfig {
            interface: 4,
            ..good
        });
        assert!(
            text.contains("no interface 4 (usb_interface); its interfaces: 0 (vendor-specific: bulk IN 0x81, bulk OUT 0x02); 1 (class 0x03: interrupt IN 0x83)"),
            "{text}"
        );
    }

    #[test]
    fn finds_the_driver_bound_to_an_interface_in_sysfs() {
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("3-1");
        for (name, number, driver) in [
            ("3-1:1.0", "00", Some("usbserial_generic")),
            ("3-1:1.1", "01", None),
        ] {
            let interface = device.join(name);
            std::fs::create_dir_all(&interface).unwrap();
            std::fs::write(interface.join("bInterfaceNumber"), format!("{number}\n")).unwrap();
            if let Some(driver) = driver {
                let target = dir.path().join("drivers").join(driver);
                std::fs::create_dir_all(&target).unwrap();
                std::os::unix::fs::symlink(&target, interface.join("driver")).unwrap();
            }
        }
        assert_eq!(
            bound_driver(&device, 0).as_deref(),
            Some("usbserial_generic")
        );
        assert_eq!(bound_driver(&device, 1), None);
        assert_eq!(bound_driver(&device, 2), None);
        assert_eq!(bound_driver(&dir.path().join("nowhere"), 0), None);
    }
}
