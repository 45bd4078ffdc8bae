//! Reading fields out of a JSON object with errors that name the field.
//!
//! serde's derived errors say "invalid type at line 1 column 20"; a terminal vendor
//! debugging a REFUND needs "refundAmount.value: must be an integer". So incoming
//! messages are read field by field from a `serde_json` map, and every rule of the
//! specification (required, length, character set, range, shape) has one function here.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::display::text_width;
use crate::money::{Amount, Currency, MAX_AMOUNT};

/// The codes an ERROR message carries (SPEC §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The payload is not a UTF-8 JSON object.
    InvalidJson,
    /// A required field is absent or null.
    MissingField,
    /// A field has the wrong type, is empty, or holds characters it may not.
    InvalidField,
    /// A text field is longer than its limit.
    FieldTooLong,
    /// An amount is outside 1..=2147483647.
    AmountOutOfRange,
    /// A currency is not three upper-case letters.
    InvalidCurrency,
    /// The frame's kind is not defined by this protocol version.
    UnknownKind,
    /// The kind exists but is never sent in this direction.
    UnexpectedKind,
    /// HELLO asked for a protocol version this bridge does not speak.
    UnsupportedVersion,
    /// A REFUND reuses an `originalMerchantRefundId` with different fields.
    DuplicateMismatch,
    /// A REFUND exceeds a configured safety limit.
    LimitExceeded,
    /// An INQUIRY names a refund the bridge has no record of.
    UnknownRefund,
    /// The bridge could not record the request; nothing was recorded, send it again.
    InternalError,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "INVALID_JSON",
            ErrorCode::MissingField => "MISSING_FIELD",
            ErrorCode::InvalidField => "INVALID_FIELD",
            ErrorCode::FieldTooLong => "FIELD_TOO_LONG",
            ErrorCode::AmountOutOfRange => "AMOUNT_OUT_OF_RANGE",
            ErrorCode::InvalidCurrency => "INVALID_CURRENCY",
            ErrorCode::UnknownKind => "UNKNOWN_KIND",
            ErrorCode::UnexpectedKind => "UNEXPECTED_KIND",
            ErrorCode::UnsupportedVersion => "UNSUPPORTED_VERSION",
            ErrorCode::DuplicateMismatch => "DUPLICATE_MISMATCH",
            ErrorCode::LimitExceeded => "LIMIT_EXCEEDED",
            ErrorCode::UnknownRefund => "UNKNOWN_REFUND",
            ErrorCode::InternalError => "INTERNAL_ERROR",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a data frame's payload was refused: the ERROR code, the field (a dotted path
/// such as `refundAmount.value`) and a sentence saying what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// The ERROR code to answer with.
    pub code: ErrorCode,
    /// The offending field, when one is to blame.
    pub field: Option<String>,
    /// What was wrong, in words.
    pub detail: String,
}

impl Invalid {
    /// An error about the whole payload rather than one field.
    pub fn payload(code: ErrorCode, detail: impl Into<String>) -> Invalid {
        Invalid {
            code,
            field: None,
            detail: detail.into(),
        }
    }

    fn field(code: ErrorCode, field: &str, detail: impl Into<String>) -> Invalid {
        Invalid {
            code,
            field: Some(field.to_owned()),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.detail),
            None => f.write_str(&self.detail),
        }
    }
}

impl std::error::Error for Invalid {}

/// Parses a payload into a JSON object (not an array, string, number or null). A key
/// that appears twice in one object is refused: parsers differ on which one counts
/// (serde_json keeps the last, others the first), so a terminal and the bridge
/// could disagree about what was refunded.
pub(crate) fn object(payload: &[u8]) -> Result<Map<String, Value>, Invalid> {
    let duplicate = std::cell::RefCell::new(None);
    let mut reader = serde_json::Deserializer::from_slice(payload);
    let parsed = Unique {
        path: String::new(),
        duplicate: &duplicate,
    }
    .deserialize(&mut reader)
    .and_then(|value| reader.end().map(|()| value));
    if let Some(path) = duplicate.into_inner() {
        return Err(Invalid::field(
            ErrorCode::InvalidJson,
            &path,
            "appears more than once in its object; send each key once",
        ));
    }
    match parsed {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(Invalid::payload(
            ErrorCode::InvalidJson,
            format!("payload must be a JSON object, got {}", type_name(&other)),
        )),
        Err(e) => Err(Invalid::payload(
            ErrorCode::InvalidJson,
            format!("payload is not UTF-8 JSON: {e}"),
        )),
    }
}

