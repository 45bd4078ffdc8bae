//! Feeds any body to every provider reply parser. The first byte chooses: its low
//! three bits the parser, the next two the Antom signature verdict, the top three
//! the HTTP status. Nothing may panic; every outcome that is not the provider's
//! answer gives a reason naming the provider, and every error says what was wrong.

#![no_main]

use jiff::tz::TimeZone;
use libfuzzer_sys::fuzz_target;
use posbridge::money::{Amount, Currency};
use posbridge::provider::Outcome;
use posbridge::provider::antom::{self, ReplySignature, notify, signing};
use posbridge::provider::{ottpay, paymentoptions};

/// One status per class: success, success with 201, redirect, final 4xx, token
/// refused, rate limited, 5xx, and the 503 that non-idempotent providers may resend.
const STATUSES: [u16; 8] = [200, 201, 302, 400, 401, 429, 500, 503];

fn verdict(bits: u8) -> ReplySignature {
    match bits & 3 {
        1 => ReplySignature::Absent,
        2 => ReplySignature::Rejected("response signature rejected (fuzz); answer ignored".into()),
        _ => ReplySignature::Verified,
    }
}

fn check(outcome: &Outcome, provider: &str) {
    if let Outcome::RetrySameRequest { reason } | Outcome::OutcomeUnknown { reason } = outcome {
        assert!(reason.starts_with(provider), "{reason}");
    }
    assert!(!outcome.to_string().is_empty());
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let status = STATUSES[usize::from(selector >> 5)];
    let signature = || verdict(selector >> 3);
    match selector & 7 {
        0 => check(
            &antom::classify_refund_reply(status, body, "REQ-1", signature),
            "antom refund",
        ),
        1 => check(
            &antom::classify_inquiry_reply(status, body, Some("RF-1"), signature),
            "antom inquiryRefund",
        ),
        2 => {
            if let Some(notification) = notify::parse_notification(body) {
                assert!(!notification.refund_request_id.is_empty());
                check(&notification.outcome, "antom notifyRefund");
            }
        }
        3 => match signing::parse_signature_header(&String::from_utf8_lossy(body)) {
            Ok(header) => assert!(!header.signature_base64.is_empty()),
            Err(error) => assert!(!error.to_string().is_empty()),
        },
        4 => {
            let Some(requested) = Currency::parse("USD")
                .ok()
                .and_then(|usd| Amount::new(1250, usd).ok())
            else {
                return;
            };
            let zone = TimeZone::get("America/Toronto").unwrap_or(TimeZone::UTC);
            check(
                &ottpay::classify_refund_reply(status, body, requested, &zone),
                "ottpay refund",
            );
        }
        5 => match ottpay::parse_token_reply(status, body) {
            Ok(token) => assert!(!token.value.expose().is_empty()),
            Err(error) => assert!(!error.is_empty()),
        },
        6 => {
            let _ = ottpay::is_token_refusal(status, body);
        }
        _ => check(
            &paymentoptions::classify_refund_reply(status, body),
            "paymentoptions refund",
        ),
    }
});
