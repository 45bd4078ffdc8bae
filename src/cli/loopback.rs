//! `posbridge loopback`: a virtual serial line for field techs and tests.
//!
//! By default it makes one pseudo-terminal, prints the path a terminal (or
//! `posbridge term`) opens, and serves the bridge's side of the link on it with the
//! link-test responder. With `--device PATH` or `--usb VID:PID` it serves the
//! responder on a real terminal line instead (a serial device, or USB bulk endpoints),
//! reopening it after every unplug, so a field tech can test a terminal's firmware and
//! cable without moving money. With `--pair` it makes a null-modem cable of two
//! pseudo-terminals, optionally damaging what crosses it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::link::{LinkStatsSnapshot, OneShot, TraceDirection, Tracer};
use crate::sim::line::{LineControl, LineFaults, relay};
use crate::sim::link_test::{Responder, ResponderEvent};
use crate::sim::screen::trace_line;
use crate::transport::{
    DEFAULT_BAUD, Reopen, SymlinkGuard, TransportConfig, UsbConfig, open, open_pty, parse_vid_pid,
};
use crate::wire::{Damage, Inbound};
use clap::Args;

/// Arguments of `posbridge loopback`.
#[derive(Args)]
#[command(after_help = "Examples:
  posbridge loopback --link /tmp/posterminal
      then, in another shell:  posbridge term /tmp/posterminal --refund PAY-1 --amount 1250 --currency USD --id REF-1
  posbridge loopback --device /dev/posterminal-A1B2C3
      the responder on the real terminal line: refunds from the terminal come back
      FAILED with result code LINK_TEST (no refund is made)
  posbridge loopback --usb 0b00:3070 --usb-serial A1B2C3 --usb-endpoint-out 0x02
      the same on a terminal with a vendor USB interface (bulk endpoints)
  posbridge loopback --pair --link /tmp/term-side --bridge-link /tmp/bridge-side --noise light
      a null-modem cable with a noisy line between its two ends")]
pub struct LoopbackArgs {
    /// Also make this path a symlink to the terminal's end of the line.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["device", "usb"])]
    link: Option<PathBuf>,
    /// Serve the responder on this serial device (the terminal's line) instead of a
    /// pseudo-terminal; stop the bridge first, it holds the line.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["pair", "usb"])]
    device: Option<PathBuf>,
    /// With --device, the line's baud rate.
    #[arg(long, default_value_t = DEFAULT_BAUD, requires = "device")]
    baud: u32,
    /// Serve the responder on the USB bulk terminal with this VID:PID (as lsusb prints it).
    #[arg(long, value_name = "VID:PID", conflicts_with = "pair", value_parser = parse_vid_pid)]
    usb: Option<(u16, u16)>,
    /// With --usb, the device's serial number (needed when several match).
    #[arg(long, value_name = "SERIAL", requires = "usb")]
    usb_serial: Option<String>,
    /// With --usb, the vendor interface number.
    #[arg(long, default_value = "0", requires = "usb", value_parser = parse_byte)]
    usb_interface: u8,
    /// With --usb, the bulk IN endpoint address (device to host).
    #[arg(long, default_value = "0x81", requires = "usb", value_parser = parse_byte)]
    usb_endpoint_in: u8,
    /// With --usb, the bulk OUT endpoint address (host to device).
    #[arg(long, default_value = "0x01", requires = "usb", value_parser = parse_byte)]
    usb_endpoint_out: u8,
    /// Make a null-modem pair of two pseudo-terminals and serve nothing on it.
    #[arg(long)]
    pair: bool,
    /// With --pair, also make this path a symlink to the bridge's end.
    #[arg(long, value_name = "PATH", requires = "pair")]
    bridge_link: Option<PathBuf>,
    /// With --pair, damage the line: `light`, `heavy`, or a list such as
    /// `drop=0.01,corrupt=0.01,slip=0.01,duplicate=0.01,garbage=0.02,delay=20ms`.
    #[arg(long, requires = "pair", value_parser = parse_noise)]
    noise: Option<LineFaults>,
    /// Seed for --noise, to replay the same damage.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Hex-dump every frame the responder reads or writes (to standard error).
    #[arg(long, conflicts_with = "pair")]
    trace: bool,
    /// Print one JSON object per event on standard output.
    #[arg(long)]
    json: bool,
}

