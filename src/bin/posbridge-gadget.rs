//! `posbridge-gadget`: the terminal's side of a vendor-bulk USB terminal, made of
//! Linux's gadget stack, for testing the bridge's USB bulk transport against the
//! kernel's real USB drivers (see `tests/vm/`).
//!
//! Give it a mounted FunctionFS instance; it writes the interface's descriptors (one
//! vendor-specific interface, a bulk IN/OUT pair), makes a pseudo-terminal, prints a
//! `ready` line, and relays bytes between the endpoints and the pseudo-terminal. Then
//! bind the gadget to a UDC, and `posbridge term PTY` is a terminal on a USB cable.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use posbridge::sim::gadget::{Event, Gadget, GadgetShape, Writes};

/// The terminal's side of a FunctionFS vendor-bulk gadget, relayed to a pseudo-terminal.
#[derive(Parser, Debug)]
#[command(
    name = "posbridge-gadget",
    version,
    after_help = "Example (as root, with usb_f_fs and a UDC such as dummy_hcd's):\n  \
        mkdir -p /sys/kernel/config/usb_gadget/t/functions/ffs.term  (plus ids, strings, a config)\n  \
        mount -t functionfs term /dev/ffs-term\n  \
        posbridge-gadget --ffs /dev/ffs-term --link /tmp/vendor-terminal &\n  \
        echo dummy_udc.0 > /sys/kernel/config/usb_gadget/t/UDC\n  \
        posbridge term /tmp/vendor-terminal --refund PAY-1 --amount 100 --currency USD"
)]
struct Args {
    /// The FunctionFS mount point (holding ep0).
    #[arg(long, value_name = "DIR")]
    ffs: PathBuf,
    /// Also make this path a symlink to the pseudo-terminal.
    #[arg(long, value_name = "PATH")]
    link: Option<PathBuf>,
    /// Send what the terminal writes in USB transfers of at most N bytes.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u16).range(1..=4096))]
    chunk: u16,
    /// Follow every transfer to the host with a zero-length packet.
    #[arg(long)]
    zlp: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let gadget = match Gadget::prepare(&args.ffs, &GadgetShape::default(), args.link.as_deref()) {
        Ok(gadget) => gadget,
        Err(e) => {
            eprintln!("posbridge-gadget: {e}");
            return ExitCode::from(2);
        }
    };
    println!("ready {}", gadget.pty_path.display());
    let writes = Writes {
        chunk: usize::from(args.chunk),
        zlp: args.zlp,
    };
    let on_event = |event: Event| eprintln!("posbridge-gadget: {event:?}");
    tokio::select! {
        result = gadget.run(writes, on_event) => match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("posbridge-gadget: {e}");
                ExitCode::from(1)
            }
        },
        _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
    }
}
