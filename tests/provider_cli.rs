//! `posbridge refund` and `posbridge inquire` against an in-process simulator: the
//! printed outcome and the exit code per class.

use assert_cmd::Command;
use posbridge::sim::cloud::{CloudSim, demo};

async fn sim_and_config(kind: &str) -> (CloudSim, tempfile::TempDir, std::path::PathBuf) {
    let sim = CloudSim::start(demo::sim_config("127.0.0.1:0".parse().unwrap()).unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("posbridge.toml");
    std::fs::write(&path, demo::provider_toml(kind, &sim.base_url()).unwrap()).unwrap();
    (sim, dir, path)
}

/// Runs the binary off the runtime's threads.
async fn run(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        Command::cargo_bin("posbridge")
            .unwrap()
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refund_then_inquire_prints_outcomes_and_exit_codes() {
    let (sim, _dir, config) = sim_and_config("antom").await;
    let config = config.to_str().unwrap().to_string();
    let out = run(args(&[
        "refund",
        "--config",
        &config,
        "--payment-id",
        "PAY-SYNC-1",
        "--amount",
        "1250",
        "--currency",
        "USD",
        "--refund-request-id",
        "cli-1",
    ]))
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("12.50 USD") && stdout.contains("SUCCEEDED refund_id=SIMREF"),
        "{stdout}"
    );
    let refund_id = sim.refund_by_request_id("cli-1").unwrap().refund_id;
    let out = run(args(&[
        "inquire",
        "--config",
        &config,
        "--refund-id",
        &refund_id,
        "--json",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["outcome"], "SUCCEEDED");
    let out = run(args(&[
        "refund",
        "--config",
        &config,
        "--payment-id",
        "NOPE",
        "--amount",
        "1",
        "--currency",
        "USD",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(1));
    let out = run(args(&[
        "refund",
        "--config",
        &config,
        "--payment-id",
        "PAY-ASYNC-1",
        "--json",
    ]))
    .await;
    assert_eq!(
        out.status.code(),
        Some(10),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    sim.set_down(true).await;
    let out = run(args(&[
        "refund",
        "--config",
        &config,
        "--payment-id",
        "PAY-SYNC-2",
        "--amount",
        "1",
        "--currency",
        "USD",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(sim.executed("PAY-SYNC-1"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_and_configs_exit_2_with_a_clear_message() {
    let (_sim, dir, config) = sim_and_config("paymentoptions").await;
    let config = config.to_str().unwrap().to_string();
    let out = run(args(&[
        "refund",
        "--config",
        &config,
        "--payment-id",
        "P",
        "--amount",
        "5",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(2), "--amount needs --currency");
    let out = run(args(&[
        "refund",
        "--config",
        &config,
        "--payment-id",
        "P",
        "--amount",
        "5",
        "--currency",
        "usd",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ISO 4217"));
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[provider]\nkind = \"antom\"\nbase_url = \"http://x\"\nclient_id = \"C\"\nprivate_key = \"garbage\"\nantom_public_key = \"garbage\"\n").unwrap();
    let out = run(args(&[
        "refund",
        "--config",
        broken.to_str().unwrap(),
        "--payment-id",
        "P",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("private key") && !stderr.contains("garbage"),
        "{stderr}"
    );
    let out = run(args(&["inquire", "--config", &config])).await;
    assert_eq!(out.status.code(), Some(2), "inquire needs an id");
    let out = run(args(&[
        "refund",
        "--config",
        "/nonexistent.toml",
        "--payment-id",
        "P",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.toml"));
}
