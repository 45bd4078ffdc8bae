//! `posbridge run`: the service's main loop.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::bridge::Bridge;
use crate::bridge::texts::Language;
use crate::config::Config;
use crate::fleet::config::FleetKeys;
use crate::ledger::{Ledger, LedgerError, LedgerHandle};
use crate::provider::antom::keys::PublicKey;
use crate::provider::antom::notify::{NotifyConfig, NotifyReceiver};
use crate::provider::{ProviderConfig, build_provider};
use crate::transport::{Reopen, TransportConfig};

use super::lock::{self, LedgerLock, LockError};
use super::systemd;

/// How often a terminal line that is away is looked for again.
const REOPEN_EVERY: Duration = Duration::from_millis(500);

/// What stopped the daemon from starting, with the words an operator needs; the
/// error it came from stays its source.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration names something that cannot be used: the message names the
    /// file, the line and the key.
    #[error("{0}")]
    Config(String),
    /// The ledger cannot be created, opened or written.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The ledger's lock: another daemon holds it, or it cannot be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A listener cannot be bound or started.
    #[error("{what} on {addr}: {source}")]
    Listen {
        /// Which listener (the metrics endpoint, the notifyRefund receiver).
        what: &'static str,
        /// Where it was to listen.
        addr: std::net::SocketAddr,
        /// Why it could not.
        #[source]
        source: std::io::Error,
    },
}

impl StartError {
    /// Another daemon holds the ledger: nothing is wrong with this configuration.
    pub fn ledger_held(&self) -> bool {
        matches!(self, StartError::Lock(LockError::Held { .. }))
    }
}

/// What [`preflight`] found usable: the provider, built with its keys; Antom's public
/// key if the notifyRefund receiver is on; every terminal line; the fleet's key and
/// client if the ledger is shipped.
pub struct Checked {
    provider: Arc<dyn crate::provider::Provider>,
    notify: Option<(NotifyConfig, String, PublicKey)>,
    lines: Vec<(String, TransportConfig, Option<Language>)>,
    fleet: Option<FleetKeys>,
}

/// Every check `posbridge run` makes before it creates, opens or binds anything:
/// the keys and credentials (their files' modes included), the notifyRefund
/// receiver's settings, the terminal lines, the fleet's key and certificates, and whether the ledger's file and
/// directory can be written. `posbridge check-config` runs the same checks, so it
/// refuses whatever `run` would. Errors name the file, the line and the key.
pub fn preflight(config: &Config) -> Result<Checked, StartError> {
    let provider = build_provider(&config.provider)
        .map_err(|e| StartError::Config(config.provider_error(&e).to_string()))?;
    let notify = match &config.provider {
        ProviderConfig::Antom(antom) => match &antom.notify {
            Some(notify) => {
                let key = antom
                    .load_antom_public_key()
                    .map_err(|e| StartError::Config(config.provider_error(&e).to_string()))?;
                Some((notify.clone(), antom.client_id.clone(), key))
            }
            None => None,
        },
        _ => None,
    };
    let mut lines = Vec::new();
    for (i, terminal) in config.terminals.iter().enumerate() {
        let transport = terminal.transport().map_err(|e| {
            StartError::Config(
                config
                    .error_at(Some(&format!("terminal[{i}]")), &e)
                    .to_string(),
            )
        })?;
        lines.push((terminal.label(), transport, terminal.language));
    }
    let fleet = match &config.fleet {
        Some(fleet) => Some(fleet.prepare().map_err(|e| {
            StartError::Config(config.error_at(Some(e.setting), &e.reason).to_string())
        })?),
        None => None,
    };
    Ledger::check_location(&config.ledger.path)?;
    Ok(Checked {
        provider,
        notify,
        lines,
        fleet,
    })
}

/// A running daemon.
pub struct Daemon {
    /// The bridge.
    pub bridge: Bridge,
    notify: Option<NotifyReceiver>,
    fleet: Option<crate::fleet::Shipper>,
    /// Where the metrics endpoint listens, if it is on.
    pub metrics: Option<std::net::SocketAddr>,
    grace: Duration,
    _lock: LedgerLock,
}