/// Parses a byte given in decimal or as `0x..` hexadecimal (endpoint addresses).
fn parse_byte(text: &str) -> Result<u8, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u8::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| format!("{text:?} is not a number from 0 to 255 (such as 0x81)"))
}

/// Parses a `--noise` profile.
fn parse_noise(text: &str) -> Result<LineFaults, String> {
    match text {
        "light" => {
            return Ok(LineFaults {
                drop: 0.01,
                corrupt: 0.01,
                slip: 0.01,
                duplicate: 0.01,
                garbage: 0.01,
                max_delay: Duration::from_millis(5),
                max_consecutive: 0,
            });
        }
        "heavy" => {
            return Ok(LineFaults {
                drop: 0.05,
                corrupt: 0.05,
                slip: 0.05,
                duplicate: 0.05,
                garbage: 0.05,
                max_delay: Duration::from_millis(20),
                max_consecutive: 0,
            });
        }
        _ => {}
    }
    let mut faults = LineFaults::none();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?}: expected key=value"))?;
        let probability = || -> Result<f64, String> {
            let p: f64 = value
                .parse()
                .map_err(|_| format!("{key}: {value:?} is not a number"))?;
            if (0.0..=1.0).contains(&p) {
                Ok(p)
            } else {
                Err(format!("{key}: {p} is not a probability from 0 to 1"))
            }
        };
        match key {
            "drop" => faults.drop = probability()?,
            "corrupt" => faults.corrupt = probability()?,
            "slip" => faults.slip = probability()?,
            "duplicate" => faults.duplicate = probability()?,
            "garbage" => faults.garbage = probability()?,
            "delay" => {
                let ms = value
                    .strip_suffix("ms")
                    .unwrap_or(value)
                    .parse::<u64>()
                    .map_err(|_| format!("delay: {value:?} is not a number of milliseconds"))?;
                faults.max_delay = Duration::from_millis(ms);
            }
            other => {
                return Err(format!(
                    "unknown fault {other:?}; use drop, corrupt, slip, duplicate, garbage or delay"
                ));
            }
        }
    }
    Ok(faults)
}

/// Runs `posbridge loopback` until Ctrl-C or SIGTERM.
pub async fn run(args: LoopbackArgs) -> ExitCode {
    let result = if args.pair {
        pair(&args).await
    } else if let Some(line) = real_line(&args) {
        on_line(&args, line).await
    } else {
        single(&args).await
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("posbridge loopback: {e}");
            ExitCode::from(2)
        }
    }
}

fn link_to(
    path: &Option<PathBuf>,
    target: &std::path::Path,
) -> Result<Option<SymlinkGuard>, String> {
    path.as_ref()
        .map(|link| {
            SymlinkGuard::create(link, target)
                .map_err(|e| format!("cannot create symlink {}: {e}", link.display()))
        })
        .transpose()
}

fn say(json: bool, value: serde_json::Value, text: &str) {
    if json {
        println!("{value}");
    } else {
        println!("{text}");
    }
}

