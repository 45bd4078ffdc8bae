//! A bridge link and a terminal link talking over a damaged line, both ways at once.
//!
//! The line drops, corrupts, duplicates and delays frames and inserts garbage, from a
//! seeded generator; time is paused, so each seed replays the same run (print every
//! frame of a run with `LINK_TRACE=1 FIRST_SEED=n SEEDS=1`).
//!
//! What is checked is the link's contract: within a session every data frame is
//! delivered once and in order; a send returns `Ok` only for a delivered frame; a frame
//! is delivered again only in a later session and only if its sender was told it was
//! unconfirmed (the layer above then re-sends it, as the bridge and terminal do).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use posbridge::link::{
    Link, LinkConfig, LinkEvent, LinkHandle, LinkStatsSnapshot, OneShot, Role, SendError,
};
use posbridge::sim::line::{LineControl, LineFaults, noisy_pipe};
use posbridge::wire::{Inbound, Kind};
use tokio::sync::mpsc;

const FRAMES: u32 = 300;

fn bad_line() -> LineFaults {
    LineFaults {
        drop: 0.05,
        corrupt: 0.05,
        slip: 0.05,
        duplicate: 0.05,
        garbage: 0.05,
        max_delay: Duration::from_millis(20),
        max_consecutive: 0,
    }
}

/// Every delivery one end saw: (session, frame number).
type Log = Arc<Mutex<Vec<(u64, u32)>>>;

fn number(payload: &[u8]) -> u32 {
    let text = std::str::from_utf8(payload).unwrap();
    let value: serde_json::Value = serde_json::from_str(text).unwrap();
    value["n"].as_u64().unwrap() as u32
}

/// Records deliveries (then lets them be acknowledged) and session ends.
fn receive(mut events: mpsc::Receiver<LinkEvent>, log: Log, up: tokio::sync::oneshot::Sender<()>) {
    tokio::spawn(async move {
        let mut up = Some(up);
        while let Some(event) = events.recv().await {
            match event {
                LinkEvent::Up { .. } => {
                    if let Some(up) = up.take() {
                        let _ = up.send(());
                    }
                }
                LinkEvent::Data(d) if d.kind != Kind::HELLO => {
                    log.lock().unwrap().push((d.session, number(&d.payload)));
                }
                _ => {}
            }
        }
    });
}

/// Sends frames 0..FRAMES in order, re-sending any the link reports unconfirmed, and
/// returns which ones that happened to.
async fn send_all(link: LinkHandle) -> HashSet<u32> {
    let mut unconfirmed = HashSet::new();
    for n in 0..FRAMES {
        let payload = Bytes::from(format!(
            r#"{{"n":{n},"pad":"{}"}}"#,
            "x".repeat((n % 97) as usize)
        ));
        loop {
            match link.send(Kind::REFUND, payload.clone()).await {
                Ok(()) => break,
                Err(SendError::Unconfirmed(_)) => {
                    unconfirmed.insert(n);
                }
                Err(e) => panic!("frame {n}: {e}"),
            }
        }
    }
    unconfirmed
}

/// Checks one direction's deliveries against the contract.
fn check(who: &str, seed: u64, log: &[(u64, u32)], unconfirmed: &HashSet<u32>) {
    let mut last_in_session: HashMap<u64, u32> = HashMap::new();
    let mut seen: HashMap<u32, u64> = HashMap::new();
    let mut first_order = Vec::new();
    for &(session, n) in log {
        if let Some(prev) = last_in_session.insert(session, n) {
            assert!(
                n > prev,
                "{who}, seed {seed}: frame {n} after {prev} in session {session}"
            );
        }
        match seen.get(&n) {
            None => {
                seen.insert(n, session);
                first_order.push(n);
            }
            Some(&earlier) => {
                assert!(
                    unconfirmed.contains(&n),
                    "{who}, seed {seed}: frame {n} delivered twice but its send never failed"
                );
                assert!(
                    session > earlier,
                    "{who}, seed {seed}: frame {n} delivered twice in session {session}"
                );
            }
        }
    }
    assert_eq!(
        first_order,
        (0..FRAMES).collect::<Vec<_>>(),
        "{who}, seed {seed}: lost or reordered"
    );
}

/// With `LINK_TRACE=1`, every frame each end reads or writes is printed with the
/// virtual time.
fn config(role: Role, name: &'static str) -> LinkConfig {
    let mut config = LinkConfig::new(role, None);
    if std::env::var_os("LINK_TRACE").is_some() {
        let t0 = tokio::time::Instant::now();
        config.tracer = Some(Arc::new(move |dir, _raw: &[u8], item: &Inbound| {
            eprintln!(
                "{:>8.3}s {name} {dir:?} {item:?}",
                t0.elapsed().as_secs_f64()
            );
        }));
    }
    config
}

