//! Unplug and replug: the terminal's line disappears and comes back under the same
//! name, and the link reopens it and opens a new session without a restart.
//!
//! A pseudo-terminal behind a symlink stands in for the udev symlink of a USB
//! terminal; closing it and pointing the symlink at a new one is the replug.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use posbridge::link::{Link, LinkConfig, LinkEvent, LinkHandle, OneShot, Role};
use posbridge::sim::terminal::{Terminal, TerminalEvent, TerminalIdentity};
use posbridge::transport::{PtyLink, Reopen, SymlinkGuard, TransportConfig, open_pty};
use posbridge::wire::Kind;
use tokio::sync::mpsc;

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .unwrap_or_else(|_| panic!("{what} within 20 s"))
}

/// A bridge-side link on a fresh pseudo-terminal, reachable through `link`.
fn plug_in(link: &Path) -> (PtyLink, SymlinkGuard, LinkHandle, mpsc::Receiver<LinkEvent>) {
    let mut pty = open_pty().unwrap();
    let guard = SymlinkGuard::create(link, &pty.path).unwrap();
    let master = std::mem::replace(&mut pty.master, open_pty().unwrap().master);
    let (handle, events) = Link::spawn(LinkConfig::new(Role::Bridge, None), OneShot::new(master));
    (pty, guard, handle, events)
}

async fn next_refund(events: &mut mpsc::Receiver<LinkEvent>) -> Bytes {
    loop {
        match within("a REFUND at the bridge", events.recv()).await {
            Some(LinkEvent::Data(d)) if d.kind == Kind::REFUND => return d.payload.clone(),
            Some(_) => {}
            None => panic!("bridge link stopped"),
        }
    }
}

async fn wait_for(events: &mut mpsc::Receiver<TerminalEvent>, want: fn(&TerminalEvent) -> bool) {
    loop {
        let event = within("terminal event", events.recv())
            .await
            .expect("terminal alive");
        if want(&event) {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplug_and_replug_resumes_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("posterminal0");
    let (pty, guard, bridge, mut bridge_events) = plug_in(&link);

    let connector = Reopen::new(TransportConfig::serial(&link), Duration::from_millis(20));
    let (terminal, mut terminal_events) =
        Terminal::start(&TerminalIdentity::default(), Some(115_200), None, connector);
    wait_for(&mut terminal_events, |e| *e == TerminalEvent::Up).await;
    // The bridge acknowledges only once its receiver has taken the frame, so the
    // send runs beside the receiving.
    let sent = {
        let terminal = terminal.clone();
        tokio::spawn(async move {
            terminal
                .send_raw(Kind::REFUND, Bytes::from_static(b"{\"n\":1}"))
                .await
        })
    };
    assert_eq!(next_refund(&mut bridge_events).await, &b"{\"n\":1}"[..]);
    within("the ACK", sent).await.unwrap().unwrap();

    // Unplug: the device and its name go away.
    drop(bridge);
    drop(bridge_events);
    drop(guard);
    drop(pty);
    wait_for(&mut terminal_events, |e| {
        matches!(e, TerminalEvent::Down(_))
    })
    .await;

    // Replug: a new device under the same name. No restart of anything.
    let (_pty, _guard, _bridge, mut bridge_events) = plug_in(&link);
    wait_for(&mut terminal_events, |e| *e == TerminalEvent::Up).await;
    // The bridge acknowledges only once its receiver has taken the frame, so the
    // send runs beside the receiving.
    let sent = {
        let terminal = terminal.clone();
        tokio::spawn(async move {
            terminal
                .send_raw(Kind::REFUND, Bytes::from_static(b"{\"n\":2}"))
                .await
        })
    };
    assert_eq!(next_refund(&mut bridge_events).await, &b"{\"n\":2}"[..]);
    within("the ACK", sent).await.unwrap().unwrap();
    let stats = terminal.stats();
    assert_eq!(stats.connects, 2, "{stats:?}");
    assert_eq!(stats.sessions, 2, "{stats:?}");
}
