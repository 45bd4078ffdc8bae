//! The Antom client against the cloud simulator: every outcome class, signatures both
//! ways, tampered and unsigned answers, idempotency, notifyRefund.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use posbridge::money::{Amount, Currency};
use posbridge::provider::antom::notify::{NotifyConfig, NotifyReceiver};
use posbridge::provider::antom::{AntomApi, AntomConfig, AntomProvider};
use posbridge::provider::http::HttpSettings;
use posbridge::provider::{InquiryRequest, Outcome, Provider, RefundRequest};
use posbridge::sim::cloud::faults::{Fault, FaultRule, FaultTarget};
use posbridge::sim::cloud::{CloudSim, demo};

fn usd(value: i64) -> Amount {
    Amount::new(value, Currency::parse("USD").unwrap()).unwrap()
}

/// Short timeouts so "no answer" tests end quickly.
fn quick() -> HttpSettings {
    HttpSettings {
        connect_timeout_ms: 500,
        total_timeout_ms: 800,
        ..HttpSettings::default()
    }
}

async fn sim() -> CloudSim {
    sim_with_delay(Duration::from_millis(50)).await
}

/// A simulator whose asynchronous refunds stay in process for `delay` (or until
/// `settle_now`), for tests that must act while one is.
async fn sim_with_delay(delay: Duration) -> CloudSim {
    let mut config = demo::sim_config("127.0.0.1:0".parse().unwrap()).unwrap();
    config.async_delay = delay;
    CloudSim::start(config).await.unwrap()
}

fn client(sim: &CloudSim, api: AntomApi) -> AntomProvider {
    let mut config = AntomConfig::new(sim.base_url(), demo::ANTOM_CLIENT_ID);
    config.api = api;
    config.http = quick();
    AntomProvider::with_keys(
        &config,
        demo::merchant_private_key().unwrap(),
        demo::simulator_public_key().unwrap(),
    )
    .unwrap()
}

fn request(id: &str, payment: &str, amount: Option<Amount>) -> RefundRequest {
    RefundRequest {
        refund_request_id: id.to_string(),
        original_merchant_refund_id: Some(format!("POS-{id}")),
        payment_id: payment.to_string(),
        amount,
        memo: Some("test".into()),
    }
}

/// Polls `check` until it yields a value or the deadline passes.
async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn sync_refund_succeeds_v2_and_v1_through_the_trait() {
    let sim = sim().await;
    for (api, id) in [(AntomApi::V2, "R-V2"), (AntomApi::V1, "R-V1")] {
        let provider: Arc<dyn Provider> = Arc::new(client(&sim, api));
        assert_eq!(provider.name(), "antom");
        assert!(provider.is_idempotent() && provider.supports_inquiry());
        let outcome = provider
            .refund(&request(id, "PAY-SYNC-2", Some(usd(1000))))
            .await;
        let Outcome::Succeeded {
            refund_id, amount, ..
        } = &outcome
        else {
            panic!("{api:?}: {outcome}")
        };
        assert!(refund_id.starts_with("SIMREF"));
        if api == AntomApi::V1 {
            assert_eq!(
                *amount,
                Some(usd(1000)),
                "v1 answers carry the amount as a string"
            );
        }
        let inquiry = InquiryRequest {
            refund_request_id: id.into(),
            refund_id: Some(refund_id.clone()),
            resend: None,
        };
        assert!(matches!(
            provider.inquire(&inquiry).await,
            Outcome::Succeeded { .. }
        ));
    }
    assert_eq!(sim.executed("PAY-SYNC-2"), 2);
    assert_eq!(sim.payment("PAY-SYNC-2").unwrap().refunded, 2000);
}

#[tokio::test]
async fn full_refund_without_amount_and_v1_refuses_it_locally() {
    let sim = sim().await;
    let outcome = client(&sim, AntomApi::V2)
        .refund(&request("R1", "PAY-SYNC-1", None))
        .await;
    assert!(matches!(outcome, Outcome::Succeeded { .. }), "{outcome}");
    assert_eq!(sim.payment("PAY-SYNC-1").unwrap().refunded, 5000);
    let outcome = client(&sim, AntomApi::V1)
        .refund(&request("R2", "PAY-SYNC-2", None))
        .await;
    assert!(
        matches!(outcome, Outcome::FailedFinal { ref code, .. } if code == "POSBRIDGE_AMOUNT_REQUIRED")
    );
    assert_eq!(
        sim.stats().requests.get("antom_v1_refund"),
        None,
        "nothing was sent"
    );
}

