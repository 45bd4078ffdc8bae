//! RSA keys for Antom: the merchant's private key and Antom's public key.
//!
//! Antom's dashboard hands out keys as bare Base64 bodies; tools like OpenSSL write
//! PEM. Both are accepted: a private key as PKCS#8 (`BEGIN PRIVATE KEY`, or the bare
//! Base64 of its DER) and, for convenience, PKCS#1 (`BEGIN RSA PRIVATE KEY`); a public
//! key as X.509 SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`, or bare Base64) or PKCS#1.
//! Errors say what was wrong with the text and never echo any of it.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, KeyPair, RsaKeyPair, UnparsedPublicKey};
use base64::Engine;

/// Smallest modulus accepted. Antom issues 2048-bit keys.
pub const MIN_KEY_BITS: usize = 2048;

/// Why a key could not be used. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read.
    #[error("cannot read key file {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// The text is neither PEM nor Base64.
    #[error(
        "{what}: not PEM and not Base64 (expected a `-----BEGIN ...-----` block or the bare Base64 body)"
    )]
    NotPemOrBase64 {
        /// Which key.
        what: &'static str,
    },
    /// A PEM block of the wrong kind. The label found is not repeated: a file given
    /// by mistake may hold a secret anywhere, its first line included.
    #[error("{what}: the PEM block's label is not one accepted here (expected {expected})")]
    WrongLabel {
        /// Which key.
        what: &'static str,
        /// The labels accepted.
        expected: &'static str,
    },
    /// The structure inside is not a usable RSA key.
    #[error("{what}: not a valid RSA key ({reason})")]
    Invalid {
        /// Which key.
        what: &'static str,
        /// The decoder's complaint.
        reason: String,
    },
    /// The key is too short.
    #[error("{what}: RSA key of {bits} bits; at least {MIN_KEY_BITS} required")]
    TooShort {
        /// Which key.
        what: &'static str,
        /// Its size.
        bits: usize,
    },
}

/// A private key that signs with RSA PKCS#1 v1.5 and SHA-256 (aws-lc-rs: AWS-LC's
/// constant-time code, with assembly). Prints as redacted.
#[derive(Clone)]
pub struct PrivateKey {
    pair: Arc<RsaKeyPair>,
    rng: SystemRandom,
}

impl PrivateKey {
    /// Parses PEM (PKCS#8 or PKCS#1) or the bare Base64 of PKCS#8/PKCS#1 DER.
    pub fn parse(text: &str) -> Result<PrivateKey, KeyError> {
        const WHAT: &str = "private key";
        let pair = match pem(WHAT, text)? {
            Some(("PRIVATE KEY", der)) => {
                RsaKeyPair::from_pkcs8(&der).map_err(|e| rejected(WHAT, e))?
            }
            Some(("RSA PRIVATE KEY", der)) => {
                RsaKeyPair::from_der(&der).map_err(|e| rejected(WHAT, e))?
            }
            Some(_) => {
                return Err(KeyError::WrongLabel {
                    what: WHAT,
                    expected: "`PRIVATE KEY` (PKCS#8) or `RSA PRIVATE KEY` (PKCS#1); \
                               encrypted keys are not supported",
                });
            }
            None => {
                let der = bare_base64(WHAT, text)?;
                match RsaKeyPair::from_pkcs8(&der) {
                    Ok(pair) => pair,
                    Err(pkcs8) => RsaKeyPair::from_der(&der).map_err(|_| rejected(WHAT, pkcs8))?,
                }
            }
        };
        check_size(WHAT, pair.public_modulus_len())?;
        Ok(PrivateKey {
            pair: Arc::new(pair),
            rng: SystemRandom::new(),
        })
    }

    /// Reads and parses a key file.
    pub fn from_file(path: &Path) -> Result<PrivateKey, KeyError> {
        PrivateKey::parse(&read(path)?)
    }

