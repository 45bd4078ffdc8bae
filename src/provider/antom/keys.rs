//! RSA keys for Antom: the merchant's private key and Antom's public key.
//!
//! Antom's dashboard hands out keys as bare Base64 bodies; tools like OpenSSL write
//! PEM. Both are accepted: a private key as PKCS#8 (`BEGIN PRIVATE KEY`, or the bare
//! Base64 of its DER) and, for convenience, PKCS#1 (`BEGIN RSA PRIVATE KEY`); a public
//! key as X.509 SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`, or bare Base64) or PKCS#1.
//! Errors say what was wrong with the text and never echo any of it.

use std::fmt;
use std::path::Path;

use base64::Engine;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs1v15::{SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{PrivateKey as RsaPrivateKey, PublicKey as RsaPublicKey};
use sha2::Sha256;

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

/// A private key that signs with RSA PKCS#1 v1.5 and SHA-256. Prints as redacted.
#[derive(Clone)]
pub struct PrivateKey {
    signing: SigningKey<Sha256>,
    public: RsaPublicKey,
}

impl PrivateKey {
    /// Parses PEM (PKCS#8 or PKCS#1) or the bare Base64 of PKCS#8/PKCS#1 DER.
    pub fn parse(text: &str) -> Result<PrivateKey, KeyError> {
        const WHAT: &str = "private key";
        let key = match pem_label(text) {
            Some("PRIVATE KEY") => {
                RsaPrivateKey::from_pkcs8_pem(text.trim()).map_err(|e| invalid(WHAT, e))?
            }
            Some("RSA PRIVATE KEY") => {
                RsaPrivateKey::from_pkcs1_pem(text.trim()).map_err(|e| invalid(WHAT, e))?
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
                match RsaPrivateKey::from_pkcs8_der(&der) {
                    Ok(key) => key,
                    Err(pkcs8) => {
                        RsaPrivateKey::from_pkcs1_der(&der).map_err(|_| invalid(WHAT, pkcs8))?
                    }
                }
            }
        };
        check_size(WHAT, key.size())?;
        let public = key.to_public_key();
        Ok(PrivateKey {
            signing: SigningKey::new(key),
            public,
        })
    }

    /// Reads and parses a key file.
    pub fn from_file(path: &Path) -> Result<PrivateKey, KeyError> {
        PrivateKey::parse(&read(path)?)
    }

    /// The matching public key (to check a key pair, or for a simulator).
    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_rsa(self.public.clone())
    }

    /// The signer.
    pub(crate) fn signer(&self) -> &SigningKey<Sha256> {
        &self.signing
    }

    /// The modulus size in bits.
    pub fn bits(&self) -> usize {
        self.public.size() * 8
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
    verifying: VerifyingKey<Sha256>,
    public: RsaPublicKey,
}

impl PublicKey {
    /// Parses PEM (SPKI or PKCS#1) or the bare Base64 of SPKI/PKCS#1 DER.
    pub fn parse(text: &str) -> Result<PublicKey, KeyError> {
        const WHAT: &str = "public key";
        let key = match pem_label(text) {
            Some("PUBLIC KEY") => {
                RsaPublicKey::from_public_key_pem(text.trim()).map_err(|e| invalid(WHAT, e))?
            }
            Some("RSA PUBLIC KEY") => {
                RsaPublicKey::from_pkcs1_pem(text.trim()).map_err(|e| invalid(WHAT, e))?
            }
            Some(_) => {
                return Err(KeyError::WrongLabel {
                    what: WHAT,
                    expected: "`PUBLIC KEY` (X.509 SubjectPublicKeyInfo) or `RSA PUBLIC KEY` (PKCS#1)",
                });
            }
            None => {
                let der = bare_base64(WHAT, text)?;
                match RsaPublicKey::from_public_key_der(&der) {
                    Ok(key) => key,
                    Err(spki) => {
                        RsaPublicKey::from_pkcs1_der(&der).map_err(|_| invalid(WHAT, spki))?
                    }
                }
            }
        };
        check_size(WHAT, key.size())?;
        Ok(PublicKey::from_rsa(key))
    }

    /// Reads and parses a key file.
    pub fn from_file(path: &Path) -> Result<PublicKey, KeyError> {
        PublicKey::parse(&read(path)?)
    }

    fn from_rsa(key: RsaPublicKey) -> PublicKey {
        PublicKey {
            verifying: VerifyingKey::new(key.clone()),
            public: key,
        }
    }

    /// The verifier.
    pub(crate) fn verifier(&self) -> &VerifyingKey<Sha256> {
        &self.verifying
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &PublicKey) -> bool {
        self.public == other.public
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({} bits)", self.public.size() * 8)
    }
}

/// The label of the first PEM block, if the text starts with one.
fn pem_label(text: &str) -> Option<&str> {
    let first = text.trim_start().lines().next()?;
    first.strip_prefix("-----BEGIN ")?.strip_suffix("-----")
}

fn bare_base64(what: &'static str, text: &str) -> Result<Vec<u8>, KeyError> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if compact.is_empty() {
        return Err(KeyError::NotPemOrBase64 { what });
    }
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| KeyError::NotPemOrBase64 { what })
}

fn invalid(what: &'static str, error: impl fmt::Display) -> KeyError {
    KeyError::Invalid {
        what,
        reason: error.to_string().chars().take(200).collect(),
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
