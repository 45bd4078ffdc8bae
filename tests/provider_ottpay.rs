//! The OTT Pay client against the cloud simulator: outcomes, token cache and refresh,
//! and that no secret appears in what it prints.

use std::time::Duration;

use posbridge::money::{Amount, Currency};
use posbridge::provider::http::HttpSettings;
use posbridge::provider::ottpay::{OttPayConfig, OttPayProvider};
use posbridge::provider::{InquiryRequest, Outcome, Provider, RefundRequest, Secret};
use posbridge::sim::cloud::faults::{Fault, FaultRule, FaultTarget};
use posbridge::sim::cloud::{CloudSim, demo};

fn usd(value: i64) -> Amount {
    Amount::new(value, Currency::parse("USD").unwrap()).unwrap()
}

fn quick() -> HttpSettings {
    HttpSettings {
        connect_timeout_ms: 500,
        total_timeout_ms: 800,
        ..HttpSettings::default()
    }
}

async fn sim(token_ttl: Duration) -> CloudSim {
    let mut config = demo::sim_config("127.0.0.1:0".parse().unwrap()).unwrap();
    config.ottpay_token_ttl = token_ttl;
    CloudSim::start(config).await.unwrap()
}

fn client(sim: &CloudSim, margin_ms: u64) -> OttPayProvider {
    let mut config = OttPayConfig::new(
        sim.base_url(),
        demo::OTTPAY_APP_ID,
        Secret::new(demo::OTTPAY_APP_KEY),
    );
    config.http = quick();
    config.token_refresh_margin_ms = margin_ms;
    OttPayProvider::new(&config).unwrap()
}

fn request(payment: &str, amount: Option<Amount>) -> RefundRequest {
    RefundRequest {
        refund_request_id: "R1".into(),
        original_merchant_refund_id: None,
        payment_id: payment.into(),
        amount,
        memo: None,
    }
}

#[tokio::test]
async fn success_in_progress_and_final_failures() {
    let sim = sim(Duration::from_secs(3600)).await;
    let ott = client(&sim, 60_000);
    assert!(!ott.is_idempotent() && !ott.supports_inquiry());
    let outcome = ott.refund(&request("PAY-SYNC-1", Some(usd(1000)))).await;
    let Outcome::Succeeded {
        amount,
        refund_time,
        ..
    } = &outcome
    else {
        panic!("{outcome}")
    };
    assert_eq!(*amount, Some(usd(1000)));
    assert!(
        jiff::Timestamp::now()
            .duration_since(*refund_time)
            .as_secs()
            .abs()
            < 60,
        "tradeTime read as Eastern time"
    );
    // Accepted and finished later: OTT Pay cannot be asked, its report settles it.
    let outcome = ott.refund(&request("PAY-ASYNC-1", Some(usd(10)))).await;
    assert!(
        matches!(outcome, Outcome::AcceptedLater { refund_id: Some(_) }),
        "{outcome}"
    );
    for (payment, amount, code) in [
        ("NO-SUCH", 10, "20019"),
        ("PAY-SYNC-1", 4001, "20014"),
        ("PAY-NOT-REFUNDABLE", 10, "20021"),
    ] {
        let outcome = ott.refund(&request(payment, Some(usd(amount)))).await;
        assert!(
            matches!(outcome, Outcome::FailedFinal { code: ref c, .. } if c == code),
            "{payment}: {outcome}"
        );
    }
    ott.refund(&request("PAY-SYNC-1", Some(usd(4000)))).await;
    let outcome = ott.refund(&request("PAY-SYNC-1", Some(usd(1)))).await;
    assert!(
        matches!(outcome, Outcome::FailedFinal { ref code, .. } if code == "20041"),
        "{outcome}"
    );
    let outcome = ott.refund(&request("PAY-SYNC-1", None)).await;
    assert!(
        matches!(outcome, Outcome::FailedFinal { ref code, .. } if code == "POSBRIDGE_AMOUNT_REQUIRED")
    );
    let inquiry = InquiryRequest {
        refund_request_id: "R1".into(),
        refund_id: None,
        resend: None,
    };
    assert!(matches!(
        ott.inquire(&inquiry).await,
        Outcome::OutcomeUnknown { .. }
    ));
}