impl Daemon {
    /// Checks everything ([`preflight`]), refuses a ledger another daemon holds,
    /// binds the listeners, and only then takes the ledger's lock, opens (or creates)
    /// the ledger and starts the bridge on every configured terminal line.
    pub async fn start(config: &Config) -> Result<Daemon, StartError> {
        let checked = preflight(config)?;
        let path = &config.ledger.path;
        // Refused before binding anything; an unreadable lock file is left to
        // `LedgerLock::acquire`, which names it.
        if let lock::Holder::Daemon(holder) = lock::holder(path) {
            return Err(StartError::Lock(LockError::Held {
                ledger: path.display().to_string(),
                holder,
            }));
        }
        let notify_listener = match &checked.notify {
            Some((notify, ..)) => Some(bind(notify.listen, "notifyRefund receiver").await?),
            None => None,
        };
        let metrics_listener = match &config.metrics {
            Some(m) => Some(bind(m.listen, "metrics endpoint").await?),
            None => None,
        };
        crate::ledger::ensure_directory(path)?;
        let lock = LedgerLock::acquire(path)?;
        let ledger = LedgerHandle::spawn(Ledger::open(path)?)?;
        let bridge = Bridge::start(ledger, checked.provider, config.bridge_settings());
        for (label, transport, language) in checked.lines {
            tracing::info!(terminal = %label, line = %transport, "serving terminal line");
            let baud = transport.baud();
            bridge.serve(
                &label,
                Reopen::new(transport, REOPEN_EVERY),
                baud,
                None,
                language,
            );
        }
        let notify = match (checked.notify, notify_listener) {
            (Some((notify, client_id, key)), Some(listener)) => {
                let (tx, rx) = mpsc::channel(64);
                let receiver = NotifyReceiver::serve(listener, &notify, &client_id, key, tx)
                    .map_err(|source| StartError::Listen {
                        what: "notifyRefund receiver",
                        addr: notify.listen,
                        source,
                    })?;
                tracing::info!(listen = %receiver.local_addr(), path = %notify.path, "notifyRefund receiver on");
                bridge.consume_notifications(rx);
                Some(receiver)
            }
            _ => None,
        };
        let fleet = start_fleet(config, checked.fleet, &bridge).await?;
        let metrics = match (&config.metrics, metrics_listener) {
            (Some(m), Some(listener)) => Some(
                super::metrics::serve(
                    listener,
                    m,
                    bridge.clone(),
                    notify.as_ref().map(NotifyReceiver::stats),
                    fleet.as_ref().map(|f| f.status()),
                )
                .map_err(|source| StartError::Listen {
                    what: "metrics endpoint",
                    addr: m.listen,
                    source,
                })?,
            ),
            _ => None,
        };
        Ok(Daemon {
            bridge,
            notify,
            fleet,
            metrics,
            grace: Duration::from_millis(config.shutdown.grace_ms),
            _lock: lock,
        })
    }

    /// Stops cleanly: no new requests, calls in flight finish (or are left to resume).
    pub async fn stop(self) {
        if let Some(fleet) = self.fleet {
            fleet.stop();
        }
        if let Some(notify) = self.notify {
            notify.shutdown().await;
        }
        self.bridge.shutdown(self.grace).await;
    }
}

async fn bind(addr: std::net::SocketAddr, what: &'static str) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { what, addr, source })
}

/// Starts shipping the ledger when `[fleet]` is configured; otherwise turns the
/// outbox off, so no copies pile up for a sink that does not exist.
async fn start_fleet(
    config: &Config,
    keys: Option<FleetKeys>,
    bridge: &Bridge,
) -> Result<Option<crate::fleet::Shipper>, StartError> {
    match (&config.fleet, keys) {
        (Some(fleet), Some(keys)) => {
            let shipper = crate::fleet::Shipper::start(fleet, keys, bridge.ledger().clone());
            Ok(Some(shipper.await?))
        }
        _ => {
            bridge.ledger().call(|l| l.fleet_disable()).await?;
            Ok(None)
        }
    }
}

