//! Antom's message signature: what is signed, how, and the `Signature` header.
//!
//! The content signed is exactly `"POST " + path + "\n" + clientId + "." + time + "."
//! + body`, where `path` is the URI path with any query, `time` the `Request-Time` (or
//! `Response-Time`) header value as sent, and `body` the exact bytes of the body. The
//! signature is RSA PKCS#1 v1.5 over SHA-256, standard Base64, then percent-encoded
//! as a form value (`+` `/` `=` become `%2B` `%2F` `%3D`), and sent as
//! `Signature: algorithm=RSA256,keyVersion=<n>,signature=<value>`.

use base64::Engine;
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use super::keys::{PrivateKey, PublicKey};

/// The only algorithm Antom uses.
pub const ALGORITHM: &str = "RSA256";

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `Signature` header.
    #[error("no Signature header")]
    Missing,
    /// The header is not `algorithm=...,keyVersion=...,signature=...`.
    #[error("malformed Signature header: {0}")]
    Malformed(&'static str),
    /// An algorithm other than RSA256.
    #[error("unsupported signature algorithm {0:?}")]
    Algorithm(String),
    /// The time header the signature covers is missing.
    #[error("no {0} header, which the signature covers")]
    MissingTime(&'static str),
    /// The signature does not match the content.
    #[error("signature does not match the message")]
    Mismatch,
    /// The private key could not sign (it should always be able to).
    #[error("signing failed: {0}")]
    Sign(String),
}

/// The exact bytes that are signed.
pub fn signing_content(path: &str, client_id: &str, time: &str, body: &[u8]) -> Vec<u8> {
    let mut content =
        Vec::with_capacity(5 + path.len() + 1 + client_id.len() + 1 + time.len() + 1 + body.len());
    content.extend_from_slice(b"POST ");
    content.extend_from_slice(path.as_bytes());
    content.push(b'\n');
    content.extend_from_slice(client_id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(time.as_bytes());
    content.push(b'.');
    content.extend_from_slice(body);
    content
}

/// Signs content: RSA-SHA256, standard Base64 (not yet URL-encoded).
pub fn sign_base64(key: &PrivateKey, content: &[u8]) -> Result<String, SignatureError> {
    let signature = key.sign(content).map_err(SignatureError::Sign)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(signature))
}

/// The whole `Signature` header value for a message.
pub fn signature_header(
    key: &PrivateKey,
    key_version: u32,
    path: &str,
    client_id: &str,
    time: &str,
    body: &[u8],
) -> Result<String, SignatureError> {
    let b64 = sign_base64(key, &signing_content(path, client_id, time, body))?;
    Ok(format!(
        "algorithm={ALGORITHM},keyVersion={key_version},signature={}",
        utf8_percent_encode(&b64, NON_ALPHANUMERIC)
    ))
}

/// The parts of a `Signature` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    /// `algorithm=`.
    pub algorithm: String,
    /// `keyVersion=`, if present.
    pub key_version: Option<String>,
    /// `signature=`, URL-decoded: standard Base64.
    pub signature_base64: String,
}

/// Parses `algorithm=RSA256,keyVersion=1,signature=...` (order and spaces free).
pub fn parse_signature_header(value: &str) -> Result<SignatureHeader, SignatureError> {
    let mut algorithm = None;
    let mut key_version = None;
    let mut signature = None;
    for part in value.split(',') {
        let Some((name, val)) = part.split_once('=') else {
            return Err(SignatureError::Malformed("a part without `=`"));
        };
        match name.trim() {
            "algorithm" => algorithm = Some(val.trim().to_string()),
            "keyVersion" => key_version = Some(val.trim().to_string()),
            "signature" => signature = Some(val.trim()),
            _ => {} // unknown parts are ignored, as the SDKs do
        }
    }
    let algorithm = algorithm.ok_or(SignatureError::Malformed("no algorithm"))?;
    let signature = signature.ok_or(SignatureError::Malformed("no signature"))?;
    if signature.is_empty() {
        return Err(SignatureError::Malformed("empty signature"));
    }
    // Senders URL-encode the Base64; a raw Base64 value (with `+` kept) also decodes.
    let decoded = percent_decode_str(signature)
        .decode_utf8()
        .map_err(|_| SignatureError::Malformed("signature is not UTF-8 after URL decoding"))?;
    Ok(SignatureHeader {
        algorithm,
        key_version,
        signature_base64: decoded.into_owned(),
    })
}