#[tokio::test]
async fn error_codes_map_to_every_class() {
    let sim = sim(Duration::from_secs(3600)).await;
    let ott = client(&sim, 60_000);
    let error = |code: i64| {
        FaultRule::once(
            FaultTarget::OttpayRefund,
            Fault::OttpayError {
                code,
                message: "sim".into(),
            },
        )
    };
    sim.push_fault(error(20007));
    assert!(matches!(
        ott.refund(&request("PAY-SYNC-1", Some(usd(1)))).await,
        Outcome::NeedsNewRequestId { .. }
    ));
    for code in [50003, 10200, 20004, 77777] {
        sim.push_fault(error(code));
        let outcome = ott.refund(&request("PAY-SYNC-1", Some(usd(1)))).await;
        assert!(
            matches!(outcome, Outcome::OutcomeUnknown { .. }),
            "{code}: {outcome}"
        );
    }
    for code in [10005, 50001, 50002] {
        sim.push_fault(error(code));
        assert!(matches!(
            ott.refund(&request("PAY-SYNC-1", Some(usd(1)))).await,
            Outcome::FailedFinal { .. }
        ));
    }
    for (status, retry) in [(429, true), (503, true), (500, false), (502, false)] {
        sim.push_fault(FaultRule::once(
            FaultTarget::OttpayRefund,
            Fault::HttpStatus { status },
        ));
        let outcome = ott.refund(&request("PAY-SYNC-1", Some(usd(1)))).await;
        if retry {
            assert!(
                matches!(outcome, Outcome::RetrySameRequest { .. }),
                "{status}: {outcome}"
            );
        } else {
            assert!(
                matches!(outcome, Outcome::OutcomeUnknown { .. }),
                "{status}: {outcome}"
            );
        }
    }
    assert_eq!(sim.executed("PAY-SYNC-1"), 0);
    sim.push_fault(
        FaultRule::once(FaultTarget::OttpayRefund, Fault::DropConnection).after_execute(),
    );
    let outcome = ott.refund(&request("PAY-SYNC-1", Some(usd(1)))).await;
    assert!(
        matches!(outcome, Outcome::OutcomeUnknown { .. }),
        "{outcome}"
    );
    assert_eq!(
        sim.executed("PAY-SYNC-1"),
        1,
        "the money moved: a person must resolve it"
    );
    sim.set_down(true).await;
    let outcome = ott.refund(&request("PAY-SYNC-1", Some(usd(1)))).await;
    assert!(
        matches!(outcome, Outcome::RetrySameRequest { .. }),
        "{outcome}"
    );
}

#[tokio::test]
async fn no_idempotency_two_sends_are_two_refunds() {
    let sim = sim(Duration::from_secs(3600)).await;
    let ott = client(&sim, 60_000);
    ott.refund(&request("PAY-SYNC-2", Some(usd(100)))).await;
    ott.refund(&request("PAY-SYNC-2", Some(usd(100)))).await;
    assert_eq!(sim.executed("PAY-SYNC-2"), 2);
}

#[tokio::test]
async fn token_is_cached_refreshed_before_expiry_and_on_auth_errors() {
    let sim = sim(Duration::from_secs(3600)).await;
    let ott = client(&sim, 60_000);
    for _ in 0..3 {
        assert!(matches!(
            ott.refund(&request("PAY-SYNC-2", Some(usd(1)))).await,
            Outcome::Succeeded { .. }
        ));
    }
    assert_eq!(
        sim.stats().tokens_issued,
        1,
        "one token serves many refunds"
    );
    sim.revoke_tokens();
    let outcome = ott.refund(&request("PAY-SYNC-2", Some(usd(1)))).await;
    assert!(matches!(outcome, Outcome::Succeeded { .. }), "{outcome}");
    assert_eq!(sim.stats().tokens_issued, 2, "refreshed once on 90000");
    assert_eq!(sim.executed("PAY-SYNC-2"), 4);
    // A token expiring within the margin is replaced before use.
    let short = self::sim(Duration::from_secs(30)).await;
    let ott = client(&short, 60_000);
    ott.refund(&request("PAY-SYNC-2", Some(usd(1)))).await;
    ott.refund(&request("PAY-SYNC-2", Some(usd(1)))).await;
    assert_eq!(short.stats().tokens_issued, 2);
}

#[tokio::test]
async fn token_failures_mean_the_refund_was_not_sent() {
    let sim = sim(Duration::from_secs(3600)).await;
    let mut config = OttPayConfig::new(
        sim.base_url(),
        demo::OTTPAY_APP_ID,
        Secret::new("wrong-key-value"),
    );
    config.http = quick();
    let ott = OttPayProvider::new(&config).unwrap();
    let outcome = ott.refund(&request("PAY-SYNC-1", Some(usd(1)))).await;
    let Outcome::RetrySameRequest { reason } = &outcome else {
        panic!("{outcome}")
    };
    assert!(
        reason.contains("auth/token") && reason.contains("refund not sent"),
        "{reason}"
    );
    assert!(!reason.contains("wrong-key-value"));
    assert!(
        !format!("{ott:?}").contains("wrong-key-value"),
        "Debug hides the appKey"
    );
    let good = client(&sim, 60_000);
    sim.push_fault(FaultRule::once(FaultTarget::OttpayToken, Fault::Hang));
    let outcome = good.refund(&request("PAY-SYNC-1", Some(usd(1)))).await;
    assert!(
        matches!(outcome, Outcome::RetrySameRequest { .. }),
        "{outcome}"
    );
    assert_eq!(sim.stats().requests.get("ottpay_refund"), None);
}
