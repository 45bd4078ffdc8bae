//! Signing cost per Antom request, and refunds per second of one client against the
//! cloud simulator on loopback.
//!
//! `cargo bench --bench signing`. Figures are recorded in docs/PERFORMANCE.md.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group};
use posbridge::money::{Amount, Currency, MAX_AMOUNT};
use posbridge::provider::antom::signing;
use posbridge::provider::http::HttpSettings;
use posbridge::provider::{Outcome, Provider, RefundRequest};
use posbridge::sim::cloud::books::PaymentSeed;
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

/// Seconds per operation from `openssl speed -seconds 3 rsa2048` (its `rsa 2048 bits`
/// line: sign/s and verify/s), if openssl is installed.
fn openssl_speed() -> Option<(f64, f64)> {
    let out = std::process::Command::new("openssl")
        .args(["speed", "-seconds", "3", "rsa2048"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("rsa 2048 bits"))?;
    let numbers: Vec<f64> = line
        .split_whitespace()
        .filter_map(|w| w.trim_end_matches('s').parse().ok())
        .collect();
    // "rsa 2048 bits <sign s> <verify s> <sign/s> <verify/s>" (OpenSSL 3.0).
    match numbers.as_slice() {
        [2048.0, sign, verify, ..] | [sign, verify, _, _] => Some((*sign, *verify)),
        _ => None,
    }
}

/// Signs and verifies for `seconds` each; seconds per operation.
fn own_speed(seconds: f64) -> (f64, f64) {
    let key = demo::merchant_private_key().expect("demo key");
    let public = key.public_key();
    let content = signing::signing_content(PATH, demo::ANTOM_CLIENT_ID, TIME, BODY);
    let time = |mut op: Box<dyn FnMut()>| {
        let started = std::time::Instant::now();
        let mut n = 0u64;
        while started.elapsed().as_secs_f64() < seconds {
            op();
            n += 1;
        }
        started.elapsed().as_secs_f64() / n as f64
    };
    let signature = key.sign(&content).expect("sign");
    let sign = time(Box::new(|| {
        key.sign(&content).expect("sign");
    }));
    let verify = time(Box::new(|| assert!(public.verify(&content, &signature))));
    (sign, verify)
}

/// posbridge's RSA-2048 signing and verification beside `openssl speed`, in one run.
fn compare_with_openssl() {
    let (sign, verify) = own_speed(3.0);
    println!(
        "posbridge rsa2048: sign {:.3} ms, verify {:.4} ms",
        sign * 1e3,
        verify * 1e3
    );
    match openssl_speed() {
        Some((o_sign, o_verify)) => println!(
            "openssl speed -seconds 3 rsa2048: sign {:.3} ms, verify {:.4} ms; \
             posbridge / openssl: sign {:.2}x, verify {:.2}x",
            o_sign * 1e3,
            o_verify * 1e3,
            sign / o_sign,
            verify / o_verify
        ),
        None => println!("openssl is not installed (or printed no rsa 2048 line): no comparison"),
    }
}

criterion_group!(benches, signing_cost, loopback_refunds);

fn main() {
    compare_with_openssl();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
