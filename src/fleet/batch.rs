//! A batch on the wire: JSON lines, signed with HMAC-SHA256.
//!
//! ```text
//! {"v":1,"box_id":"store-112","prev":40,"last":42,"count":2}
//! {"seq":41,"at_ms":...,"to_state":"ACCEPTED",...,"refund":{...}}
//! {"seq":42,...}
//! ```
//!
//! The first line says which box sent it and which stretch of its sequence it
//! carries: every transition after `prev` up to `last`, in order, none left out. The
//! request's `Posbridge-Signature` header is `sha256=` and the hex HMAC-SHA256 of the
//! whole body under the box's key, which is itself the hex HMAC-SHA256 of the box id
//! under the fleet's secret ([`box_key`]): the receiver needs one secret, and a box
//! that is stolen can sign for itself only. A batch replayed by someone who recorded
//! it changes nothing, since the receiver ignores what it holds already.
//!
//! Decoding never panics; every refusal says which line and what is wrong.

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::ledger::OutboxEntry;
use crate::state::RefundState;

/// The header naming the box (the body says it too; both must agree).
pub const BOX_HEADER: &str = "posbridge-box";
/// The header carrying the body's signature.
pub const SIGNATURE_HEADER: &str = "posbridge-signature";
/// The path batches are posted to, below the receiver's URL.
pub const BATCH_PATH: &str = "/v1/batch";
/// Most transitions one batch may carry.
pub const MAX_ROWS: usize = 5_000;
/// The shortest fleet secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Why a batch, a box id or a secret was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The body is not a batch.
    #[error("line {line}: {what}")]
    Malformed {
        /// The 1-based line.
        line: usize,
        /// What is wrong.
        what: String,
    },
    /// The signature is missing or does not match.
    #[error("signature: {0}")]
    Signature(String),
    /// A box id is unusable.
    #[error("box id: {0}")]
    BoxId(String),
    /// A secret is unusable.
    #[error("fleet secret: {0}")]
    Secret(String),
}

/// The first line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchHeader {
    /// The format's version, 1.
    pub v: u32,
    /// The box that sent it.
    pub box_id: String,
    /// The sequence the batch follows: the receiver must hold exactly up to it.
    pub prev: i64,
    /// The last sequence in the batch (`prev` when it is empty).
    pub last: i64,
    /// How many transitions follow.
    pub count: usize,
}

/// A batch: a stretch of one box's outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Its first line.
    pub header: BatchHeader,
    /// The transitions, in sequence.
    pub entries: Vec<OutboxEntry>,
}

impl Batch {
    /// The batch of `entries`, which follow `prev` in the outbox of `box_id`.
    pub fn new(box_id: &str, prev: i64, entries: Vec<OutboxEntry>) -> Batch {
        Batch {
            header: BatchHeader {
                v: 1,
                box_id: box_id.to_owned(),
                prev,
                last: entries.last().map_or(prev, |e| e.seq),
                count: entries.len(),
            },
            entries,
        }
    }

    /// The body: one JSON object a line, each line ending in `\n`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.entries.len() * 640);
        push_line(&mut out, &self.header);
        for entry in &self.entries {
            push_line(&mut out, entry);
        }
        out
    }

    /// Reads and checks a body: its header, each line, and that sequences increase
    /// from after `prev` to `last` with `count` lines. Returns the first problem.
    pub fn decode(body: &[u8]) -> Result<Batch, BatchError> {
        let text = std::str::from_utf8(body).map_err(|e| BatchError::Malformed {
            line: 1 + body[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count(),
            what: "not UTF-8".into(),
        })?;
        let mut lines = text.split_terminator('\n');
        let first = lines
            .next()
            .ok_or_else(|| malformed(1, "the body is empty"))?;
        let header: BatchHeader =
            serde_json::from_str(first).map_err(|e| malformed(1, format!("header: {e}")))?;
        if header.v != 1 {
            return Err(malformed(
                1,
                format!("format version {} is not known (1 is)", header.v),
            ));
        }
        validate_box_id(&header.box_id).map_err(|e| malformed(1, e.to_string()))?;
        if header.prev < 0 || header.last < header.prev {
            return Err(malformed(
                1,
                format!(
                    "prev {} and last {} are not a stretch",
                    header.prev, header.last
                ),
            ));
        }
        if header.count > MAX_ROWS {
            return Err(malformed(
                1,
                format!("{} transitions; at most {MAX_ROWS} a batch", header.count),
            ));
        }
        let mut entries = Vec::with_capacity(header.count);
        let mut seq = header.prev;
        for (i, line) in lines.enumerate() {
            let n = i + 2;
            if entries.len() == header.count {
                return Err(malformed(
                    n,
                    format!("more than the {} lines announced", header.count),
                ));
            }
            let entry: OutboxEntry =
                serde_json::from_str(line).map_err(|e| malformed(n, e.to_string()))?;
            if entry.seq <= seq {
                return Err(malformed(
                    n,
                    format!("sequence {} does not follow {seq}", entry.seq),
                ));
            }
            check_entry(&entry).map_err(|what| malformed(n, what))?;
            seq = entry.seq;
            entries.push(entry);
        }
        if entries.len() != header.count {
            return Err(malformed(
                entries.len() + 2,
                format!("{} lines announced, {} found", header.count, entries.len()),
            ));
        }
        if seq != header.last {
            return Err(malformed(
                1,
                format!("last is {} but the batch ends at {seq}", header.last),
            ));
        }
        Ok(Batch { header, entries })
    }
}

