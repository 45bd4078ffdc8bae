//! The PaymentOptions client against the cloud simulator.

use posbridge::money::{Amount, Currency};
use posbridge::provider::http::HttpSettings;
use posbridge::provider::paymentoptions::{PaymentOptionsConfig, PaymentOptionsProvider};
use posbridge::provider::{Outcome, Provider, RefundRequest, Secret};
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

async fn sim() -> CloudSim {
    CloudSim::start(demo::sim_config("127.0.0.1:0".parse().unwrap()).unwrap())
        .await
        .unwrap()
}

fn request(payment: &str, amount: Option<Amount>) -> RefundRequest {
    RefundRequest {
        refund_request_id: "R1".into(),
        original_merchant_refund_id: None,
        payment_id: payment.into(),
        amount,
        memo: Some("returned goods".into()),
    }
}

#[tokio::test]
async fn outcomes_for_every_class() {
    let sim = sim().await;
    let po = demo::paymentoptions_provider(&sim.base_url(), quick()).unwrap();
    assert!(!po.is_idempotent() && !po.supports_inquiry());
    let outcome = po.refund(&request("PAY-SYNC-1", Some(usd(1200)))).await;
    let Outcome::Succeeded {
        refund_id, amount, ..
    } = &outcome
    else {
        panic!("{outcome}")
    };
    assert!(refund_id.starts_with("SIMREF"));
    assert_eq!(*amount, Some(usd(1200)));
    let outcome = po.refund(&request("PAY-SYNC-1", Some(usd(9999)))).await;
    let Outcome::FailedFinal { code, message } = &outcome else {
        panic!("{outcome}")
    };
    assert_eq!(code, "SIM_AMOUNT_EXCEEDED");
    assert!(message.contains("exceeds"), "the body's message is kept");
    for (status, class) in [
        (429, "RETRY_SAME_REQUEST"),
        (503, "RETRY_SAME_REQUEST"),
        (500, "OUTCOME_UNKNOWN"),
        (502, "OUTCOME_UNKNOWN"),
        // A bare 404 page is no refusal: nothing says the refund was not made.
        (404, "OUTCOME_UNKNOWN"),
    ] {
        sim.push_fault(FaultRule::once(
            FaultTarget::PaymentoptionsRefund,
            Fault::HttpStatus { status },
        ));
        let outcome = po.refund(&request("PAY-SYNC-1", Some(usd(1)))).await;
        assert_eq!(outcome.class_name(), class, "{status}: {outcome}");
    }
    sim.push_fault(FaultRule::once(FaultTarget::PaymentoptionsRefund, Fault::Hang).after_execute());
    let outcome = po.refund(&request("PAY-SYNC-1", Some(usd(1)))).await;
    let Outcome::OutcomeUnknown { reason } = &outcome else {
        panic!("{outcome}")
    };
    assert!(reason.starts_with("paymentoptions refund:"), "{reason}");
    assert_eq!(sim.executed("PAY-SYNC-1"), 2);
    sim.set_down(true).await;
    assert!(matches!(
        po.refund(&request("PAY-SYNC-1", Some(usd(1)))).await,
        Outcome::RetrySameRequest { .. }
    ));
}

#[tokio::test]
async fn wrong_key_is_refused_before_processing_and_never_printed() {
    let sim = sim().await;
    let mut config = PaymentOptionsConfig::new(
        sim.base_url(),
        Secret::new("not-the-key"),
        demo::PAYMENTOPTIONS_MERCHANT_ID,
    );
    config.http = quick();
    let po = PaymentOptionsProvider::new(&config).unwrap();
    let outcome = po.refund(&request("PAY-SYNC-1", Some(usd(1)))).await;
    // 401: the request was refused before it was processed, so the same refund may be
    // sent again once the key is fixed; it is no failure of the refund.
    let Outcome::RetrySameRequest { reason } = &outcome else {
        panic!("{outcome}")
    };
    assert!(reason.contains("401"), "{reason}");
    assert!(!outcome.to_string().contains("not-the-key"));
    assert!(!format!("{po:?}").contains("not-the-key"));
    assert_eq!(sim.executed("PAY-SYNC-1"), 0);
}