/// Runs the daemon with `config` until `shutdown` completes (the binary passes
/// SIGTERM or Ctrl-C), then stops it as `[shutdown]` says.
pub async fn run(config: &Config, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    let base_url = config.provider.base_url();
    if crate::provider::settings::is_plain_http_loopback(base_url) {
        tracing::warn!(
            provider = config.provider.name(),
            base_url,
            "TLS is off: provider.base_url is plain http:// because it is a local simulator \
             on this machine; a real provider needs https://"
        );
    }
    let daemon = Daemon::start(config).await?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        terminals = config.terminals.len(),
        provider = config.provider.name(),
        ledger = %config.ledger.path.display(),
        "posbridge running"
    );
    systemd::ready(&format!(
        "serving {} terminal line(s) for {}",
        config.terminals.len(),
        config.provider.name()
    ));
    let watchdog = systemd::watchdog_timeout()
        .map(|timeout| tokio::spawn(feed_watchdog(daemon.bridge.clone(), timeout)));
    shutdown.await;
    tracing::info!("stopping");
    systemd::stopping();
    if let Some(w) = watchdog {
        w.abort();
    }
    let bridge = daemon.bridge.clone();
    daemon.stop().await;
    let stats = bridge.stats();
    let micros = |q: f64, h: &crate::bridge::Histogram| {
        h.quantile(q).map(|d| d.as_micros() as u64).unwrap_or(0)
    };
    tracing::info!(
        refunds_sent = stats.own_latency.count(),
        own_latency_p50_us = micros(0.5, &stats.own_latency),
        own_latency_p99_us = micros(0.99, &stats.own_latency),
        cloud_latency_p50_us = micros(0.5, &stats.cloud_latency),
        cloud_latency_p99_us = micros(0.99, &stats.cloud_latency),
        record_latency_p50_us = micros(0.5, &stats.record_latency),
        record_latency_p99_us = micros(0.99, &stats.record_latency),
        "stopped"
    );
    Ok(())
}

/// Pets systemd's watchdog only while the bridge really works: each time, the
/// ledger must answer a query, which also proves the runtime is scheduling tasks. A
/// stuck ledger (full disk, hung I/O) or a stalled runtime lets the watchdog fire.
async fn feed_watchdog(bridge: Bridge, timeout: Duration) {
    let (every, deadline) = watchdog_schedule(timeout);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let alive = tokio::time::timeout(deadline, bridge.ledger().call(|l| l.counts())).await;
        match alive {
            Ok(Ok(counts)) => {
                systemd::watchdog();
                let status = bridge.status();
                systemd::status(&format!(
                    "{} terminal(s) connected, cloud {}, {} refund(s) unsettled, {} need a person",
                    status.terminals.len(),
                    if status.online {
                        "online"
                    } else {
                        "unreachable"
                    },
                    counts.unfinished,
                    counts.in_state(crate::message::RefundState::NeedsAttention)
                ));
            }
            Ok(Err(e)) => tracing::error!("watchdog: the ledger fails: {e}"),
            Err(_) => tracing::error!("watchdog: the ledger did not answer within {deadline:?}"),
        }
    }
}

/// How often to check and pet the watchdog, and how long the ledger may take to
/// answer, for a watchdog `timeout`. Pets start on a fixed beat and each check ends
/// before the next beat, so a slow but healthy ledger keeps pets at most half the
/// timeout apart; one that stops answering lets the watchdog fire one timeout after
/// its last answer.
fn watchdog_schedule(timeout: Duration) -> (Duration, Duration) {
    let every = (timeout / 4).max(Duration::from_millis(1));
    (every, every)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_ledger_still_keeps_pets_within_half_the_watchdog_timeout() {
        for secs in [1, 4, 30, 300] {
            let timeout = Duration::from_secs(secs);
            let (every, deadline) = watchdog_schedule(timeout);
            // The longest gap between pets: a check answered just before its deadline,
            // then the next beat's check answered just before its own.
            assert!(
                every + deadline <= timeout / 2,
                "{timeout:?}: {every:?} + {deadline:?}"
            );
            assert!(!every.is_zero() && !deadline.is_zero());
        }
    }
}
