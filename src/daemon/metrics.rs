//! The Prometheus text endpoint (`[metrics] listen = "127.0.0.1:9640"`, off by
//! default): refunds by state, queue depth and the age of its oldest refund, link
//! frames and damage by cause, retransmissions, cloud latency, last cloud contact,
//! and the notifyRefund receiver's refusals by reason. Requests get a bounded time
//! to send their headers, and connections are bounded in number.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::bridge::{Bridge, BridgeStats, BridgeStatus, Histogram};
use crate::config::MetricsConfig;
use crate::fleet::ShipperStatus;
use crate::ledger::Counts;
use crate::link::LinkStatsSnapshot;
use crate::provider::antom::notify::{NotifyStats, Refusal};
use crate::provider::serve::{ServeLimits, serve_bounded};
use crate::wire::Damage;

/// Upper bounds of the cloud latency histogram.
const CLOUD_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Upper bounds of the bridge's own latency histogram.
const OWN_BUCKETS: [f64; 9] = [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

/// Starts serving `/metrics` on `listener` (bound to `config.listen`), with the
/// connection and header-time limits of `config`; returns the address bound.
pub fn serve(
    listener: TcpListener,
    config: &MetricsConfig,
    bridge: Bridge,
    notify: Option<Arc<NotifyStats>>,
    fleet: Option<ShipperStatus>,
) -> std::io::Result<SocketAddr> {
    let listen = config.listen;
    if !listen.ip().is_loopback() {
        tracing::warn!(%listen, "the metrics endpoint is not on loopback; anyone who can reach it sees refund counts");
    }
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(Page {
            bridge,
            notify,
            fleet,
        });
    let limits = ServeLimits {
        header_read_timeout: Duration::from_millis(config.header_read_timeout_ms),
        max_connections: config.max_connections,
    };
    // Serves for the process's life.
    tokio::spawn(serve_bounded(
        listener,
        app,
        limits,
        CancellationToken::new(),
    ));
    tracing::info!(listen = %bound, "metrics on /metrics");
    Ok(bound)
}

/// What the page is made of.
#[derive(Clone)]
struct Page {
    bridge: Bridge,
    notify: Option<Arc<NotifyStats>>,
    fleet: Option<ShipperStatus>,
}

async fn metrics(State(page): State<Page>) -> impl IntoResponse {
    let counts = page.bridge.ledger().call(|l| l.counts()).await;
    let now = jiff::Timestamp::now().as_millisecond();
    let mut body = match counts {
        Ok(counts) => render(&page.bridge, &counts, now),
        Err(e) => format!("# ledger unavailable: {e}\nposbridge_ledger_up 0\n"),
    };
    if let Some(notify) = &page.notify {
        render_notify(&mut body, notify);
    }
    if let Some(fleet) = &page.fleet {
        // Read now, so the lag is exact even while the shipper waits out a backoff.
        let position = page
            .bridge
            .ledger()
            .call(|l| l.fleet_position())
            .await
            .ok()
            .flatten();
        body.push_str(&fleet.prometheus(position, now));
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

/// The notifyRefund receiver's counters.
fn render_notify(out: &mut String, stats: &NotifyStats) {
    family(
        out,
        "posbridge_notify_accepted_total",
        "counter",
        "notifyRefund notifications recorded and acknowledged.",
    );
    let _ = writeln!(out, "posbridge_notify_accepted_total {}", stats.accepted());
    family(
        out,
        "posbridge_notify_refused_total",
        "counter",
        "notifyRefund requests refused, by reason (every one, however few are logged).",
    );
    for why in Refusal::ALL {
        let _ = writeln!(
            out,
            "posbridge_notify_refused_total{{reason=\"{}\"}} {}",
            why.name(),
            stats.refused(why)
        );
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, help: &str, h: &Histogram, bounds: &[f64]) {
    family(out, name, "histogram", help);
    let durations: Vec<Duration> = bounds.iter().map(|b| Duration::from_secs_f64(*b)).collect();
    for (bound, count) in bounds.iter().zip(h.cumulative(&durations)) {
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count());
    let _ = writeln!(out, "{name}_sum {}", h.sum().as_secs_f64());
    let _ = writeln!(out, "{name}_count {}", h.count());
}

fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics page.
pub fn render(bridge: &Bridge, counts: &Counts, now_ms: i64) -> String {
    let mut out = String::new();
    let status = bridge.status();
    let stats = bridge.stats();
    render_health(&mut out);
    render_attention(&mut out, counts, stats);
    render_ledger(&mut out, counts, now_ms);
    render_refund_counters(&mut out, stats);
    render_cloud(&mut out, &status, stats);
    render_terminals(&mut out, &status, stats);
    let lines = bridge.lines();
    render_link_frames(&mut out, &lines);
    render_link_counters(&mut out, &lines);
    out
}

/// Whether the ledger answered, and which posbridge this is.
fn render_health(out: &mut String) {
    family(
        out,
        "posbridge_ledger_up",
        "gauge",
        "1 when the ledger answered.",
    );
    let _ = writeln!(out, "posbridge_ledger_up 1");
    family(
        out,
        "posbridge_build_info",
        "gauge",
        "Always 1; the labels say which posbridge this is.",
    );
    let _ = writeln!(
        out,
        "posbridge_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
}

/// What needs a person, and how the provider has been answering.
fn render_attention(out: &mut String, counts: &Counts, stats: &BridgeStats) {
    family(
        out,
        "posbridge_refunds_needing_person",
        "gauge",
        "Refunds NEEDS_ATTENTION: a person must check the provider and settle them.",
    );
    let _ = writeln!(
        out,
        "posbridge_refunds_needing_person {}",
        counts.in_state(crate::message::RefundState::NeedsAttention)
    );
    family(
        out,
        "posbridge_provider_outcomes_total",
        "counter",
        "Provider answers, by outcome class and result code.",
    );
    for (class, code, n) in stats.outcomes() {
        let _ = writeln!(
            out,
            "posbridge_provider_outcomes_total{{class=\"{class}\",code=\"{}\"}} {n}",
            label(&code)
        );
    }
}

/// The ledger's refunds by state, and its queue.
fn render_ledger(out: &mut String, counts: &Counts, now_ms: i64) {
    family(
        out,
        "posbridge_refunds",
        "gauge",
        "Refunds in the ledger, by state.",
    );
    for (state, n) in &counts.by_state {
        let _ = writeln!(out, "posbridge_refunds{{state=\"{state}\"}} {n}");
    }
    family(
        out,
        "posbridge_queue_depth",
        "gauge",
        "Refunds not yet settled by the provider (ACCEPTED, QUEUED, PROCESSING).",
    );
    let _ = writeln!(out, "posbridge_queue_depth {}", counts.unfinished);
    family(
        out,
        "posbridge_queue_oldest_age_seconds",
        "gauge",
        "Age of the oldest unsettled refund; 0 when none.",
    );
    let age = counts
        .oldest_unfinished_ms
        .map(|t| (now_ms - t).max(0) as f64 / 1000.0)
        .unwrap_or(0.0);
    let _ = writeln!(out, "posbridge_queue_oldest_age_seconds {age}");
}

/// REFUNDs recorded and refused since the start.
fn render_refund_counters(out: &mut String, stats: &BridgeStats) {
    family(
        out,
        "posbridge_refunds_accepted_total",
        "counter",
        "REFUNDs recorded since the bridge started.",
    );
    let _ = writeln!(
        out,
        "posbridge_refunds_accepted_total {}",
        stats.accepted.load(Ordering::Relaxed)
    );
    family(
        out,
        "posbridge_refunds_refused_total",
        "counter",
        "REFUNDs refused (invalid, duplicate mismatch, limits) since the bridge started.",
    );
    let _ = writeln!(
        out,
        "posbridge_refunds_refused_total {}",
        stats.refused.load(Ordering::Relaxed)
    );
}

/// The provider's cloud: reachable, last answer, and how long calls take.
fn render_cloud(out: &mut String, status: &BridgeStatus, stats: &BridgeStats) {
    family(
        out,
        "posbridge_cloud_online",
        "gauge",
        "1 when the provider's cloud can be used.",
    );
    let _ = writeln!(out, "posbridge_cloud_online {}", u8::from(status.online));
    family(
        out,
        "posbridge_cloud_last_contact_timestamp_seconds",
        "gauge",
        "When the provider last answered (Unix time); 0 if never since start.",
    );
    let _ = writeln!(
        out,
        "posbridge_cloud_last_contact_timestamp_seconds {}",
        status.last_contact_ms.unwrap_or(0) as f64 / 1000.0
    );
    histogram(
        out,
        "posbridge_cloud_request_duration_seconds",
        "Provider calls (refund and inquiry), from sending to the classified answer.",
        &stats.cloud_latency,
        &CLOUD_BUCKETS,
    );
    histogram(
        out,
        "posbridge_refund_own_latency_seconds",
        "From a REFUND frame's arrival to its request leaving for the provider.",
        &stats.own_latency,
        &OWN_BUCKETS,
    );
}

/// Terminals with a session, and each known terminal's.
fn render_terminals(out: &mut String, status: &BridgeStatus, stats: &BridgeStats) {
    family(
        out,
        "posbridge_terminals_connected",
        "gauge",
        "Terminals with a session now.",
    );
    let _ = writeln!(
        out,
        "posbridge_terminals_connected {}",
        status.terminals.len()
    );
    family(
        out,
        "posbridge_terminal_up",
        "gauge",
        "1 while a terminal that said HELLO since the start has a session, else 0.",
    );
    for id in stats.known_terminals() {
        let up = u8::from(status.terminals.contains(&id));
        let _ = writeln!(
            out,
            "posbridge_terminal_up{{terminal=\"{}\"}} {up}",
            label(&id)
        );
    }
}

/// Good and damaged frames, by line.
fn render_link_frames(out: &mut String, lines: &[(String, LinkStatsSnapshot)]) {
    family(
        out,
        "posbridge_link_frames_total",
        "counter",
        "Good frames, by line and direction.",
    );
    for (line, s) in lines {
        let l = label(line);
        let _ = writeln!(
            out,
            "posbridge_link_frames_total{{line=\"{l}\",direction=\"in\"}} {}",
            s.frames_in
        );
        let _ = writeln!(
            out,
            "posbridge_link_frames_total{{line=\"{l}\",direction=\"out\"}} {}",
            s.frames_out
        );
    }
    family(
        out,
        "posbridge_link_damaged_frames_total",
        "counter",
        "Damaged frames dropped, by line and cause.",
    );
    for (line, s) in lines {
        for cause in Damage::ALL {
            let _ = writeln!(
                out,
                "posbridge_link_damaged_frames_total{{line=\"{}\",cause=\"{}\"}} {}",
                label(line),
                cause.name(),
                s.damaged(cause)
            );
        }
    }
}

/// The links' other counters, one family each, by line.
fn render_link_counters(out: &mut String, lines: &[(String, LinkStatsSnapshot)]) {
    for (name, help, get) in [
        (
            "posbridge_link_retransmissions_total",
            "Data frames sent again after a timeout or NAK.",
            (|s: &LinkStatsSnapshot| s.retransmissions) as fn(&LinkStatsSnapshot) -> u64,
        ),
        (
            "posbridge_link_duplicates_total",
            "Repeated data frames acknowledged and not delivered again.",
            |s| s.duplicates,
        ),
        (
            "posbridge_link_naks_sent_total",
            "NAKs sent for damaged frames.",
            |s| s.naks_sent,
        ),
        (
            "posbridge_link_sessions_total",
            "Sessions opened (HELLOs received).",
            |s| s.sessions,
        ),
        (
            "posbridge_link_downs_total",
            "Sessions ended (timeouts, silence, resets, unplugs).",
            |s| s.downs,
        ),
        (
            "posbridge_link_connects_total",
            "Times the terminal's device was opened.",
            |s| s.connects,
        ),
    ] {
        family(out, name, "counter", help);
        for (line, s) in lines {
            let _ = writeln!(out, "{name}{{line=\"{}\"}} {}", label(line), get(s));
        }
    }
}