async fn single(args: &LoopbackArgs) -> Result<(), String> {
    let pty = open_pty().map_err(|e| format!("cannot create a pseudo-terminal: {e}"))?;
    let path = pty.path.clone();
    let guard = link_to(&args.link, &path)?;
    let shown = guard
        .as_ref()
        .map(|g| g.path().to_path_buf())
        .unwrap_or_else(|| path.clone());
    say(
        args.json,
        serde_json::json!({"event": "ready", "path": path, "link": guard.as_ref().map(|g| g.path())}),
        &format!(
            "virtual serial line ready\n  terminal side: {}{}\n  bridge side:   served here by the link-test responder \
             (answers refunds, never makes one)\ntry:  posbridge term {} --refund PAY-1 --amount 1250 --currency USD --id REF-1\n\
             Ctrl-C to stop.",
            path.display(),
            guard
                .as_ref()
                .map(|g| format!(" (also {})", g.path().display()))
                .unwrap_or_default(),
            shown.display(),
        ),
    );
    let (responder, mut events) =
        Responder::start(OneShot::new(pty.master), None, tracer(args.trace));
    serve(args.json, &responder, &mut events).await;
    drop(guard);
    Ok(())
}

/// The terminal line `--device` or `--usb` names, if either is given.
fn real_line(args: &LoopbackArgs) -> Option<TransportConfig> {
    if let Some(path) = &args.device {
        return Some(TransportConfig::Serial {
            path: path.clone(),
            baud: args.baud,
        });
    }
    let (vid, pid) = args.usb?;
    Some(TransportConfig::Usb(UsbConfig {
        serial: args.usb_serial.clone(),
        interface: args.usb_interface,
        endpoint_in: args.usb_endpoint_in,
        endpoint_out: args.usb_endpoint_out,
        ..UsbConfig::new(vid, pid)
    }))
}

/// Serves the responder on a real terminal line until stopped, through unplugs.
async fn on_line(args: &LoopbackArgs, line: TransportConfig) -> Result<(), String> {
    // A configuration that cannot match is said at once; an absent device is waited for.
    let connector = match open(&line).await {
        Ok(io) => Reopen::starting_with(line.clone(), REOPEN_EVERY, io),
        Err(e) if e.needs_configuration() => return Err(e.to_string()),
        Err(e) => {
            eprintln!("posbridge loopback: {e}; waiting for it");
            Reopen::new(line.clone(), REOPEN_EVERY)
        }
    };
    say(
        args.json,
        serde_json::json!({"event": "ready", "line": line.to_string()}),
        &format!(
            "link-test responder on {line} (answers refunds, never makes one)\n\
             make a refund on the terminal: it must come back FAILED with result code LINK_TEST.\n\
             Ctrl-C to stop."
        ),
    );
    let (responder, mut events) = Responder::start(connector, line.baud(), tracer(args.trace));
    serve(args.json, &responder, &mut events).await;
    Ok(())
}

/// How often a line that went away is tried again.
const REOPEN_EVERY: Duration = Duration::from_millis(250);

fn tracer(trace: bool) -> Option<Tracer> {
    trace.then(|| {
        Arc::new(|dir: TraceDirection, raw: &[u8], item: &Inbound| {
            eprintln!("{}", trace_line(dir, raw, item));
        }) as Tracer
    })
}

/// Reports the responder's events until stopped, then the line's counters.
async fn serve(
    json: bool,
    responder: &Responder,
    events: &mut tokio::sync::mpsc::UnboundedReceiver<ResponderEvent>,
) {
    loop {
        tokio::select! {
            _ = super::stop_signal() => break,
            event = events.recv() => match event {
                Some(event) => report(json, &event),
                None => break,
            },
        }
    }
    report_stats(json, &responder.stats());
}

/// The line's counters, printed when the loopback stops.
fn report_stats(json: bool, stats: &LinkStatsSnapshot) {
    let damaged: serde_json::Map<String, serde_json::Value> = Damage::ALL
        .iter()
        .map(|cause| (cause.name().to_owned(), stats.damaged(*cause).into()))
        .collect();
    say(
        json,
        serde_json::json!({
            "event": "stats",
            "framesIn": stats.frames_in,
            "framesOut": stats.frames_out,
            "damaged": damaged,
            "retransmissions": stats.retransmissions,
            "duplicates": stats.duplicates,
            "naksSent": stats.naks_sent,
            "sessions": stats.sessions,
            "downs": stats.downs,
        }),
        &format!(
            "line: {} frames in, {} out, {} damaged, {} retransmitted, {} duplicates, {} sessions",
            stats.frames_in,
            stats.frames_out,
            stats.damaged_total(),
            stats.retransmissions,
            stats.duplicates,
            stats.sessions
        ),
    );
}

