//! The simulator's listener, with a down switch that really refuses connections.
//!
//! "Down" closes the listening socket and every open connection, so clients see
//! connection refused, exactly as when a provider's edge is unreachable; "up" binds
//! the same address again. [`Switch::set_down`] returns once the change has happened,
//! so a test never races the accept loop.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::provider::serve::spawn_connection;

/// Turns the listener off and on.
#[derive(Debug)]
pub struct Switch {
    wanted: watch::Sender<bool>,
    applied: watch::Receiver<bool>,
}

impl Switch {
    /// Goes down (refusing) or up, and waits until the listener has followed.
    pub async fn set_down(&self, down: bool) {
        self.wanted.send_replace(down);
        let mut applied = self.applied.clone();
        // An error means the loop has ended (simulator stopped): nothing to wait for.
        let _ = applied.wait_for(|now| *now == down).await;
    }

    /// Whether the listener is down.
    pub fn is_down(&self) -> bool {
        *self.applied.borrow()
    }
}

/// Binds with SO_REUSEADDR so the same port can be bound again after going down.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Starts the accept loop on `listener`; returns the switch.
pub fn start(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    stop: CancellationToken,
) -> std::io::Result<(Switch, tokio::task::JoinHandle<()>)> {
    let addr = listener.local_addr()?;
    let (wanted_tx, wanted_rx) = watch::channel(false);
    let (applied_tx, applied_rx) = watch::channel(false);
    let task = tokio::spawn(run(
        addr,
        listener,
        router,
        header_read_timeout,
        stop,
        wanted_rx,
        applied_tx,
    ));
    Ok((
        Switch {
            wanted: wanted_tx,
            applied: applied_rx,
        },
        task,
    ))
}

async fn run(
    addr: SocketAddr,
    first: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    stop: CancellationToken,
    mut wanted: watch::Receiver<bool>,
    applied: watch::Sender<bool>,
) {
    let mut listener = Some(first);
    loop {
        if let Some(open) = listener.take() {
            // Connections of this "up" period die together when going down.
            let generation = stop.child_token();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    changed = wanted.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        if *wanted.borrow_and_update() {
                            break;
                        }
                    }
                    accepted = open.accept() => match accepted {
                        Ok((stream, peer)) => spawn_connection(
                            stream, peer, router.clone(), header_read_timeout, generation.child_token(),
                        ),
                        Err(e) => {
                            tracing::warn!(error = %e, "simulator accept failed");
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    },
                }
            }
            generation.cancel();
            drop(open);
            applied.send_replace(true);
        }
        // Down: wait to be brought up, then bind the same address again.
        loop {
            if !*wanted.borrow_and_update() {
                break;
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = wanted.changed() => if changed.is_err() { return },
            }
        }
        loop {
            match bind(addr) {
                Ok(open) => {
                    listener = Some(open);
                    break;
                }
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "simulator cannot bind again yet");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                    }
                }
            }
        }
        applied.send_replace(false);
    }
}
