//! The release binary on a small box: its size on disk and how long it takes to start.
//!
//! `cargo bench --bench startup` builds `posbridge` with the bench profile (which is
//! the release profile) and prints its size and the wall time of `posbridge version`
//! and of `posbridge check-config` on a store's configuration (it reads and checks the
//! Antom keys; median and p90 of 50),
//! process start included, for docs/PERFORMANCE.md.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn time(args: &[&str]) -> (Duration, Duration) {
    let mut times = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let status = Command::new(env!("CARGO_BIN_EXE_posbridge"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        times.push(t.elapsed());
        assert!(status.success(), "{args:?}");
    }
    times.sort();
    (times[25], times[45])
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let bin = env!("CARGO_BIN_EXE_posbridge");
    let size = std::fs::metadata(bin).map(|m| m.len()).unwrap_or(0);
    println!(
        "posbridge binary: {size} bytes ({:.1} MiB)",
        size as f64 / 1048576.0
    );
    // A store's configuration: a terminal line, a ledger, a provider with its keys.
    let dir = tempfile::tempdir().unwrap();
    let line = posbridge::transport::open_pty().unwrap();
    let config = dir.path().join("posbridge.toml");
    std::fs::write(
        &config,
        format!(
            "[ledger]\npath = \"{}\"\n\n[[terminal]]\ndevice = \"{}\"\n\n{}",
            dir.path().join("ledger.sqlite").display(),
            line.path.display(),
            posbridge::sim::cloud::demo::provider_toml("antom", "http://127.0.0.1:9").unwrap()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    for args in [vec!["version"], vec!["check-config", "--config", config]] {
        let (median, p90) = time(&args);
        println!(
            "posbridge {}: median {:.2} ms, p90 {:.2} ms (50 runs)",
            args[0],
            median.as_secs_f64() * 1000.0,
            p90.as_secs_f64() * 1000.0
        );
    }
}
