//! `posbridge fleet serve`: takes batches from many boxes, checks their signatures,
//! and stores each in PostgreSQL in one transaction.
//!
//! Answers, all JSON: `200 {"box_id","last","stored"}` when the batch is stored or
//! was already; `409 {"error","last"}` when it does not follow what is stored (the
//! box sends again from `last`); `401` for a bad or missing signature; `400` for a
//! malformed batch; `413` for one over the size limit; `422` when a re-sent
//! transition differs from the stored one; `503` while the database is away.
//! `GET /healthz` says whether the database answers; `GET /metrics` counts batches.
//!
//! Batches of one box go through one database connection, in turn; boxes spread
//! over `connections` connections. The schema is created or migrated on the first
//! connection, and again after the database comes back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio_postgres::Client;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_util::sync::CancellationToken;

use super::batch::{self, BATCH_PATH, Batch};
use crate::provider::serve::{ServeLimits, serve_bounded_tls};

/// Boxes served at once; more wait in the listen queue. Each holds one batch's body at
/// most, so this bounds the receiver's memory.
const MAX_CONNECTIONS: usize = 256;
use super::store::{self, Applied, Database, StoreError};

/// What the receiver needs.
pub struct ReceiverSettings {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The database.
    pub database: Database,
    /// The fleet's secret, from which each box's key is derived.
    pub fleet_secret: Vec<u8>,
    /// TLS with the receiver's own certificate; `None` behind a TLS proxy.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Database connections (boxes are spread over them).
    pub connections: usize,
    /// Largest batch body accepted.
    pub max_body_bytes: usize,
    /// Time a client has to send its request headers (and TLS handshake).
    pub header_read_timeout: Duration,
}

/// Counters since the receiver started.
#[derive(Debug, Default)]
pub struct ReceiverStats {
    /// Batches stored.
    pub batches_stored: AtomicU64,
    /// Transitions stored.
    pub rows_stored: AtomicU64,
    /// Batches that were held already.
    pub batches_held: AtomicU64,
    /// Batches that did not follow the stored position.
    pub batches_out_of_turn: AtomicU64,
    /// Batches refused: signature, format, conflict.
    pub batches_refused: AtomicU64,
    /// Batches answered 503: the database was away.
    pub batches_unavailable: AtomicU64,
}

/// A running receiver.
pub struct Receiver {
    local_addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    stats: Arc<ReceiverStats>,
}

struct Shared {
    pool: Pool,
    max_body_bytes: usize,
    body_timeout: Duration,
    fleet_secret: Vec<u8>,
    stats: Arc<ReceiverStats>,
}

impl Receiver {
    /// Binds, tries the database once (a wrong password or URL is reported now; a
    /// database that is merely down is waited for), and serves.
    pub async fn start(settings: ReceiverSettings) -> Result<Receiver, String> {
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| format!("listener: {e}"))?;
        let stats = Arc::new(ReceiverStats::default());
        let shared = Arc::new(Shared {
            pool: Pool::new(settings.database, settings.connections.max(1)),
            max_body_bytes: settings.max_body_bytes,
            // A batch of the largest size crosses a slow line in well under this.
            body_timeout: Duration::from_secs(60),
            fleet_secret: settings.fleet_secret,
            stats: stats.clone(),
        });
        match shared.pool.health().await {
            Ok(()) => {}
            Err(StoreError::Unavailable(e)) => {
                tracing::warn!("the database is not reachable yet ({e}); batches wait for it")
            }
            Err(e) => return Err(e.to_string()),
        }
        let router = Router::new()
            .route(BATCH_PATH, post(receive))
            .route("/healthz", get(health))
            .route("/metrics", get(metrics))
            .with_state(shared);
        let stop = CancellationToken::new();
        let limits = ServeLimits {
            header_read_timeout: settings.header_read_timeout,
            max_connections: MAX_CONNECTIONS,
        };
        let task = tokio::spawn(serve_bounded_tls(
            listener,
            router,
            limits,
            settings.tls.map(TlsAcceptor::from),
            stop.clone(),
        ));
        Ok(Receiver {
            local_addr,
            stop,
            task,
            stats,
        })
    }

    /// The address bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Its counters.
    pub fn stats(&self) -> &ReceiverStats {
        &self.stats
    }

    /// Stops accepting connections.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// The receiver's TLS settings from PEM files: its certificate chain and key, and
