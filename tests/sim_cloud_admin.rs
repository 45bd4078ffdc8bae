//! The simulator driven over HTTP, as the CLI, the demo and out-of-process tests do:
//! payments, faults, the down switch, settling, stats; and its refusal of unsigned
//! Antom requests.

use std::time::{Duration, Instant};

use posbridge::sim::cloud::{CloudSim, demo};
use serde_json::json;

async fn sim() -> CloudSim {
    CloudSim::start(demo::sim_config("127.0.0.1:0".parse().unwrap()).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn admin_api_seeds_payments_and_injects_faults() {
    let sim = sim().await;
    let base = sim.base_url();
    let http = reqwest::Client::new();
    let seed = json!({"id": "HTTP-PAY", "amount": {"value": 900, "currency": "CAD"}});
    let r = http
        .post(format!("{base}/_sim/payments"))
        .json(&seed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(sim.payment("HTTP-PAY").unwrap().seed.amount.value, 900);
    let r = http
        .post(format!("{base}/_sim/payments"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a bad payment is refused with a reason");

    let po = demo::paymentoptions_provider(&base, Default::default()).unwrap();
    let rule = json!({"fault": {"kind": "http_status", "status": 429}, "target": "paymentoptions_refund", "times": 1});
    assert_eq!(
        http.post(format!("{base}/_sim/faults"))
            .json(&rule)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let faults: serde_json::Value = http
        .get(format!("{base}/_sim/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(faults.as_array().unwrap().len(), 1);
    use posbridge::provider::{Provider, RefundRequest};
    let request = RefundRequest {
        refund_request_id: "A".into(),
        original_merchant_refund_id: None,
        payment_id: "HTTP-PAY".into(),
        amount: Some(
            posbridge::money::Amount::new(100, posbridge::money::Currency::parse("CAD").unwrap())
                .unwrap(),
        ),
        memo: None,
    };
    assert_eq!(po.refund(&request).await.class_name(), "RETRY_SAME_REQUEST");
    assert_eq!(po.refund(&request).await.class_name(), "SUCCEEDED");
    let view: serde_json::Value = http
        .get(format!("{base}/_sim/payments/HTTP-PAY"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["executed"], 1);
    assert_eq!(view["refunded"], 100);
    let stats: serde_json::Value = http
        .get(format!("{base}/_sim/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["requests"]["paymentoptions_refund"], 2);
    assert_eq!(
        http.delete(format!("{base}/_sim/faults"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.get(format!("{base}/_sim/nothing"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn down_over_http_refuses_then_comes_back() {
    let sim = sim().await;
    let base = sim.base_url();
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/_sim/down"))
        .json(&json!({"for_ms": 300}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Down from the answer on: a provider call made at once is not carried out.
    let at_once = http
        .post(format!("{base}/server-to-server-interface/refund"))
        .body("{}")
        .send()
        .await;
    match at_once {
        Ok(answer) => assert_eq!(answer.status(), 503, "down at once"),
        Err(e) => assert!(e.is_connect() || e.is_request(), "{e}"),
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut saw_refused = false;
    loop {
        match reqwest::Client::new()
            .get(format!("{base}/_sim/stats"))
            .send()
            .await
        {
            Err(e) if e.is_connect() => saw_refused = true,
            Ok(_) if saw_refused => break,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "the simulator did not go down and come back"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        http.post(format!("{base}/_sim/down"))
            .body("{}")
            .send()
            .await
            .unwrap()
            .status()
            .is_client_error()
    );
}

#[tokio::test]
async fn unsigned_antom_requests_are_refused_and_async_refunds_settle_on_demand() {
    let sim = sim().await;
    let base = sim.base_url();
    let http = reqwest::Client::new();
    let body = json!({"refundRequestId": "X", "paymentId": "PAY-SYNC-1"});
    let answer: serde_json::Value = http
        .post(format!("{base}/v2/payments/refund"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["result"]["resultCode"], "INVALID_SIGNATURE");
    assert_eq!(sim.executed("PAY-SYNC-1"), 0);

    use posbridge::provider::{Outcome, Provider, RefundRequest};
    let antom = demo::antom_provider(&base, Default::default()).unwrap();
    let request = RefundRequest {
        refund_request_id: "ASYNC".into(),
        original_merchant_refund_id: None,
        payment_id: "PAY-ASYNC-1".into(),
        amount: None,
        memo: None,
    };
    assert!(matches!(
        antom.refund(&request).await,
        Outcome::InProgress { .. }
    ));
    assert!(
        matches!(antom.refund(&request).await, Outcome::InProgress { .. }),
        "a retry while in process replays"
    );
    assert_eq!(
        http.post(format!("{base}/_sim/settle"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(
        matches!(antom.refund(&request).await, Outcome::Succeeded { .. }),
        "same id, now final"
    );
    assert_eq!(sim.executed("PAY-ASYNC-1"), 1);
}
