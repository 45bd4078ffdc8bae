//! Serving an axum router on a TCP listener, with the limits a small box needs.
//!
//! Used by the notifyRefund receiver and the cloud simulator. Each connection gets a
//! bounded time to send its request headers (a slow or stuck client cannot hold a
//! connection forever) and a [`ConnectionHandle`] in every request's extensions, so a
//! handler can drop its own connection without answering (the simulator's "drop after
//! reading the request" fault).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::Service;

/// Lets a handler close the connection it arrived on, without a response.
#[derive(Clone, Debug)]
pub struct ConnectionHandle(CancellationToken);

impl ConnectionHandle {
    /// Closes the connection; the handler should then never return.
    pub fn drop_connection(&self) {
        self.0.cancel();
    }
}

/// Accepts connections until `stop` is cancelled, serving each with `router`.
pub async fn accept_loop(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                spawn_connection(
                    stream,
                    peer,
                    router.clone(),
                    header_read_timeout,
                    stop.child_token(),
                );
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves one connection until it ends, the peer goes, or `kill` is cancelled.
pub fn spawn_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    header_read_timeout: Duration,
    kill: CancellationToken,
) {
    let handle = ConnectionHandle(kill.clone());
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(handle.clone());
        let mut router = router.clone();
        async move { router.call(request).await }
    });
    tokio::spawn(async move {
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .serve_connection(TokioIo::new(stream), service);
        tokio::select! {
            result = connection => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            }
            // Dropping the connection closes the socket mid-request.
            _ = kill.cancelled() => {}
        }
    });
}