#[tokio::test]
async fn same_request_id_refunds_once_and_different_fields_are_refused() {
    let sim = sim().await;
    let antom = client(&sim, AntomApi::V2);
    let first = antom
        .refund(&request("R1", "PAY-SYNC-2", Some(usd(700))))
        .await;
    let again = antom
        .refund(&request("R1", "PAY-SYNC-2", Some(usd(700))))
        .await;
    let (Outcome::Succeeded { refund_id: a, .. }, Outcome::Succeeded { refund_id: b, .. }) =
        (&first, &again)
    else {
        panic!("{first} / {again}")
    };
    assert_eq!(a, b);
    assert_eq!(sim.executed("PAY-SYNC-2"), 1);
    let changed = antom
        .refund(&request("R1", "PAY-SYNC-2", Some(usd(701))))
        .await;
    // F for the changed request, but it says the same id was used before, and that
    // request may have refunded: it proves nothing about the money.
    let Outcome::OutcomeUnknown { reason } = &changed else {
        panic!("{changed}")
    };
    assert!(reason.contains("REPEAT_REQ_INCONSISTENT"), "{reason}");
    assert_eq!(sim.executed("PAY-SYNC-2"), 1);
}

#[tokio::test]
async fn final_failures_from_the_books() {
    let sim = sim().await;
    let antom = client(&sim, AntomApi::V2);
    let cases = [
        (
            "R1",
            "NO-SUCH-PAYMENT",
            Some(usd(1)),
            "DPOS_PAYMENT_ORDER_NOT_EXIST",
        ),
        (
            "R2",
            "PAY-SYNC-1",
            Some(usd(5001)),
            "DPOS_REFUND_AMOUNT_EXCEED",
        ),
        (
            "R3",
            "PAY-FULL-ONLY",
            Some(usd(100)),
            "DPOS_PARTIAL_REFUND_NOT_SUPPORTED",
        ),
        (
            "R4",
            "PAY-NOT-REFUNDABLE",
            None,
            "DPOS_REFUND_NOT_SUPPORTED",
        ),
        (
            "R5",
            "PAY-SYNC-1",
            Some(Amount::new(1, Currency::parse("EUR").unwrap()).unwrap()),
            "DPOS_PAYMENT_CURRENCY_NOT_SUPPORT",
        ),
    ];
    for (id, payment, amount, expected) in cases {
        let outcome = antom.refund(&request(id, payment, amount)).await;
        assert!(
            matches!(outcome, Outcome::FailedFinal { ref code, .. } if code == expected),
            "{id}: {outcome}"
        );
    }
    let v1 = client(&sim, AntomApi::V1);
    let outcome = v1
        .refund(&request("R6", "NO-SUCH-PAYMENT", Some(usd(1))))
        .await;
    assert!(
        matches!(outcome, Outcome::FailedFinal { ref code, .. } if code == "ORDER_NOT_EXIST"),
        "{outcome}"
    );
    assert_eq!(sim.executed("PAY-SYNC-1"), 0);
}

#[tokio::test]
async fn provider_result_codes_map_to_every_class() {
    let sim = sim().await;
    let antom = client(&sim, AntomApi::V2);
    let result = |status: &str, code: &str| {
        FaultRule::once(
            FaultTarget::AntomRefund,
            Fault::AntomResult {
                status: status.into(),
                code: code.into(),
                message: "simulated".into(),
            },
        )
    };
    sim.push_fault(result("F", "DPOS_MERCHANT_BALANCE_NOT_ENOUGH"));
    let outcome = antom
        .refund(&request("R1", "PAY-SYNC-1", Some(usd(10))))
        .await;
    assert!(
        matches!(outcome, Outcome::NeedsNewRequestId { ref code, .. } if code == "DPOS_MERCHANT_BALANCE_NOT_ENOUGH"),
        "{outcome}"
    );
    for code in [
        "DPOS_UNKNOWN_EXCEPTION",
        "DPOS_REQUEST_TRAFFIC_EXCEED_LIMIT",
        "SOMETHING_NEW",
    ] {
        sim.push_fault(result("U", code));
        let outcome = antom
            .refund(&request("R2", "PAY-SYNC-1", Some(usd(10))))
            .await;
        let Outcome::RetrySameRequest { reason } = &outcome else {
            panic!("{code}: {outcome}")
        };
        assert!(
            reason.contains("antom refund") && reason.contains(code),
            "{reason}"
        );
    }
    sim.push_fault(result("F", "SOMETHING_NEW"));
    let outcome = antom
        .refund(&request("R3", "PAY-SYNC-1", Some(usd(10))))
        .await;
    assert!(matches!(outcome, Outcome::FailedFinal { .. }), "{outcome}");
    sim.push_fault(result("X", "SUCCESS"));
    let outcome = antom
        .refund(&request("R4", "PAY-SYNC-1", Some(usd(10))))
        .await;
    assert!(
        matches!(outcome, Outcome::OutcomeUnknown { .. }),
        "{outcome}"
    );
    assert_eq!(
        sim.executed("PAY-SYNC-1"),
        0,
        "faulted calls executed nothing"
    );
    // The retried request then goes through, once.
    let outcome = antom
        .refund(&request("R2", "PAY-SYNC-1", Some(usd(10))))
        .await;
    assert!(matches!(outcome, Outcome::Succeeded { .. }), "{outcome}");
    assert_eq!(sim.executed("PAY-SYNC-1"), 1);
}

