//! The stable-toolchain twin of the `config_parse` and `provider_responses` fuzz
//! targets: arbitrary bytes, arbitrary text and mutated valid samples (bytes flipped,
//! inserted, deleted, replaced) go to the configuration parser and to every provider
//! reply parser. Nothing may panic; every error must say what was wrong; and a mutated
//! configuration either parses or its error names a line.

use jiff::tz::TimeZone;
use posbridge::config::{Config, ConfigFileError};
use posbridge::money::{Amount, Currency};
use posbridge::provider::Outcome;
use posbridge::provider::antom::{self, ReplySignature, notify, signing};
use posbridge::provider::{ottpay, paymentoptions};
use proptest::prelude::*;
use proptest::sample::Index;

const FILE: &str = "/etc/posbridge/posbridge.toml";

const EXAMPLE: &str = include_str!("../config/posbridge.example.toml");

const OTTPAY: &str = r#"
[ledger]
path = "/tmp/ledger.sqlite"

[[terminal]]
name = "front"
device = "/dev/posterminal0"

[[terminal]]
usb = "0b00:3070"
usb_serial = "A1B2C3"

[provider]
kind = "ottpay"
base_url = "https://ecom-api.ottpay.com"
app_id = "app"
app_key_file = "keys/ottpay_app_key"
trade_time_zone = "America/Toronto"

[provider.http]
connect_timeout_ms = 5000

[retry]
first_retry_ms = 500
max_retry_ms = 30000

[limits]
time_zone = "America/Toronto"

[limits.per_refund]
CAD = 50000

[limits.per_terminal_per_day]
CAD = 200000

[shutdown]
grace_ms = 5000
"#;

const PAYMENTOPTIONS: &str = r#"
[[terminal]]
device = "/dev/ttyACM0"
baud = 9600

[provider]
kind = "paymentoptions"
base_url = "https://api-dev.paymentoptions.com/api/v1/api/v1"
api_key_file = "/etc/posbridge/keys/paymentoptions_api_key"
merchant_id = "M1"

[messages.states]
SUCCEEDED = ["Refund approved", "{amount}"]
FAILED = ["Refund declined", "{reason}"]

[messages.codes]
ERR0021 = "Amount too high"

[metrics]
listen = "127.0.0.1:9640"

[log]
level = "posbridge=debug"
"#;

const CONFIGS: [&str; 3] = [EXAMPLE, OTTPAY, PAYMENTOPTIONS];

/// The reply parsers, as the fuzz target numbers them.
#[derive(Clone, Copy, Debug)]
enum Parser {
    AntomRefund,
    AntomInquiry,
    AntomNotify,
    AntomSignature,
    OttPayRefund,
    OttPayToken,
    OttPayRefusal,
    PaymentOptionsRefund,
}

const PARSERS: [Parser; 8] = [
    Parser::AntomRefund,
    Parser::AntomInquiry,
    Parser::AntomNotify,
    Parser::AntomSignature,
    Parser::OttPayRefund,
    Parser::OttPayToken,
    Parser::OttPayRefusal,
    Parser::PaymentOptionsRefund,
];