fn push_line(out: &mut Vec<u8>, value: &impl Serialize) {
    // Serialising these plain structs cannot fail: no maps with non-string keys.
    if serde_json::to_writer(&mut *out, value).is_ok() {
        out.push(b'\n');
    }
}

fn malformed(line: usize, what: impl Into<String>) -> BatchError {
    BatchError::Malformed {
        line,
        what: what.into(),
    }
}

fn is_state(text: &str) -> bool {
    RefundState::ALL.iter().any(|s| s.as_str() == text)
}

/// What the receiver's tables would refuse, said before they do.
fn check_entry(entry: &OutboxEntry) -> Result<(), String> {
    let r = &entry.refund;
    for (field, state) in [
        ("to_state", Some(entry.to_state.as_str())),
        ("from_state", entry.from_state.as_deref()),
        ("refund.state", Some(r.state.as_str())),
    ] {
        if let Some(state) = state
            && !is_state(state)
        {
            return Err(format!("{field}: {state:?} is not a refund state"));
        }
    }
    if r.amount_value.is_some() != r.amount_currency.is_some() {
        return Err("refund.amount_value and amount_currency come together".into());
    }
    if r.refunded_value.is_some() != r.refunded_currency.is_some() {
        return Err("refund.refunded_value and refunded_currency come together".into());
    }
    let texts = [
        ("cause", Some(entry.cause.as_str())),
        ("result_code", entry.result_code.as_deref()),
        ("refund.terminal_id", Some(r.terminal_id.as_str())),
        (
            "refund.original_merchant_refund_id",
            Some(r.original_merchant_refund_id.as_str()),
        ),
        ("refund.payment_id", Some(r.payment_id.as_str())),
        ("refund.memo", r.memo.as_deref()),
        ("refund.provider", Some(r.provider.as_str())),
        ("refund.result_message", r.result_message.as_deref()),
        ("refund.provider_refund_id", r.provider_refund_id.as_deref()),
        ("refund.refund_request_id", r.refund_request_id.as_deref()),
    ];
    for (field, text) in texts {
        // PostgreSQL's text cannot hold NUL.
        if text.is_some_and(|t| t.contains('\0')) {
            return Err(format!("{field} contains a NUL character"));
        }
    }
    Ok(())
}

/// Checks a box id: 1 to 64 of `A-Z a-z 0-9 . _ -`, as it appears in headers,
/// logs and the receiver's tables.
pub fn validate_box_id(id: &str) -> Result<(), BatchError> {
    if id.is_empty() || id.len() > 64 {
        return Err(BatchError::BoxId(format!(
            "must be 1 to 64 characters, not {}",
            id.len()
        )));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(BatchError::BoxId(format!(
            "{c:?} is not allowed (letters, digits, `.`, `_` and `-` are)"
        )));
    }
    Ok(())
}

/// The key a box signs with: the hex HMAC-SHA256 of `posbridge-fleet-box:` and its
/// id under the fleet's secret. `posbridge fleet box-key` prints it for a box's
/// `secret_file`.
pub fn box_key(fleet_secret: &[u8], box_id: &str) -> Result<String, BatchError> {
    validate_box_id(box_id)?;
    if fleet_secret.len() < MIN_SECRET_BYTES {
        return Err(BatchError::Secret(format!(
            "has {} bytes; at least {MIN_SECRET_BYTES} are needed (e.g. `openssl rand -hex 32`)",
            fleet_secret.len()
        )));
    }
    let mut mac = mac(fleet_secret);
    mac.update(b"posbridge-fleet-box:");
    mac.update(box_id.as_bytes());
    Ok(hex(&mac.finalize().into_bytes()))
}

