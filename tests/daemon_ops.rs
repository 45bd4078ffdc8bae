//! The daemon as systemd and an operator see it: readiness and the watchdog over the
//! notify socket, a clean stop, and the metrics endpoint's content after a refund.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use common::*;
use posbridge::message::{Message, RefundState};
use posbridge::sim::terminal::TerminalEvent;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_a_refund_the_line_and_the_cloud() {
    let mut w = World::new(Setup {
        payments: vec![payment("PAY-1", 5000)],
        extra_config: "[metrics]\nlisten = \"127.0.0.1:0\"\n".into(),
        ..Setup::default()
    })
    .await;
    w.refund("REF-1", "PAY-1", Some(1250));
    assert_eq!(w.final_update("REF-1").await.state, RefundState::Succeeded);
    let mut address = None;
    eventually("the metrics address in the log", || {
        address = w
            .full_bridge_log()
            .lines()
            .find(|l| l.contains("metrics on /metrics"))
            .and_then(|l| l.split("listen=").nth(1))
            .map(|a| a.split_whitespace().next().unwrap_or("").to_owned());
        address.is_some()
    })
    .await;
    let url = format!("http://{}/metrics", address.unwrap());
    let mut page = String::new();
    // Delivery of the final state is recorded just after the terminal's ACK.
    for _ in 0..50 {
        page = reqwest::get(&url).await.unwrap().text().await.unwrap();
        if page.contains("posbridge_refunds{state=\"SUCCEEDED\"} 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for expected in [
        "posbridge_refunds{state=\"SUCCEEDED\"} 1",
        "posbridge_queue_depth 0",
        "posbridge_refunds_accepted_total 1",
        "posbridge_cloud_online 1",
        "posbridge_terminals_connected 1",
        "posbridge_cloud_request_duration_seconds_count 1",
        "posbridge_refund_own_latency_seconds_count 1",
        "posbridge_link_damaged_frames_total{line=",
        concat!(
            "posbridge_build_info{version=\"",
            env!("CARGO_PKG_VERSION"),
            "\"} 1"
        ),
        "posbridge_terminal_up{terminal=\"TERM-1\"} 1",
        "posbridge_provider_outcomes_total{class=\"SUCCEEDED\",code=\"SUCCESS\"} 1",
        "posbridge_refunds_needing_person 0",
        "# TYPE posbridge_link_retransmissions_total counter",
    ] {
        assert!(page.contains(expected), "missing {expected:?} in:\n{page}");
    }
    let frames_in: u64 = page
        .lines()
        .find(|l| l.starts_with("posbridge_link_frames_total{") && l.contains("direction=\"in\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(
        frames_in >= 3,
        "HELLO, REFUND and ACKs came in: {frames_in}"
    );
    let contact: f64 = page
        .lines()
        .find(|l| l.starts_with("posbridge_cloud_last_contact_timestamp_seconds "))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(contact > 1.7e9, "{contact}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_hears_ready_watchdog_and_stopping() {
    let mut w = World::new(Setup {
        payments: vec![payment("PAY-1", 5000)],
        ..Setup::default()
    })
    .await;
    // The world started a bridge without systemd; start one that has it.
    w.kill_bridge();
    let socket_path = path_in(&w, "notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    w.bridge_env = vec![
        ("NOTIFY_SOCKET".into(), socket_path.display().to_string()),
        ("WATCHDOG_USEC".into(), "400000".into()),
    ];
    w.start_bridge();
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    while !(seen.iter().any(|m: &String| m.contains("READY=1"))
        && seen.iter().any(|m| m.contains("WATCHDOG=1")))
    {
        let n = socket
            .recv(&mut buf)
            .expect("a notification within the wait");
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    // Ready means serving: a refund goes through.
    w.refund("REF-1", "PAY-1", Some(100));
    assert_eq!(w.final_update("REF-1").await.state, RefundState::Succeeded);
    w.wait_for("WELCOME", |e| {
        matches!(e, TerminalEvent::Message(Message::Welcome(_))).then_some(())
    })
    .await;
    let status = w.stop_bridge();
    assert!(status.success(), "{status:?}");
    let mut stopping = false;
    while let Ok(n) = socket.recv(&mut buf) {
        if String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1") {
            stopping = true;
            break;
        }
    }
    assert!(stopping, "STOPPING=1 was sent; saw {seen:?}");
}