/// Valid replies: parser, status, signature verdict, body, and the class it reads as.
const REPLIES: &[(Parser, u16, u8, &str, &str)] = &[
    (
        Parser::AntomRefund,
        200,
        0,
        r#"{"result":{"resultStatus":"S","resultCode":"SUCCESS","resultMessage":"Success."},"refundRequestId":"REQ-1","refundId":"2026041019000001","refundTime":"2026-04-10T11:32:54Z"}"#,
        "SUCCEEDED",
    ),
    (
        Parser::AntomRefund,
        200,
        0,
        r#"{"result":{"resultStatus":"S","resultCode":"SUCCESS","resultMessage":"Success."},"refundRequestId":"REQ-1","refundId":"X2","refundAmount":{"value":"1250","currency":"USD"}}"#,
        "SUCCEEDED",
    ),
    (
        Parser::AntomRefund,
        200,
        1,
        r#"{"result":{"resultStatus":"U","resultCode":"DPOS_REFUND_IN_PROCESS","resultMessage":"The refund is being processed."},"refundRequestId":"REQ-1"}"#,
        "IN_PROGRESS",
    ),
    (
        Parser::AntomRefund,
        200,
        0,
        r#"{"result":{"resultStatus":"F","resultCode":"DPOS_MERCHANT_BALANCE_NOT_ENOUGH","resultMessage":"The merchant balance is insufficient."}}"#,
        "NEEDS_NEW_REQUEST_ID",
    ),
    (
        Parser::AntomRefund,
        400,
        0,
        r#"{"result":{"resultStatus":"F","resultCode":"PARAM_ILLEGAL","resultMessage":"paymentId is required"}}"#,
        "FAILED_FINAL",
    ),
    (
        Parser::AntomInquiry,
        200,
        0,
        r#"{"result":{"resultStatus":"S","resultCode":"SUCCESS","resultMessage":"Success."},"refundId":"RF-1","refundRequestId":"REQ-1","paymentId":"PAY-1","refundStatus":"SUCCESS","refundAmount":{"value":1250,"currency":"USD"},"refundTime":"2026-04-10T11:32:54Z"}"#,
        "SUCCEEDED",
    ),
    (
        Parser::AntomInquiry,
        200,
        0,
        r#"{"result":{"resultStatus":"S","resultCode":"SUCCESS","resultMessage":"Success."},"refundId":"RF-1","refundStatus":"PROCESSING"}"#,
        "IN_PROGRESS",
    ),
    (
        Parser::AntomInquiry,
        200,
        0,
        r#"{"result":{"resultStatus":"S","resultCode":"SUCCESS","resultMessage":"Success."},"refundId":"RF-1","refundStatus":"FAILED"}"#,
        "FAILED_FINAL",
    ),
    (
        Parser::AntomNotify,
        200,
        0,
        r#"{"notifyType":"REFUND_RESULT","result":{"resultCode":"SUCCESS","resultStatus":"S","resultMessage":"success"},"refundStatus":"SUCCESS","refundRequestId":"REQ-1","refundId":"RF-1","refundAmount":{"value":1250,"currency":"USD"},"refundTime":"2026-04-10T11:32:54Z"}"#,
        "SUCCEEDED",
    ),
    (
        Parser::AntomNotify,
        200,
        0,
        r#"{"notifyType":"REFUND_RESULT","result":{"resultCode":"PROCESS_FAIL","resultStatus":"F","resultMessage":"failed"},"refundStatus":"FAIL","refundRequestId":"REQ-1","refundId":"RF-1"}"#,
        "FAILED_FINAL",
    ),
    (
        Parser::AntomSignature,
        200,
        0,
        "algorithm=RSA256,keyVersion=1,signature=KrwDE9tYrVxOaKXcL%2B%2F8ATY5hXN%2Fq3k%3D",
        "OK",
    ),
    (
        Parser::OttPayRefund,
        200,
        0,
        r#"{"status":"SUCCESS","result":{"refundId":"REF187814130359","refundAmount":"1250","refundStatus":"success","tradeTime":"2026-01-15 12:00:04","exchangeRate":""}}"#,
        "SUCCEEDED",
    ),
    (
        Parser::OttPayRefund,
        200,
        0,
        r#"{"status":"SUCCESS","result":{"refundId":"REF17044844361839544","refundAmount":1250,"refundStatus":"init"}}"#,
        "ACCEPTED_LATER",
    ),
    (
        Parser::OttPayRefund,
        200,
        0,
        r#"{"status":"ERROR","result":{"code":20007,"message":"Insufficient balance"}}"#,
        "NEEDS_NEW_REQUEST_ID",
    ),
    (
        Parser::OttPayRefund,
        400,
        0,
        r#"{"status":"ERROR","result":{"code":"10005","message":"Invalid parameter"}}"#,
        "FAILED_FINAL",
    ),
    (
        Parser::OttPayToken,
        200,
        0,
        r#"{"status":"SUCCESS","result":{"token":"eyJhbGciOiJIUzI1NiJ9.e30.sig","expired":1776000000000}}"#,
        "OK",
    ),
    (
        Parser::OttPayToken,
        200,
        0,
        r#"{"token":"t0k3n","expired":"1776000000000"}"#,
        "OK",
    ),
    (
        Parser::OttPayRefusal,
        200,
        0,
        r#"{"status":"ERROR","result":{"code":90000,"message":"Unauthorized"}}"#,
        "REFUSED",
    ),
    (
        Parser::PaymentOptionsRefund,
        201,
        0,
        r#"{"success":true,"status_code":201,"transaction_type":"REFUND","gateway_response":{"version":"1","type":"INFO","message":"Amount successfully refunded.","code":"INFO0002"},"payment_details":{"amount":1000,"response_code":0,"currency":"JPY"},"transaction_details":{"id":"626fa81d-9819-4947-bb9b-b0f11e00a50e","ref":74824,"timestamp":"2024-11-25T08:51:52.000Z"}}"#,
        "SUCCEEDED",
    ),
    (
        Parser::PaymentOptionsRefund,
        400,
        0,
        r#"{"success":false,"status_code":400,"gateway_response":{"type":"ERROR","message":"Refund amount exceeds the captured amount.","code":"ERR0021"}}"#,
        "FAILED_FINAL",
    ),
];