/// optionally the CA whose certificates boxes must present (mutual TLS).
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
    client_ca: Option<&std::path::Path>,
) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|c| c.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "--tls-cert {}: no certificate in it",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca)
                .map_err(|e| format!("--client-ca {}: {e}", ca.display()))?
            {
                let c = c.map_err(|e| format!("--client-ca {}: {e}", ca.display()))?;
                roots
                    .add(c)
                    .map_err(|e| format!("--client-ca {}: {e}", ca.display()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| format!("--client-ca {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn refuse(shared: &Shared, status: StatusCode, error: String) -> Response {
    shared.stats.batches_refused.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(status = status.as_u16(), "batch refused: {error}");
    answer(status, serde_json::json!({ "error": error }))
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > shared.max_body_bytes as u64) {
        return refuse(
            &shared,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the batch is over {} bytes", shared.max_body_bytes),
        );
    }
    // A client that trickles its body must not hold a connection for ever.
    let body = match tokio::time::timeout(
        shared.body_timeout,
        axum::body::to_bytes(body, shared.max_body_bytes),
    )
    .await
    {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => {
            return refuse(
                &shared,
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the body could not be read within {} bytes: {e}",
                    shared.max_body_bytes
                ),
            );
        }
        Err(_) => {
            return refuse(
                &shared,
                StatusCode::REQUEST_TIMEOUT,
                format!("the body did not arrive within {:?}", shared.body_timeout),
            );
        }
    };
    let Some(box_id) = headers.get(batch::BOX_HEADER).and_then(|v| v.to_str().ok()) else {
        return refuse(
            &shared,
            StatusCode::UNAUTHORIZED,
            format!("no {} header", batch::BOX_HEADER),
        );
    };
    let key = match batch::box_key(&shared.fleet_secret, box_id) {
        Ok(key) => key,
        Err(e) => return refuse(&shared, StatusCode::UNAUTHORIZED, e.to_string()),
    };
    let signature = headers
        .get(batch::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if let Err(e) = batch::verify(key.as_bytes(), &body, signature) {
        return refuse(
            &shared,
            StatusCode::UNAUTHORIZED,
            format!("box {box_id}: {e}"),
        );
    }
    let batch = match Batch::decode(&body) {
        Ok(b) => b,
        Err(e) => {
            return refuse(
                &shared,
                StatusCode::BAD_REQUEST,
                format!("box {box_id}: {e}"),
            );
        }
    };
    if batch.header.box_id != box_id {
        return refuse(
            &shared,
            StatusCode::BAD_REQUEST,
            format!(
                "the {} header says {box_id:?}, the batch {:?}",
                batch::BOX_HEADER,
                batch.header.box_id
            ),
        );
    }
    let stats = &shared.stats;
    match shared.pool.apply(&batch).await {
        Ok(Applied::Stored { last, rows }) => {
            stats.batches_stored.fetch_add(1, Ordering::Relaxed);
            stats.rows_stored.fetch_add(rows as u64, Ordering::Relaxed);
            tracing::debug!(box_id, last, rows, "batch stored");
            answer(
                StatusCode::OK,
                serde_json::json!({ "box_id": box_id, "last": last, "stored": rows }),
            )
        }
        Ok(Applied::AlreadyHeld { last }) => {
            stats.batches_held.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(box_id, last, prev = batch.header.prev, "batch held already");
            answer(
                StatusCode::OK,
                serde_json::json!({ "box_id": box_id, "last": last, "stored": 0 }),
            )
        }
        Ok(Applied::Gap { last }) => {
            stats.batches_out_of_turn.fetch_add(1, Ordering::Relaxed);
            tracing::info!(box_id, last, prev = batch.header.prev, "batch out of turn");
            answer(
                StatusCode::CONFLICT,
                serde_json::json!({
                    "error": format!("the batch follows {} but {last} is stored; send from {last}",
                        batch.header.prev),
                    "last": last,
                }),
            )
        }
        Err(StoreError::Unavailable(e)) => {
            stats.batches_unavailable.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(box_id, "database unavailable: {e}");
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({ "error": "the database is unavailable; send again later" }),
            )
        }
        Err(e @ StoreError::Conflict(_)) => {
            refuse(&shared, StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        }
        Err(e) => {
            tracing::error!(box_id, "batch not stored: {e}");
            shared.stats.batches_refused.fetch_add(1, Ordering::Relaxed);
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({ "error": e.to_string() }),
            )
        }
    }
}

async fn health(State(shared): State<Arc<Shared>>) -> Response {
    match shared.pool.health().await {
        Ok(()) => answer(StatusCode::OK, serde_json::json!({ "database": "ok" })),
        Err(e) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "database": e.to_string() }),
        ),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let s = &shared.stats;
    let mut out = String::new();
    for (name, help, value) in [
        (
            "posbridge_fleet_batches_stored_total",
            "Batches stored.",
            &s.batches_stored,
        ),
        (
            "posbridge_fleet_rows_stored_total",
            "Transitions stored.",
            &s.rows_stored,
        ),
        (
            "posbridge_fleet_batches_held_total",
            "Batches stored already (re-sent).",
            &s.batches_held,
        ),
        (
            "posbridge_fleet_batches_out_of_turn_total",
            "Batches that did not follow the stored position.",
            &s.batches_out_of_turn,
        ),
        (
            "posbridge_fleet_batches_refused_total",
            "Batches refused.",
            &s.batches_refused,
        ),
        (
            "posbridge_fleet_batches_unavailable_total",
            "Batches answered 503 while the database was away.",
            &s.batches_unavailable,
        ),
    ] {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
            value.load(Ordering::Relaxed)
        ));
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// Database connections, one box always on the same one.
struct Pool {
    database: Database,
    slots: Vec<Mutex<Option<Client>>>,
    migrated: AtomicBool,
}

