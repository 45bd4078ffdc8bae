//! The shipper: the daemon's task that sends the ledger's outbox to the fleet's
//! receiver, batch after batch, in order, and records on disk what it confirmed.
//!
//! Each batch starts where the receiver's last answer left off. The receiver says,
//! in every answer, how far it holds this box; that is recorded in the ledger before
//! the next batch is read, so a restart or a power cut resends at most one batch,
//! which the receiver recognises and ignores. A receiver that holds less than was
//! confirmed (restored from a backup) gets everything again from where it stands.
//! Failures back off, with jitter, up to `retry_max_ms`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngExt;

use super::batch::{self, Batch};
use super::config::{FleetConfig, FleetKeys};
use crate::ledger::{FleetPosition, LedgerError, LedgerHandle};
use crate::locks::lock;
use crate::provider::http::describe;

/// Largest answer read from the receiver.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The first wait after a failure.
const FIRST_RETRY: Duration = Duration::from_millis(250);

/// What the shipper has done, for metrics and the demo.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShipperSnapshot {
    /// The outbox's position, as last read.
    pub position: FleetPosition,
    /// Batches the receiver confirmed.
    pub batches: u64,
    /// Transitions in them.
    pub rows: u64,
    /// Failed tries.
    pub failures: u64,
    /// When the receiver last confirmed a batch.
    pub last_confirmed_ms: Option<i64>,
    /// The last failure, while failing.
    pub last_error: Option<String>,
}

/// Shared view of the shipper.
#[derive(Clone, Debug, Default)]
pub struct ShipperStatus(Arc<Mutex<ShipperSnapshot>>);

impl ShipperStatus {
    /// A copy of the current figures.
    pub fn snapshot(&self) -> ShipperSnapshot {
        lock(&self.0).clone()
    }

    fn update(&self, f: impl FnOnce(&mut ShipperSnapshot)) {
        f(&mut lock(&self.0));
    }

    /// The Prometheus text of the fleet metrics: the lag is the age of the oldest
    /// transition the receiver has not confirmed (0 when none is waiting). `position`
    /// is the outbox read now, when the caller has it; otherwise the shipper's last
    /// reading is used, which may be as old as its last try.
    pub fn prometheus(&self, position: Option<FleetPosition>, now_ms: i64) -> String {
        let mut s = self.snapshot();
        if let Some(position) = position {
            s.position = position;
        }
        let lag = s
            .position
            .oldest_unconfirmed_ms
            .map_or(0.0, |at| (now_ms - at).max(0) as f64 / 1000.0);
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            ));
        };
        metric(
            "posbridge_fleet_lag_seconds",
            "gauge",
            "Age of the oldest transition the fleet receiver has not confirmed.",
            format!("{lag:.3}"),
        );
        metric(
            "posbridge_fleet_pending_transitions",
            "gauge",
            "Transitions recorded and not yet confirmed by the fleet receiver.",
            s.position.pending.to_string(),
        );
        metric(
            "posbridge_fleet_confirmed_sequence",
            "gauge",
            "The last sequence the fleet receiver confirmed.",
            s.position.confirmed_seq.to_string(),
        );
        metric(
            "posbridge_fleet_batches_total",
            "counter",
            "Batches the fleet receiver confirmed.",
            s.batches.to_string(),
        );
        metric(
            "posbridge_fleet_failures_total",
            "counter",
            "Tries to ship a batch that failed.",
            s.failures.to_string(),
        );
        metric(
            "posbridge_fleet_last_confirmed_timestamp_seconds",
            "gauge",
            "When the fleet receiver last confirmed a batch (0: never since start).",
            s.last_confirmed_ms.map_or(0, |ms| ms / 1000).to_string(),
        );
        out
    }
}

/// The running shipper.
pub struct Shipper {
    status: ShipperStatus,
    task: tokio::task::JoinHandle<()>,
}

impl Shipper {
    /// Turns the ledger's outbox on and starts shipping with `keys`
    /// ([`FleetConfig::prepare`]).
    pub async fn start(
        config: &FleetConfig,
        keys: FleetKeys,
        ledger: LedgerHandle,
    ) -> Result<Shipper, LedgerError> {
        let FleetKeys { key, client } = keys;
        let box_id = config.box_id.clone();
        let position = ledger.call(move |l| l.fleet_enable(&box_id)).await?;
        tracing::info!(
            box_id = %config.box_id,
            url = %config.url,
            confirmed = position.confirmed_seq,
            pending = position.pending,
            "shipping the ledger to the fleet receiver"
        );
        let status = ShipperStatus::default();
        status.update(|s| s.position = position.clone());
        let run = Run {
            url: config.batch_url(),
            box_id: config.box_id.clone(),
            key,
            client,
            ledger,
            status: status.clone(),
            batch_max: config.batch_max,
            interval: Duration::from_millis(config.interval_ms),
            retry_max: Duration::from_millis(config.retry_max_ms),
        };
        let task = tokio::spawn(run.run(position.confirmed_seq));
        Ok(Shipper { status, task })
    }

    /// Its figures.
    pub fn status(&self) -> ShipperStatus {
        self.status.clone()
    }

    /// Stops it; a batch in flight is sent again by the next start.
    pub fn stop(self) {
        self.task.abort();
    }
}

