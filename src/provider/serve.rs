//! Serving an axum router on a TCP listener, with the limits a small box needs.
//!
//! Used by the notifyRefund receiver, the metrics endpoint, the cloud simulator and the
//! fleet receiver (which may speak TLS itself).
//! Each connection gets a bounded time to send its request headers (a slow or stuck
//! client cannot hold a connection forever) and a [`ConnectionHandle`] in every
//! request's extensions, so a handler can drop its own connection without answering
//! (the simulator's "drop after reading the request" fault). [`serve_bounded`] also
//! bounds how many connections are served at once and the memory each may take.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
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

/// The limits of a server facing clients it does not trust.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeLimits {
    /// Time a client gets to send a request's headers (the first request's, and each
    /// next one's on a kept-alive connection).
    pub header_read_timeout: Duration,
    /// Connections served at once. Further clients wait in the kernel's listen queue,
    /// holding none of this process's descriptors or memory, until one ends.
    pub max_connections: usize,
}

/// Largest buffer kept for one connection's request head: ample for any header a
/// notification or a scrape carries (hyper's default is about 400 KiB).
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Accepts connections until `stop` is cancelled, serving each with `router`; as
/// many at once as `limits` allow, each with `MAX_HEAD_BYTES` of head buffer. A
/// connection's memory is then at most that and the body its router accepts.
pub async fn serve_bounded(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    stop: CancellationToken,
) {
    serve_bounded_tls(listener, router, limits, None, stop).await
}

/// [`serve_bounded`], with TLS on each connection when `tls` is given; the handshake
/// gets the same bounded time as the request headers.
pub async fn serve_bounded_tls(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let slot = tokio::select! {
            _ = stop.cancelled() => return,
            slot = slots.clone().acquire_owned() => slot,
        };
        let Ok(slot) = slot else { return };
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let (router, kill, tls) = (router.clone(), stop.child_token(), tls.clone());
                let wait = limits.header_read_timeout;
                tokio::spawn(async move {
                    match tls {
                        None => serve(stream, peer, router, wait, Some(MAX_HEAD_BYTES), kill).await,
                        Some(acceptor) => {
                            match tokio::time::timeout(wait, acceptor.accept(stream)).await {
                                Ok(Ok(stream)) => {
                                    serve(stream, peer, router, wait, Some(MAX_HEAD_BYTES), kill)
                                        .await
                                }
                                Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                            }
                        }
                    }
                    drop(slot);
                });
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
    tokio::spawn(serve(stream, peer, router, header_read_timeout, None, kill));
}

fn serve<S>(
    stream: S,
    peer: SocketAddr,
    router: Router,
    header_read_timeout: Duration,
    max_head_bytes: Option<usize>,
    kill: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handle = ConnectionHandle(kill.clone());
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(handle.clone());
        let mut router = router.clone();
        async move { router.call(request).await }
    });
    async move {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout);
        if let Some(bytes) = max_head_bytes {
            builder.max_buf_size(bytes);
        }
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        tokio::select! {
            result = connection => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            }
            // Dropping the connection closes the socket mid-request.
            _ = kill.cancelled() => {}
        }
    }
}
