//! Security checks: no secret in any output or file of a whole run, private file
//! modes whatever the umask, TLS that cannot be turned off, and a notifyRefund
//! receiver that forged, oversized and slow requests cannot get past or wear down.
//!
//! Each check can fail: the leak scan looks for every secret the run used (the Antom
//! merchant key in every encoding a careless `Debug` or log line would give, the OTT
//! Pay appKey and every token the simulator issued, the PaymentOptions API key) in the
//! bridge's whole trace-level log, every operator command's output, every cell of the
//! ledger and its raw bytes, and every frame the terminal received.

mod common;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::*;
use posbridge::message::RefundState;
use posbridge::provider::antom::keys::PrivateKey;
use posbridge::provider::antom::signing;
use posbridge::provider::http::HttpSettings;
use posbridge::provider::{Outcome, Provider, RefundRequest};
use posbridge::sim::cloud::demo;
use posbridge::sim::cloud::faults::{Fault, FaultRule, FaultTarget};
use posbridge::sim::terminal::TerminalEvent;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_posbridge");

// ---------------------------------------------------------------------------------
// a. No secret leaks.
// ---------------------------------------------------------------------------------

/// Every encoding of `der` a leak could take: Base64 at each of the three byte
/// alignments (a PKCS#1 key is a slice of the PKCS#8 one at another offset) cut in
/// self-contained 24-character chunks, and lower-case hex in 16-byte chunks every 8
/// bytes (any leaked run of 24 bytes or more contains one).
fn der_encodings(der: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for shift in 0..3 {
        let b64 = STANDARD.encode(&der[shift..]);
        for chunk in b64.as_bytes().chunks(24) {
            if chunk.len() == 24 && !chunk.contains(&b'=') {
                out.push(String::from_utf8(chunk.to_vec()).unwrap());
            }
        }
    }
    let mut start = 0;
    while start + 16 <= der.len() {
        out.push(
            der[start..start + 16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        );
        start += 8;
    }
    out
}

fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    STANDARD.decode(body).unwrap()
}

/// The secrets of every provider, by name. Chunks of the private key that also occur
/// in the public key (the modulus is public) are left out.
fn secrets(tokens: &[String]) -> Vec<(String, String)> {
    let pem = demo::MERCHANT_PRIVATE_PEM;
    let mut out = vec![(
        "Antom merchant private key (PEM)".to_string(),
        pem.trim().to_string(),
    )];
    for (i, line) in pem
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.trim().is_empty())
        .enumerate()
    {
        out.push((
            format!("Antom private key PEM line {i}"),
            line.trim().to_string(),
        ));
    }
    let public_der = pem_der(demo::MERCHANT_PUBLIC_PEM);
    let mut public: Vec<String> = (0..3).map(|s| STANDARD.encode(&public_der[s..])).collect();
    public.push(public_der.iter().map(|b| format!("{b:02x}")).collect());
    let mut private_chunks = 0;
    for chunk in der_encodings(&pem_der(pem)) {
        if !public.iter().any(|p| p.contains(&chunk)) {
            private_chunks += 1;
            out.push(("Antom private key DER chunk".to_string(), chunk));
        }
    }
    assert!(
        private_chunks > 200,
        "the private parts give chunks: {private_chunks}"
    );
    out.push((
        "OTT Pay appKey".to_string(),
        demo::OTTPAY_APP_KEY.to_string(),
    ));
    for token in tokens {
        out.push(("OTT Pay access token".to_string(), token.clone()));
    }
    out.push((
        "PaymentOptions API key".to_string(),
        demo::PAYMENTOPTIONS_API_KEY.to_string(),
    ));
    out.push((
        "PaymentOptions Authorization header".to_string(),
        format!("Basic {}", demo::PAYMENTOPTIONS_API_KEY),
    ));
    out
}