fn report(json: bool, event: &ResponderEvent) {
    match event {
        ResponderEvent::Up => say(
            json,
            serde_json::json!({"event": "up"}),
            "== terminal connected",
        ),
        ResponderEvent::Down(reason) => say(
            json,
            serde_json::json!({"event": "down", "reason": reason}),
            &format!("== link down: {reason}"),
        ),
        ResponderEvent::Received(message) => {
            let body: serde_json::Value =
                serde_json::from_slice(&message.to_frame_payload()).unwrap_or_default();
            say(
                json,
                serde_json::json!({"event": "received", "kind": message.kind().to_string(), "body": body}),
                &format!("<- {} {body}", message.kind()),
            );
        }
        ResponderEvent::Refused(error) => say(
            json,
            serde_json::json!({"event": "refused", "code": error.code, "message": error.message}),
            &format!("!! refused: {} {}", error.code, error.message),
        ),
    }
}

async fn pair(args: &LoopbackArgs) -> Result<(), String> {
    let terminal_end = open_pty().map_err(|e| format!("cannot create a pseudo-terminal: {e}"))?;
    let bridge_end = open_pty().map_err(|e| format!("cannot create a pseudo-terminal: {e}"))?;
    let terminal_guard = link_to(&args.link, &terminal_end.path)?;
    let bridge_guard = link_to(&args.bridge_link, &bridge_end.path)?;
    let faults = args.noise.clone().unwrap_or_default();
    say(
        args.json,
        serde_json::json!({
            "event": "ready",
            "terminal": terminal_end.path,
            "bridge": bridge_end.path,
        }),
        &format!(
            "null-modem pair ready{}\n  terminal side: {}\n  bridge side:   {}\nCtrl-C to stop.",
            if faults.is_clean() {
                ""
            } else {
                " (noisy line)"
            },
            terminal_guard
                .as_ref()
                .map(|g| g.path().display().to_string())
                .unwrap_or_else(|| terminal_end.path.display().to_string()),
            bridge_guard
                .as_ref()
                .map(|g| g.path().display().to_string())
                .unwrap_or_else(|| bridge_end.path.display().to_string()),
        ),
    );
    let (t_read, t_write) = tokio::io::split(terminal_end.master);
    let (b_read, b_write) = tokio::io::split(bridge_end.master);
    let to_bridge = relay(t_read, b_write, LineControl::new(faults.clone()), args.seed);
    let to_terminal = relay(
        b_read,
        t_write,
        LineControl::new(faults),
        args.seed.wrapping_add(1),
    );
    tokio::select! {
        _ = super::stop_signal() => {}
        _ = to_bridge => {}
        _ = to_terminal => {}
    }
    drop((terminal_guard, bridge_guard));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_addresses_in_hex_or_decimal() {
        assert_eq!(parse_byte("0x81"), Ok(0x81));
        assert_eq!(parse_byte("2"), Ok(2));
        for bad in ["0x100", "256", "x", ""] {
            assert!(parse_byte(bad).unwrap_err().contains("0x81"), "{bad}");
        }
    }

    #[test]
    fn noise_profiles() {
        assert_eq!(parse_noise("light").unwrap().drop, 0.01);
        let custom = parse_noise("drop=0.2, garbage=0.1,delay=15ms").unwrap();
        assert_eq!(custom.drop, 0.2);
        assert_eq!(custom.garbage, 0.1);
        assert_eq!(custom.max_delay, Duration::from_millis(15));
        for (bad, says) in [
            ("drop", "key=value"),
            ("drop=2", "probability"),
            ("drop=x", "not a number"),
            ("wobble=0.1", "unknown fault"),
            ("delay=soon", "milliseconds"),
        ] {
            let err = parse_noise(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
