//! Serving an axum router on a TCP listener, with the limits a small box needs.
//!
//! Used by the notifyRefund receiver, the cloud simulator and the fleet receiver (which
//! may speak TLS itself). Each connection gets a
//! bounded time to send its request headers (a slow or stuck client cannot hold a
//! connection forever) and a [`ConnectionHandle`] in every request's extensions, so a
//! handler can drop its own connection without answering (the simulator's "drop after
//! reading the request" fault).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
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

/// Accepts connections until `stop` is cancelled, serving each with `router`.
pub async fn accept_loop(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    stop: CancellationToken,
) {
    accept_loop_tls(listener, router, None, header_read_timeout, stop).await
}

/// [`accept_loop`], with TLS on each connection when `tls` is given; the handshake
/// has the same bounded time as the request headers.
pub async fn accept_loop_tls(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    header_read_timeout: Duration,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => match &tls {
                None => spawn_connection(
                    stream,
                    peer,
                    router.clone(),
                    header_read_timeout,
                    stop.child_token(),
                ),
                Some(acceptor) => {
                    let (acceptor, router, kill) =
                        (acceptor.clone(), router.clone(), stop.child_token());
                    tokio::spawn(async move {
                        let handshake =
                            tokio::time::timeout(header_read_timeout, acceptor.accept(stream));
                        match handshake.await {
                            Ok(Ok(stream)) => {
                                serve(stream, peer, router, header_read_timeout, kill).await
                            }
                            Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    });
                }
            },
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
    tokio::spawn(serve(stream, peer, router, header_read_timeout, kill));
}

async fn serve<S>(
    stream: S,
    peer: SocketAddr,
    router: Router,
    header_read_timeout: Duration,
    kill: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handle = ConnectionHandle(kill.clone());
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(handle.clone());
        let mut router = router.clone();
        async move { router.call(request).await }
    });
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
}
