//! Signing cost per Antom request, and refunds per second of one client against the
//! cloud simulator on loopback.
//!
//! `cargo bench --bench signing`. Figures are recorded in docs/PERFORMANCE.md.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use posbridge::money::{Amount, Currency, MAX_AMOUNT};
use posbridge::provider::antom::signing;
use posbridge::provider::http::HttpSettings;
use posbridge::provider::{Outcome, Provider, RefundRequest};
use posbridge::sim::cloud::ledger::PaymentSeed;
use posbridge::sim::cloud::{CloudSim, demo};

const BODY: &[u8] = br#"{"refundRequestId":"pb-20261124-000042","paymentId":"20260225930300000012345","originalMerchantRefundId":"POS-REF-42","refundAmount":{"value":1250,"currency":"USD"},"memo":"returned goods"}"#;
const PATH: &str = "/v2/payments/refund";
const TIME: &str = "1775820774000";

fn signing_cost(c: &mut Criterion) {
    let key = demo::merchant_private_key().expect("demo key");
    let public = key.public_key();
    let header =
        signing::signature_header(&key, 1, PATH, demo::ANTOM_CLIENT_ID, TIME, BODY).expect("sign");
    let mut group = c.benchmark_group("antom_signature");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sign_request_rsa2048", |b| {
        b.iter(|| {
            signing::signature_header(&key, 1, PATH, demo::ANTOM_CLIENT_ID, TIME, BODY)
                .expect("sign")
        })
    });
    group.bench_function("verify_response_rsa2048", |b| {
        b.iter(|| {
            signing::verify(&public, &header, PATH, demo::ANTOM_CLIENT_ID, TIME, BODY)
                .expect("verify")
        })
    });
    group.finish();
}

fn loopback_refunds(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let sim = runtime.block_on(async {
        let mut config =
            demo::sim_config("127.0.0.1:0".parse().expect("addr")).expect("demo config");
        let usd = Currency::parse("USD").expect("USD");
        config.payments = vec![PaymentSeed::new(
            "BENCH",
            Amount::new(MAX_AMOUNT, usd).unwrap(),
        )];
        CloudSim::start(config).await.expect("simulator")
    });
    let base = sim.base_url();
    let antom = demo::antom_provider(&base, HttpSettings::default()).expect("antom");
    let payment_options =
        demo::paymentoptions_provider(&base, HttpSettings::default()).expect("paymentoptions");
    let counter = AtomicU64::new(0);
    let request = || RefundRequest {
        refund_request_id: format!("bench-{}", counter.fetch_add(1, Ordering::Relaxed)),
        original_merchant_refund_id: None,
        payment_id: "BENCH".into(),
        amount: Some(Amount::new(1, Currency::parse("USD").expect("USD")).unwrap()),
        memo: None,
    };
    let mut group = c.benchmark_group("loopback_refund_one_client");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(8));
    let providers: [(&str, &dyn Provider); 2] = [
        ("antom_signed", &antom),
        ("paymentoptions_unsigned", &payment_options),
    ];
    for (name, provider) in providers {
        group.bench_function(name, |b| {
            b.iter(|| {
                let outcome = runtime.block_on(provider.refund(&request()));
                assert!(matches!(outcome, Outcome::Succeeded { .. }), "{outcome}");
            })
        });
    }
    group.finish();
    runtime.block_on(sim.shutdown());
}

criterion_group!(benches, signing_cost, loopback_refunds);
criterion_main!(benches);