impl Pool {
    fn new(database: Database, connections: usize) -> Pool {
        Pool {
            database,
            slots: (0..connections).map(|_| Mutex::new(None)).collect(),
            migrated: AtomicBool::new(false),
        }
    }

    fn slot(&self, box_id: &str) -> &Mutex<Option<Client>> {
        // FNV-1a: stable, and spreads short names well enough.
        let hash = box_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        &self.slots[(hash % self.slots.len() as u64) as usize]
    }

    async fn ready<'a>(&self, slot: &'a mut Option<Client>) -> Result<&'a mut Client, StoreError> {
        if slot.as_ref().is_some_and(Client::is_closed) {
            *slot = None;
        }
        if slot.is_none() {
            let mut client = self.database.connect().await?;
            if !self.migrated.load(Ordering::Acquire) {
                store::migrate(&mut client).await?;
                self.migrated.store(true, Ordering::Release);
            }
            *slot = Some(client);
        }
        slot.as_mut()
            .ok_or_else(|| StoreError::Unavailable("no connection".into()))
    }

    async fn apply(&self, batch: &Batch) -> Result<Applied, StoreError> {
        let mut guard = self.slot(&batch.header.box_id).lock().await;
        let client = self.ready(&mut guard).await?;
        let result = store::apply(client, batch).await;
        if matches!(result, Err(StoreError::Unavailable(_))) {
            // A restarted database may have been restored from a backup: check the
            // schema again with the next connection.
            *guard = None;
            self.migrated.store(false, Ordering::Release);
        }
        result
    }

    async fn health(&self) -> Result<(), StoreError> {
        let mut guard = self.slot("").lock().await;
        let client = self.ready(&mut guard).await?;
        let result = client.simple_query("SELECT 1").await.map(|_| ());
        if result.is_err() {
            *guard = None;
        }
        Ok(result?)
    }
}