#[tokio::test]
async fn http_statuses_and_refused_connections_are_retries() {
    let sim = sim().await;
    let antom = client(&sim, AntomApi::V2);
    // 429 and 503 say the request was not processed; a 500 proves nothing, which on
    // Antom (idempotent) also means sending the same request again.
    for (status, class) in [
        (429, "RETRY_SAME_REQUEST"),
        (500, "OUTCOME_UNKNOWN"),
        (503, "RETRY_SAME_REQUEST"),
    ] {
        sim.push_fault(FaultRule::once(
            FaultTarget::AntomRefund,
            Fault::HttpStatus { status },
        ));
        let outcome = antom
            .refund(&request("R1", "PAY-SYNC-1", Some(usd(10))))
            .await;
        assert_eq!(outcome.class_name(), class, "{status}: {outcome}");
    }
    sim.set_down(true).await;
    let outcome = antom
        .refund(&request("R1", "PAY-SYNC-1", Some(usd(10))))
        .await;
    let Outcome::RetrySameRequest { reason } = &outcome else {
        panic!("{outcome}")
    };
    assert!(reason.contains("nothing sent"), "{reason}");
    sim.set_down(false).await;
    let outcome = antom
        .refund(&request("R1", "PAY-SYNC-1", Some(usd(10))))
        .await;
    assert!(matches!(outcome, Outcome::Succeeded { .. }), "{outcome}");
    assert_eq!(sim.executed("PAY-SYNC-1"), 1);
}

#[tokio::test]
async fn lost_answers_are_unknown_and_a_same_id_retry_refunds_exactly_once() {
    let sim = sim().await;
    let antom = client(&sim, AntomApi::V2);
    let faults = [
        Fault::DropConnection,
        Fault::Hang,
        Fault::HttpStatus { status: 502 },
        Fault::BadSignature,
    ];
    for (n, fault) in faults.into_iter().enumerate() {
        let id = format!("R{n}");
        let payment = "PAY-SYNC-2";
        let before = sim.executed(payment);
        sim.push_fault(FaultRule::once(FaultTarget::AntomRefund, fault.clone()).after_execute());
        let outcome = antom.refund(&request(&id, payment, Some(usd(100)))).await;
        assert!(
            matches!(outcome, Outcome::OutcomeUnknown { .. }),
            "{fault:?}: {outcome}"
        );
        assert_eq!(
            sim.executed(payment),
            before + 1,
            "{fault:?}: the money moved"
        );
        let retried = antom.refund(&request(&id, payment, Some(usd(100)))).await;
        assert!(
            matches!(retried, Outcome::Succeeded { .. }),
            "{fault:?}: {retried}"
        );
        assert_eq!(sim.executed(payment), before + 1, "{fault:?}: exactly once");
    }
}

