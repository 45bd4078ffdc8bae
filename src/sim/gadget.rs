//! A vendor-bulk terminal made of Linux's USB gadget stack: the terminal's side of a
//! FunctionFS function (`usb_f_fs`) with one vendor-specific interface and a bulk
//! IN/OUT endpoint pair, relayed to a pseudo-terminal so the terminal emulator
//! (`posbridge term`) speaks through it.
//!
//! The host side sees a real USB device, enumerated by the kernel, which the bridge
//! opens through nusb. This is how the test rig (`tests/vm/`) gives the bulk transport
//! a device the project did not write the other half of. [`descriptors`] and
//! [`strings`] build what FunctionFS expects on `ep0` (its v2 descriptor format, in
//! `include/uapi/linux/usb/functionfs.h`); [`run`] does the rest.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::transport::{PtyLink, SymlinkGuard, open_pty};

const DESCRIPTORS_MAGIC_V2: u32 = 3;
const STRINGS_MAGIC: u32 = 2;
const HAS_FS_DESC: u32 = 1;
const HAS_HS_DESC: u32 = 2;
const USB_DT_INTERFACE: u8 = 4;
const USB_DT_ENDPOINT: u8 = 5;
const USB_CLASS_VENDOR_SPEC: u8 = 0xff;
const USB_ENDPOINT_XFER_BULK: u8 = 2;
const USB_DIR_IN: u8 = 0x80;
/// The size of one `struct usb_functionfs_event`.
const EVENT_SIZE: usize = 12;

/// What the gadget's interface and endpoints look like to the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GadgetShape {
    /// Endpoint number of the bulk IN endpoint (device to host) as described; the UDC
    /// may give it another number when it binds, which the host then sees.
    pub in_number: u8,
    /// Endpoint number of the bulk OUT endpoint (host to device).
    pub out_number: u8,
    /// The interface's name (its string descriptor).
    pub interface_name: String,
}

impl Default for GadgetShape {
    fn default() -> GadgetShape {
        GadgetShape {
            in_number: 1,
            out_number: 2,
            interface_name: "posbridge terminal link".into(),
        }
    }
}

fn interface_descriptor() -> [u8; 9] {
    // bLength, bDescriptorType, bInterfaceNumber, bAlternateSetting, bNumEndpoints,
    // bInterfaceClass, bInterfaceSubClass, bInterfaceProtocol, iInterface
    [9, USB_DT_INTERFACE, 0, 0, 2, USB_CLASS_VENDOR_SPEC, 0, 0, 1]
}

fn endpoint_descriptor(address: u8, max_packet: u16) -> [u8; 7] {
    let [lo, hi] = max_packet.to_le_bytes();
    [
        7,
        USB_DT_ENDPOINT,
        address,
        USB_ENDPOINT_XFER_BULK,
        lo,
        hi,
        0,
    ]
}

/// The v2 descriptor block written first to `ep0`: full-speed (64-byte packets) and
/// high-speed (512-byte packets) versions of one vendor interface with a bulk pair.
pub fn descriptors(shape: &GadgetShape) -> Vec<u8> {
    let speed = |max_packet: u16| {
        let mut out = interface_descriptor().to_vec();
        out.extend(endpoint_descriptor(
            USB_DIR_IN | (shape.in_number & 0x0f),
            max_packet,
        ));
        out.extend(endpoint_descriptor(shape.out_number & 0x0f, max_packet));
        out
    };
    let full = speed(64);
    let high = speed(512);
    let mut out = Vec::new();
    out.extend(DESCRIPTORS_MAGIC_V2.to_le_bytes());
    out.extend([0; 4]); // length, filled in below
    out.extend((HAS_FS_DESC | HAS_HS_DESC).to_le_bytes());
    out.extend(3u32.to_le_bytes()); // descriptors per speed
    out.extend(3u32.to_le_bytes());
    out.extend(full);
    out.extend(high);
    let length = u32::try_from(out.len()).unwrap_or(u32::MAX).to_le_bytes();
    out.splice(4..8, length);
    out
}

/// The string block written to `ep0` after the descriptors: the interface's name in
/// US English.
pub fn strings(shape: &GadgetShape) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(STRINGS_MAGIC.to_le_bytes());
    out.extend([0; 4]);
    out.extend(1u32.to_le_bytes()); // strings per language
    out.extend(1u32.to_le_bytes()); // languages
    out.extend(0x0409u16.to_le_bytes());
    out.extend(shape.interface_name.bytes().filter(|b| *b != 0));
    out.push(0);
    let length = u32::try_from(out.len()).unwrap_or(u32::MAX).to_le_bytes();
    out.splice(4..8, length);
    out
}

