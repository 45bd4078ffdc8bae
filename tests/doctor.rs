//! `posbridge doctor` against a loopback setup: all green when everything is right,
//! and each broken piece named with its fix when not.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use posbridge::sim::cloud::{CloudSim, demo};
use posbridge::transport::open_pty;

fn doctor(config: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args(["doctor", "--config"])
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A configuration with the Antom keys in files, the way an installation has them.
fn write_config(
    dir: &Path,
    device: &Path,
    base_url: &str,
    antom_public: &str,
    private_mode: u32,
) -> std::path::PathBuf {
    let private = dir.join("merchant_private_key.pem");
    std::fs::write(&private, demo::MERCHANT_PRIVATE_PEM).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(private_mode)).unwrap();
    std::fs::write(dir.join("antom_public_key.pem"), antom_public).unwrap();
    std::fs::write(
        dir.join("merchant_public_key.pem"),
        demo::MERCHANT_PUBLIC_PEM,
    )
    .unwrap();
    let config = dir.join("posbridge.toml");
    std::fs::write(
        &config,
        format!(
            "[ledger]\npath = \"{}\"\n\n[[terminal]]\ndevice = \"{}\"\n\n[provider]\nkind = \"antom\"\nbase_url = \"{base_url}\"\n\
             client_id = \"{}\"\nprivate_key_file = \"merchant_private_key.pem\"\nantom_public_key_file = \"antom_public_key.pem\"\n\
             merchant_public_key_file = \"merchant_public_key.pem\"\n",
            dir.join("ledger.sqlite").display(),
            device.display(),
            demo::ANTOM_CLIENT_ID,
        ),
    )
    .unwrap();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_setup_passes_every_check() {
    let sim = CloudSim::start(demo::sim_config("127.0.0.1:0".parse().unwrap()).unwrap())
        .await
        .unwrap();
    let line = open_pty().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &line.path,
        &sim.base_url(),
        demo::SIMULATOR_PUBLIC_PEM,
        0o600,
    );
    let (code, out) = tokio::task::spawn_blocking(move || doctor(&config))
        .await
        .unwrap();
    assert_eq!(code, 0, "{out}");
    for check in [
        "✓ configuration",
        "✓ keys and credentials",
        "✓ merchant key pair",
        "✓ ledger",
        "opens",
        "✓ cloud TCP",
        "✓ signed inquiry",
        "✓ clock",
        "All checks passed.",
    ] {
        assert!(out.contains(check), "missing {check:?} in:\n{out}");
    }
    assert!(!out.contains('✗'), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_broken_piece_is_named_with_its_fix() {
    let sim = CloudSim::start(demo::sim_config("127.0.0.1:0".parse().unwrap()).unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // No device at the path, a private key others can read, and the wrong public key
    // for Antom (the merchant's own instead of the simulator's).
    let config = write_config(
        dir.path(),
        &dir.path().join("posterminal0"),
        &sim.base_url(),
        demo::MERCHANT_PUBLIC_PEM,
        0o644,
    );
    let (code, out) = tokio::task::spawn_blocking(move || doctor(&config))
        .await
        .unwrap();
    assert_eq!(code, 1, "{out}");
    let fixed = |out: &str, mark: &str, fix: &str| {
        let at = out
            .find(mark)
            .unwrap_or_else(|| panic!("missing {mark:?} in:\n{out}"));
        let fix_at = out[at..].find("fix:").unwrap();
        assert!(
            out[at + fix_at..].lines().next().unwrap().contains(fix),
            "{mark}: wrong fix in:\n{out}"
        );
    };
    for (mark, fix) in [
        ("✗ key file permissions", "chmod 600"),
        ("✗ keys and credentials", "*_file"),
        ("✗ terminal", "plug the terminal in"),
    ] {
        fixed(&out, mark, fix);
    }
    // Nothing secret is printed.
    assert!(!out.contains("PRIVATE KEY"), "{out}");

    // With the key made private, the wrong public key shows at the signed inquiry.
    let config = write_config(
        dir.path(),
        &dir.path().join("posterminal0"),
        &sim.base_url(),
        demo::MERCHANT_PUBLIC_PEM,
        0o600,
    );
    let (code, out) = tokio::task::spawn_blocking(move || doctor(&config))
        .await
        .unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(!out.contains("key file permissions"), "{out}");
    fixed(&out, "✗ signed inquiry", "antom_public_key_file");

    // A configuration error stops at the first check, naming line and key.
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[ledger]\npath = 5\n").unwrap();
    let (code, out) = doctor(&broken);
    assert_eq!(code, 1);
    assert!(
        out.contains("✗ configuration") && out.contains(":2:") && out.contains("ledger.path"),
        "{out}"
    );
}