/// Verifies a `Signature` header value over a message.
pub fn verify(
    key: &PublicKey,
    header: &str,
    path: &str,
    client_id: &str,
    time: &str,
    body: &[u8],
) -> Result<(), SignatureError> {
    let parsed = parse_signature_header(header)?;
    if !parsed.algorithm.eq_ignore_ascii_case(ALGORITHM) {
        return Err(SignatureError::Algorithm(
            parsed.algorithm.chars().take(20).collect(),
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(parsed.signature_base64.as_bytes())
        .map_err(|_| SignatureError::Malformed("signature is not Base64"))?;
    if key.verify(&signing_content(path, client_id, time, body), &bytes) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIVATE_PEM: &str =
        include_str!("../../../tests/fixtures/antom/merchant_private_pkcs8.pem");
    const PUBLIC_PEM: &str = include_str!("../../../tests/fixtures/antom/merchant_public_spki.pem");
    const CONTENT: &str = include_str!("../../../tests/fixtures/antom/signed_content.txt");
    const OPENSSL_SIGNATURE: &str = include_str!("../../../tests/fixtures/antom/signature.b64");

    #[test]
    fn content_layout() {
        let content = signing_content("/v2/payments/refund", "CID", "1700000000000", b"{}");
        assert_eq!(content, b"POST /v2/payments/refund\nCID.1700000000000.{}");
    }

    #[test]
    fn matches_openssl_byte_for_byte() {
        let key = PrivateKey::parse(PRIVATE_PEM).unwrap();
        let ours = sign_base64(&key, CONTENT.as_bytes()).unwrap();
        assert_eq!(ours, OPENSSL_SIGNATURE.trim());
    }

    #[test]
    fn header_round_trip_and_url_encoding() {
        let key = PrivateKey::parse(PRIVATE_PEM).unwrap();
        let public = PublicKey::parse(PUBLIC_PEM).unwrap();
        let header = signature_header(&key, 2, "/p", "cid", "t", b"body").unwrap();
        assert!(header.starts_with("algorithm=RSA256,keyVersion=2,signature="));
        let value = header.rsplit_once("signature=").unwrap().1;
        assert!(
            !value.contains(['+', '/', '=']),
            "Base64 specials are URL-encoded"
        );
        verify(&public, &header, "/p", "cid", "t", b"body").unwrap();
        assert_eq!(
            verify(&public, &header, "/p", "cid", "t", b"bodY"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&public, &header, "/q", "cid", "t", b"body"),
            Err(SignatureError::Mismatch)
        );
        // Raw, not URL-encoded Base64 is accepted too.
        let raw = format!(
            "algorithm=RSA256, keyVersion=1, signature={}",
            sign_base64(&key, &signing_content("/p", "cid", "t", b"body")).unwrap()
        );
        verify(&public, &raw, "/p", "cid", "t", b"body").unwrap();
    }

    #[test]
    fn malformed_headers() {
        let public = PublicKey::parse(PUBLIC_PEM).unwrap();
        for bad in [
            "",
            "garbage",
            "algorithm=RSA256",
            "algorithm=RSA256,signature=",
            "signature=abc",
            "algorithm=RSA256,signature=%%%",
            "algorithm=RSA256,signature=bm90IGEgc2lnbmF0dXJl",
        ] {
            assert!(
                verify(&public, bad, "/p", "c", "t", b"").is_err(),
                "{bad:?}"
            );
        }
        assert!(matches!(
            verify(
                &public,
                "algorithm=HMAC,signature=YQ%3D%3D",
                "/p",
                "c",
                "t",
                b""
            ),
            Err(SignatureError::Algorithm(_))
        ));
    }
}
