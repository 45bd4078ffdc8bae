//! TCP connections carried over one byte stream: how a virtual machine with no
//! network device reaches a server on the host. In the guest, [`Side::Guest`]
//! accepts connections on a loopback address and opens each through the stream (a
//! virtio-serial port); on the host, [`Side::Host`] connects each to the real server.
//!
//! Frames are COBS-encoded and end with a zero byte, so a reader that joins in the
//! middle (the guest's end restarted, the host's end reconnected) finds the next
//! frame. A frame is `kind | connection (u32, big-endian) | payload`.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// The largest payload one frame carries.
pub const MAX_PAYLOAD: usize = 16 * 1024;

const OPEN: u8 = 1;
const DATA: u8 = 2;
const CLOSE: u8 = 3;

/// One frame of the tunnel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// The guest accepted connection `id`.
    Open(u32),
    /// Bytes on connection `id`.
    Data(u32, Vec<u8>),
    /// Connection `id` will carry nothing more from the sender's side (or could not
    /// be made).
    Close(u32),
}

impl Frame {
    /// The frame on the wire, delimiter included.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, id, payload): (u8, u32, &[u8]) = match self {
            Frame::Open(id) => (OPEN, *id, &[]),
            Frame::Data(id, bytes) => (DATA, *id, bytes),
            Frame::Close(id) => (CLOSE, *id, &[]),
        };
        let mut body = Vec::with_capacity(5 + payload.len());
        body.push(kind);
        body.extend_from_slice(&id.to_be_bytes());
        body.extend_from_slice(payload);
        let mut wire = cobs::encode_vec(&body);
        wire.push(0);
        wire
    }

    fn decode(segment: &[u8]) -> Option<Frame> {
        let body = cobs::decode_vec(segment).ok()?;
        let (&kind, rest) = body.split_first()?;
        let id = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
        let payload = rest.get(4..)?;
        match kind {
            OPEN if payload.is_empty() => Some(Frame::Open(id)),
            DATA if payload.len() <= MAX_PAYLOAD => Some(Frame::Data(id, payload.to_vec())),
            CLOSE if payload.is_empty() => Some(Frame::Close(id)),
            _ => None,
        }
    }
}

/// Splits a byte stream into frames; damaged or unknown frames are skipped.
#[derive(Debug, Default)]
pub struct FrameReader {
    pending: Vec<u8>,
}

impl FrameReader {
    /// Takes the next bytes; returns the frames they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Frame> {
        let mut frames = Vec::new();
        for &b in bytes {
            if b == 0 {
                if let Some(frame) = Frame::decode(&self.pending) {
                    frames.push(frame);
                }
                self.pending.clear();
            } else if self.pending.len() <= MAX_PAYLOAD * 2 {
                self.pending.push(b);
            }
        }
        frames
    }
}

/// Which end of the tunnel this is.
pub enum Side {
    /// Accepts connections here and opens each through the tunnel.
    Guest(TcpListener),
    /// Connects every connection opened through the tunnel to this address.
    Host(SocketAddr),
}