    /// The matching public key (to check a key pair, or for a simulator).
    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_pkcs1(self.pair.public_key().as_ref().to_vec(), self.bits())
    }

    /// Signs `message`: RSA PKCS#1 v1.5 over its SHA-256.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let mut signature = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &self.rng,
                message,
                &mut signature,
            )
            .map_err(|_| "the RSA signature could not be made".to_string())?;
        Ok(signature)
    }

    /// The modulus size in bits.
    pub fn bits(&self) -> usize {
        self.pair.public_modulus_len() * 8
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey([redacted], {} bits)", self.bits())
    }
}

/// A public key that verifies RSA PKCS#1 v1.5 SHA-256 signatures.
#[derive(Clone)]
pub struct PublicKey {
    /// The PKCS#1 `RSAPublicKey` DER, what aws-lc-rs verifies with.
    pkcs1: Arc<Vec<u8>>,
    /// The modulus and exponent, without leading zeros, to compare keys.
    components: Arc<(Vec<u8>, Vec<u8>)>,
    bits: usize,
}

impl PublicKey {
    /// Parses PEM (SPKI or PKCS#1) or the bare Base64 of SPKI/PKCS#1 DER.
    pub fn parse(text: &str) -> Result<PublicKey, KeyError> {
        const WHAT: &str = "public key";
        let pkcs1 = match pem(WHAT, text)? {
            Some(("PUBLIC KEY", der)) => spki_to_pkcs1(WHAT, &der)?,
            Some(("RSA PUBLIC KEY", der)) => der,
            Some(_) => {
                return Err(KeyError::WrongLabel {
                    what: WHAT,
                    expected: "`PUBLIC KEY` (X.509 SubjectPublicKeyInfo) or `RSA PUBLIC KEY` (PKCS#1)",
                });
            }
            None => {
                let der = bare_base64(WHAT, text)?;
                match spki_to_pkcs1(WHAT, &der) {
                    Ok(pkcs1) => pkcs1,
                    Err(spki) => {
                        if components(&der).is_some() {
                            der
                        } else {
                            return Err(spki);
                        }
                    }
                }
            }
        };
        let Some((modulus, _)) = components(&pkcs1) else {
            return Err(KeyError::Invalid {
                what: WHAT,
                reason: "not an RSAPublicKey structure".into(),
            });
        };
        let bits = modulus.len() * 8;
        check_size(WHAT, modulus.len())?;
        Ok(PublicKey::from_pkcs1(pkcs1, bits))
    }

    /// Reads and parses a key file.
    pub fn from_file(path: &Path) -> Result<PublicKey, KeyError> {
        PublicKey::parse(&read(path)?)
    }

    fn from_pkcs1(pkcs1: Vec<u8>, bits: usize) -> PublicKey {
        let parts = components(&pkcs1).unwrap_or_default();
        PublicKey {
            pkcs1: Arc::new(pkcs1),
            components: Arc::new(parts),
            bits,
        }
    }

    /// Whether `signature` is this key's RSA PKCS#1 v1.5 SHA-256 signature of
    /// `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            self.pkcs1.as_slice(),
        )
        .verify(message, signature)
        .is_ok()
    }

    /// The modulus size in bits.
    pub fn bits(&self) -> usize {
        self.bits
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &PublicKey) -> bool {
        self.components == other.components
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({} bits)", self.bits)
    }
}

/// A PEM block's label and contents, or `None` when the text is not PEM. The label is
/// returned only when it is one of the four accepted; any other is `Some(("", ..))`,
/// so it is never echoed.
fn pem<'a>(what: &'static str, text: &'a str) -> Result<Option<(&'a str, Vec<u8>)>, KeyError> {
    let text = text.trim();
    if !text.starts_with("-----BEGIN ") {
        return Ok(None);
    }
    match pem_rfc7468::decode_vec(text.as_bytes()) {
        Ok((label, der)) => {
            let known = [
                "PRIVATE KEY",
                "RSA PRIVATE KEY",
                "PUBLIC KEY",
                "RSA PUBLIC KEY",
            ];
            let label = known.into_iter().find(|k| *k == label).unwrap_or("");
            Ok(Some((label, der)))
        }
        Err(e) => {
            // A malformed block: say what is wrong with its shape, not what it holds.
            let label_ok = [
                "PRIVATE KEY",
                "RSA PRIVATE KEY",
                "PUBLIC KEY",
                "RSA PUBLIC KEY",
            ]
            .iter()
            .any(|k| text.starts_with(&format!("-----BEGIN {k}-----")));
            if label_ok {
                Err(KeyError::Invalid {
                    what,
                    reason: format!("malformed PEM ({})", pem_reason(&e)),
                })
            } else {
                Ok(Some(("", Vec::new())))
            }
        }
    }
}