/// Reads any JSON value as [`Value`] does, but notes the dotted path of the first
/// key repeated within an object (`refundAmount.value`, `lines[2]` for arrays) and
/// stops there.
struct Unique<'a> {
    path: String,
    duplicate: &'a std::cell::RefCell<Option<String>>,
}

impl Unique<'_> {
    fn below(&self, part: &str) -> String {
        match (self.path.is_empty(), part.starts_with('[')) {
            (true, _) | (false, true) => format!("{}{part}", self.path),
            (false, false) => format!("{}.{part}", self.path),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Unique<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Unique<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Unique {
            path: self.below(&format!("[{}]", items.len())),
            duplicate: self.duplicate,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = self.below(&key);
            if out.contains_key(&key) {
                *self.duplicate.borrow_mut() = Some(path.clone());
                return Err(serde::de::Error::custom(format!("duplicate key {path}")));
            }
            let value = map.next_value_seed(Unique {
                path,
                duplicate: self.duplicate,
            })?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The fields of one JSON object, with the path prefix for nested objects.
pub(crate) struct Fields<'a> {
    map: &'a Map<String, Value>,
    prefix: String,
}

/// Which characters a text field may hold.
#[derive(Clone, Copy)]
pub(crate) enum Charset {
    /// Identifiers: visible ASCII, `!` to `~`, no spaces.
    Id,
    /// Free text: any Unicode except control characters.
    Text,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(map: &'a Map<String, Value>) -> Fields<'a> {
        Fields {
            map,
            prefix: String::new(),
        }
    }

    fn path(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The value of `name`, treating JSON `null` as absent.
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    fn missing(&self, name: &str) -> Invalid {
        Invalid::field(ErrorCode::MissingField, &self.path(name), "is required")
    }

    /// `INVALID_FIELD` for `name`, with what it must be.
    pub(crate) fn invalid(&self, name: &str, detail: impl Into<String>) -> Invalid {
        Invalid::field(ErrorCode::InvalidField, &self.path(name), detail)
    }

    fn wrong_type(&self, name: &str, expected: &str, got: &Value) -> Invalid {
        Invalid::field(
            ErrorCode::InvalidField,
            &self.path(name),
            format!("must be {expected}, got {}", type_name(got)),
        )
    }

    /// A required text field of at most `max` characters.
    pub(crate) fn text(&self, name: &str, max: usize, charset: Charset) -> Result<String, Invalid> {
        self.opt_text(name, max, charset)?
            .ok_or_else(|| self.missing(name))
    }

    /// An optional text field of at most `max` characters.
    pub(crate) fn opt_text(
        &self,
        name: &str,
        max: usize,
        charset: Charset,
    ) -> Result<Option<String>, Invalid> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let Value::String(text) = value else {
            return Err(self.wrong_type(name, "a string", value));
        };
        check_text(&self.path(name), text, max, charset)?;
        Ok(Some(text.clone()))
    }

    /// A required boolean.
    pub(crate) fn boolean(&self, name: &str) -> Result<bool, Invalid> {
        match self.get(name) {
            None => Err(self.missing(name)),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(self.wrong_type(name, "true or false", other)),
        }
    }

    /// An optional integer in `range`.
    pub(crate) fn opt_int(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<i64>, Invalid> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let out_of_range = || {
            Invalid::field(
                ErrorCode::InvalidField,
                &self.path(name),
                format!(
                    "must be an integer from {} to {}",
                    range.start(),
                    range.end()
                ),
            )
        };
        let Value::Number(n) = value else {
            return Err(self.wrong_type(name, "an integer", value));
        };
        let Some(n) = n.as_i64() else {
            return Err(out_of_range());
        };
        if !range.contains(&n) {
            return Err(out_of_range());
        }
        Ok(Some(n))
    }

    /// A required integer in `range`.
    pub(crate) fn int(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<i64, Invalid> {
        self.opt_int(name, range)?.ok_or_else(|| self.missing(name))
    }

    /// An optional nested object, read with the path prefix extended.
    pub(crate) fn opt_object(&self, name: &str) -> Result<Option<Fields<'a>>, Invalid> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Fields {
                map,
                prefix: format!("{}{name}.", self.prefix),
            })),
            Some(other) => Err(self.wrong_type(name, "an object", other)),
        }
    }

    /// An optional `{value, currency}` amount: integer 1..=2147483647, ISO 4217 code.
    pub(crate) fn opt_amount(&self, name: &str) -> Result<Option<Amount>, Invalid> {
        let Some(inner) = self.opt_object(name)? else {
            return Ok(None);
        };
        let value_path = inner.path("value");
        let value = match inner.get("value") {
            None => return Err(inner.missing("value")),
            Some(Value::Number(n)) => n.as_i64().filter(|v| (1..=MAX_AMOUNT).contains(v)),
            Some(other) => return Err(inner.wrong_type("value", "an integer", other)),
        };
        let Some(value) = value else {
            return Err(Invalid::field(
                ErrorCode::AmountOutOfRange,
                &value_path,
                format!("must be an integer from 1 to {MAX_AMOUNT} (minor units)"),
            ));
        };
        let code = match inner.get("currency") {
            None => return Err(inner.missing("currency")),
            Some(Value::String(code)) => code,
            Some(other) => return Err(inner.wrong_type("currency", "a string", other)),
        };
        let currency = Currency::parse(code).map_err(|_| {
            Invalid::field(
                ErrorCode::InvalidCurrency,
                &inner.path("currency"),
                "must be three upper-case letters (ISO 4217)",
            )
        })?;
        Amount::new(value, currency)
            .map(Some)
            .map_err(|e| Invalid::field(ErrorCode::AmountOutOfRange, &value_path, e.to_string()))
    }

    /// An optional array of at most `max_items` strings, each checked by `check`.
    fn opt_array(
        &self,
        name: &str,
        max_items: usize,
        check: impl Fn(&str, &str) -> Result<(), Invalid>,
    ) -> Result<Option<Vec<String>>, Invalid> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let Value::Array(items) = value else {
            return Err(self.wrong_type(name, "an array of strings", value));
        };
        if items.len() > max_items {
            return Err(Invalid::field(
                ErrorCode::FieldTooLong,
                &self.path(name),
                format!("must hold at most {max_items} entries, got {}", items.len()),
            ));
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = format!("{}[{i}]", self.path(name));
            let Value::String(text) = item else {
                return Err(Invalid::field(
                    ErrorCode::InvalidField,
                    &path,
                    format!("must be a string, got {}", type_name(item)),
                ));
            };
            check(&path, text)?;
            out.push(text.clone());
        }
        Ok(Some(out))
    }

    /// An optional array of strings of at most `max` characters each.
    pub(crate) fn opt_strings(
        &self,
        name: &str,
        max_items: usize,
        max: usize,
        charset: Charset,
    ) -> Result<Option<Vec<String>>, Invalid> {
        self.opt_array(name, max_items, |path, text| {
            check_text(path, text, max, charset)
        })
    }

    /// An optional array of display lines, each at most `max_cols` display columns
    /// wide (SPEC §6.6).
    pub(crate) fn opt_lines(
        &self,
        name: &str,
        max_lines: usize,
        max_cols: usize,
    ) -> Result<Option<Vec<String>>, Invalid> {
        self.opt_array(name, max_lines, |path, line| {
            check_text(path, line, usize::MAX, Charset::Text)?;
            let width = text_width(line, false);
            if width > max_cols {
                return Err(Invalid::field(
                    ErrorCode::FieldTooLong,
                    path,
                    format!("must be at most {max_cols} display columns wide, got {width}"),
                ));
            }
            Ok(())
        })
    }

    /// A required field whose value is one of the names in `allowed`.
    pub(crate) fn one_of<T: Copy>(&self, name: &str, allowed: &[(&str, T)]) -> Result<T, Invalid> {
        let text = self.text(name, 32, Charset::Id)?;
        allowed
            .iter()
            .find(|(n, _)| *n == text)
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                let names: Vec<&str> = allowed.iter().map(|(n, _)| *n).collect();
                Invalid::field(
                    ErrorCode::InvalidField,
                    &self.path(name),
                    format!("must be one of {}", names.join(", ")),
                )
            })
    }
}

/// Checks a text value against a length in characters and a character set.
pub(crate) fn check_text(
    path: &str,
    text: &str,
    max: usize,
    charset: Charset,
) -> Result<(), Invalid> {
    let len = text.chars().count();
    if len > max {
        return Err(Invalid::field(
            ErrorCode::FieldTooLong,
            path,
            format!("must be at most {max} characters, got {len}"),
        ));
    }
    match charset {
        Charset::Id => {
            if text.is_empty() {
                return Err(Invalid::field(
                    ErrorCode::InvalidField,
                    path,
                    "must not be empty",
                ));
            }
            if !text.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(Invalid::field(
                    ErrorCode::InvalidField,
                    path,
                    "must hold only visible ASCII characters (no spaces)",
                ));
            }
        }
        Charset::Text => {
            if text.chars().any(char::is_control) {
                return Err(Invalid::field(
                    ErrorCode::InvalidField,
                    path,
                    "must not hold control characters",
                ));
            }
        }
    }
    Ok(())
}