/// One run over a line with `faults`; returns both ends' counters.
async fn run(seed: u64, faults: LineFaults) -> (LinkStatsSnapshot, LinkStatsSnapshot) {
    let (bridge_end, terminal_end) = noisy_pipe(
        LineControl::new(faults.clone()),
        LineControl::new(faults),
        seed,
    );
    let (bridge, bridge_events) =
        Link::spawn(config(Role::Bridge, "bridge"), OneShot::new(bridge_end));
    let hello = Bytes::from_static(br#"{"terminalId":"T1"}"#);
    let (terminal, terminal_events) = Link::spawn(
        config(Role::Terminal { hello }, "terminal"),
        OneShot::new(terminal_end),
    );
    let at_bridge = Log::default();
    let at_terminal = Log::default();
    let (bridge_up_tx, bridge_up) = tokio::sync::oneshot::channel();
    let (terminal_up_tx, _) = tokio::sync::oneshot::channel();
    receive(bridge_events, at_bridge.clone(), bridge_up_tx);
    receive(terminal_events, at_terminal.clone(), terminal_up_tx);
    let from_terminal = tokio::spawn(send_all(terminal.clone()));
    bridge_up.await.expect("bridge saw a session");
    let from_bridge = tokio::spawn(send_all(bridge.clone()));

    let terminal_unconfirmed = from_terminal.await.unwrap();
    let bridge_unconfirmed = from_bridge.await.unwrap();
    check(
        "terminal → bridge",
        seed,
        &at_bridge.lock().unwrap(),
        &terminal_unconfirmed,
    );
    check(
        "bridge → terminal",
        seed,
        &at_terminal.lock().unwrap(),
        &bridge_unconfirmed,
    );
    (bridge.stats(), terminal.stats())
}

#[tokio::test(start_paused = true)]
async fn clean_line_delivers_everything_once_in_order() {
    let (bridge, terminal) = run(1, LineFaults::none()).await;
    assert_eq!(bridge.retransmissions + terminal.retransmissions, 0);
    assert_eq!(bridge.damaged_total() + terminal.damaged_total(), 0);
    assert_eq!(
        bridge.sessions + terminal.sessions,
        2,
        "one session, seen from each end"
    );
    assert_eq!(
        bridge.delivered,
        u64::from(FRAMES) + 1,
        "the HELLO and every frame"
    );
}

#[tokio::test(start_paused = true)]
async fn damaged_line_keeps_the_contract() {
    let first: u64 = std::env::var("FIRST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let seeds: u64 = std::env::var("SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let mut total = LinkStatsSnapshot::default();
    for seed in first..first + seeds {
        let (bridge, terminal) = run(seed, bad_line()).await;
        for s in [bridge, terminal] {
            total.retransmissions += s.retransmissions;
            total.duplicates += s.duplicates;
            total.naks_sent += s.naks_sent;
            total.frames_in += s.frames_in;
            total.downs += s.downs;
            for (sum, n) in total.damaged.iter_mut().zip(s.damaged) {
                *sum += n;
            }
        }
    }
    // The faults really happened, and the link really worked around them.
    assert!(total.retransmissions > 0);
    assert!(total.duplicates > 0);
    assert!(total.naks_sent > 0);
    assert!(total.damaged_total() > 0);
    eprintln!("{seeds} seeds: {total:?}");
}

/// What a receiver saw, with deliveries acknowledged as soon as they are recorded.
#[derive(Debug, PartialEq)]
enum Seen {
    Up,
    Data(Kind, Bytes),
    Down,
}

fn watch(mut events: mpsc::Receiver<LinkEvent>) -> mpsc::UnboundedReceiver<Seen> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let seen = match event {
                LinkEvent::Up { .. } => Seen::Up,
                LinkEvent::Data(d) => Seen::Data(d.kind, d.payload.clone()),
                LinkEvent::Down { .. } => Seen::Down,
            };
            if tx.send(seen).is_err() {
                return;
            }
        }
    });
    rx
}

#[tokio::test(start_paused = true)]
async fn a_cut_line_goes_down_and_recovers() {
    let to_bridge = LineControl::new(LineFaults::none());
    let to_terminal = LineControl::new(LineFaults::none());
    let (bridge_end, terminal_end) = noisy_pipe(to_terminal.clone(), to_bridge.clone(), 7);
    let (_bridge, bridge_events) = Link::spawn(
        LinkConfig::new(Role::Bridge, None),
        OneShot::new(bridge_end),
    );
    let hello = Bytes::from_static(br#"{"terminalId":"T1"}"#);
    let (terminal, terminal_events) = Link::spawn(
        LinkConfig::new(Role::Terminal { hello }, None),
        OneShot::new(terminal_end),
    );
    let mut at_bridge = watch(bridge_events);
    let mut at_terminal = watch(terminal_events);
    assert_eq!(at_terminal.recv().await, Some(Seen::Up));
    assert_eq!(at_bridge.recv().await, Some(Seen::Up));
    assert!(matches!(
        at_bridge.recv().await,
        Some(Seen::Data(Kind::HELLO, _))
    ));

    to_bridge.cut();
    to_terminal.cut();
    let sent = terminal.send(Kind::REFUND, Bytes::from_static(b"{}")).await;
    assert!(matches!(sent, Err(SendError::Unconfirmed(_))), "{sent:?}");
    assert_eq!(at_terminal.recv().await, Some(Seen::Down));
    assert_eq!(
        at_bridge.recv().await,
        Some(Seen::Down),
        "silence noticed by PING"
    );

    // While the line is cut, frames queue; once it is mended they go out in a new session.
    let queued = {
        let terminal = terminal.clone();
        tokio::spawn(async move {
            terminal
                .send(Kind::REFUND, Bytes::from_static(b"{\"n\":2}"))
                .await
        })
    };
    tokio::time::sleep(Duration::from_secs(30)).await;
    to_bridge.set(LineFaults::none());
    to_terminal.set(LineFaults::none());
    assert_eq!(queued.await.unwrap(), Ok(()));
    assert_eq!(at_bridge.recv().await, Some(Seen::Up));
    assert!(matches!(
        at_bridge.recv().await,
        Some(Seen::Data(Kind::HELLO, _))
    ));
    assert_eq!(
        at_bridge.recv().await,
        Some(Seen::Data(Kind::REFUND, Bytes::from_static(b"{\"n\":2}")))
    );
    assert_eq!(terminal.stats().sessions, 2);
}