#[tokio::test]
async fn tampered_and_unsigned_answers_are_not_results() {
    let sim = sim().await;
    let antom = client(&sim, AntomApi::V2);
    sim.push_fault(FaultRule::once(
        FaultTarget::AntomRefund,
        Fault::BadSignature,
    ));
    let outcome = antom
        .refund(&request("R1", "PAY-SYNC-1", Some(usd(10))))
        .await;
    let Outcome::OutcomeUnknown { reason } = &outcome else {
        panic!("{outcome}")
    };
    assert!(reason.contains("signature"), "{reason}");
    // An unsigned success is never believed.
    sim.push_fault(FaultRule::once(FaultTarget::AntomRefund, Fault::Unsigned));
    let outcome = antom
        .refund(&request("R1", "PAY-SYNC-1", Some(usd(10))))
        .await;
    assert!(
        matches!(outcome, Outcome::OutcomeUnknown { .. }),
        "{outcome}"
    );
    // Nor is an unsigned failure: anyone on the way could have written it.
    sim.push_fault(FaultRule::once(FaultTarget::AntomRefund, Fault::Unsigned));
    let outcome = antom
        .refund(&request("R9", "NO-SUCH-PAYMENT", Some(usd(10))))
        .await;
    assert!(
        matches!(outcome, Outcome::OutcomeUnknown { .. }),
        "{outcome}"
    );
    // A client trusting the wrong Antom key rejects every answer.
    let mut config = AntomConfig::new(sim.base_url(), demo::ANTOM_CLIENT_ID);
    config.http = quick();
    let wrong = AntomProvider::with_keys(
        &config,
        demo::merchant_private_key().unwrap(),
        demo::merchant_private_key().unwrap().public_key(),
    )
    .unwrap();
    let outcome = wrong
        .refund(&request("R1", "PAY-SYNC-1", Some(usd(10))))
        .await;
    assert!(
        matches!(outcome, Outcome::OutcomeUnknown { .. }),
        "{outcome}"
    );
}

#[tokio::test]
async fn requests_signed_with_the_wrong_key_are_refused_by_the_simulator() {
    let sim = sim().await;
    let mut config = AntomConfig::new(sim.base_url(), demo::ANTOM_CLIENT_ID);
    config.http = quick();
    let stranger =
        posbridge::provider::antom::keys::PrivateKey::parse(demo::SIMULATOR_PRIVATE_PEM).unwrap();
    let client =
        AntomProvider::with_keys(&config, stranger, demo::simulator_public_key().unwrap()).unwrap();
    let outcome = client
        .refund(&request("R1", "PAY-SYNC-1", Some(usd(10))))
        .await;
    assert!(
        matches!(outcome, Outcome::FailedFinal { ref code, .. } if code == "INVALID_SIGNATURE"),
        "{outcome}"
    );
    assert_eq!(sim.executed("PAY-SYNC-1"), 0);
}

#[tokio::test]
async fn async_refund_is_in_progress_then_final_by_inquiry() {
    // In process until settled by hand, however slowly this machine signs.
    let sim = sim_with_delay(Duration::from_secs(600)).await;
    for api in [AntomApi::V2, AntomApi::V1] {
        let antom = client(&sim, api);
        let id = format!("ASYNC-{api:?}");
        let outcome = antom
            .refund(&request(&id, "PAY-ASYNC-1", Some(usd(100))))
            .await;
        let Outcome::InProgress {
            refund_id: Some(refund_id),
        } = outcome
        else {
            panic!("{outcome}")
        };
        // Another refund of the same payment meanwhile is turned away.
        let other = antom
            .refund(&request("OTHER", "PAY-ASYNC-1", Some(usd(100))))
            .await;
        assert!(matches!(other, Outcome::FailedFinal { .. }), "{other}");
        assert_eq!(sim.payment("PAY-ASYNC-1").unwrap().busy_rejections, 1);
        let inquiry = InquiryRequest {
            refund_request_id: id.clone(),
            refund_id: if api == AntomApi::V1 {
                None
            } else {
                Some(refund_id.clone())
            },
            resend: None,
        };
        let first = antom.inquire(&inquiry).await;
        assert!(
            matches!(
                first,
                Outcome::InProgress { .. } | Outcome::Succeeded { .. }
            ),
            "{first}"
        );
        sim.settle_now();
        let done = wait_for("the refund to settle", || async {
            match antom.inquire(&inquiry).await {
                Outcome::InProgress { .. } => None,
                other => Some(other),
            }
        })
        .await;
        assert!(
            matches!(done, Outcome::Succeeded { ref refund_id, .. } if refund_id.starts_with("SIMREF")),
            "{done}"
        );
        // A busy answer is not remembered against the request id.
        assert!(sim.refund_by_request_id("OTHER").is_none());
        sim.add_payment(sim.payment("PAY-ASYNC-1").unwrap().seed);
    }
}