fn verdict(bits: u8) -> ReplySignature {
    match bits % 3 {
        1 => ReplySignature::Absent,
        2 => ReplySignature::Rejected("response signature rejected (test); answer ignored".into()),
        _ => ReplySignature::Verified,
    }
}

/// An outcome that is not the provider's answer names the provider and the call and
/// says what happened.
fn check_outcome(outcome: &Outcome, call: &str) -> Result<(), TestCaseError> {
    if let Outcome::RetrySameRequest { reason } | Outcome::OutcomeUnknown { reason } = outcome {
        let what = reason.strip_prefix(call).and_then(|r| r.strip_prefix(": "));
        prop_assert!(
            what.is_some_and(|w| !w.trim().is_empty()),
            "reason {reason:?} does not name {call:?} and what happened"
        );
    }
    prop_assert!(!outcome.to_string().is_empty());
    Ok(())
}

/// Runs one parser; returns a short name of what it read, for the samples' check.
fn run(parser: Parser, status: u16, signature: u8, body: &[u8]) -> Result<String, TestCaseError> {
    let class = |outcome: &Outcome, call: &str| -> Result<String, TestCaseError> {
        check_outcome(outcome, call)?;
        Ok(outcome.class_name().to_string())
    };
    match parser {
        Parser::AntomRefund => class(
            &antom::classify_refund_reply(status, body, "REQ-1", || verdict(signature)),
            "antom refund",
        ),
        Parser::AntomInquiry => class(
            &antom::classify_inquiry_reply(status, body, Some("RF-1"), || verdict(signature)),
            "antom inquiryRefund",
        ),
        Parser::AntomNotify => match notify::parse_notification(body) {
            Some(notification) => {
                prop_assert!(!notification.refund_request_id.is_empty());
                class(&notification.outcome, "antom notifyRefund")
            }
            None => Ok("NONE".into()),
        },
        Parser::AntomSignature => {
            match signing::parse_signature_header(&String::from_utf8_lossy(body)) {
                Ok(header) => {
                    prop_assert!(!header.signature_base64.is_empty());
                    Ok("OK".into())
                }
                Err(error) => {
                    prop_assert!(!error.to_string().trim().is_empty());
                    Ok("ERROR".into())
                }
            }
        }
        Parser::OttPayRefund => {
            let usd = Amount::new(1250, Currency::parse("USD").unwrap()).unwrap();
            let zone = TimeZone::get("America/Toronto").unwrap();
            class(
                &ottpay::classify_refund_reply(status, body, usd, &zone),
                "ottpay refund",
            )
        }
        Parser::OttPayToken => match ottpay::parse_token_reply(status, body) {
            Ok(token) => {
                prop_assert!(!token.value.expose().is_empty());
                Ok("OK".into())
            }
            Err(error) => {
                prop_assert!(!error.trim().is_empty(), "an empty token error");
                Ok("ERROR".into())
            }
        },
        Parser::OttPayRefusal => Ok(if ottpay::is_token_refusal(status, body) {
            "REFUSED".into()
        } else {
            "ACCEPTED".into()
        }),
        Parser::PaymentOptionsRefund => class(
            &paymentoptions::classify_refund_reply(status, body),
            "paymentoptions refund",
        ),
    }
}