/// The `Posbridge-Signature` value of `body` under `key`.
pub fn sign(key: &[u8], body: &[u8]) -> String {
    let mut mac = mac(key);
    mac.update(body);
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

/// Checks a `Posbridge-Signature` value, in constant time.
pub fn verify(key: &[u8], body: &[u8], signature: &str) -> Result<(), BatchError> {
    let digest = signature
        .strip_prefix("sha256=")
        .ok_or_else(|| BatchError::Signature("must start with `sha256=`".into()))?;
    let bytes = unhex(digest)
        .filter(|b| b.len() == 32)
        .ok_or_else(|| BatchError::Signature("must be 64 hex digits after `sha256=`".into()))?;
    let mut mac = mac(key);
    mac.update(body);
    mac.verify_slice(&bytes)
        .map_err(|_| BatchError::Signature("does not match the body under this box's key".into()))
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length.
    <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::OutboxRefund;

    fn entry(seq: i64) -> OutboxEntry {
        OutboxEntry {
            seq,
            at_ms: 1_700_000_000_000 + seq,
            from_state: None,
            to_state: "ACCEPTED".into(),
            cause: "REFUND from terminal T1".into(),
            result_code: None,
            attempt_id: Some(1),
            refund: OutboxRefund {
                id: 1,
                terminal_id: "T1".into(),
                original_merchant_refund_id: "REF-1".into(),
                payment_id: "PAY-1".into(),
                amount_value: Some(1250),
                amount_currency: Some("USD".into()),
                memo: None,
                provider: "antom".into(),
                created_ms: 1_700_000_000_000,
                state: "ACCEPTED".into(),
                refund_request_id: Some("RR-1".into()),
                provider_refund_id: None,
                refund_time: None,
                refunded_value: None,
                refunded_currency: None,
                result_code: None,
                result_message: None,
                updated_ms: 1_700_000_000_000,
            },
        }
    }

    #[test]
    fn round_trip() {
        let batch = Batch::new("store-112", 4, vec![entry(5), entry(6)]);
        let body = batch.encode();
        assert_eq!(Batch::decode(&body).unwrap(), batch);
        let empty = Batch::new("store-112", 4, vec![]);
        assert_eq!(Batch::decode(&empty.encode()).unwrap().header.last, 4);
    }

    #[test]
    fn every_inconsistency_is_named_with_its_line() {
        let good = Batch::new("store-112", 4, vec![entry(5), entry(6)]).encode();
        let text = String::from_utf8(good).unwrap();
        let cases = [
            (
                text.replace("\"v\":1", "\"v\":2"),
                "line 1: format version 2",
            ),
            (
                text.replace("\"seq\":6", "\"seq\":5"),
                "line 3: sequence 5 does not follow 5",
            ),
            (
                text.replace("\"count\":2", "\"count\":3"),
                "3 lines announced, 2 found",
            ),
            (
                text.replace("\"count\":2", "\"count\":1"),
                "line 3: more than the 1 lines",
            ),
            (
                text.replace("\"last\":6", "\"last\":7"),
                "last is 7 but the batch ends at 6",
            ),
            (text.replace("store-112", "store 112"), "' ' is not allowed"),
            (
                text.replacen("ACCEPTED", "LOST", 1),
                "\"LOST\" is not a refund state",
            ),
            (text.replace("\"USD\"", "null"), "come together"),
            (text.replace("PAY-1", "PAY\\u0000"), "NUL"),
            (
                text.replace("\"seq\":5,", ""),
                "line 2: missing field `seq`",
            ),
            (format!("{text}{{}}\n"), "more than the 2 lines"),
            (String::new(), "the body is empty"),
        ];
        for (body, expected) in cases {
            let err = Batch::decode(body.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(expected), "{err:?} should say {expected:?}");
        }
        let err = Batch::decode(b"{\"v\":1}\n\xff\n").unwrap_err().to_string();
        assert!(err.contains("line 2: not UTF-8"), "{err}");
    }

    #[test]
    fn signatures_match_only_the_same_body_and_key() {
        // RFC 4231 test case 2: HMAC-SHA256 of "what do ya want for nothing?" under "Jefe".
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let body = b"body";
        let signature = sign(b"key-a", body);
        assert!(verify(b"key-a", body, &signature).is_ok());
        assert!(verify(b"key-b", body, &signature).is_err());
        assert!(verify(b"key-a", b"bodY", &signature).is_err());
        for bad in ["", "sha256=", "sha256=zz", "md5=00", &signature[..20]] {
            assert!(verify(b"key-a", body, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn box_keys_differ_per_box_and_need_a_real_secret() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let a = box_key(secret, "store-1").unwrap();
        let b = box_key(secret, "store-2").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(box_key(b"short", "store-1").is_err());
        assert!(box_key(secret, "").is_err());
        assert!(box_key(secret, &"x".repeat(65)).is_err());
    }
}