/// A FunctionFS event read from `ep0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The function was bound to a UDC.
    Bind,
    /// It was unbound.
    Unbind,
    /// The host configured the device: the endpoints work.
    Enable,
    /// The host is gone (unplugged, reset, deconfigured).
    Disable,
    /// A control request for the interface (none is expected; it is refused).
    Setup {
        /// Its data stage goes to the host (`bRequestType` bit 7).
        device_to_host: bool,
    },
    /// The bus was suspended.
    Suspend,
    /// The bus resumed.
    Resume,
    /// A type this code does not know.
    Unknown(u8),
}

/// Decodes the events in one read from `ep0`; a trailing partial event is ignored.
pub fn parse_events(bytes: &[u8]) -> Vec<Event> {
    bytes
        .chunks_exact(EVENT_SIZE)
        .filter_map(|event| Some((event.get(8).copied()?, event.first().copied()?)))
        .map(|(kind, request_type)| match kind {
            0 => Event::Bind,
            1 => Event::Unbind,
            2 => Event::Enable,
            3 => Event::Disable,
            4 => Event::Setup {
                device_to_host: request_type & USB_DIR_IN != 0,
            },
            5 => Event::Suspend,
            6 => Event::Resume,
            other => Event::Unknown(other),
        })
        .collect()
}

/// How the gadget writes what the terminal sends towards the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Writes {
    /// Split every write into USB transfers of at most this many bytes (short packets).
    pub chunk: usize,
    /// Follow every transfer with a zero-length packet.
    pub zlp: bool,
}

impl Default for Writes {
    fn default() -> Writes {
        Writes {
            chunk: 512,
            zlp: false,
        }
    }
}

/// The running gadget: a FunctionFS mount prepared, a pseudo-terminal for the
/// terminal emulator.
pub struct Gadget {
    /// The pseudo-terminal path the terminal emulator opens.
    pub pty_path: PathBuf,
    _link: Option<SymlinkGuard>,
    pty: PtyLink,
    ep0: File,
    ep_in: File,
    ep_out: File,
    enabled: Arc<AtomicBool>,
}