/// Parses a configuration as the daemon does. An accepted one has a transport for
/// every terminal; an error says what is wrong and names the file, and the line when
/// it gives one, which is a line of the text. Returns the error.
fn parse_config(text: &str) -> Result<Option<ConfigFileError>, TestCaseError> {
    let error = match Config::parse(text, FILE) {
        Ok(config) => {
            for terminal in &config.terminals {
                prop_assert!(terminal.transport().is_ok());
            }
            return Ok(None);
        }
        Err(error) => error,
    };
    let shown = error.to_string();
    prop_assert!(
        !error.message.trim().is_empty(),
        "an empty message: {shown}"
    );
    let head = match error.line {
        Some(line) => {
            prop_assert!(
                (1..=text.lines().count() + 1).contains(&line),
                "line {line} is not in the text: {shown}"
            );
            format!("{FILE}:{line}: ")
        }
        None => format!("{FILE}: "),
    };
    prop_assert!(
        shown.starts_with(&head),
        "{shown:?} does not start {head:?}"
    );
    Ok(Some(error))
}

/// One edit of a sample.
#[derive(Clone, Debug)]
enum Edit {
    Flip(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    Replace(Index, u8),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    // Bytes that matter to TOML and JSON are likelier than others.
    let byte = prop_oneof![
        any::<u8>(),
        proptest::sample::select(b"[]{}\"'=#,.:\n \\0123456789-+eE".to_vec()),
    ];
    let edit = prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(at, bit)| Edit::Flip(at, 1 << bit)),
        (any::<Index>(), byte.clone()).prop_map(|(at, b)| Edit::Insert(at, b)),
        any::<Index>().prop_map(Edit::Delete),
        (any::<Index>(), byte).prop_map(|(at, b)| Edit::Replace(at, b)),
    ];
    proptest::collection::vec(edit, 1..6)
}

fn mutate(sample: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut out = sample.to_vec();
    for edit in edits {
        match *edit {
            Edit::Insert(at, b) => {
                let at = at.index(out.len() + 1);
                out.insert(at, b);
            }
            _ if out.is_empty() => {}
            Edit::Flip(at, mask) => {
                let at = at.index(out.len());
                out[at] ^= mask;
            }
            Edit::Delete(at) => {
                out.remove(at.index(out.len()));
            }
            Edit::Replace(at, b) => {
                let at = at.index(out.len());
                out[at] = b;
            }
        }
    }
    out
}

#[test]
fn the_samples_are_what_they_claim() {
    for (i, text) in CONFIGS.iter().enumerate() {
        if let Err(e) = Config::parse(text, FILE) {
            panic!("config sample {i} does not parse: {e}");
        }
    }
    for (parser, status, signature, body, expected) in REPLIES {
        let got = run(*parser, *status, *signature, body.as_bytes()).unwrap();
        assert_eq!(&got, expected, "{parser:?} {status} {body}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn config_takes_any_text(text in any::<String>()) {
        parse_config(&text)?;
    }

    #[test]
    fn config_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        parse_config(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn a_mutated_config_parses_or_names_a_line(
        which in 0..CONFIGS.len(),
        edits in edits(),
    ) {
        let mutated = mutate(CONFIGS[which].as_bytes(), &edits);
        let text = String::from_utf8_lossy(&mutated);
        if let Some(error) = parse_config(&text)? {
            // Only a file without any terminal has no line to blame.
            let whole_file = error.message.contains("no [[terminal]] is configured");
            prop_assert!(
                error.line.is_some() || whole_file,
                "no line in {error}\n{text}"
            );
        }
    }

    #[test]
    fn every_reply_parser_takes_any_bytes(
        parser in proptest::sample::select(PARSERS.to_vec()),
        status in prop_oneof![any::<u16>(), proptest::sample::select(vec![200u16, 201, 302, 400, 401, 408, 429, 500, 502, 503])],
        signature in any::<u8>(),
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        run(parser, status, signature, &body)?;
    }

    #[test]
    fn every_reply_parser_takes_any_text(
        parser in proptest::sample::select(PARSERS.to_vec()),
        status in any::<u16>(),
        signature in any::<u8>(),
        body in any::<String>(),
    ) {
        run(parser, status, signature, body.as_bytes())?;
    }

    #[test]
    fn every_reply_parser_takes_mutated_replies(
        which in 0..REPLIES.len(),
        status in prop_oneof![Just(None), any::<u16>().prop_map(Some)],
        signature in any::<u8>(),
        edits in edits(),
    ) {
        let (parser, sample_status, _, body, _) = REPLIES[which];
        let mutated = mutate(body.as_bytes(), &edits);
        run(parser, status.unwrap_or(sample_status), signature, &mutated)?;
    }
}