fn pem_reason(error: &pem_rfc7468::Error) -> &'static str {
    match error {
        pem_rfc7468::Error::Base64(_) => "its body is not Base64",
        pem_rfc7468::Error::PostEncapsulationBoundary => "no matching END line",
        pem_rfc7468::Error::PreEncapsulationBoundary => "no BEGIN line",
        _ => "not a well-formed block",
    }
}

/// The PKCS#1 `RSAPublicKey` inside an X.509 SubjectPublicKeyInfo for rsaEncryption.
fn spki_to_pkcs1(what: &'static str, der: &[u8]) -> Result<Vec<u8>, KeyError> {
    const RSA_ENCRYPTION: spki::ObjectIdentifier =
        spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
    let info = spki::SubjectPublicKeyInfoRef::try_from(der).map_err(|e| KeyError::Invalid {
        what,
        reason: format!("not an X.509 SubjectPublicKeyInfo ({e})"),
    })?;
    if info.algorithm.oid != RSA_ENCRYPTION {
        return Err(KeyError::Invalid {
            what,
            reason: "not an RSA key".into(),
        });
    }
    info.subject_public_key
        .as_bytes()
        .map(<[u8]>::to_vec)
        .ok_or_else(|| KeyError::Invalid {
            what,
            reason: "its key bits are not whole bytes".into(),
        })
}

/// The modulus and public exponent of a PKCS#1 `RSAPublicKey`, without leading zeros.
fn components(pkcs1: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let key = pkcs1::RsaPublicKey::<pkcs1::UintRef<'_>>::try_from(pkcs1).ok()?;
    let trim = |bytes: &[u8]| {
        let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        bytes.get(start..).unwrap_or_default().to_vec()
    };
    Some((
        trim(key.modulus.as_bytes()),
        trim(key.public_exponent.as_bytes()),
    ))
}

/// The bytes of a bare Base64 body (whitespace ignored).
fn bare_base64(what: &'static str, text: &str) -> Result<Vec<u8>, KeyError> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if compact.is_empty() {
        return Err(KeyError::NotPemOrBase64 { what });
    }
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| KeyError::NotPemOrBase64 { what })
}

fn rejected(what: &'static str, error: aws_lc_rs::error::KeyRejected) -> KeyError {
    KeyError::Invalid {
        what,
        reason: error.to_string(),
    }
}

