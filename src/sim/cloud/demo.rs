//! Demo keys, credentials and payments, so the simulator and a client work together
//! with no setup; and reading a payments file.
//!
//! The keys in `demo_keys/` are public throw-away keys (see the README there). The
//! same functions give the client side: a provider configuration pointing at a
//! simulator, as a struct or as the TOML a tech can paste into a config file.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::SimConfig;
use super::books::{AsyncResult, PaymentSeed, RefundMode};
use crate::money::{Amount, Currency};
use crate::provider::Secret;
use crate::provider::antom::keys::{KeyError, PrivateKey, PublicKey};
use crate::provider::antom::{AntomConfig, AntomProvider};
use crate::provider::http::HttpSettings;
use crate::provider::ottpay::{OttPayConfig, OttPayProvider};
use crate::provider::paymentoptions::{PaymentOptionsConfig, PaymentOptionsProvider};
use crate::provider::settings::SettingsError;

/// The demo merchant private key (PEM).
pub const MERCHANT_PRIVATE_PEM: &str = include_str!("demo_keys/merchant_private.pem");
/// The demo merchant public key (PEM).
pub const MERCHANT_PUBLIC_PEM: &str = include_str!("demo_keys/merchant_public.pem");
/// The simulator's private key (PEM).
pub const SIMULATOR_PRIVATE_PEM: &str = include_str!("demo_keys/simulator_private.pem");
/// The simulator's public key (PEM): a client's "Antom public key".
pub const SIMULATOR_PUBLIC_PEM: &str = include_str!("demo_keys/simulator_public.pem");

/// The Antom client id used in demos.
pub const ANTOM_CLIENT_ID: &str = "SANDBOX_POSBRIDGE_DEMO";
/// OTT Pay demo appId.
pub const OTTPAY_APP_ID: &str = "demo-app";
/// OTT Pay demo appKey.
pub const OTTPAY_APP_KEY: &str = "demo-app-key";
/// PaymentOptions demo API key.
pub const PAYMENTOPTIONS_API_KEY: &str = "demo-api-key";
/// PaymentOptions demo merchant id.
pub const PAYMENTOPTIONS_MERCHANT_ID: &str = "demo-merchant";

/// The demo merchant private key.
pub fn merchant_private_key() -> Result<PrivateKey, KeyError> {
    PrivateKey::parse(MERCHANT_PRIVATE_PEM)
}

/// The simulator's public key.
pub fn simulator_public_key() -> Result<PublicKey, KeyError> {
    PublicKey::parse(SIMULATOR_PUBLIC_PEM)
}

/// The payments a demo simulator starts with.
pub fn demo_payments() -> Vec<PaymentSeed> {
    // "USD" always parses; the `Option` only keeps this free of panics.
    let Ok(usd) = Currency::parse("USD") else {
        return Vec::new();
    };
    let seed = |id: &str, value: i64| PaymentSeed::new(id, Amount::saturating(value, usd));
    vec![
        seed("PAY-SYNC-1", 5000),
        seed("PAY-SYNC-2", 12_500),
        PaymentSeed {
            mode: RefundMode::Async,
            ..seed("PAY-ASYNC-1", 8000)
        },
        PaymentSeed {
            mode: RefundMode::Async,
            async_result: AsyncResult::Failure,
            ..seed("PAY-ASYNC-FAIL", 3000)
        },
        PaymentSeed {
            partial_refund: false,
            ..seed("PAY-FULL-ONLY", 2000)
        },
        PaymentSeed {
            refundable: false,
            ..seed("PAY-NOT-REFUNDABLE", 1500)
        },
    ]
}

/// A simulator configuration with the demo keys, credentials and payments.
pub fn sim_config(listen: SocketAddr) -> Result<SimConfig, KeyError> {
    Ok(SimConfig {
        listen,
        merchant_public_key: PublicKey::parse(MERCHANT_PUBLIC_PEM)?,
        sim_private_key: PrivateKey::parse(SIMULATOR_PRIVATE_PEM)?,
        async_delay: Duration::from_secs(2),
        antom_notify_url: None,
        ottpay_app_id: OTTPAY_APP_ID.to_string(),
        ottpay_app_key: Secret::new(OTTPAY_APP_KEY),
        ottpay_token_ttl: Duration::from_secs(3600),
        paymentoptions_api_key: Secret::new(PAYMENTOPTIONS_API_KEY),
        paymentoptions_merchant_id: PAYMENTOPTIONS_MERCHANT_ID.to_string(),
        payments: demo_payments(),
        header_read_timeout: Duration::from_secs(10),
        max_body_bytes: 256 * 1024,
    })
}

/// `[[payment]]` tables, as in a `--payments` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PaymentsFile {
    #[serde(default)]
    payment: Vec<PaymentSeed>,
}