struct Run {
    url: String,
    box_id: String,
    key: Vec<u8>,
    client: reqwest::Client,
    ledger: LedgerHandle,
    status: ShipperStatus,
    batch_max: usize,
    interval: Duration,
    retry_max: Duration,
}

/// The receiver's word on a batch.
enum Reply {
    /// It holds this box up to `last`.
    Holds(i64),
    /// It holds up to `last` and the batch did not follow: send from there.
    Behind(i64),
    /// It failed; try again later.
    Failed(String),
}

impl Run {
    async fn run(self, mut cursor: i64) {
        let mut failures = 0u32;
        loop {
            let max = self.batch_max;
            let entries = match self.ledger.call(move |l| l.outbox_after(cursor, max)).await {
                Ok(entries) => entries,
                Err(LedgerError::Closed) => return,
                Err(e) => {
                    self.failed(&mut failures, format!("reading the outbox: {e}"))
                        .await;
                    continue;
                }
            };
            if entries.is_empty() {
                self.refresh().await;
                tokio::time::sleep(self.interval).await;
                continue;
            }
            let batch = Batch::new(&self.box_id, cursor, entries);
            let reply = self.send(&batch).await;
            let (holds, behind) = match reply {
                Reply::Holds(last) => (last, false),
                Reply::Behind(last) => (last, true),
                Reply::Failed(why) => {
                    self.failed(&mut failures, why).await;
                    continue;
                }
            };
            if behind && holds < cursor {
                tracing::warn!(
                    box_id = %self.box_id,
                    receiver = holds,
                    confirmed = cursor,
                    "the fleet receiver holds less than it confirmed; sending again from there"
                );
            }
            let box_id = self.box_id.clone();
            let now = jiff::Timestamp::now().as_millisecond();
            match self
                .ledger
                .call(move |l| l.fleet_confirm(&box_id, holds, now))
                .await
            {
                Ok(()) => {}
                Err(LedgerError::Closed) => return,
                Err(e) => {
                    self.failed(&mut failures, e.to_string()).await;
                    continue;
                }
            }
            cursor = holds;
            if !behind {
                if failures > 0 {
                    tracing::info!(box_id = %self.box_id, "fleet receiver reachable again");
                }
                failures = 0;
                let rows = batch.entries.len() as u64;
                self.status.update(|s| {
                    s.batches += 1;
                    s.rows += rows;
                    s.last_confirmed_ms = Some(now);
                    s.last_error = None;
                });
            } else {
                // Sending from where the receiver stands is progress, but a receiver
                // that keeps saying so must not be asked in a tight loop.
                failures += 1;
                if failures > 3 {
                    self.pause(failures).await;
                }
            }
            self.refresh().await;
        }
    }

    async fn send(&self, batch: &Batch) -> Reply {
        let body = batch.encode();
        let signature = batch::sign(&self.key, &body);
        let response = self
            .client
            .post(&self.url)
            .header(batch::BOX_HEADER, &self.box_id)
            .header(batch::SIGNATURE_HEADER, signature)
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(body)
            .send()
            .await;
        let mut response = match response {
            Ok(r) => r,
            Err(e) => return Reply::Failed(format!("fleet receiver: {}", describe(&e))),
        };
        let status = response.status();
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_ANSWER_BYTES => {
                    body.extend_from_slice(&chunk)
                }
                Ok(Some(_)) => return Reply::Failed("fleet receiver: answer too long".into()),
                Ok(None) => break,
                Err(e) => return Reply::Failed(format!("fleet receiver: {}", describe(&e))),
            }
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            last: Option<i64>,
            error: Option<String>,
        }
        let answer: Option<Answer> = serde_json::from_slice(&body).ok();
        let last = answer.as_ref().and_then(|a| a.last).filter(|l| *l >= 0);
        match (status.as_u16(), last) {
            (200, Some(last)) => Reply::Holds(last),
            (409, Some(last)) => Reply::Behind(last),
            (code, _) => {
                let error = answer
                    .and_then(|a| a.error)
                    .map(|e| crate::text::clean_text(&e, 300))
                    .unwrap_or_else(|| "no explanation".into());
                Reply::Failed(format!("fleet receiver answered {code}: {error}"))
            }
        }
    }

    async fn failed(&self, failures: &mut u32, why: String) {
        *failures += 1;
        if *failures == 1 {
            tracing::warn!(box_id = %self.box_id, "fleet: {why}; trying again");
        } else {
            tracing::debug!(box_id = %self.box_id, failures = *failures, "fleet: {why}");
        }
        self.status.update(|s| {
            s.failures += 1;
            s.last_error = Some(why);
        });
        self.refresh().await;
        self.pause(*failures).await;
    }

    async fn pause(&self, failures: u32) {
        let exp = FIRST_RETRY.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
        let capped = exp.min(self.retry_max);
        // Between half and all of it, so boxes that lost the receiver together do
        // not all come back in the same instant.
        let jitter = 0.5 + rand::rng().random::<f64>() / 2.0;
        tokio::time::sleep(capped.mul_f64(jitter)).await;
    }

    async fn refresh(&self) {
        if let Ok(Some(position)) = self.ledger.call(|l| l.fleet_position()).await {
            self.status.update(|s| s.position = position);
        }
    }
}