impl Gadget {
    /// Writes the descriptors and strings to `mount/ep0`, opens the endpoints FunctionFS
    /// then creates (`ep1` IN, `ep2` OUT), and makes a pseudo-terminal, also reachable
    /// as `link`. After this the function can be bound to a UDC.
    pub fn prepare(mount: &Path, shape: &GadgetShape, link: Option<&Path>) -> io::Result<Gadget> {
        let with_path = |path: PathBuf| {
            move |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
        };
        let ep0_path = mount.join("ep0");
        let mut ep0 = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&ep0_path)
            .map_err(with_path(ep0_path.clone()))?;
        ep0.write_all(&descriptors(shape))
            .map_err(with_path(ep0_path.clone()))?;
        ep0.write_all(&strings(shape))
            .map_err(with_path(ep0_path.clone()))?;
        let ep_in_path = mount.join("ep1");
        let ep_in = OpenOptions::new()
            .write(true)
            .open(&ep_in_path)
            .map_err(with_path(ep_in_path))?;
        let ep_out_path = mount.join("ep2");
        let ep_out = File::open(&ep_out_path).map_err(with_path(ep_out_path))?;
        let pty = open_pty()?;
        let link = link
            .map(|link| SymlinkGuard::create(link, &pty.path))
            .transpose()?;
        Ok(Gadget {
            pty_path: pty.path.clone(),
            _link: link,
            pty,
            ep0,
            ep_in,
            ep_out,
            enabled: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Relays bytes between the endpoints and the pseudo-terminal until the terminal
    /// side fails. While the host is away (unplugged), what the terminal writes is
    /// dropped, as a cable would; `on_event` hears every FunctionFS event.
    pub async fn run(
        self,
        writes: Writes,
        on_event: impl Fn(Event) + Send + 'static,
    ) -> io::Result<()> {
        let Gadget {
            pty,
            mut ep0,
            mut ep_in,
            mut ep_out,
            enabled,
            ..
        } = self;
        let events_enabled = enabled.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; EVENT_SIZE * 4];
            loop {
                match ep0.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        for event in parse_events(buf.get(..n).unwrap_or_default()) {
                            match event {
                                Event::Enable => events_enabled.store(true, Ordering::SeqCst),
                                Event::Disable | Event::Unbind => {
                                    events_enabled.store(false, Ordering::SeqCst)
                                }
                                // Refused: a write stalls a host-to-device request; the
                                // next read stalls a device-to-host one.
                                Event::Setup {
                                    device_to_host: false,
                                } => {
                                    let _ = ep0.write(&[]);
                                }
                                _ => {}
                            }
                            on_event(event);
                        }
                    }
                    // The read that stalled a request, or an interrupted one.
                    Err(_) => {}
                }
            }
        });

        let (to_terminal, mut from_host) = mpsc::channel::<Vec<u8>>(16);
        std::thread::spawn(move || {
            // One packet per read, so a read returns as soon as a packet arrives.
            let mut buf = vec![0u8; 512];
            loop {
                match ep_out.read(&mut buf) {
                    Ok(n) => {
                        if n > 0
                            && to_terminal
                                .blocking_send(buf.get(..n).unwrap_or_default().to_vec())
                                .is_err()
                        {
                            return;
                        }
                    }
                    // Disconnected mid-transfer: the next read waits for the host.
                    Err(_) => std::thread::yield_now(),
                }
            }
        });

        let (to_host, mut from_terminal) = mpsc::channel::<Vec<u8>>(16);
        std::thread::spawn(move || {
            while let Some(bytes) = from_terminal.blocking_recv() {
                for chunk in bytes.chunks(writes.chunk.max(1)) {
                    if ep_in.write(chunk).is_err() {
                        break;
                    }
                    if writes.zlp && ep_in.write(&[]).is_err() {
                        break;
                    }
                }
            }
        });

        // The rest of `pty` (the terminal side it holds open) lives as long as this
        // function, so the master never reads a hang-up between terminals.
        let (mut pty_read, mut pty_write) = tokio::io::split(pty.master);
        let towards_terminal = async move {
            while let Some(bytes) = from_host.recv().await {
                pty_write.write_all(&bytes).await?;
            }
            Ok::<(), io::Error>(())
        };
        let towards_host = async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let n = pty_read.read(&mut buf).await?;
                if n == 0 {
                    return Ok::<(), io::Error>(());
                }
                if enabled.load(Ordering::SeqCst) {
                    let bytes = buf.get(..n).unwrap_or_default().to_vec();
                    if to_host.send(bytes).await.is_err() {
                        return Ok(());
                    }
                }
            }
        };
        tokio::try_join!(towards_terminal, towards_host).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_follow_the_v2_layout() {
        let d = descriptors(&GadgetShape::default());
        // header 12 + two counts 8 + two speeds of (9 + 7 + 7)
        assert_eq!(d.len(), 12 + 8 + 2 * 23);
        assert_eq!(&d[0..4], &3u32.to_le_bytes());
        assert_eq!(&d[4..8], &(d.len() as u32).to_le_bytes());
        assert_eq!(&d[8..12], &3u32.to_le_bytes());
        // full speed: vendor interface, IN 0x81 and OUT 0x02 of 64 bytes
        assert_eq!(&d[20..29], &[9, 4, 0, 0, 2, 0xff, 0, 0, 1]);
        assert_eq!(&d[29..36], &[7, 5, 0x81, 2, 64, 0, 0]);
        assert_eq!(&d[36..43], &[7, 5, 0x02, 2, 64, 0, 0]);
        // high speed: 512-byte packets
        assert_eq!(&d[52..59], &[7, 5, 0x81, 2, 0, 2, 0]);
    }

    #[test]
    fn strings_are_one_language_of_one_string() {
        let s = strings(&GadgetShape::default());
        assert_eq!(&s[0..4], &2u32.to_le_bytes());
        assert_eq!(&s[4..8], &(s.len() as u32).to_le_bytes());
        assert_eq!(&s[16..18], &0x0409u16.to_le_bytes());
        assert_eq!(s.last(), Some(&0));
        assert_eq!(&s[18..s.len() - 1], b"posbridge terminal link");
    }

    #[test]
    fn events_decode_by_type_byte() {
        let mut bytes = vec![0u8; EVENT_SIZE * 3 + 5];
        bytes[8] = 0;
        bytes[EVENT_SIZE + 8] = 2;
        bytes[2 * EVENT_SIZE] = 0xc1;
        bytes[2 * EVENT_SIZE + 8] = 4;
        bytes[3 * EVENT_SIZE + 2] = 9; // a partial event, ignored
        assert_eq!(
            parse_events(&bytes),
            vec![
                Event::Bind,
                Event::Enable,
                Event::Setup {
                    device_to_host: true
                }
            ]
        );
    }
}