/// Carries connections over `channel` until it ends (the host's end: the VM is
/// gone; the guest's end: an error). Every connection of the session is closed then.
pub async fn serve<C>(channel: C, side: Side) -> io::Result<()>
where
    C: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut from_channel, mut to_channel) = tokio::io::split(channel);
    let (frames_tx, mut frames_rx) = mpsc::unbounded_channel::<Frame>();
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        while let Some(frame) = frames_rx.recv().await {
            if to_channel.write_all(&frame.encode()).await.is_err() {
                return;
            }
        }
    });
    let mut conns: HashMap<u32, mpsc::UnboundedSender<Option<Vec<u8>>>> = HashMap::new();
    let mut reader = FrameReader::default();
    let mut buf = vec![0u8; MAX_PAYLOAD];
    let mut next_id: u32 = 1;
    let result = loop {
        let accept = async {
            match &side {
                Side::Guest(listener) => listener.accept().await.map(|(s, _)| s),
                Side::Host(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            read = from_channel.read(&mut buf) => {
                let n = match read {
                    Ok(0) => break Ok(()),
                    Ok(n) => n,
                    Err(e) => break Err(e),
                };
                for frame in reader.push(buf.get(..n).unwrap_or_default()) {
                    match frame {
                        Frame::Open(id) => {
                            if let Side::Host(addr) = &side {
                                let (tx, rx) = mpsc::unbounded_channel();
                                conns.insert(id, tx);
                                let addr = *addr;
                                let frames = frames_tx.clone();
                                tasks.spawn(async move {
                                    match TcpStream::connect(addr).await {
                                        Ok(stream) => carry(stream, id, rx, frames).await,
                                        Err(_) => {
                                            let _ = frames.send(Frame::Close(id));
                                        }
                                    }
                                });
                            }
                        }
                        Frame::Data(id, bytes) => {
                            if let Some(conn) = conns.get(&id) {
                                let _ = conn.send(Some(bytes));
                            }
                        }
                        Frame::Close(id) => {
                            if let Some(conn) = conns.remove(&id) {
                                let _ = conn.send(None);
                            }
                        }
                    }
                }
            }
            accepted = accept => {
                let Ok(stream) = accepted else { continue };
                let id = next_id;
                next_id = next_id.wrapping_add(1).max(1);
                let (tx, rx) = mpsc::unbounded_channel();
                conns.insert(id, tx);
                let _ = frames_tx.send(Frame::Open(id));
                tasks.spawn(carry(stream, id, rx, frames_tx.clone()));
            }
        }
    };
    tasks.abort_all();
    result
}

/// One connection: what it reads goes out as frames, what comes in is written to it.
async fn carry(
    stream: TcpStream,
    id: u32,
    mut incoming: mpsc::UnboundedReceiver<Option<Vec<u8>>>,
    frames: mpsc::UnboundedSender<Frame>,
) {
    let (mut read, mut write) = stream.into_split();
    let outgoing = async {
        let mut buf = vec![0u8; MAX_PAYLOAD];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let bytes = buf.get(..n).unwrap_or_default().to_vec();
                    if frames.send(Frame::Data(id, bytes)).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = frames.send(Frame::Close(id));
    };
    let inbound = async {
        while let Some(Some(bytes)) = incoming.recv().await {
            if write.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = write.shutdown().await;
    };
    tokio::join!(outgoing, inbound);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_damage_is_skipped() {
        let frames = [
            Frame::Open(7),
            Frame::Data(7, b"POST /refund\0with a zero".to_vec()),
            Frame::Data(u32::MAX, vec![0; MAX_PAYLOAD]),
            Frame::Close(7),
        ];
        let mut wire = vec![9, 9, 9, 0]; // half a frame from before: skipped
        for f in &frames {
            wire.extend(f.encode());
        }
        wire.extend([4, 1, 2, 0]); // unknown kind: skipped
        let mut reader = FrameReader::default();
        // Any split of the stream gives the same frames.
        for chunk in [1, 3, 64, wire.len()] {
            let mut got = Vec::new();
            for piece in wire.chunks(chunk) {
                got.extend(reader.push(piece));
            }
            assert_eq!(got, frames);
        }
    }

    #[tokio::test]
    async fn connections_cross_the_tunnel_both_ways() {
        // The "host" server: echoes upper case, then closes.
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server_addr = server.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = server.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    s.read_to_end(&mut buf).await.unwrap();
                    s.write_all(&buf.to_ascii_uppercase()).await.unwrap();
                });
            }
        });
        let (guest_end, host_end) = tokio::io::duplex(1024);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let guest_addr = listener.local_addr().unwrap();
        tokio::spawn(serve(guest_end, Side::Guest(listener)));
        let host = tokio::spawn(serve(host_end, Side::Host(server_addr)));
        let mut clients = Vec::new();
        for i in 0..5 {
            clients.push(tokio::spawn(async move {
                let mut c = TcpStream::connect(guest_addr).await.unwrap();
                let text = format!("refund {i} ").repeat(5000);
                c.write_all(text.as_bytes()).await.unwrap();
                c.shutdown().await.unwrap();
                let mut back = Vec::new();
                c.read_to_end(&mut back).await.unwrap();
                assert_eq!(back, text.to_ascii_uppercase().into_bytes());
            }));
        }
        for c in clients {
            c.await.unwrap();
        }
        assert!(!host.is_finished());
    }

    #[tokio::test]
    async fn the_host_end_closes_its_connections_when_the_channel_ends() {
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server_addr = server.local_addr().unwrap();
        let (guest_end, mut host_end_far) = tokio::io::duplex(1024);
        let host = tokio::spawn(serve(guest_end, Side::Host(server_addr)));
        host_end_far
            .write_all(&Frame::Open(1).encode())
            .await
            .unwrap();
        let (mut conn, _) = server.accept().await.unwrap();
        // The VM is gone: the server sees its connection end.
        drop(host_end_far);
        let mut buf = Vec::new();
        assert_eq!(conn.read_to_end(&mut buf).await.unwrap(), 0);
        host.await.unwrap().unwrap();
    }
}