/// Every cell of every table, as `table.column=value` lines (blobs as text and hex).
fn dump_ledger(path: &Path) -> String {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(tables.iter().any(|t| t == "refunds"), "{tables:?}");
    let mut out = String::new();
    for table in tables {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{}\"", table.replace('"', "\"\"")))
            .unwrap();
        let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for (i, column) in columns.iter().enumerate() {
                use rusqlite::types::ValueRef;
                let value = match row.get_ref(i).unwrap() {
                    ValueRef::Null => String::new(),
                    ValueRef::Integer(n) => n.to_string(),
                    ValueRef::Real(f) => f.to_string(),
                    ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    ValueRef::Blob(b) => format!(
                        "{} {}",
                        String::from_utf8_lossy(b),
                        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
                    ),
                };
                out.push_str(&format!("{table}.{column}={value}\n"));
            }
        }
    }
    out
}

/// A file's bytes as text, empty if it is not there.
fn raw(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

async fn posbridge(args: Vec<String>) -> Output {
    posbridge_output(args, "trace").await
}

fn both(out: &Output) -> String {
    output_text(out)
}

/// Where every secret must not be.
struct Haystacks(Vec<(String, String)>);

impl Haystacks {
    fn add(&mut self, place: impl Into<String>, text: String) {
        self.0.push((place.into(), text));
    }

    fn assert_free_of(&self, secrets: &[(String, String)]) {
        let mut leaks = Vec::new();
        for (place, text) in &self.0 {
            for (name, secret) in secrets {
                if text.contains(secret.as_str()) {
                    leaks.push(format!("{name} ({secret}) in {place}"));
                }
            }
        }
        assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
    }
}

/// Waits until the terminal hears `id` settled (succeeded, failed or handed to a person).
async fn settled(w: &mut World, id: &str) -> RefundState {
    w.final_update(id).await.state
}

async fn no_secret_leaks(provider: &'static str) {
    let payments = [
        "PAY-OK", "PAY-500", "PAY-DROP", "PAY-SIG", "PAY-DOWN", "PAY-CLI",
    ]
    .iter()
    .map(|id| payment(id, 50_000))
    .collect();
    let mut w = World::new(Setup {
        provider,
        payments,
        bridge_env: vec![("RUST_LOG".into(), "trace".into())],
        ..Setup::default()
    })
    .await;
    let refund_target = match provider {
        "antom" => FaultTarget::AntomRefund,
        "ottpay" => FaultTarget::OttpayRefund,
        _ => FaultTarget::PaymentoptionsRefund,
    };

    // Succeeds; fails (unknown payment); a 500; a dropped connection.
    w.refund("R-OK", "PAY-OK", Some(1000));
    assert_eq!(settled(&mut w, "R-OK").await, RefundState::Succeeded);
    w.refund("R-UNKNOWN", "PAY-NOBODY-KNOWS", Some(1000));
    assert_eq!(settled(&mut w, "R-UNKNOWN").await, RefundState::Failed);
    w.sim.push_fault(FaultRule::once(
        refund_target,
        Fault::HttpStatus { status: 500 },
    ));
    w.refund("R-500", "PAY-500", Some(1000));
    settled(&mut w, "R-500").await;
    w.sim
        .push_fault(FaultRule::once(refund_target, Fault::DropConnection));
    w.refund("R-DROP", "PAY-DROP", Some(1000));
    settled(&mut w, "R-DROP").await;
    // A provider-specific fault: a badly signed answer (Antom), a revoked token whose
    // renewal first fails (OTT Pay), a 401 (PaymentOptions).
    match provider {
        "antom" => w.sim.push_fault(FaultRule::once(
            FaultTarget::AntomRefund,
            Fault::BadSignature,
        )),
        "ottpay" => {
            w.sim.revoke_tokens();
            w.sim.push_fault(FaultRule::once(
                FaultTarget::OttpayToken,
                Fault::HttpStatus { status: 500 },
            ));
        }
        _ => w.sim.push_fault(FaultRule::once(
            refund_target,
            Fault::HttpStatus { status: 401 },
        )),
    }
    w.refund("R-SIG", "PAY-SIG", Some(1000));
    settled(&mut w, "R-SIG").await;
    // Through an outage.
    w.sim.set_down(true).await;
    w.refund("R-DOWN", "PAY-DOWN", Some(1000));
    w.update_in("R-DOWN", RefundState::Queued).await;
    w.sim.set_down(false).await;
    assert_eq!(settled(&mut w, "R-DOWN").await, RefundState::Succeeded);

    let mut hay = Haystacks(Vec::new());
    let config = w.config_path.to_str().unwrap().to_string();
    // One-shot provider calls that fail: their error strings.
    let mut faults = vec![
        FaultRule::once(refund_target, Fault::HttpStatus { status: 500 }),
        FaultRule::once(refund_target, Fault::DropConnection),
    ];
    match provider {
        "antom" => {
            faults.push(FaultRule::once(
                FaultTarget::AntomRefund,
                Fault::BadSignature,
            ));
            faults.push(FaultRule::once(FaultTarget::AntomRefund, Fault::Unsigned));
        }
        "ottpay" => faults.push(FaultRule::once(
            FaultTarget::OttpayToken,
            Fault::HttpStatus { status: 500 },
        )),
        _ => {}
    }
    for (i, fault) in faults.into_iter().enumerate() {
        let name = format!("{:?}", fault.fault);
        w.sim.push_fault(fault);
        let out = posbridge(
            [
                "refund",
                "--config",
                &config,
                "--payment-id",
                "PAY-CLI",
                "--amount",
                "100",
                "--currency",
                "USD",
                "--refund-request-id",
                &format!("cli-{i}"),
            ]
            .map(String::from)
            .to_vec(),
        )
        .await;
        assert_ne!(out.status.code(), Some(0), "{name}: {}", both(&out));
        hay.add(format!("`posbridge refund` under {name}"), both(&out));
    }
    // Operator commands on the ledger while the daemon runs.
    for args in [
        vec!["queue"],
        vec!["show", "R-OK"],
        vec!["show", "R-500"],
        vec!["show", "R-SIG"],
        vec!["export", "--format", "jsonl"],
        vec!["export", "--format", "csv"],
        vec!["doctor"],
    ] {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(["--config".to_string(), config.clone()]);
        let out = posbridge(all).await;
        hay.add(format!("`posbridge {}`", args.join(" ")), both(&out));
    }
    let export = hay.0.iter().find(|(p, _)| p.contains("jsonl")).unwrap();
    assert!(export.1.contains("R-DOWN"), "the export has the refunds");

    let wal = raw(&PathBuf::from(format!("{}-wal", w.ledger_path().display())));
    assert!(w.stop_bridge().success());
    w.drain_events();
    let log = w.full_bridge_log();
    assert!(
        log.contains("TRACE") && log.contains("R-DOWN"),
        "a trace-level log of the run:\n{}",
        w.bridge_log()
    );
    hay.add("the bridge log", log);
    hay.add("the ledger's cells", dump_ledger(&w.ledger_path()));
    hay.add("the ledger file", raw(&w.ledger_path()));
    hay.add("the ledger's write-ahead log while running", wal);
    hay.add(
        "the ledger's write-ahead log after the stop",
        raw(&PathBuf::from(format!("{}-wal", w.ledger_path().display()))),
    );
    hay.add("frames to the terminal", format!("{:#?}", w.seen));
    assert!(
        w.seen
            .iter()
            .any(|e| matches!(e, TerminalEvent::Message(_))),
        "the terminal heard the bridge"
    );

    let tokens = w.sim.issued_tokens();
    if provider == "ottpay" {
        assert!(tokens.len() >= 3, "tokens were issued: {}", tokens.len());
    }
    hay.assert_free_of(&secrets(&tokens));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_leaks_antom() {
    no_secret_leaks("antom").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_leaks_ottpay() {
    no_secret_leaks("ottpay").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_leaks_paymentoptions() {
    no_secret_leaks("paymentoptions").await;
}

#[test]
fn the_leak_scan_finds_a_leak() {
    let secrets = secrets(&["simtoken-7-123".to_string()]);
    let der = pem_der(demo::MERCHANT_PRIVATE_PEM);
    // The key's private exponent region, as hex in a Debug dump, and the PKCS#1 form.
    let hex: String = der[300..340].iter().map(|b| format!("{b:02x}")).collect();
    let pkcs1 = STANDARD.encode(&der[26..]);
    for leaked in [
        format!("key: {hex} ..."),
        format!("-----BEGIN RSA PRIVATE KEY-----\n{}", &pkcs1[600..660]),
        "Authorization: Bearer simtoken-7-123".to_string(),
        format!("x-api-key: {}", demo::PAYMENTOPTIONS_API_KEY),
    ] {
        let hay = Haystacks(vec![("test".into(), leaked.clone())]);
        let caught = std::panic::catch_unwind(|| hay.assert_free_of(&secrets));
        assert!(caught.is_err(), "not caught: {leaked}");
    }
    let public = Haystacks(vec![("public".into(), demo::MERCHANT_PUBLIC_PEM.into())]);
    public.assert_free_of(&secrets);
}

// ---------------------------------------------------------------------------------
// b. File modes.
// ---------------------------------------------------------------------------------

/// A file's permission bits, in octal.
fn mode(path: &Path) -> String {
    format!(
        "{:o}",
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_files_are_0600_and_its_new_directories_0700_under_umask_000() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let ledger = state.join("posbridge").join("ledger.sqlite");
    let config = dir.path().join("posbridge.toml");
    std::fs::write(
        &config,
        format!(
            "[ledger]\npath = \"{}\"\n\n[[terminal]]\ndevice = \"{}\"\n\n{}",
            ledger.display(),
            dir.path().join("no-terminal-yet").display(),
            demo::provider_toml("ottpay", "http://127.0.0.1:9").unwrap()
        ),
    )
    .unwrap();
    let probe = dir.path().join("umask-probe");
    let log = std::fs::File::create(dir.path().join("bridge.log")).unwrap();
    // The shell makes the umask permissive, proves it with a probe file, then becomes
    // the bridge.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("umask 000 && : > \"$1\" && shift && exec \"$@\"")
        .arg("sh")
        .arg(&probe)
        .arg(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "posbridge=debug")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let wal = PathBuf::from(format!("{}-wal", ledger.display()));
    let shm = PathBuf::from(format!("{}-shm", ledger.display()));
    let started = Instant::now();
    while !(ledger.exists() && wal.exists() && shm.exists()) {
        assert!(
            started.elapsed() < WAIT,
            "no ledger files; bridge log:\n{}",
            raw(&dir.path().join("bridge.log"))
        );
        assert!(child.try_wait().unwrap().is_none(), "the bridge exited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(mode(&probe), "666", "the umask was 000");
    assert_eq!(mode(&state), "700", "{}", state.display());
    assert_eq!(mode(&state.join("posbridge")), "700");
    for file in [&ledger, &wal, &shm] {
        assert_eq!(mode(file), "600", "{}", file.display());
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + WAIT;
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the bridge did not stop");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------------
// c. TLS cannot be turned off.
// ---------------------------------------------------------------------------------

/// A daemon configuration around a `[provider]` table.
fn daemon_config(dir: &Path, provider: &str) -> PathBuf {
    let path = dir.join("posbridge.toml");
    std::fs::write(
        &path,
        format!(
            "[ledger]\npath = \"{}\"\n\n[[terminal]]\ndevice = \"/dev/posterminal0\"\n\n{provider}",
            dir.join("ledger.sqlite").display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn check_config_refuses_plain_http_to_a_remote_host_and_insecure_keys() {
    let dir = tempfile::tempdir().unwrap();
    for kind in ["antom", "ottpay", "paymentoptions"] {
        let table = demo::provider_toml(kind, "http://example.com").unwrap();
        let out = Command::new(BIN)
            .args(["check-config", "--config"])
            .arg(daemon_config(dir.path(), &table))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{kind}: {stderr}");
        assert!(
            stderr.contains("`provider.base_url`") && stderr.contains("https is required"),
            "{kind}: {stderr}"
        );

        let local = demo::provider_toml(kind, "http://127.0.0.1:8480").unwrap();
        let out = Command::new(BIN)
            .args(["check-config", "--config"])
            .arg(daemon_config(dir.path(), &local))
            .output()
            .unwrap();
        assert!(out.status.success(), "{kind}: {}", both(&out));

        for insecure in [
            format!("{local}danger_accept_invalid_certs = true\n"),
            format!("{local}[provider.http]\ndanger_accept_invalid_certs = true\n"),
            format!("{local}[provider.http]\naccept_invalid_hostnames = true\n"),
        ] {
            let out = Command::new(BIN)
                .args(["check-config", "--config"])
                .arg(daemon_config(dir.path(), &insecure))
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{kind}: {stderr}");
            assert!(
                stderr.contains("unknown") && stderr.contains("accept_invalid"),
                "{kind}: {stderr}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_warns_that_tls_is_off_for_a_local_simulator() {
    let w = World::new(Setup::default()).await;
    eventually("the TLS warning", || {
        w.full_bridge_log()
            .lines()
            .any(|l| l.contains("WARN") && l.contains("TLS is off") && l.contains("simulator"))
    })
    .await;
}

const SELF_SIGNED_CERT: &[u8] = include_bytes!("fixtures/tls/self_signed_cert.der");
const SELF_SIGNED_KEY: &[u8] = include_bytes!("fixtures/tls/self_signed_key.pk8.der");

/// A TLS server with a self-signed certificate for 127.0.0.1; reports, per
/// connection, how the handshake ended and whether any request bytes came through.
async fn self_signed_server() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(SELF_SIGNED_CERT.to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(SELF_SIGNED_KEY.to_vec())),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let report = match acceptor.accept(stream).await {
                    Err(e) => format!("handshake failed: {e}"),
                    Ok(mut tls) => {
                        let mut buf = [0u8; 64];
                        let n = tls.read(&mut buf).await.unwrap_or(0);
                        format!("request bytes received: {n}")
                    }
                };
                let _ = tx.send(report);
            });
        }
    });
    (addr, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_certificate_fails_the_call() {
    let (addr, mut reports) = self_signed_server().await;
    let base = format!("https://127.0.0.1:{}", addr.port());
    let http = HttpSettings {
        connect_timeout_ms: 5000,
        total_timeout_ms: 10_000,
        ..HttpSettings::default()
    };
    let providers: Vec<Box<dyn Provider>> = vec![
        Box::new(demo::antom_provider(&base, http.clone()).unwrap()),
        Box::new(demo::ottpay_provider(&base, http.clone()).unwrap()),
        Box::new(demo::paymentoptions_provider(&base, http).unwrap()),
    ];
    for provider in providers {
        let outcome = provider
            .refund(&RefundRequest {
                refund_request_id: "tls-1".into(),
                original_merchant_refund_id: None,
                payment_id: "PAY-1".into(),
                amount: Some(usd(100)),
                memo: None,
            })
            .await;
        let name = provider.name();
        match &outcome {
            Outcome::RetrySameRequest { reason } => assert!(
                reason.contains("certificate") && reason.contains("nothing sent"),
                "{name}: {reason}"
            ),
            other => panic!("{name}: {other:?}"),
        }
        let report = tokio::time::timeout(WAIT, reports.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(report.starts_with("handshake failed"), "{name}: {report}");
    }
}

// ---------------------------------------------------------------------------------
// d. notifyRefund.
//
// Already in tests/provider_antom.rs (`notify_receiver_rejects_forgeries_and_
// oversized_bodies`), against the receiver alone: a notification signed with the
// wrong key and one without any of the three headers get 401, a 10 KB body whose
// length is declared gets 413, and nothing is delivered. Here, against the running
// daemon and its ledger: a tampered body, a missing signature header alone, another
// client id, an unknown refund, a body declared far larger than it is sent, a
// slow-loris client, and many idle connections.
// ---------------------------------------------------------------------------------

const HEADER_READ_TIMEOUT_MS: u64 = 1500;
/// Connections the receiver serves at once; more wait in the kernel's queue.
const MAX_CONNECTIONS: u64 = 100;
const NOTIFY_PATH: &str = "/antom/notifyRefund";

/// The receiver's address, from the daemon's log.
async fn notify_addr(w: &World) -> SocketAddr {
    logged_addr(w, "notifyRefund receiver on").await
}

fn notification(refund_request_id: &str, refund_id: &str) -> String {
    serde_json::json!({
        "notifyType": "REFUND_RESULT",
        "result": {"resultCode": "SUCCESS", "resultStatus": "S", "resultMessage": "success"},
        "refundStatus": "SUCCESS",
        "refundRequestId": refund_request_id,
        "refundId": refund_id,
        "refundAmount": {"value": 700, "currency": "USD"},
        "refundTime": "2026-04-10T11:32:54Z",
    })
    .to_string()
}

fn antom_signature(client_id: &str, time: &str, body: &str) -> String {
    let key = PrivateKey::parse(demo::SIMULATOR_PRIVATE_PEM).unwrap();
    signing::signature_header(&key, 1, NOTIFY_PATH, client_id, time, body.as_bytes()).unwrap()
}

/// What must not change when a notification is refused: the refunds' states,
/// results and provider ids, their attempts, and every transition but the inquiry
/// polls that keep a refund in process (one per poll).
fn ledger_facts(w: &World) -> String {
    let conn = rusqlite::Connection::open_with_flags(
        w.ledger_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut out = String::new();
    for sql in [
        "SELECT id, state, provider_refund_id, result_code, result_message, refund_time FROM refunds ORDER BY id",
        "SELECT * FROM transitions WHERE NOT (from_state = 'PROCESSING' AND to_state = 'PROCESSING' \
         AND cause LIKE 'inquiry:%') ORDER BY id",
        "SELECT id, refund_request_id, status FROM attempts ORDER BY id",
    ] {
        let mut stmt = conn.prepare(sql).unwrap();
        let n = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for i in 0..n {
                let v: rusqlite::types::Value = row.get(i).unwrap();
                out.push_str(&format!("{v:?}|"));
            }
            out.push('\n');
        }
    }
    out
}

async fn post(addr: SocketAddr, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .post(format!("http://{addr}{NOTIFY_PATH}"))
        .header("content-type", "application/json")
        .body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// Reads until a whole response head has come, or the peer closed.
async fn until_answered(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_refund_refuses_forgeries_big_bodies_and_slow_clients() {
    let mut w = World::new(Setup {
        payments: vec![async_payment("PAY-N", 5000)],
        // The simulator keeps the refund in process: only a notification settles it.
        async_delay: Duration::from_secs(3600),
        extra_config: format!(
            "[provider.notify]\nlisten = \"127.0.0.1:0\"\npath = \"{NOTIFY_PATH}\"\n\
             max_body_bytes = 4096\nheader_read_timeout_ms = {HEADER_READ_TIMEOUT_MS}\n\
             max_connections = {MAX_CONNECTIONS}\n"
        ),
        ..Setup::default()
    })
    .await;
    let addr = notify_addr(&w).await;
    w.refund("R-N", "PAY-N", Some(700));
    let rrid = w
        .update_in("R-N", RefundState::Processing)
        .await
        .refund_request_id;
    let before = ledger_facts(&w);
    let client = demo::ANTOM_CLIENT_ID;
    let now = jiff::Timestamp::now().as_millisecond().to_string();
    let time = now.as_str();
    // The refund id the provider gave when it took the refund in process: a genuine
    // notification names the same one.
    let refund_id = w
        .ledger()
        .find("TERM-1", "R-N")
        .unwrap()
        .unwrap()
        .provider_refund_id
        .expect("the in-process answer named the refund");
    let body = notification(&rrid, &refund_id);
    let good = antom_signature(client, time, &body);

    // Tampered: signed by Antom's key, then the body changed.
    let tampered = body.replace(&refund_id, &format!("{refund_id}X"));
    let (status, _) = post(
        addr,
        &[
            ("client-id", client),
            ("request-time", time),
            ("signature", &good),
        ],
        &tampered,
    )
    .await;
    assert_eq!(status, 401, "tampered body");
    // The signature header alone missing.
    let (status, _) = post(
        addr,
        &[("client-id", client), ("request-time", time)],
        &body,
    )
    .await;
    assert_eq!(status, 401, "no signature");
    // Validly signed by Antom's key, but for another client.
    let other = "SANDBOX_SOMEONE_ELSE";
    let (status, _) = post(
        addr,
        &[
            ("client-id", other),
            ("request-time", time),
            ("signature", &antom_signature(other, time, &body)),
        ],
        &body,
    )
    .await;
    assert_eq!(status, 401, "another client id");
    // Signed for our client, but the header names another one.
    let (status, _) = post(
        addr,
        &[
            ("client-id", other),
            ("request-time", time),
            ("signature", &good),
        ],
        &body,
    )
    .await;
    assert_eq!(status, 401, "client id header changed");
    // A genuine notification about a refund this bridge never sent.
    let unknown = notification("never-sent-by-this-bridge", "SIMREF-UNKNOWN");
    let (status, answer) = post(
        addr,
        &[
            ("client-id", client),
            ("request-time", time),
            ("signature", &antom_signature(client, time, &unknown)),
        ],
        &unknown,
    )
    .await;
    // Genuine (Antom signed it), so it is acknowledged rather than sent again eight
    // times, and it changes nothing: the worker finds no refund with that id and
    // records nothing (`bridge::worker::notification`).
    assert_eq!(status, 200, "unknown refund: {answer}");
    // Genuine, but an hour old by its Request-Time: a replay, refused unread.
    let old = (jiff::Timestamp::now().as_millisecond() - 3_600_000).to_string();
    let (status, answer) = post(
        addr,
        &[
            ("client-id", client),
            ("request-time", &old),
            ("signature", &antom_signature(client, &old, &unknown)),
        ],
        &unknown,
    )
    .await;
    assert_eq!(status, 400, "an old notification: {answer}");
    assert!(answer.contains("Request-Time"), "{answer}");

    // A body declared at 50 MB: 413 once past the limit, long before the rest.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {NOTIFY_PATH} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         client-id: {client}\r\nrequest-time: {time}\r\nsignature: {good}\r\n\
         content-length: 50000000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[b' '; 8192]).await.unwrap();
    let answer = tokio::time::timeout(WAIT, until_answered(&mut stream))
        .await
        .expect("answered without the whole body");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // Slow loris: one byte of headers a second; cut off at the header timeout.
    let stream = TcpStream::connect(addr).await.unwrap();
    let opened = Instant::now();
    let (mut reader, mut writer) = stream.into_split();
    let dripping = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        for byte in format!("POST {NOTIFY_PATH} HTTP/1.1\r\nhost: x\r\nx-pad: ")
            .bytes()
            .chain(std::iter::repeat(b'a'))
        {
            tick.tick().await;
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
        }
    });
    let limit = Duration::from_millis(HEADER_READ_TIMEOUT_MS + 1500);
    tokio::time::timeout(limit, until_closed(&mut reader))
        .await
        .expect("the slow client is cut off within the header timeout");
    let lasted = opened.elapsed();
    assert!(
        lasted >= Duration::from_millis(HEADER_READ_TIMEOUT_MS - 100),
        "cut off by the timeout, not for its bytes: {lasted:?}"
    );
    dripping.abort();

    assert_eq!(ledger_facts(&w), before, "the refused ones changed nothing");
    assert_eq!(
        w.ledger().find("TERM-1", "R-N").unwrap().unwrap().state,
        RefundState::Processing
    );

    // Many idle connections, some silent and some mid-headers, then the genuine one.
    let opened = Instant::now();
    let mut idle = Vec::new();
    for i in 0..200 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        if i % 2 == 1 {
            s.write_all(b"POST /antom/notifyRefund HTTP/1.1\r\n")
                .await
                .unwrap();
        }
        idle.push(s);
    }
    let (status, answer) = post(
        addr,
        &[
            ("client-id", client),
            ("request-time", time),
            ("signature", &good),
        ],
        &body,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("SUCCESS"), "{answer}");
    let done = w.final_update("R-N").await;
    assert_eq!(done.state, RefundState::Succeeded);
    assert_eq!(done.refund_id.as_deref(), Some(refund_id.as_str()));
    // And the idle ones do not stay forever: each is closed at the header timeout once
    // it is served, and they are served MAX_CONNECTIONS at a time.
    let rounds = (idle.len() as u64).div_ceil(MAX_CONNECTIONS);
    let limit = Duration::from_millis(HEADER_READ_TIMEOUT_MS * rounds + 1500);
    for (i, s) in idle.iter_mut().enumerate() {
        let left = (opened + limit).saturating_duration_since(Instant::now());
        tokio::time::timeout(left, until_closed(s))
            .await
            .unwrap_or_else(|_| panic!("idle connection {i} still open after {limit:?}"));
    }
}