#[tokio::test]
async fn failed_async_refund_and_inquiry_failures() {
    let sim = sim().await;
    let antom = client(&sim, AntomApi::V2);
    let Outcome::InProgress {
        refund_id: Some(refund_id),
    } = antom.refund(&request("F1", "PAY-ASYNC-FAIL", None)).await
    else {
        panic!()
    };
    sim.settle_now();
    let inquiry = InquiryRequest {
        refund_request_id: "F1".into(),
        refund_id: Some(refund_id),
        resend: None,
    };
    let outcome = antom.inquire(&inquiry).await;
    assert!(
        matches!(outcome, Outcome::FailedFinal { ref code, .. } if code == "REFUND_FAILED"),
        "{outcome}"
    );
    // A look-up that fails says nothing about the refund.
    let missing = InquiryRequest {
        refund_request_id: "X".into(),
        refund_id: Some("NOPE".into()),
        resend: None,
    };
    assert!(matches!(
        antom.inquire(&missing).await,
        Outcome::OutcomeUnknown { .. }
    ));
    let no_id = InquiryRequest {
        refund_request_id: "X".into(),
        refund_id: None,
        resend: None,
    };
    assert!(
        matches!(antom.inquire(&no_id).await, Outcome::OutcomeUnknown { .. }),
        "v2 needs a refundId"
    );
    sim.push_fault(FaultRule::once(
        FaultTarget::AntomInquiry,
        Fault::HttpStatus { status: 503 },
    ));
    assert!(matches!(
        antom.inquire(&inquiry).await,
        Outcome::RetrySameRequest { .. }
    ));
}

#[tokio::test]
async fn notify_refund_is_verified_delivered_and_acknowledged() {
    let sim = sim().await;
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let config = NotifyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..NotifyConfig::default()
    };
    let receiver = NotifyReceiver::start(
        &config,
        demo::ANTOM_CLIENT_ID,
        demo::simulator_public_key().unwrap(),
        tx,
    )
    .await
    .unwrap();
    sim.set_notify_url(Some(format!(
        "http://{}{}",
        receiver.local_addr(),
        config.path
    )));
    let antom = client(&sim, AntomApi::V2);
    let outcome = antom
        .refund(&request("N1", "PAY-ASYNC-1", Some(usd(250))))
        .await;
    assert!(matches!(outcome, Outcome::InProgress { .. }), "{outcome}");
    let delivery = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivery.notification.refund_request_id, "N1");
    assert!(
        matches!(delivery.notification.outcome, Outcome::Succeeded { amount: Some(a), .. } if a == usd(250))
    );
    delivery.accept();
    wait_for("the acknowledgement", || async {
        (sim.stats().notifications_acknowledged == 1).then_some(())
    })
    .await;

    // A notification the caller does not accept is answered with an error, so Antom resends.
    let outcome = antom.refund(&request("N2", "PAY-ASYNC-FAIL", None)).await;
    assert!(matches!(outcome, Outcome::InProgress { .. }), "{outcome}");
    let delivery = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        delivery.notification.outcome,
        Outcome::FailedFinal { .. }
    ));
    drop(delivery);
    let resent = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resent.notification.refund_request_id, "N2");
    resent.accept();
    wait_for("the second acknowledgement", || async {
        (sim.stats().notifications_acknowledged == 2).then_some(())
    })
    .await;
    receiver.shutdown().await;
}

#[tokio::test]
async fn notify_receiver_rejects_forgeries_and_oversized_bodies() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let config = NotifyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        max_body_bytes: 2048,
        ..NotifyConfig::default()
    };
    let receiver = NotifyReceiver::start(
        &config,
        demo::ANTOM_CLIENT_ID,
        demo::simulator_public_key().unwrap(),
        tx,
    )
    .await
    .unwrap();
    let url = format!("http://{}{}", receiver.local_addr(), config.path);
    let http = reqwest::Client::new();
    let body = r#"{"notifyType":"REFUND_RESULT","result":{"resultStatus":"S","resultCode":"SUCCESS"},"refundStatus":"SUCCESS","refundRequestId":"X","refundId":"Y"}"#;
    // Signed by the merchant key, not Antom's: forged.
    let time = "1700000000000";
    let forged = posbridge::provider::antom::signing::signature_header(
        &demo::merchant_private_key().unwrap(),
        1,
        &config.path,
        demo::ANTOM_CLIENT_ID,
        time,
        body.as_bytes(),
    )
    .unwrap();
    let response = http
        .post(&url)
        .header("client-id", demo::ANTOM_CLIENT_ID)
        .header("request-time", time)
        .header("signature", forged)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let unsigned = http.post(&url).body(body).send().await.unwrap();
    assert_eq!(unsigned.status(), 401);
    let huge = http
        .post(&url)
        .body("x".repeat(10_000))
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);
    assert!(rx.try_recv().is_err(), "nothing was delivered");
    receiver.shutdown().await;
}
