//! HTTP client settings, and how a call's transport failures fold into outcomes.
//!
//! One [`reqwest::Client`] per provider keeps connections alive between refunds (a
//! TLS handshake on a shop's line costs more than the refund call itself). Every call
//! goes through [`send`], which never returns a transport error: a request that
//! provably never left (refused, DNS, TLS handshake, connect timeout) becomes
//! `RetrySameRequest`; anything after the request may have been written (timeout,
//! reset, truncated body) becomes `OutcomeUnknown`. Reasons name the provider and the
//! call and never include a URL query, a header or a body.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;

use super::Outcome;
use super::settings::SettingsError;
use crate::bounds::{self, BadSetting};

/// Timeouts and connection reuse for one provider's client. TOML keys in
/// milliseconds; every key is optional.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Time allowed to open the connection, TLS included. A shop's DSL or cellular
    /// line can take seconds to resolve and handshake; 10 s leaves room without
    /// hiding a dead line.
    pub connect_timeout_ms: u64,
    /// Time allowed for the whole call, from connecting to the last body byte. Antom's
    /// own SDK allows 15 s to connect plus 15 s to read; 30 s matches that.
    pub total_timeout_ms: u64,
    /// How long an idle connection is kept for the next call.
    pub pool_idle_timeout_ms: u64,
    /// TCP keep-alive probe interval, so a silently dropped line is noticed.
    pub tcp_keepalive_ms: u64,
    /// Largest response body read; a longer one is cut off and treated as no answer.
    pub max_response_bytes: usize,
}

impl Default for HttpSettings {
    fn default() -> HttpSettings {
        HttpSettings {
            connect_timeout_ms: 10_000,
            total_timeout_ms: 30_000,
            pool_idle_timeout_ms: 90_000,
            tcp_keepalive_ms: 30_000,
            max_response_bytes: 1 << 20,
        }
    }
}

impl HttpSettings {
    /// Checks each setting's range, and that they make sense together.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.check()
            .map_err(|bad| SettingsError::invalid(format!("http.{}", bad.key), bad.why))
    }

    fn check(&self) -> Result<(), BadSetting> {
        bounds::check(
            "connect_timeout_ms",
            self.connect_timeout_ms,
            100..=120_000,
            " ms",
        )?;
        bounds::check(
            "total_timeout_ms",
            self.total_timeout_ms,
            100..=600_000,
            " ms",
        )?;
        bounds::check(
            "pool_idle_timeout_ms",
            self.pool_idle_timeout_ms,
            0..=3_600_000,
            " ms",
        )?;
        bounds::check(
            "tcp_keepalive_ms",
            self.tcp_keepalive_ms,
            1000..=7_200_000,
            " ms",
        )?;
        bounds::check(
            "max_response_bytes",
            self.max_response_bytes,
            1024..=16 << 20,
            " bytes",
        )?;
        if self.connect_timeout_ms > self.total_timeout_ms {
            return Err(BadSetting::new(
                "connect_timeout_ms",
                "must not exceed total_timeout_ms \
                 (a connect failure must be seen as such, not as a total timeout)",
            ));
        }
        Ok(())
    }

    /// Builds the client: no redirects (a refund is never silently re-posted
    /// elsewhere), keep-alive on, rustls with bundled roots.
    pub fn client(&self) -> Result<reqwest::Client, SettingsError> {
        self.builder()?.build().map_err(|e| {
            SettingsError::invalid("http", format!("cannot build the HTTP client: {e}"))
        })
    }

    /// The client's builder with these settings, for a caller that adds
    /// certificates of its own (the fleet's sink).
    pub fn builder(&self) -> Result<reqwest::ClientBuilder, SettingsError> {
        self.validate()?;
        Ok(reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(self.connect_timeout_ms))
            .timeout(Duration::from_millis(self.total_timeout_ms))
            .pool_idle_timeout(Duration::from_millis(self.pool_idle_timeout_ms))
            .tcp_keepalive(Duration::from_millis(self.tcp_keepalive_ms))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("posbridge/", env!("CARGO_PKG_VERSION"))))
    }
}