/// Reads payments from TOML:
///
/// ```toml
/// [[payment]]
/// id = "PAY-1"
/// amount = { value = 1250, currency = "USD" }
/// mode = "async"            # sync (default) | async
/// async_result = "failure"  # success (default) | failure
/// partial_refund = false    # default true
/// refundable = true         # default true
/// ```
pub fn read_payments(path: &Path) -> Result<Vec<PaymentSeed>, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|e| SettingsError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    parse_payments(&text).map_err(|reason| SettingsError::Parse {
        path: path.display().to_string(),
        reason,
    })
}

/// Parses a payments TOML text.
pub fn parse_payments(text: &str) -> Result<Vec<PaymentSeed>, String> {
    let file: PaymentsFile = toml::from_str(text).map_err(|e| e.to_string())?;
    for payment in &file.payment {
        if payment.id.trim().is_empty() {
            return Err("a payment has an empty id".into());
        }
        if !(1..=crate::money::MAX_AMOUNT).contains(&payment.amount.value) {
            return Err(format!("payment {}: amount out of range", payment.id));
        }
    }
    Ok(file.payment)
}

/// An Antom client for a simulator at `base_url`, with the demo keys.
pub fn antom_provider(base_url: &str, http: HttpSettings) -> Result<AntomProvider, SettingsError> {
    let mut config = AntomConfig::new(base_url, ANTOM_CLIENT_ID);
    config.http = http;
    AntomProvider::with_keys(&config, merchant_private_key()?, simulator_public_key()?)
}

/// An OTT Pay client for a simulator at `base_url`.
pub fn ottpay_provider(
    base_url: &str,
    http: HttpSettings,
) -> Result<OttPayProvider, SettingsError> {
    let mut config = OttPayConfig::new(base_url, OTTPAY_APP_ID, Secret::new(OTTPAY_APP_KEY));
    config.http = http;
    OttPayProvider::new(&config)
}

/// A PaymentOptions client for a simulator at `base_url`.
pub fn paymentoptions_provider(
    base_url: &str,
    http: HttpSettings,
) -> Result<PaymentOptionsProvider, SettingsError> {
    let mut config = PaymentOptionsConfig::new(
        base_url,
        Secret::new(PAYMENTOPTIONS_API_KEY),
        PAYMENTOPTIONS_MERCHANT_ID,
    );
    config.http = http;
    PaymentOptionsProvider::new(&config)
}

/// A `[provider]` TOML table for a simulator at `base_url` (demo keys inline).
pub fn provider_toml(kind: &str, base_url: &str) -> Option<String> {
    let indent = |pem: &str| pem.trim().to_string();
    match kind {
        "antom" => Some(format!(
            "[provider]\nkind = \"antom\"\nbase_url = \"{base_url}\"\nclient_id = \"{ANTOM_CLIENT_ID}\"\n\
             private_key = \"\"\"\n{}\n\"\"\"\nantom_public_key = \"\"\"\n{}\n\"\"\"\n",
            indent(MERCHANT_PRIVATE_PEM),
            indent(SIMULATOR_PUBLIC_PEM)
        )),
        "ottpay" => Some(format!(
            "[provider]\nkind = \"ottpay\"\nbase_url = \"{base_url}\"\napp_id = \"{OTTPAY_APP_ID}\"\napp_key = \"{OTTPAY_APP_KEY}\"\n"
        )),
        "paymentoptions" => Some(format!(
            "[provider]\nkind = \"paymentoptions\"\nbase_url = \"{base_url}\"\napi_key = \"{PAYMENTOPTIONS_API_KEY}\"\nmerchant_id = \"{PAYMENTOPTIONS_MERCHANT_ID}\"\n"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ProviderConfig;

    #[test]
    fn demo_material_parses() {
        assert!(sim_config("127.0.0.1:0".parse().unwrap()).is_ok());
        for kind in ["antom", "ottpay", "paymentoptions"] {
            let toml = provider_toml(kind, "http://127.0.0.1:9").unwrap();
            let config = ProviderConfig::from_toml(&toml).unwrap();
            assert_eq!(config.name(), kind);
            crate::provider::build_provider(&config).unwrap();
        }
        assert!(provider_toml("paypal", "x").is_none());
    }

    #[test]
    fn payments_file() {
        let text = "[[payment]]\nid = \"P\"\namount = { value = 1250, currency = \"USD\" }\nmode = \"async\"\n";
        let payments = parse_payments(text).unwrap();
        assert_eq!(payments[0].mode, RefundMode::Async);
        assert!(payments[0].partial_refund);
        for bad in [
            "[[payment]]\nid = \"P\"\n",
            "[[payment]]\nid = \"\"\namount = { value = 1, currency = \"USD\" }\n",
            "[[payment]]\nid = \"P\"\namount = { value = 0, currency = \"USD\" }\n",
            "[[payment]]\nid = \"P\"\namount = { value = 1, currency = \"usd\" }\n",
            "[[payment]]\nid = \"P\"\namount = { value = 1, currency = \"USD\" }\ncolour = 1\n",
        ] {
            assert!(parse_payments(bad).is_err(), "{bad}");
        }
    }
}
