//! Message validation, rule by rule.

use super::*;
use crate::money::{Amount, Currency};

fn refund_json(extra: &str) -> String {
    format!(r#"{{"originalMerchantRefundId":"REF-1","paymentId":"PAY-1"{extra}}}"#)
}

fn refused(kind: Kind, payload: &str) -> Invalid {
    match Message::parse(kind, payload.as_bytes()) {
        Ok(m) => panic!("{payload} was accepted as {m:?}"),
        Err(e) => e,
    }
}

#[test]
fn valid_refund_with_amount() {
    let m = Message::parse(
        Kind::REFUND,
        refund_json(r#","refundAmount":{"value":1250,"currency":"USD"},"memo":"box damaged""#)
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(
        m,
        Message::Refund(Refund {
            original_merchant_refund_id: "REF-1".into(),
            payment_id: "PAY-1".into(),
            refund_amount: Some(Amount::new(1250, Currency::parse("USD").unwrap()).unwrap()),
            memo: Some("box damaged".into()),
        })
    );
}

#[test]
fn null_amount_means_full_refund_and_unknown_fields_are_ignored() {
    let m = Message::parse(
        Kind::REFUND,
        refund_json(r#","refundAmount":null,"futureField":[1,2]"#).as_bytes(),
    )
    .unwrap();
    let Message::Refund(r) = m else {
        panic!("not a refund")
    };
    assert_eq!(r.refund_amount, None);
}

#[test]
fn every_rule_names_its_field() {
    let long64 = "x".repeat(65);
    let cases: Vec<(Kind, String, ErrorCode, Option<&str>)> = vec![
        (
            Kind::REFUND,
            "not json".into(),
            ErrorCode::InvalidJson,
            None,
        ),
        (Kind::REFUND, "[1]".into(), ErrorCode::InvalidJson, None),
        (Kind::REFUND, "\u{ff}".into(), ErrorCode::InvalidJson, None),
        (
            Kind::REFUND,
            r#"{"paymentId":"P"}"#.into(),
            ErrorCode::MissingField,
            Some("originalMerchantRefundId"),
        ),
        (
            Kind::REFUND,
            r#"{"originalMerchantRefundId":"R","paymentId":null}"#.into(),
            ErrorCode::MissingField,
            Some("paymentId"),
        ),
        (
            Kind::REFUND,
            format!(r#"{{"originalMerchantRefundId":"{long64}","paymentId":"P"}}"#),
            ErrorCode::FieldTooLong,
            Some("originalMerchantRefundId"),
        ),
        (
            Kind::REFUND,
            r#"{"originalMerchantRefundId":"R 1","paymentId":"P"}"#.into(),
            ErrorCode::InvalidField,
            Some("originalMerchantRefundId"),
        ),
        (
            Kind::REFUND,
            r#"{"originalMerchantRefundId":"","paymentId":"P"}"#.into(),
            ErrorCode::InvalidField,
            Some("originalMerchantRefundId"),
        ),
        (
            Kind::REFUND,
            r#"{"originalMerchantRefundId":7,"paymentId":"P"}"#.into(),
            ErrorCode::InvalidField,
            Some("originalMerchantRefundId"),
        ),
        (
            Kind::REFUND,
            refund_json(r#","refundAmount":{"value":0,"currency":"USD"}"#),
            ErrorCode::AmountOutOfRange,
            Some("refundAmount.value"),
        ),
        (
            Kind::REFUND,
            refund_json(r#","refundAmount":{"value":2147483648,"currency":"USD"}"#),
            ErrorCode::AmountOutOfRange,
            Some("refundAmount.value"),
        ),
        (
            Kind::REFUND,
            refund_json(r#","refundAmount":{"value":-5,"currency":"USD"}"#),
            ErrorCode::AmountOutOfRange,
            Some("refundAmount.value"),
        ),
        (
            Kind::REFUND,
            refund_json(r#","refundAmount":{"value":12.5,"currency":"USD"}"#),
            ErrorCode::AmountOutOfRange,
            Some("refundAmount.value"),
        ),
        (
            Kind::REFUND,
            refund_json(r#","refundAmount":{"value":"1250","currency":"USD"}"#),
            ErrorCode::InvalidField,
            Some("refundAmount.value"),
        ),
        (
            Kind::REFUND,
            refund_json(r#","refundAmount":{"currency":"USD"}"#),
            ErrorCode::MissingField,
            Some("refundAmount.value"),
        ),
        (
            Kind::REFUND,
            refund_json(r#","refundAmount":{"value":1,"currency":"usd"}"#),
            ErrorCode::InvalidCurrency,
            Some("refundAmount.currency"),
        ),
        (
            Kind::REFUND,
            refund_json(r#","refundAmount":{"value":1}"#),
            ErrorCode::MissingField,
            Some("refundAmount.currency"),
        ),
        (
            Kind::REFUND,
            refund_json(r#","refundAmount":1250"#),
            ErrorCode::InvalidField,
            Some("refundAmount"),
        ),
        (
            Kind::REFUND,
            refund_json(&format!(r#","memo":"{}""#, "m".repeat(257))),
            ErrorCode::FieldTooLong,
            Some("memo"),
        ),
        (
            Kind::REFUND,
            refund_json(r#","memo":"a\u0007b""#),
            ErrorCode::InvalidField,
            Some("memo"),
        ),
        (
            Kind::HELLO,
            "{}".into(),
            ErrorCode::MissingField,
            Some("terminalId"),
        ),
        (
            Kind::HELLO,
            format!(r#"{{"terminalId":"{}"}}"#, "t".repeat(33)),
            ErrorCode::FieldTooLong,
            Some("terminalId"),
        ),
        (
            Kind::HELLO,
            r#"{"terminalId":"T1","protocolVersion":2}"#.into(),
            ErrorCode::UnsupportedVersion,
            Some("protocolVersion"),
        ),
        (
            Kind::HELLO,
            r#"{"terminalId":"T1","display":{"cols":0,"rows":4}}"#.into(),
            ErrorCode::InvalidField,
            Some("display.cols"),
        ),
        (
            Kind::HELLO,
            r#"{"terminalId":"T1","display":{"cols":20}}"#.into(),
            ErrorCode::MissingField,
            Some("display.rows"),
        ),
        (
            Kind::HELLO,
            r#"{"terminalId":"T1","display":{"cols":20,"rows":4,"charset":"latin-1"}}"#.into(),
            ErrorCode::InvalidField,
            Some("display.charset"),
        ),
        (
            Kind::HELLO,
            r#"{"terminalId":"T1","display":{"cols":20,"rows":4,"languages":"ja"}}"#.into(),
            ErrorCode::InvalidField,
            Some("display.languages"),
        ),
        (
            Kind::HELLO,
            r#"{"terminalId":"T1","display":{"cols":20,"rows":4,"languages":["ja","zh Hant"]}}"#
                .into(),
            ErrorCode::InvalidField,
            Some("display.languages[1]"),
        ),
        (
            Kind::HELLO,
            format!(
                r#"{{"terminalId":"T1","display":{{"cols":20,"rows":4,"languages":[{}]}}}}"#,
                ["\"en\""; 9].join(",")
            ),
            ErrorCode::FieldTooLong,
            Some("display.languages"),
        ),
        (
            Kind::HELLO,
            r#"{"terminalId":"T1","display":{"cols":20,"rows":4,"ambiguousWidth":3}}"#.into(),
            ErrorCode::InvalidField,
            Some("display.ambiguousWidth"),
        ),
        (
            Kind::DISPLAY,
            format!(r#"{{"lines":["{}"],"tone":"ok"}}"#, "返".repeat(41)),
            ErrorCode::FieldTooLong,
            Some("lines[0]"),
        ),
        (
            Kind::INQUIRY,
            "{}".into(),
            ErrorCode::MissingField,
            Some("originalMerchantRefundId"),
        ),
        (Kind(0x23), "{}".into(), ErrorCode::UnknownKind, None),
        (
            Kind::DISPLAY,
            r#"{"lines":["a",3],"tone":"ok"}"#.into(),
            ErrorCode::InvalidField,
            Some("lines[1]"),
        ),
        (
            Kind::DISPLAY,
            r#"{"lines":[],"tone":"loud"}"#.into(),
            ErrorCode::InvalidField,
            Some("tone"),
        ),
        (
            Kind::REFUND_UPDATE,
            r#"{"originalMerchantRefundId":"R","state":"DONE","refundRequestId":"Q"}"#.into(),
            ErrorCode::InvalidField,
            Some("state"),
        ),
    ];
    for (kind, payload, code, field) in cases {
        let e = refused(kind, &payload);
        assert_eq!(e.code, code, "{payload}: {e}");
        assert_eq!(e.field.as_deref(), field, "{payload}: {e}");
        if let Some(field) = field {
            assert!(e.to_string().starts_with(field), "{e}");
        }
    }
}

#[test]
fn boundaries_are_inclusive() {
    let max = refund_json(r#","refundAmount":{"value":2147483647,"currency":"JPY"}"#);
    assert!(Message::parse(Kind::REFUND, max.as_bytes()).is_ok());
    let one = refund_json(r#","refundAmount":{"value":1,"currency":"JPY"}"#);
    assert!(Message::parse(Kind::REFUND, one.as_bytes()).is_ok());
    let id64 = format!(
        r#"{{"originalMerchantRefundId":"{}","paymentId":"P"}}"#,
        "x".repeat(64)
    );
    assert!(Message::parse(Kind::REFUND, id64.as_bytes()).is_ok());
    let memo256 = refund_json(&format!(r#","memo":"{}""#, "é".repeat(256)));
    assert!(Message::parse(Kind::REFUND, memo256.as_bytes()).is_ok());
}

#[test]
fn direction_is_enforced() {
    let e = Message::parse_from(Direction::ToBridge, Kind::WELCOME, b"{}").unwrap_err();
    assert_eq!(e.code, ErrorCode::UnexpectedKind);
    let e = Message::parse_from(Direction::ToTerminal, Kind::REFUND, b"{}").unwrap_err();
    assert_eq!(e.code, ErrorCode::UnexpectedKind);
}

#[test]
fn every_message_round_trips() {
    let usd = Currency::parse("USD").unwrap();
    let messages = vec![
        Message::Hello(Hello {
            terminal_id: "T1".into(),
            model: Some("M400".into()),
            firmware: None,
            protocol_version: 1,
            display: DisplayInfo::size(16, 2),
        }),
        Message::Hello(Hello {
            terminal_id: "T2".into(),
            model: None,
            firmware: None,
            protocol_version: 1,
            display: DisplayInfo {
                charset: Some(DisplayCharset::Ascii),
                languages: vec!["ja".into(), "en-US".into()],
                ambiguous_width: Some(2),
                ..DisplayInfo::size(20, 4)
            },
        }),
        Message::Welcome(Welcome {
            bridge_version: "0.1.0".into(),
            online: true,
            queued: 3,
            time: "2026-11-24T18:00:00Z".into(),
        }),
        Message::Refund(Refund {
            original_merchant_refund_id: "R".into(),
            payment_id: "P".into(),
            refund_amount: None,
            memo: None,
        }),
        Message::RefundUpdate(RefundUpdate {
            original_merchant_refund_id: "R".into(),
            state: RefundState::Succeeded,
            refund_request_id: "Q".into(),
            refund_id: Some("X".into()),
            refund_time: Some("2026-11-24T18:00:01Z".into()),
            refund_amount: Some(Amount::new(5, usd).unwrap()),
            result_code: Some("SUCCESS".into()),
            result_message: Some("Success.".into()),
        }),
        Message::Inquiry(Inquiry {
            original_merchant_refund_id: "R".into(),
        }),
        Message::Display(DisplayMessage {
            lines: vec!["Refund OK".into(), "12.50 USD".into()],
            tone: Tone::Ok,
        }),
        Message::Status(Status {}),
        Message::StatusReport(StatusReport {
            online: false,
            queued: 20,
            last_cloud_contact: None,
            provider: "antom".into(),
        }),
        Message::Error(ErrorMessage::new(
            ErrorCode::MissingField,
            "paymentId: is required",
            None,
        )),
    ];
    for m in messages {
        let payload = m.to_frame_payload();
        assert_eq!(Message::parse(m.kind(), &payload).unwrap(), m);
    }
}

#[test]
fn reference_is_found_in_invalid_refunds() {
    assert_eq!(
        Message::reference_in(br#"{"originalMerchantRefundId":"R-9","paymentId":7}"#),
        Some("R-9".into())
    );
    assert_eq!(Message::reference_in(b"nope"), None);
}

#[test]
fn hello_declares_what_its_display_can_draw() {
    let m = Message::parse(
        Kind::HELLO,
        br#"{"terminalId":"T1","display":{"cols":16,"rows":4,"charset":"ASCII","languages":["th","en"],"ambiguousWidth":2}}"#,
    )
    .unwrap();
    let Message::Hello(hello) = m else {
        panic!("{m:?}")
    };
    assert_eq!(hello.display.charset, Some(DisplayCharset::Ascii));
    assert_eq!(hello.display.languages, vec!["th", "en"]);
    let screen = hello.display.screen();
    assert_eq!((screen.cols, screen.rows), (16, 4));
    assert!(screen.wide_ambiguous);
    // Old terminals: the display as before, and nothing new when it is sent back.
    let old = Message::parse(
        Kind::HELLO,
        br#"{"terminalId":"T1","display":{"cols":16,"rows":2}}"#,
    )
    .unwrap();
    assert_eq!(
        &old.to_frame_payload()[..],
        br#"{"terminalId":"T1","protocolVersion":1,"display":{"cols":16,"rows":2}}"#
    );
}

#[test]
fn display_lines_are_limited_in_columns_not_characters() {
    // 80 decomposed letters are 160 characters but 80 columns: a full line.
    let decomposed = "e\u{301}".repeat(80);
    let payload = serde_json::json!({"lines": [decomposed], "tone": "info"}).to_string();
    assert!(Message::parse(Kind::DISPLAY, payload.as_bytes()).is_ok());
    // 40 ideographs are 80 columns; 41 are too wide.
    let payload = serde_json::json!({"lines": ["返".repeat(40)], "tone": "info"}).to_string();
    assert!(Message::parse(Kind::DISPLAY, payload.as_bytes()).is_ok());
    let err = refused(
        Kind::DISPLAY,
        &serde_json::json!({"lines": ["返".repeat(41)], "tone": "info"}).to_string(),
    );
    assert!(err.to_string().contains("82"), "{err}");
}

#[test]
fn a_key_twice_in_one_object_is_refused_naming_it() {
    for (payload, field) in [
        (refund_json(r#","paymentId":"PAY-2""#), "paymentId"),
        (
            refund_json(r#","refundAmount":{"value":100,"value":999999,"currency":"USD"}"#),
            "refundAmount.value",
        ),
        (refund_json(r#","memo":"a","memo":"a""#), "memo"),
        // Unknown fields are ignored, but not twice: which one would a terminal mean?
        (refund_json(r#","x":[{"y":1,"y":2}]"#), "x[0].y"),
    ] {
        let err = refused(Kind::REFUND, &payload);
        assert_eq!(err.code, ErrorCode::InvalidJson, "{payload}: {err}");
        assert_eq!(err.field.as_deref(), Some(field), "{payload}: {err}");
        assert!(err.to_string().contains("more than once"), "{err}");
    }
    // The same key in two different objects is fine.
    let nested = refund_json(r#","refundAmount":{"value":1,"currency":"USD"},"x":{"value":2}"#);
    assert!(Message::parse(Kind::REFUND, nested.as_bytes()).is_ok());
    // Whatever follows the object still has to be nothing.
    assert_eq!(
        refused(Kind::REFUND, &format!("{} {{}}", refund_json(""))).code,
        ErrorCode::InvalidJson
    );
}
