//! The providers' own documented answers, through the real reply parsers.
//!
//! `tests/fixtures/providers/*.json` hold answers taken from Antom's, OTT Pay's and
//! PaymentOptions' public documents (each entry names its document and section), with
//! the outcome class the rule gives them: FAILED only when the answer says no money
//! moved, SUCCEEDED whenever a 2xx answer says it moved, anything else not a failure.
//! Every entry runs through the parser the client uses; notifyRefund entries go to a
//! real notifyRefund receiver, signed with the test key when the entry says they are.

use std::time::Duration;

use posbridge::money::{Amount, Currency};
use posbridge::provider::antom::notify::{NotifyConfig, NotifyReceiver};
use posbridge::provider::antom::{self, ReplySignature, signing};
use posbridge::provider::{Outcome, ottpay, paymentoptions};
use posbridge::sim::cloud::demo;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Fixtures {
    provider: String,
    entries: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    name: String,
    source: String,
    api: String,
    #[serde(default)]
    api_version: Option<String>,
    http_status: u16,
    body: String,
    #[serde(default)]
    signed: Option<bool>,
    expect: String,
    reason: String,
    #[serde(default)]
    request: serde_json::Value,
}

fn load(name: &str) -> Fixtures {
    let path = format!(
        "{}/tests/fixtures/providers/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let fixtures: Fixtures = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(fixtures.provider, name);
    assert!(!fixtures.entries.is_empty(), "{path} has no entries");
    for entry in &fixtures.entries {
        assert!(
            !entry.source.trim().is_empty() && !entry.reason.trim().is_empty(),
            "{}: every entry names its source and its reason",
            entry.name
        );
    }
    fixtures
}

/// What the class an outcome has is, with the checks every outcome must pass: no
/// string a provider sent keeps a control, bidirectional or invisible character.
fn class_of(entry: &Entry, outcome: &Outcome) -> String {
    let strings: Vec<&str> = match outcome {
        Outcome::Succeeded {
            refund_id,
            code,
            message,
            ..
        } => [
            Some(refund_id.as_str()),
            code.as_deref(),
            message.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect(),
        Outcome::FailedFinal { code, message } | Outcome::NeedsNewRequestId { code, message } => {
            vec![code, message]
        }
        Outcome::InProgress { refund_id } | Outcome::AcceptedLater { refund_id } => {
            refund_id.as_deref().into_iter().collect()
        }
        Outcome::RetrySameRequest { reason } | Outcome::OutcomeUnknown { reason } => vec![reason],
    };
    for text in strings {
        assert!(
            !text.chars().any(posbridge::text::is_harmful),
            "{}: {text:?} keeps a harmful character",
            entry.name
        );
    }
    outcome.class_name().to_string()
}

/// The amount an answer's body states in `refundAmount` (a number or a string of
/// minor units), read straight from the document's JSON.
fn stated_amount(body: &str, currency_if_absent: Option<Currency>) -> Option<Amount> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    let amount = value
        .get("refundAmount")
        .or_else(|| value.pointer("/result/refundAmount"))?;
    let minor = |v: &serde_json::Value| match v {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    let (value, currency) = match amount {
        serde_json::Value::Object(o) => (
            minor(o.get("value")?)?,
            Currency::parse(o.get("currency")?.as_str()?).ok()?,
        ),
        other => (minor(other)?, currency_if_absent?),
    };
    Amount::new(value, currency).ok()
}

fn mismatches(results: Vec<(String, String, String)>) -> Vec<String> {
    results
        .into_iter()
        .filter(|(_, expect, got)| expect != got)
        .map(|(name, expect, got)| format!("{name}: expected {expect}, got {got}"))
        .collect()
}

fn request_text(entry: &Entry, key: &str) -> Option<String> {
    match entry.request.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[test]
fn antom_answers_as_documented() {
    let fixtures = load("antom");
    let mut results = Vec::new();
    for entry in fixtures.entries.iter().filter(|e| e.api != "notifyRefund") {
        let signature = || {
            if entry.signed == Some(true) {
                ReplySignature::Verified
            } else {
                ReplySignature::Absent
            }
        };
        let body = entry.body.as_bytes();
        let outcome = match entry.api.as_str() {
            "refund" => {
                let rrid = request_text(entry, "refundRequestId").unwrap_or_default();
                antom::classify_refund_reply(entry.http_status, body, &rrid, signature)
            }
            "inquiryRefund" => {
                let refund_id = request_text(entry, "refundId");
                antom::classify_inquiry_reply(
                    entry.http_status,
                    body,
                    refund_id.as_deref(),
                    signature,
                )
            }
            other => panic!("{}: unknown api {other}", entry.name),
        };
        let got = class_of(entry, &outcome);
        // v1 answers carry the amount refunded; it is read, not guessed.
        if let (Outcome::Succeeded { amount, .. }, Some(stated)) =
            (&outcome, stated_amount(&entry.body, None))
        {
            assert_eq!(*amount, Some(stated), "{}: the stated amount", entry.name);
        }
        assert!(
            entry.api_version.is_some(),
            "{}: Antom entries say v1 or v2",
            entry.name
        );
        results.push((entry.name.clone(), entry.expect.clone(), got));
    }
    assert!(results.len() > 100, "{} entries", results.len());
    let wrong = mismatches(results);
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[tokio::test]
async fn antom_notifications_as_documented() {
    let fixtures = load("antom");
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
    let url = format!("http://{}{}", receiver.local_addr(), config.path);
    let http = reqwest::Client::new();
    let key = antom::keys::PrivateKey::parse(demo::SIMULATOR_PRIVATE_PEM).unwrap();
    let mut results = Vec::new();
    for entry in fixtures.entries.iter().filter(|e| e.api == "notifyRefund") {
        let time = jiff::Timestamp::now().as_millisecond().to_string();
        let mut post = http
            .post(&url)
            .header("client-id", demo::ANTOM_CLIENT_ID)
            .header("request-time", &time)
            .body(entry.body.clone());
        if entry.signed == Some(true) {
            let signature = signing::signature_header(
                &key,
                1,
                &config.path,
                demo::ANTOM_CLIENT_ID,
                &time,
                entry.body.as_bytes(),
            )
            .unwrap();
            post = post.header("signature", signature);
        }
        let answer = tokio::spawn(post.send());
        // A notification the receiver believes is handed over; one it does not is
        // refused at the door, which proves nothing about the refund.
        let got = match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(delivery)) => {
                let outcome = delivery.notification.outcome.clone();
                if let (Outcome::Succeeded { amount, .. }, Some(stated)) =
                    (&outcome, stated_amount(&entry.body, None))
                {
                    assert_eq!(*amount, Some(stated), "{}: the stated amount", entry.name);
                    assert_eq!(delivery.notification.amount, Some(stated));
                }
                delivery.accept();
                class_of(entry, &outcome)
            }
            _ => "OUTCOME_UNKNOWN".to_string(),
        };
        let status = answer.await.unwrap().unwrap().status();
        if got == "OUTCOME_UNKNOWN" && entry.signed != Some(true) {
            assert_eq!(status, 401, "{}: refused unsigned", entry.name);
        }
        results.push((entry.name.clone(), entry.expect.clone(), got));
    }
    assert!(results.len() >= 4, "{} notification entries", results.len());
    let wrong = mismatches(results);
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    receiver.shutdown().await;
}

#[test]
fn ottpay_answers_as_documented() {
    let fixtures = load("ottpay");
    let zone = jiff::tz::TimeZone::get("America/Toronto").unwrap();
    let mut results = Vec::new();
    for entry in &fixtures.entries {
        let body = entry.body.as_bytes();
        let got = match entry.api.as_str() {
            // A token answer: a usable token, or the refund was never sent.
            "token" => match ottpay::parse_token_reply(entry.http_status, body) {
                Ok(_) => "SUCCEEDED".to_string(),
                Err(_) => "RETRY_SAME_REQUEST".to_string(),
            },
            "refund" => {
                let currency = request_text(entry, "currency")
                    .and_then(|c| Currency::parse(&c).ok())
                    .unwrap_or_else(|| Currency::parse("CAD").unwrap());
                let cents = request_text(entry, "refundAmount")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1);
                let requested = Amount::new(cents, currency).unwrap();
                let outcome =
                    ottpay::classify_refund_reply(entry.http_status, body, requested, &zone);
                // A token refusal is answered by a new token and one more send.
                if ottpay::is_token_refusal(entry.http_status, body) {
                    assert!(
                        matches!(outcome, Outcome::RetrySameRequest { .. }),
                        "{}: a token refusal is never a refund's answer: {outcome}",
                        entry.name
                    );
                }
                if let (Outcome::Succeeded { amount, .. }, Some(stated)) =
                    (&outcome, stated_amount(&entry.body, Some(currency)))
                {
                    assert_eq!(*amount, Some(stated), "{}: the stated amount", entry.name);
                }
                class_of(entry, &outcome)
            }
            other => panic!("{}: unknown api {other}", entry.name),
        };
        results.push((entry.name.clone(), entry.expect.clone(), got));
    }
    assert!(results.len() > 50, "{} entries", results.len());
    let wrong = mismatches(results);
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn paymentoptions_answers_as_documented() {
    let fixtures = load("paymentoptions");
    let mut results = Vec::new();
    for entry in &fixtures.entries {
        // PaymentOptions' transaction-status example (a CAPTURE) is read as if it came
        // back from the refund call: an answer about another transaction proves nothing
        // about the refund.
        assert!(
            matches!(entry.api.as_str(), "refund" | "inquiryRefund"),
            "{}",
            entry.name
        );
        let outcome =
            paymentoptions::classify_refund_reply(entry.http_status, entry.body.as_bytes());
        if let Outcome::Succeeded { amount, code, .. } = &outcome {
            let value: serde_json::Value = serde_json::from_str(&entry.body).unwrap();
            let stated = value
                .pointer("/payment_details/amount")
                .and_then(|v| v.as_i64())
                .zip(
                    value
                        .pointer("/payment_details/currency")
                        .and_then(|c| c.as_str())
                        .and_then(|c| Currency::parse(c).ok()),
                )
                .and_then(|(v, c)| Amount::new(v, c).ok());
            assert_eq!(*amount, stated, "{}: the stated amount", entry.name);
            // The success code is recorded, whatever it is.
            assert_eq!(
                code.as_deref(),
                value
                    .pointer("/gateway_response/code")
                    .and_then(|c| c.as_str()),
                "{}",
                entry.name
            );
        }
        results.push((
            entry.name.clone(),
            entry.expect.clone(),
            class_of(entry, &outcome),
        ));
    }
    assert!(results.len() > 40, "{} entries", results.len());
    let wrong = mismatches(results);
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// A provider's text reaches the ledger and the terminal clean, whatever it holds.
#[test]
fn provider_text_is_cleaned_at_the_boundary() {
    let body = br#"{"result":{"resultStatus":"F","resultCode":"PROCESS_FAIL","resultMessage":"Declined\tby\nbank \u202e001\u202c\u200b\u001b[2J"},"refundRequestId":"R1"}"#;
    let outcome = antom::classify_refund_reply(200, body, "R1", || ReplySignature::Verified);
    let Outcome::FailedFinal { code, message } = outcome else {
        panic!("{outcome}")
    };
    assert_eq!(code, "PROCESS_FAIL");
    assert_eq!(message, "Declined by bank 001[2J");
    let po = br#"{"success":true,"status_code":201,"gateway_response":{"type":"INFO","code":"INFO\n0002","message":"Amount\u2066 refunded"},"transaction_details":{"id":"id with\ttab"}}"#;
    let Outcome::Succeeded {
        refund_id,
        code,
        message,
        ..
    } = paymentoptions::classify_refund_reply(201, po)
    else {
        panic!()
    };
    assert_eq!(refund_id, "id%20with%09tab");
    assert_eq!(code.as_deref(), Some("INFO_0002"));
    assert_eq!(message.as_deref(), Some("Amount refunded"));
}
