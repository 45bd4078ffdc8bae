//! The shipped service unit: `systemd-analyze verify` accepts it and `systemd-analyze
//! security` rates it OK or better. Both need systemd-analyze; without it (not a
//! systemd machine) the tests say so and pass.

use std::path::Path;
use std::process::Command;

const UNIT: &str = include_str!("../systemd/posbridge.service");
/// The fleet receiver's unit, checked the same way.
const FLEET_UNIT: &str = include_str!("../systemd/posbridge-fleet.service");
const UNITS: [(&str, &str); 2] = [
    ("posbridge.service", UNIT),
    ("posbridge-fleet.service", FLEET_UNIT),
];

fn analyze_available() -> bool {
    Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The unit with ExecStart pointing at the binary under test (verify checks that the
/// command exists).
fn unit_for_test(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let unit = text.replace("/usr/bin/posbridge", env!("CARGO_BIN_EXE_posbridge"));
    let path = dir.join(name);
    std::fs::write(&path, unit).unwrap();
    path
}

#[test]
fn the_unit_verifies() {
    if !analyze_available() {
        eprintln!("systemd-analyze is not installed here; skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in UNITS {
        let unit = unit_for_test(dir.path(), name, text);
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&unit)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && err.trim().is_empty(),
            "systemd-analyze verify {name}: {err}"
        );
    }
}

#[test]
fn the_unit_is_rated_ok_or_better() {
    if !analyze_available() {
        eprintln!("systemd-analyze is not installed here; skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in UNITS {
        rated_ok_or_better(dir.path(), name, text);
    }
}

fn rated_ok_or_better(dir: &Path, name: &str, text: &str) {
    let unit = unit_for_test(dir, name, text);
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let overall = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| {
            panic!(
                "no rating in: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let score: f64 = overall
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot read {overall:?}"));
    assert!(
        overall.contains("OK") || overall.contains("SAFE"),
        "{name}: {overall}"
    );
    assert!(score <= 2.0, "{name}: exposure {score} grew: {overall}");
}

#[test]
fn the_unit_has_what_the_service_needs() {
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "StateDirectory=posbridge",
        "ConfigurationDirectory=posbridge",
        "KillSignal=SIGTERM",
        "User=posbridge",
        "DevicePolicy=closed",
        "DeviceAllow=char-ttyACM rw",
    ] {
        assert!(UNIT.lines().any(|l| l.starts_with(line)), "missing {line}");
    }
    let dropin = include_str!("../systemd/posbridge-credentials.conf.example");
    assert!(dropin.contains("LoadCredential=antom-private-key:"));
}
