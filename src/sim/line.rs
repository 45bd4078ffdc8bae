//! A noisy line: relays bytes between two streams and damages them on purpose.
//!
//! Faults are applied per frame (the bytes up to and including each delimiter), from a
//! seeded random generator so that a failing run can be replayed: frames are dropped,
//! corrupted (one bit flipped), slipped (one byte lost or doubled, as on an overrun
//! UART), duplicated, delayed, or preceded by garbage. The link
//! tests, `posbridge loopback --noise` and the fault campaign all use it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::wire::DELIMITER;

/// How often each fault strikes a frame, as probabilities from 0 to 1.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LineFaults {
    /// The frame vanishes.
    pub drop: f64,
    /// One bit of the frame flips.
    pub corrupt: f64,
    /// One byte of the frame is lost or arrives twice (its delimiter included).
    pub slip: f64,
    /// The frame arrives twice.
    pub duplicate: f64,
    /// Random bytes arrive just before the frame.
    pub garbage: f64,
    /// The frame is held back for up to this long (order is kept).
    pub max_delay: Duration,
    /// Never damage (drop or corrupt) more than this many frames in a row, so a test
    /// can stay within the link's retransmission budget; 0 means no cap.
    pub max_consecutive: u32,
}

impl LineFaults {
    /// A clean line.
    pub fn none() -> LineFaults {
        LineFaults::default()
    }

    /// Whether any fault is switched on.
    pub fn is_clean(&self) -> bool {
        self.drop == 0.0
            && self.corrupt == 0.0
            && self.slip == 0.0
            && self.duplicate == 0.0
            && self.garbage == 0.0
            && self.max_delay.is_zero()
    }
}

/// The faults of a running line, changeable while it runs (a test cuts the line, then
/// mends it). Cheap to clone; clones control the same line.
#[derive(Clone, Debug, Default)]
pub struct LineControl(Arc<Mutex<LineFaults>>);

impl LineControl {
    /// A control starting with `faults`.
    pub fn new(faults: LineFaults) -> LineControl {
        LineControl(Arc::new(Mutex::new(faults)))
    }

    /// Replaces the faults from the next frame on.
    pub fn set(&self, faults: LineFaults) {
        if let Ok(mut current) = self.0.lock() {
            *current = faults;
        }
    }

    /// The faults in force.
    pub fn get(&self) -> LineFaults {
        self.0.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// Drops every frame until [`LineControl::set`] is called again.
    pub fn cut(&self) {
        self.set(LineFaults {
            drop: 1.0,
            ..LineFaults::default()
        });
    }
}

/// What one direction of a noisy line did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineReport {
    /// Frames that went through.
    pub frames: u64,
    /// Frames dropped.
    pub dropped: u64,
    /// Frames with a flipped bit.
    pub corrupted: u64,
    /// Frames with a byte lost or doubled.
    pub slipped: u64,
    /// Frames sent twice.
    pub duplicated: u64,
    /// Bursts of garbage inserted.
    pub garbage: u64,
}

/// Copies `from` to `to` until either side ends, damaging frames as `control` says.
pub async fn relay<R, W>(mut from: R, mut to: W, control: LineControl, seed: u64) -> LineReport
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut rng = StdRng::seed_from_u64(seed);
    let mut report = LineReport::default();
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 8192];
    let mut streak = 0u32;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(buf.get(..n).unwrap_or_default());
        while let Some(end) = pending.iter().position(|&b| b == DELIMITER) {
            let mut unit: Vec<u8> = pending.drain(..=end).collect();
            let faults = control.get();
            if unit.len() == 1 || faults.is_clean() {
                // A lone delimiter, or nothing to do: pass it on untouched.
                if to.write_all(&unit).await.is_err() {
                    return report;
                }
                continue;
            }
            report.frames += 1;
            if !faults.max_delay.is_zero() {
                let micros = faults.max_delay.as_micros() as u64;
                let wait = rng.random_range(0..=micros);
                tokio::time::sleep(Duration::from_micros(wait)).await;
            }
            let may_damage = faults.max_consecutive == 0 || streak < faults.max_consecutive;
            if may_damage && rng.random_bool(faults.drop.clamp(0.0, 1.0)) {
                report.dropped += 1;
                streak += 1;
                continue;
            }
            if may_damage && rng.random_bool(faults.corrupt.clamp(0.0, 1.0)) {
                let at = rng.random_range(0..unit.len());
                let bit = rng.random_range(0..8u32);
                if let Some(byte) = unit.get_mut(at) {
                    *byte ^= 1 << bit;
                }
                report.corrupted += 1;
                streak += 1;
            } else if may_damage && rng.random_bool(faults.slip.clamp(0.0, 1.0)) {
                let at = rng.random_range(0..unit.len());
                if rng.random_bool(0.5) {
                    unit.remove(at);
                } else if let Some(&byte) = unit.get(at) {
                    unit.insert(at, byte);
                }
                report.slipped += 1;
                streak += 1;
            } else {
                streak = 0;
            }
            if rng.random_bool(faults.garbage.clamp(0.0, 1.0)) {
                let len = rng.random_range(1..=24usize);
                let garbage: Vec<u8> = (0..len).map(|_| rng.random::<u8>()).collect();
                report.garbage += 1;
                if to.write_all(&garbage).await.is_err() {
                    return report;
                }
            }
            let copies = if rng.random_bool(faults.duplicate.clamp(0.0, 1.0)) {
                report.duplicated += 1;
                2
            } else {
                1
            };
            for _ in 0..copies {
                if to.write_all(&unit).await.is_err() {
                    return report;
                }
            }
        }
        if to.flush().await.is_err() {
            break;
        }
    }
    report
}

/// Two in-memory stream ends joined by a noisy line, one control per direction: what
/// end `a` writes passes through `a_to_b` on its way to end `b`, and back again.
pub fn noisy_pipe(
    a_to_b: LineControl,
    b_to_a: LineControl,
    seed: u64,
) -> (tokio::io::DuplexStream, tokio::io::DuplexStream) {
    let (a, a_inner) = tokio::io::duplex(64 * 1024);
    let (b, b_inner) = tokio::io::duplex(64 * 1024);
    let (a_read, a_write) = tokio::io::split(a_inner);
    let (b_read, b_write) = tokio::io::split(b_inner);
    tokio::spawn(relay(a_read, b_write, a_to_b, seed));
    tokio::spawn(relay(
        b_read,
        a_write,
        b_to_a,
        seed.rotate_left(32) ^ 0x5DEE_CE66,
    ));
    (a, b)
}