fn check_size(what: &'static str, bytes: usize) -> Result<(), KeyError> {
    let bits = bytes * 8;
    if bits < MIN_KEY_BITS {
        return Err(KeyError::TooShort { what, bits });
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|e| KeyError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIVATE_PEM: &str =
        include_str!("../../../tests/fixtures/antom/merchant_private_pkcs8.pem");
    const PUBLIC_PEM: &str = include_str!("../../../tests/fixtures/antom/merchant_public_spki.pem");

    fn body_of(pem: &str) -> String {
        pem.lines().filter(|l| !l.starts_with("-----")).collect()
    }

    #[test]
    fn pem_and_bare_base64_give_the_same_key() {
        let from_pem = PrivateKey::parse(PRIVATE_PEM).unwrap();
        let from_b64 = PrivateKey::parse(&body_of(PRIVATE_PEM)).unwrap();
        assert_eq!(from_pem.public_key(), from_b64.public_key());
        let public_pem = PublicKey::parse(PUBLIC_PEM).unwrap();
        let public_b64 = PublicKey::parse(&body_of(PUBLIC_PEM)).unwrap();
        assert_eq!(public_pem, public_b64);
        assert_eq!(
            from_pem.public_key(),
            public_pem,
            "the fixture pair matches"
        );
        assert_eq!(from_pem.bits(), 2048);
    }

    /// The same key written by OpenSSL as PKCS#1 (`openssl rsa -traditional`,
    /// `-RSAPublicKey_out`), PEM and bare Base64, reads as the same key and signs the
    /// same bytes.
    #[test]
    fn pkcs1_keys_as_openssl_writes_them() {
        const PKCS1_PRIVATE: &str =
            include_str!("../../../tests/fixtures/antom/merchant_private_pkcs1.pem");
        const PKCS1_PUBLIC: &str =
            include_str!("../../../tests/fixtures/antom/merchant_public_pkcs1.pem");
        let pkcs8 = PrivateKey::parse(PRIVATE_PEM).unwrap();
        for private in [PKCS1_PRIVATE.to_string(), body_of(PKCS1_PRIVATE)] {
            let pkcs1 = PrivateKey::parse(&private).unwrap();
            assert_eq!(pkcs1.public_key(), pkcs8.public_key());
            assert_eq!(pkcs1.sign(b"same").unwrap(), pkcs8.sign(b"same").unwrap());
        }
        for public in [PKCS1_PUBLIC.to_string(), body_of(PKCS1_PUBLIC)] {
            let key = PublicKey::parse(&public).unwrap();
            assert_eq!(key, pkcs8.public_key());
            assert!(key.verify(b"same", &pkcs8.sign(b"same").unwrap()));
            assert!(!key.verify(b"other", &pkcs8.sign(b"same").unwrap()));
        }
    }

    #[test]
    fn debug_never_shows_the_private_key() {
        let key = PrivateKey::parse(PRIVATE_PEM).unwrap();
        let shown = format!("{key:?}");
        assert_eq!(shown, "PrivateKey([redacted], 2048 bits)");
    }

    #[test]
    fn bad_inputs_give_specific_errors() {
        assert!(matches!(
            PrivateKey::parse(""),
            Err(KeyError::NotPemOrBase64 { .. })
        ));
        assert!(matches!(
            PrivateKey::parse("not a key!"),
            Err(KeyError::NotPemOrBase64 { .. })
        ));
        assert!(matches!(
            PrivateKey::parse("AAAA"),
            Err(KeyError::Invalid { .. })
        ));
        assert!(matches!(
            PrivateKey::parse(PUBLIC_PEM),
            Err(KeyError::WrongLabel { .. })
        ));
        assert!(matches!(
            PublicKey::parse(PRIVATE_PEM),
            Err(KeyError::WrongLabel { .. })
        ));
        // A public key's DER given as a private key.
        assert!(matches!(
            PrivateKey::parse(&body_of(PUBLIC_PEM)),
            Err(KeyError::Invalid { .. })
        ));
        let truncated: String = PRIVATE_PEM.lines().take(5).collect::<Vec<_>>().join("\n");
        assert!(PrivateKey::parse(&truncated).is_err());
        let err = PrivateKey::parse(&body_of(PUBLIC_PEM))
            .unwrap_err()
            .to_string();
        assert!(
            !err.contains(&body_of(PUBLIC_PEM)[..20]),
            "errors never echo key text"
        );
        assert!(matches!(
            PrivateKey::from_file(Path::new("/nonexistent/key.pem")),
            Err(KeyError::Read { .. })
        ));
        // A label is part of the file, and the file may be a secret.
        let labelled =
            "-----BEGIN sk_live_4eC39HqLyjWDa-----\nAAAA\n-----END sk_live_4eC39HqLyjWDa-----";
        for err in [
            PrivateKey::parse(labelled).unwrap_err().to_string(),
            PublicKey::parse(labelled).unwrap_err().to_string(),
        ] {
            assert!(err.contains("label") && !err.contains("sk_live"), "{err}");
        }
    }
}
