//! The fault campaign, short enough for CI: one seeded run per provider of the real
//! bridge process under line noise, unplugs, cloud outages and faults, and SIGKILLs,
//! checked against the simulator's books, the ledger and the terminals' screens (see
//! `posbridge::sim::chaos`). `CHAOS_SEED=n` replays a seed, `CHAOS_SECONDS=s` lengthens
//! the runs; `posbridge-chaos` runs long campaigns.

use std::path::Path;
use std::time::Duration;

use posbridge::sim::chaos::{self, Campaign, Intensity, ProviderKind};

async fn campaign(default_seed: u64, provider: ProviderKind) {
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_seed);
    let seconds = std::env::var("CHAOS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let run = Campaign {
        provider: Some(provider),
        intensity: Intensity {
            duration: Duration::from_secs(seconds),
            ..Intensity::default()
        },
        ..Campaign::new(seed, Path::new(env!("CARGO_BIN_EXE_posbridge")))
    };
    let report = chaos::run(&run)
        .await
        .expect("the campaign could be set up");
    println!("{report}");
    assert!(
        report.passed(),
        "{report}\nreplay: CHAOS_SEED={seed} CHAOS_SECONDS={seconds} cargo test --test chaos {provider}\n\
         or: cargo run --release --bin posbridge-chaos -- --seed {seed} --provider {provider} --run-seconds {seconds}"
    );
    // A run that did nothing would prove nothing.
    assert!(report.tally.refunds >= 40, "{report}");
    assert!(
        report.tally.kills >= 1 && report.bridge_starts >= 2,
        "{report}"
    );
    assert!(report.executed >= 20, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn antom() {
    campaign(101, ProviderKind::Antom).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ottpay() {
    campaign(102, ProviderKind::OttPay).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paymentoptions() {
    campaign(103, ProviderKind::PaymentOptions).await;
}
