//! Antom's JSON on the wire: request bodies posbridge sends, and the fields it reads
//! from answers and notifications.

use serde::{Deserialize, Serialize};

use crate::money::{Amount, Currency};

/// The provider's name in outcomes and logs.
pub const NAME: &str = "antom";

/// A refund request, v2 (`/v2/payments/refund`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RefundBodyV2<'a> {
    pub(super) refund_request_id: &'a str,
    pub(super) payment_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) original_merchant_refund_id: Option<&'a str>,
    // Absent means a full refund in v2.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) refund_amount: Option<AmountOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) memo: Option<&'a str>,
}

/// A refund request, v1 (`/ams/api/v1/payments/refund`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RefundBodyV1<'a> {
    pub(super) refund_request_id: &'a str,
    pub(super) payment_id: &'a str,
    pub(super) refund_amount: AmountV1Out,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) refund_reason: Option<&'a str>,
}

/// An amount as v2 sends it: the value as a number.
#[derive(Serialize)]
pub(super) struct AmountOut {
    pub(super) currency: Currency,
    pub(super) value: i64,
}

/// An amount as v1 sends it: the value as a string.
#[derive(Serialize)]
pub(super) struct AmountV1Out {
    pub(super) currency: Currency,
    pub(super) value: String,
}

/// An amount in an answer: the value as a number (v2) or a string (v1).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct AmountIn {
    #[serde(default)]
    currency: String,
    #[serde(default)]
    value: serde_json::Value,
}

impl AmountIn {
    /// The amount, if it is a whole number of minor units in range with a valid
    /// currency.
    pub(crate) fn to_amount(&self) -> Option<Amount> {
        let currency = Currency::parse(&self.currency).ok()?;
        let value = match &self.value {
            serde_json::Value::Number(n) => n.as_i64()?,
            serde_json::Value::String(s) => s.trim().parse::<i64>().ok()?,
            _ => return None,
        };
        Amount::new(value, currency).ok()
    }
}

/// Antom's `resultStatus`: what the call itself came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResultStatus {
    /// `S`: the call succeeded.
    Success,
    /// `F`: the call failed.
    Failure,
    /// `U`: the outcome is unknown.
    Unknown,
    /// Any other letter, kept as sent.
    Other(String),
}

impl ResultStatus {
    /// Reads the letter.
    pub fn parse(text: &str) -> ResultStatus {
        match text.trim() {
            "S" => ResultStatus::Success,
            "F" => ResultStatus::Failure,
            "U" => ResultStatus::Unknown,
            other => ResultStatus::Other(other.to_owned()),
        }
    }

    /// The letter as Antom writes it.
    pub fn as_str(&self) -> &str {
        match self {
            ResultStatus::Success => "S",
            ResultStatus::Failure => "F",
            ResultStatus::Unknown => "U",
            ResultStatus::Other(text) => text,
        }
    }
}

impl<'de> Deserialize<'de> for ResultStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ResultStatus, D::Error> {
        Ok(ResultStatus::parse(&String::deserialize(d)?))
    }
}

/// Antom's `result` object.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AntomResult {
    pub(crate) result_status: ResultStatus,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub(crate) result_code: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub(crate) result_message: String,
}

/// The fields posbridge reads from refund and inquiryRefund answers and from
/// notifyRefund requests.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AntomAnswer {
    pub(crate) result: AntomResult,
    #[serde(default)]
    pub(crate) refund_id: Option<String>,
    #[serde(default)]
    pub(crate) refund_request_id: Option<String>,
    #[serde(default)]
    pub(crate) refund_time: Option<String>,
    #[serde(default)]
    pub(crate) refund_status: Option<String>,
    #[serde(default)]
    pub(crate) refund_amount: Option<AmountIn>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// Antom times: RFC 3339 with `Z` or an offset.
pub fn parse_time(text: &str) -> Option<jiff::Timestamp> {
    text.trim().parse::<jiff::Timestamp>().ok()
}

/// At most `max_chars` characters of `text`.
pub(super) fn truncate(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((index, _)) => text.get(..index).unwrap_or(text),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_in_answers() {
        let v2: AmountIn = serde_json::from_str(r#"{"value":1250,"currency":"USD"}"#).unwrap();
        let v1: AmountIn = serde_json::from_str(r#"{"value":"1250","currency":"USD"}"#).unwrap();
        assert_eq!(v2.to_amount(), v1.to_amount());
        assert!(v1.to_amount().is_some());
        for bad in [
            r#"{"value":-1,"currency":"USD"}"#,
            r#"{"value":"12.5","currency":"USD"}"#,
            r#"{"value":1,"currency":"usd"}"#,
            r#"{"value":null,"currency":"USD"}"#,
            r#"{"value":2147483648,"currency":"USD"}"#,
        ] {
            let a: AmountIn = serde_json::from_str(bad).unwrap();
            assert_eq!(a.to_amount(), None, "{bad}");
        }
    }

    #[test]
    fn result_status_letters() {
        assert_eq!(ResultStatus::parse("S"), ResultStatus::Success);
        assert_eq!(ResultStatus::parse(" F "), ResultStatus::Failure);
        assert_eq!(ResultStatus::parse("U"), ResultStatus::Unknown);
        assert_eq!(ResultStatus::parse("s"), ResultStatus::Other("s".into()));
        assert_eq!(ResultStatus::parse("X").as_str(), "X");
    }

    #[test]
    fn times_and_truncation() {
        assert!(parse_time("2026-04-10T11:32:54Z").is_some());
        assert!(parse_time("2019-06-01T12:01:01+08:30").is_some());
        assert!(parse_time("yesterday").is_none());
        assert_eq!(truncate("héllo", 2), "hé");
        assert_eq!(truncate("hi", 5), "hi");
    }
}