/// Names a call in reasons: which provider, which API.
#[derive(Clone, Copy, Debug)]
pub struct Call {
    /// Provider name.
    pub provider: &'static str,
    /// API name (`refund`, `inquiryRefund`, `auth/token`, ...).
    pub api: &'static str,
}

impl Call {
    /// A `RetrySameRequest` outcome with a reason naming this call.
    pub fn retry(&self, what: impl std::fmt::Display) -> Outcome {
        Outcome::RetrySameRequest {
            reason: format!("{} {}: {what}", self.provider, self.api),
        }
    }

    /// An `OutcomeUnknown` outcome with a reason naming this call.
    pub fn unknown(&self, what: impl std::fmt::Display) -> Outcome {
        Outcome::OutcomeUnknown {
            reason: format!("{} {}: {what}", self.provider, self.api),
        }
    }
}

/// A response read in full (up to the size limit).
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body's exact bytes (signatures cover them).
    pub body: Bytes,
}

impl Reply {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body for a reason: at most 200 characters, lossily decoded.
    pub fn body_excerpt(&self) -> String {
        excerpt(&self.body)
    }

    /// A header's value as text, if present and valid.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// At most 200 characters of a body, for messages, with control, bidirectional and
/// invisible characters taken out (a body is whatever the other end sent).
pub fn excerpt(body: &[u8]) -> String {
    crate::text::clean_text(&String::from_utf8_lossy(body), 200)
}

/// Sends a built request and reads the whole response, folding every transport
/// failure into an outcome.
pub async fn send(
    call: Call,
    request: reqwest::RequestBuilder,
    max_body: usize,
) -> Result<Reply, Outcome> {
    let response = request.send().await.map_err(|e| fold_error(call, &e))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut response = response;
    let mut body = BytesMut::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > max_body {
                    return Err(call.unknown(format!(
                        "HTTP {status} response body exceeds {max_body} bytes; not read"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                return Err(call.unknown(format!(
                    "HTTP {status} response body cut off: {}",
                    describe(&e)
                )));
            }
        }
    }
    Ok(Reply {
        status,
        headers,
        body: body.freeze(),
    })
}

/// Folds a reqwest error into an outcome: never-left is retry, the rest unknown.
pub fn fold_error(call: Call, error: &reqwest::Error) -> Outcome {
    if error.is_builder() {
        // Nothing was sent; a malformed URL is a configuration fault.
        return call.retry(format!(
            "request not built, nothing sent: {}",
            describe(error)
        ));
    }
    if error.is_connect() {
        return call.retry(format!(
            "could not connect, nothing sent: {}",
            describe(error)
        ));
    }
    if error.is_timeout() {
        return call.unknown(format!(
            "no answer within the time limit after sending: {}",
            describe(error)
        ));
    }
    call.unknown(format!(
        "connection failed after sending: {}",
        describe(error)
    ))
}

/// An error and its causes on one line, without the URL.
pub fn describe(error: &reqwest::Error) -> String {
    let mut text = error_kind(error).to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn error_kind(error: &reqwest::Error) -> &'static str {
    if error.is_connect() {
        "connect error"
    } else if error.is_timeout() {
        "timed out"
    } else if error.is_body() || error.is_decode() {
        "body error"
    } else if error.is_request() {
        "request error"
    } else {
        "error"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_checked() {
        assert!(HttpSettings::default().validate().is_ok());
        let bad = HttpSettings {
            connect_timeout_ms: 40_000,
            ..HttpSettings::default()
        };
        assert!(bad.validate().is_err());
        let zero = HttpSettings {
            total_timeout_ms: 0,
            ..HttpSettings::default()
        };
        assert!(zero.validate().is_err());
    }

    #[test]
    fn excerpt_is_bounded() {
        let long = "x".repeat(1000);
        assert_eq!(excerpt(long.as_bytes()).chars().count(), 200);
        assert_eq!(excerpt(b"short"), "short");
        assert_eq!(excerpt(&[0xff, b'a']), "\u{fffd}a");
        assert_eq!(excerpt(b"<html>\r\n\x1b[2J</html>"), "<html> [2J</html>");
    }
}
