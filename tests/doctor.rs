//! `posbridge doctor` never passes a broken box: a good setup passes every check, and
//! each broken setup fails its check with the right fix. The box (proc, udev rules,
//! udevadm, unit files, clock) is built per test through `Environment`; good cloud
//! answers come from the cloud simulator, hostile ones from a small server on
//! 127.0.0.1:0 answering the way a wrong or refusing server would.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use posbridge::daemon::doctor::{Check, Environment, Verdict, examine_with};
use posbridge::daemon::lock::LedgerLock;
use posbridge::sim::cloud::{CloudSim, demo};
use posbridge::transport::{PtyLink, open_pty};

const BIN: &str = env!("CARGO_BIN_EXE_posbridge");

/// The shipped rule, unchanged (the example VID:PID 0b00:3070).
const SHIPPED_RULE: &str = include_str!("../udev/99-posbridge.rules");

/// A box under test: its files, its environment and its terminal line.
struct Box {
    dir: tempfile::TempDir,
    env: Environment,
    line: PtyLink,
}

/// How ModemManager and udev look on the box.
enum Udev {
    /// ModemManager runs and udev marks the terminal ID_MM_DEVICE_IGNORE=1.
    Ignored,
    /// ModemManager runs; udev knows the device but no rule marks it.
    NotMarked,
    /// ModemManager runs; udevadm fails; the shipped rule (example ids) is installed.
    ExampleRuleNoUdevadm,
    /// ModemManager runs; no rule is installed and there is no udevadm.
    NoRule,
}

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

