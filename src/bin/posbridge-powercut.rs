//! `posbridge-powercut`: the power-cut campaign of the VM rig (`tests/vm/run
//! powercut`), and the guest's end of its cloud channel.
//!
//! `campaign` boots the VM again and again with its command, cuts the power (SIGKILL
//! of QEMU) at seeded random points with refunds in flight, and checks the books at
//! the end (see `posbridge::sim::powercut`). `tunnel` runs in the guest: it accepts
//! the bridge's connections to the cloud on a loopback address and carries them over
//! a virtio-serial port to the simulator on the host.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use posbridge::sim::powercut::{self, Campaign};

/// Power cuts against the bridge in a virtual machine.
#[derive(Parser, Debug)]
#[command(
    name = "posbridge-powercut",
    version,
    after_help = "Run by tests/vm/run powercut, which builds the disk and the boot command:\n  \
        tests/vm/run powercut --cuts 1000 --seed 7"
)]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Boot, cut, boot again; check the books at the end.
    Campaign {
        /// The seed of the schedule (the same seed, the same schedule).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Power cuts to make.
        #[arg(long, default_value_t = 10)]
        cuts: u32,
        /// Where QEMU's USB serial device (the terminal's line) connects.
        #[arg(long)]
        terminal_socket: PathBuf,
        /// Where QEMU's virtio-serial cloud channel connects.
        #[arg(long)]
        cloud_socket: PathBuf,
        /// Where QEMU's virtio-serial control channel connects.
        #[arg(long)]
        control_socket: PathBuf,
        /// The guest's disk image.
        #[arg(long)]
        disk: PathBuf,
        /// The ledger's path in the guest.
        #[arg(long, default_value = "/var/lib/posbridge/ledger.sqlite")]
        guest_ledger: String,
        /// A directory for what is read from the disk.
        #[arg(long)]
        work: PathBuf,
        /// Seconds a boot may take until the bridge speaks to the terminal.
        #[arg(long, default_value_t = 300)]
        up_within: u64,
        /// Seconds everything may take to settle after the last boot.
        #[arg(long, default_value_t = 300)]
        settle_within: u64,
        /// The command that boots the VM (it must exec QEMU).
        #[arg(last = true, required = true)]
        boot: Vec<String>,
    },
    /// The guest's end of the cloud channel.
    Tunnel {
        /// Where the bridge connects (its provider base_url).
        #[arg(long, default_value = "127.0.0.1:8480")]
        listen: SocketAddr,
        /// The virtio-serial port.
        #[arg(long, default_value = "/dev/virtio-ports/posbridge.cloud")]
        port: PathBuf,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    match Args::parse().command {
        Cmd::Campaign {
            seed,
            cuts,
            terminal_socket,
            cloud_socket,
            control_socket,
            disk,
            guest_ledger,
            work,
            up_within,
            settle_within,
            boot,
        } => {
            let campaign = Campaign {
                seed,
                cuts,
                boot,
                terminal_socket,
                cloud_socket,
                control_socket,
                disk,
                guest_ledger,
                work,
                up_within: Duration::from_secs(up_within),
                settle_within: Duration::from_secs(settle_within),
            };
            match powercut::run(&campaign).await {
                Ok(report) => {
                    println!("{report}");
                    if report.passed() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(2)
                }
            }
        }
        Cmd::Tunnel { listen, port } => match powercut::guest_tunnel(listen, &port).await {
            Ok(()) => {
                eprintln!("posbridge-powercut tunnel: {} closed", port.display());
                ExitCode::from(1)
            }
            Err(e) => {
                eprintln!("posbridge-powercut tunnel: {}: {e}", port.display());
                ExitCode::from(1)
            }
        },
    }
}