impl Box {
    fn new(udev: Udev) -> Box {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let proc_dir = root.join("proc");
        for (pid, comm) in [("1", "systemd"), ("417", "ModemManager"), ("900", "sshd")] {
            std::fs::create_dir_all(proc_dir.join(pid)).unwrap();
            std::fs::write(proc_dir.join(pid).join("comm"), format!("{comm}\n")).unwrap();
        }
        let (etc_rules, lib_rules) = (root.join("etc-rules"), root.join("lib-rules"));
        std::fs::create_dir_all(&etc_rules).unwrap();
        std::fs::create_dir_all(&lib_rules).unwrap();
        let udevadm = root.join("udevadm");
        match udev {
            Udev::Ignored => {
                std::fs::write(lib_rules.join("99-posbridge.rules"), SHIPPED_RULE).unwrap();
                script(
                    &udevadm,
                    "echo ID_VENDOR_ID=1d6b\necho ID_MODEL_ID=0104\necho ID_MM_DEVICE_IGNORE=1",
                );
            }
            Udev::NotMarked => {
                std::fs::write(lib_rules.join("99-posbridge.rules"), SHIPPED_RULE).unwrap();
                script(&udevadm, "echo ID_VENDOR_ID=1d6b\necho ID_MODEL_ID=0104");
            }
            Udev::ExampleRuleNoUdevadm => {
                std::fs::write(lib_rules.join("99-posbridge.rules"), SHIPPED_RULE).unwrap();
                script(&udevadm, "echo 'Unknown device' >&2\nexit 1");
            }
            Udev::NoRule => {}
        }
        let env = Environment {
            proc_dir,
            udev_rule_dirs: vec![etc_rules, lib_rules],
            udevadm,
            units: posbridge::credentials::UnitFiles {
                units: vec![root.join("units/posbridge.service")],
                dropin_dirs: vec![root.join("units/posbridge.service.d")],
            },
            credentials: None,
            now: Arc::new(jiff::Timestamp::now),
        };
        Box {
            dir,
            env,
            line: open_pty().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn secret(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).unwrap();
        std::fs::set_permissions(self.path(name), std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    /// Writes the configuration with this `[provider]` table and returns its path.
    fn config(&self, provider: &str) -> PathBuf {
        let path = self.path("posbridge.toml");
        std::fs::write(
            &path,
            format!(
                "[ledger]\npath = \"{}\"\n\n[[terminal]]\ndevice = \"{}\"\n\n{provider}",
                self.path("ledger.sqlite").display(),
                self.line.path.display()
            ),
        )
        .unwrap();
        path
    }

    /// An Antom configuration with its keys in files beside it.
    fn antom(&self, base_url: &str, antom_public: &str) -> PathBuf {
        self.secret("merchant_private_key.pem", demo::MERCHANT_PRIVATE_PEM);
        std::fs::write(self.path("antom_public_key.pem"), antom_public).unwrap();
        std::fs::write(
            self.path("merchant_public_key.pem"),
            demo::MERCHANT_PUBLIC_PEM,
        )
        .unwrap();
        self.config(&format!(
            "[provider]\nkind = \"antom\"\nbase_url = \"{base_url}\"\nclient_id = \"{}\"\n\
             private_key_file = \"merchant_private_key.pem\"\n\
             antom_public_key_file = \"antom_public_key.pem\"\n\
             merchant_public_key_file = \"merchant_public_key.pem\"\n",
            demo::ANTOM_CLIENT_ID
        ))
    }

    fn ottpay(&self, base_url: &str) -> PathBuf {
        self.secret("ottpay_app_key", demo::OTTPAY_APP_KEY);
        self.config(&format!(
            "[provider]\nkind = \"ottpay\"\nbase_url = \"{base_url}\"\napp_id = \"{}\"\n\
             app_key_file = \"ottpay_app_key\"\n",
            demo::OTTPAY_APP_ID
        ))
    }

    fn paymentoptions(&self, base_url: &str) -> PathBuf {
        self.secret("paymentoptions_api_key", demo::PAYMENTOPTIONS_API_KEY);
        self.config(&format!(
            "[provider]\nkind = \"paymentoptions\"\nbase_url = \"{base_url}\"\n\
             api_key_file = \"paymentoptions_api_key\"\nmerchant_id = \"{}\"\n",
            demo::PAYMENTOPTIONS_MERCHANT_ID
        ))
    }

    async fn doctor(&self, config: &Path) -> Vec<Check> {
        examine_with(config, &self.env).await
    }
}

async fn simulator() -> CloudSim {
    CloudSim::start(demo::sim_config("127.0.0.1:0".parse().unwrap()).unwrap())
        .await
        .unwrap()
}

/// A server that answers every request with the same status, headers and body.
async fn hostile(status: u16, headers: &[(&'static str, String)], body: &'static str) -> String {
    let headers: Vec<(&'static str, String)> = headers.to_vec();
    let app = axum::Router::new().fallback(move || {
        let headers = headers.clone();
        async move {
            let mut response: Response =
                (StatusCode::from_u16(status).unwrap(), body).into_response();
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            response
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn json_type() -> (&'static str, String) {
    ("content-type", "application/json".to_string())
}

/// The check whose name starts with `name`.
fn check<'a>(checks: &'a [Check], name: &str) -> &'a Check {
    checks
        .iter()
        .find(|c| c.name.starts_with(name))
        .unwrap_or_else(|| panic!("no check {name:?} in:\n{}", shown(checks)))
}

fn shown(checks: &[Check]) -> String {
    checks
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts the check `name` failed with a fix containing `fix`.
fn fails(checks: &[Check], name: &str, fix: &str) {
    let c = check(checks, name);
    assert_eq!(
        c.verdict,
        Verdict::Fail,
        "{name} should fail:\n{}",
        shown(checks)
    );
    let given = c.fix.as_deref().unwrap_or_default();
    assert!(
        given.contains(fix),
        "{name}: fix {given:?} lacks {fix:?}:\n{}",
        shown(checks)
    );
    no_repository_paths(checks);
}

/// Fix texts name installed paths and man pages, never the repository's files.
fn no_repository_paths(checks: &[Check]) {
    for c in checks {
        let text = format!("{} {}", c.detail, c.fix.as_deref().unwrap_or_default());
        for dir in ["udev/", "config/", "systemd/"] {
            for (at, _) in text.match_indices(dir) {
                let before = text[..at].chars().last();
                assert!(
                    before == Some('/'),
                    "{}: repository path {dir:?} in {text:?}",
                    c.name
                );
            }
        }
    }
}

fn all_pass(checks: &[Check]) {
    for c in checks {
        assert_eq!(c.verdict, Verdict::Pass, "{c}\nin:\n{}", shown(checks));
    }
    no_repository_paths(checks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_setups_pass_every_check() {
    let sim = simulator().await;
    for provider in ["antom", "ottpay", "paymentoptions"] {
        let b = Box::new(Udev::Ignored);
        let config = match provider {
            "antom" => b.antom(&sim.base_url(), demo::SIMULATOR_PUBLIC_PEM),
            "ottpay" => b.ottpay(&sim.base_url()),
            _ => b.paymentoptions(&sim.base_url()),
        };
        // A daemon holds the ledger, as on a running box.
        let _daemon = LedgerLock::acquire(&b.path("ledger.sqlite")).unwrap();
        let checks = b.doctor(&config).await;
        all_pass(&checks);
        for name in [
            "configuration",
            "key file",
            "keys and credentials",
            "ledger",
            "daemon",
            "terminal",
            "ModemManager",
            "cloud TCP",
            "clock",
        ] {
            check(&checks, name);
        }
        let proof = if provider == "antom" {
            "signed inquiry"
        } else {
            "provider credentials"
        };
        check(&checks, proof);
        if provider == "antom" {
            check(&checks, "merchant key pair");
            assert!(
                check(&checks, "clock").detail.contains("Response-Time"),
                "Antom's signed time is the one compared: {}",
                shown(&checks)
            );
        } else {
            assert!(
                check(&checks, "clock").detail.contains("Date"),
                "{}",
                shown(&checks)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn antom_answers_that_prove_nothing_fail_the_signed_inquiry() {
    let wrong_server = "base_url";
    let antom_answer = r#"{"result":{"resultStatus":"F","resultCode":"DPOS_PAYMENT_ORDER_NOT_EXIST","resultMessage":"The order does not exist."}}"#;
    let now_ms = || jiff::Timestamp::now().as_millisecond().to_string();
    let cases: Vec<(&str, String, &str)> = vec![
        // 1. A web server answering 404 HTML to everything.
        (
            "404 HTML",
            hostile(404, &[("content-type", "text/html".into())], "<html><h1>404 Not Found</h1></html>").await,
            wrong_server,
        ),
        // 2. HTTP 200 with JSON that is not Antom's shape.
        (
            "wrong JSON",
            hostile(200, &[json_type()], r#"{"status":"ok","data":[]}"#).await,
            wrong_server,
        ),
        // 3. Antom's shape, but a signature that does not verify.
        (
            "bad signature",
            hostile(
                200,
                &[
                    json_type(),
                    ("response-time", now_ms()),
                    ("signature", "algorithm=RSA256,keyVersion=1,signature=AAAA".into()),
                ],
                antom_answer,
            )
            .await,
            "antom_public_key_file",
        ),
        // 4. Antom's shape, unsigned.
        (
            "unsigned",
            hostile(200, &[json_type()], antom_answer).await,
            "something other than Antom answered",
        ),
        // 5. Antom refusing the request's signature.
        (
            "signature refused",
            hostile(
                200,
                &[json_type()],
                r#"{"result":{"resultStatus":"F","resultCode":"INVALID_SIGNATURE","resultMessage":"The signature is invalid."}}"#,
            )
            .await,
            "private_key_file",
        ),
    ];
    for (what, url, fix) in cases {
        let b = Box::new(Udev::Ignored);
        let config = b.antom(&url, demo::SIMULATOR_PUBLIC_PEM);
        let checks = b.doctor(&config).await;
        fails(&checks, "signed inquiry", fix);
        // No answer of Antom's came, so nothing was compared with its clock.
        let clock = check(&checks, "clock");
        assert!(
            clock.verdict == Verdict::Warn && clock.detail.contains("nothing was compared"),
            "{what}: {}",
            shown(&checks)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wrong_antom_public_key_and_a_skewed_clock_fail() {
    let sim = simulator().await;
    // 6. The merchant's own public key where Antom's belongs.
    let b = Box::new(Udev::Ignored);
    let config = b.antom(&sim.base_url(), demo::MERCHANT_PUBLIC_PEM);
    fails(
        &b.doctor(&config).await,
        "signed inquiry",
        "antom_public_key_file",
    );

    // 7. The box's clock an hour ahead of the time Antom signs into its answer.
    let mut b = Box::new(Udev::Ignored);
    b.env.now = Arc::new(|| {
        jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_hours(1))
            .unwrap()
    });
    let config = b.antom(&sim.base_url(), demo::SIMULATOR_PUBLIC_PEM);
    let checks = b.doctor(&config).await;
    assert_eq!(check(&checks, "signed inquiry").verdict, Verdict::Pass);
    fails(&checks, "clock", "timedatectl set-ntp true");
    assert!(check(&checks, "clock").detail.contains("Response-Time"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ottpay_and_paymentoptions_refusals_fail_their_credentials() {
    // 8. OTT Pay's documented refusal of appId/appKey (auth API error 10003).
    let b = Box::new(Udev::Ignored);
    let url = hostile(
        200,
        &[json_type()],
        r#"{"status":"ERROR","result":{"code":10003,"message":"API Authorization failed: The merchant appId and appKey pair you provided cannot be found"}}"#,
    )
    .await;
    fails(
        &b.doctor(&b.ottpay(&url)).await,
        "provider credentials",
        "app_id",
    );

    // 9. A token answer whose Date header is two hours behind.
    let b = Box::new(Udev::Ignored);
    let behind = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_hours(2))
        .unwrap();
    let date = jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&behind)
        .unwrap();
    let url = hostile(
        200,
        &[json_type(), ("date", date)],
        r#"{"status":"SUCCESS","result":{"token":"t-1","expired":4102444800000}}"#,
    )
    .await;
    let checks = b.doctor(&b.ottpay(&url)).await;
    assert_eq!(
        check(&checks, "provider credentials").verdict,
        Verdict::Pass,
        "{}",
        shown(&checks)
    );
    fails(&checks, "clock", "timedatectl");
    assert!(
        check(&checks, "clock").detail.contains("Date"),
        "{}",
        shown(&checks)
    );

    // 10. PaymentOptions' documented 401 for invalid credentials.
    let b = Box::new(Udev::Ignored);
    let url = hostile(
        401,
        &[json_type()],
        r#"{"success":false,"status_code":401,"message":"Unauthorized"}"#,
    )
    .await;
    fails(
        &b.doctor(&b.paymentoptions(&url)).await,
        "provider credentials",
        "api_key",
    );

    // 11. A 404 HTML page where PaymentOptions should be.
    let b = Box::new(Udev::Ignored);
    let url = hostile(404, &[], "<html>Not Found</html>").await;
    fails(
        &b.doctor(&b.paymentoptions(&url)).await,
        "provider credentials",
        "base_url",
    );

    // 12. The simulator refusing a wrong PaymentOptions key.
    let sim = simulator().await;
    let b = Box::new(Udev::Ignored);
    let config = b.paymentoptions(&sim.base_url());
    b.secret("paymentoptions_api_key", "not-the-key");
    fails(&b.doctor(&config).await, "provider credentials", "api_key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modem_manager_is_not_fooled_by_a_rule_file() {
    let sim = simulator().await;
    // 13. udev knows the terminal, but no rule marks it: the fix names its ids.
    let b = Box::new(Udev::NotMarked);
    let checks = b
        .doctor(&b.antom(&sim.base_url(), demo::SIMULATOR_PUBLIC_PEM))
        .await;
    fails(&checks, "ModemManager", "1d6b:0104");
    fails(
        &checks,
        "ModemManager",
        "/etc/udev/rules.d/99-posbridge.rules",
    );

    // 14. udev cannot be asked, and the installed rule still holds the example ids.
    let b = Box::new(Udev::ExampleRuleNoUdevadm);
    let checks = b
        .doctor(&b.antom(&sim.base_url(), demo::SIMULATOR_PUBLIC_PEM))
        .await;
    fails(&checks, "ModemManager", "in place of the example 0b00:3070");
    assert!(
        check(&checks, "ModemManager").detail.contains("example"),
        "{}",
        shown(&checks)
    );

    // 15. No rule at all.
    let b = Box::new(Udev::NoRule);
    let checks = b
        .doctor(&b.antom(&sim.base_url(), demo::SIMULATOR_PUBLIC_PEM))
        .await;
    fails(
        &checks,
        "ModemManager",
        "/lib/udev/rules.d/99-posbridge.rules",
    );

    // 16. A USB bulk terminal whose VID:PID the rule does not mark.
    let b = Box::new(Udev::Ignored);
    b.antom(&sim.base_url(), demo::SIMULATOR_PUBLIC_PEM);
    let text = std::fs::read_to_string(b.path("posbridge.toml"))
        .unwrap()
        .replace(
            &format!("device = \"{}\"", b.line.path.display()),
            "usb = \"1234:5678\"",
        );
    std::fs::write(b.path("posbridge.toml"), text).unwrap();
    let checks = b.doctor(&b.path("posbridge.toml")).await;
    fails(&checks, "ModemManager", "1234:5678");

    // ModemManager not running passes on what /proc shows; an unreadable /proc warns.
    let mut b = Box::new(Udev::NoRule);
    std::fs::remove_dir_all(b.env.proc_dir.join("417")).unwrap();
    let config = b.antom(&sim.base_url(), demo::SIMULATOR_PUBLIC_PEM);
    assert_eq!(
        check(&b.doctor(&config).await, "ModemManager").verdict,
        Verdict::Pass
    );
    b.env.proc_dir = b.path("no-proc");
    assert_eq!(
        check(&b.doctor(&config).await, "ModemManager").verdict,
        Verdict::Warn
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_found_as_the_unit_passes_them() {
    let sim = simulator().await;
    let mut b = Box::new(Udev::Ignored);
    let _daemon = LedgerLock::acquire(&b.path("ledger.sqlite")).unwrap();
    // The keys live elsewhere; the configuration names them as credentials.
    let keys = b.path("keys");
    std::fs::create_dir(&keys).unwrap();
    let private = keys.join("merchant_private_key.pem");
    std::fs::write(&private, demo::MERCHANT_PRIVATE_PEM).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(
        keys.join("antom_public_key.pem"),
        demo::SIMULATOR_PUBLIC_PEM,
    )
    .unwrap();
    let config = b.config(&format!(
        "[provider]\nkind = \"antom\"\nbase_url = \"{}\"\nclient_id = \"{}\"\n\
         private_key_file = \"antom-private-key\"\nantom_public_key_file = \"antom-public-key\"\n",
        sim.base_url(),
        demo::ANTOM_CLIENT_ID
    ));

    // 17. Found neither way: no unit lines, no --credentials, nothing beside.
    let checks = b.doctor(&config).await;
    fails(&checks, "key file private_key_file", "--credentials DIR");
    fails(
        &checks,
        "key file private_key_file",
        "LoadCredential=antom-private-key:PATH",
    );
    assert!(
        check(&checks, "key file private_key_file")
            .detail
            .contains("cannot be found")
    );

    // Found by the drop-in's LoadCredential= lines.
    let dropins = b.path("units/posbridge.service.d");
    std::fs::create_dir_all(&dropins).unwrap();
    std::fs::write(
        b.path("units/posbridge.service"),
        "[Service]\nExecStart=/usr/bin/posbridge run\n",
    )
    .unwrap();
    std::fs::write(
        dropins.join("credentials.conf"),
        format!(
            "[Service]\nLoadCredential=antom-private-key:{}\nLoadCredential=antom-public-key:{}\n",
            private.display(),
            keys.join("antom_public_key.pem").display()
        ),
    )
    .unwrap();
    let checks = b.doctor(&config).await;
    all_pass(&checks);
    assert!(
        check(&checks, "key file private_key_file")
            .detail
            .contains("LoadCredential=antom-private-key:"),
        "{}",
        shown(&checks)
    );

    // Found in --credentials DIR (named as systemd would name them there).
    std::fs::remove_file(dropins.join("credentials.conf")).unwrap();
    let creds = b.path("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::copy(&private, creds.join("antom-private-key")).unwrap();
    std::fs::copy(
        keys.join("antom_public_key.pem"),
        creds.join("antom-public-key"),
    )
    .unwrap();
    b.env.credentials = Some(creds);
    let checks = b.doctor(&config).await;
    all_pass(&checks);
    assert!(
        check(&checks, "key file private_key_file")
            .detail
            .contains("--credentials"),
        "{}",
        shown(&checks)
    );

    // `inquire` finds them the same way (--credentials here), and says how.
    let out = Command::new(BIN)
        .args(["inquire", "--refund-id", "nothing", "--credentials"])
        .arg(b.path("creds"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("private_key_file = \"antom-private-key\"")
            && stderr.contains("--credentials"),
        "{stderr}"
    );
    assert_ne!(
        out.status.code(),
        Some(3),
        "keys found, the call was made: {stderr}"
    );
    let out = Command::new(BIN)
        .args(["inquire", "--refund-id", "nothing", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A key file that cannot be found is a configuration that cannot be used.
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("cannot be found"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_has_every_check_and_the_same_exit_status() {
    let sim = simulator().await;
    let b = Box::new(Udev::Ignored);
    let good = b.antom(&sim.base_url(), demo::SIMULATOR_PUBLIC_PEM);
    let run = |config: PathBuf| {
        tokio::task::spawn_blocking(move || {
            Command::new(BIN)
                .args(["doctor", "--json", "--config"])
                .arg(config)
                .output()
                .unwrap()
        })
    };
    let out = run(good.clone()).await.unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let checks = doc["checks"].as_array().unwrap();
    let failed = checks.iter().filter(|c| c["verdict"] == "fail").count();
    assert_eq!(
        out.status.code(),
        Some(if failed == 0 { 0 } else { 1 }),
        "{doc:#}"
    );
    for c in checks {
        assert!(c["name"].is_string() && c["detail"].is_string(), "{c}");
        assert!(["pass", "warn", "fail"].contains(&c["verdict"].as_str().unwrap()));
    }
    assert!(
        checks
            .iter()
            .any(|c| c["name"] == "signed inquiry" && c["verdict"] == "pass"),
        "{doc:#}"
    );

    // Broken: the wrong Antom public key.
    std::fs::write(b.path("antom_public_key.pem"), demo::MERCHANT_PUBLIC_PEM).unwrap();
    let out = run(good).await.unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(doc["result"], "fail");
    let inquiry = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "signed inquiry")
        .unwrap();
    assert_eq!(inquiry["verdict"], "fail");
    assert!(
        inquiry["fix"]
            .as_str()
            .unwrap()
            .contains("antom_public_key_file")
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("PRIVATE KEY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_files_others_can_read_and_bad_configurations_fail() {
    let sim = simulator().await;
    // 18. A private key others can read.
    let b = Box::new(Udev::Ignored);
    let config = b.antom(&sim.base_url(), demo::SIMULATOR_PUBLIC_PEM);
    std::fs::set_permissions(
        b.path("merchant_private_key.pem"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let checks = b.doctor(&config).await;
    fails(&checks, "key file permissions", "chmod 600");
    assert!(!shown(&checks).contains("PRIVATE KEY"));

    // 19. A configuration error stops at the first check, naming line and key, and
    // points at the installed example.
    let broken = b.path("broken.toml");
    std::fs::write(&broken, "[ledger]\npath = 5\n").unwrap();
    let checks = b.doctor(&broken).await;
    assert_eq!(checks.len(), 1);
    fails(
        &checks,
        "configuration",
        "/usr/share/doc/posbridge/examples/posbridge.example.toml",
    );
    assert!(checks[0].detail.contains(":2:") && checks[0].detail.contains("ledger.path"));

    // 20. No terminal on the configured device.
    let b = Box::new(Udev::Ignored);
    b.antom(&sim.base_url(), demo::SIMULATOR_PUBLIC_PEM);
    let text = std::fs::read_to_string(b.path("posbridge.toml"))
        .unwrap()
        .replace(
            &b.line.path.display().to_string(),
            &b.path("posterminal0").display().to_string(),
        );
    std::fs::write(b.path("posbridge.toml"), text).unwrap();
    let checks = b.doctor(&b.path("posbridge.toml")).await;
    fails(&checks, "terminal", "plug the terminal in");
}

/// Another user (nobody), if this test may switch to it.
fn as_nobody() -> Option<Vec<String>> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    Some(
        [
            setpriv,
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    )
}

#[test]
fn an_unreadable_ledger_is_a_permission_problem() {
    // 21. The ledger exists in a directory the user may not enter.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let ledger = state.join("ledger.sqlite");
    posbridge::ledger::Ledger::open(&ledger).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let config = dir.path().join("posbridge.toml");
    std::fs::write(
        &config,
        format!(
            "[ledger]\npath = \"{}\"\n\n[[terminal]]\ndevice = \"/dev/ttyACM9\"\n\n[provider]\nkind = \"ottpay\"\nbase_url = \"http://127.0.0.1:9\"\n\
             app_id = \"a\"\napp_key = \"k\"\n",
            ledger.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut prefix = match as_nobody() {
        Some(prefix) => prefix,
        None if !nix::unistd::geteuid().is_root() => {
            // Not root: the directory must belong to someone else for the test to mean
            // anything, and a non-root user cannot give it away.
            eprintln!("skipped: not root, so no directory of another user can be made");
            return;
        }
        None => {
            eprintln!(
                "skipped: running as root and setpriv is missing, so no other uid can be used"
            );
            return;
        }
    };
    prefix.push(BIN.to_string());
    let run = |args: &[&str]| {
        let out = Command::new(&prefix[0])
            .args(&prefix[1..])
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    for command in [
        vec!["queue"],
        vec!["show", "1"],
        vec!["export", "--format", "csv"],
    ] {
        let (code, out) = run(&command);
        assert_ne!(code, Some(0), "{out}");
        assert!(
            out.contains("sudo -u posbridge posbridge") && out.contains("may not open"),
            "{command:?}: {out}"
        );
        assert!(!out.contains("first start"), "{command:?}: {out}");
    }
    let (code, out) = run(&["doctor"]);
    assert_eq!(code, Some(1), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("✗ ledger"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("permission denied"), "{out}");
    assert!(out.contains("sudo -u posbridge posbridge doctor"), "{out}");
    assert!(!out.contains("will be created"), "{out}");
    // The lock file is as closed to this user as the ledger: whether a daemon runs
    // cannot be told, and doctor must not say none does.
    let daemon = out
        .lines()
        .find(|l| l.contains(" daemon"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(daemon.contains("cannot tell"), "{out}");
    assert!(!out.contains("no posbridge is running"), "{out}");
}
