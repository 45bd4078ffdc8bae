//! The bulk pump: a USB bulk IN/OUT endpoint pair as one async byte stream.
//!
//! USB moves packets, the link wants bytes. Reading keeps several one-packet
//! transfers queued at all times, so the device never waits for the host to ask and
//! a packet is handed on as soon as it lands: short packets are the normal case (a
//! frame rarely fills one), and a zero-length packet only ends a transfer — it is
//! never taken for the end of the stream. Writing submits each write as one transfer,
//! with a few in flight, and ends a transfer whose length is a whole number of
//! packets with a zero-length packet, so a device reading larger buffers sees where
//! it ends. A disconnect fails every read and write from then on, which the link
//! takes as the line going down.
//!
//! [`BulkPipe`] is the seam: nusb's endpoints implement it for the real device, and
//! the unit tests below drive the pump through a scripted one.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use nusb::transfer::{Buffer, Bulk, Completion, EndpointDirection, TransferError};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Transfers kept queued on the IN endpoint.
pub const READS_QUEUED: usize = 8;
/// Transfers allowed in flight on the OUT endpoint before a write waits.
pub const WRITES_IN_FLIGHT: usize = 4;
/// The most bytes one OUT transfer carries.
pub const WRITE_CHUNK: usize = 4096;

/// One bulk endpoint, as the pump uses it: transfers submitted, completions collected
/// in the order they were submitted.
pub trait BulkPipe: Send + Unpin + 'static {
    /// The endpoint's maximum packet size.
    fn max_packet_size(&self) -> usize;
    /// Transfers submitted and not yet collected.
    fn pending(&self) -> usize;
    /// A buffer for a transfer of up to `len` bytes.
    fn allocate(&self, len: usize) -> Buffer {
        Buffer::new(len)
    }
    /// Starts a transfer (an IN transfer asks for `buffer.requested_len()` bytes).
    fn submit(&mut self, buffer: Buffer);
    /// The oldest transfer's completion; only called while `pending() > 0`.
    fn poll_next_complete(&mut self, cx: &mut Context<'_>) -> Poll<Completion>;
}

impl<Dir: EndpointDirection + Unpin + Send + 'static> BulkPipe for nusb::Endpoint<Bulk, Dir> {
    fn max_packet_size(&self) -> usize {
        nusb::Endpoint::max_packet_size(self)
    }
    fn pending(&self) -> usize {
        nusb::Endpoint::pending(self)
    }
    fn allocate(&self, len: usize) -> Buffer {
        nusb::Endpoint::allocate(self, len)
    }
    fn submit(&mut self, buffer: Buffer) {
        nusb::Endpoint::submit(self, buffer)
    }
    fn poll_next_complete(&mut self, cx: &mut Context<'_>) -> Poll<Completion> {
        nusb::Endpoint::poll_next_complete(self, cx)
    }
}

/// What a failed transfer means to the link, in words a field tech understands.
pub fn transfer_error(direction: &str, err: TransferError) -> io::Error {
    match err {
        TransferError::Disconnected => io::Error::new(
            io::ErrorKind::ConnectionReset,
            format!("USB device disconnected (bulk {direction})"),
        ),
        TransferError::Stall => io::Error::new(
            io::ErrorKind::BrokenPipe,
            format!("the terminal stalled its bulk {direction} endpoint"),
        ),
        TransferError::Cancelled => io::Error::new(
            io::ErrorKind::Interrupted,
            format!("bulk {direction} transfer cancelled"),
        ),
        other => io::Error::other(format!("bulk {direction} transfer failed: {other}")),
    }
}

/// The IN half: packets from the device as bytes.
struct Reader<P> {
    pipe: P,
    /// The transfer being handed out, and how much of it has been.
    current: Option<(Buffer, usize)>,
    /// Once a transfer failed, every read fails the same way.
    failed: Option<(io::ErrorKind, String)>,
}

impl<P: BulkPipe> Reader<P> {
    fn new(pipe: P) -> Reader<P> {
        let mut reader = Reader {
            pipe,
            current: None,
            failed: None,
        };
        reader.top_up(None);
        reader
    }

    /// Keeps [`READS_QUEUED`] one-packet transfers submitted, reusing `spent`: the
    /// buffers circulate, none is allocated once the queue is full.
    fn top_up(&mut self, mut spent: Option<Buffer>) {
        let packet = self.pipe.max_packet_size().max(1);
        while self.pipe.pending() < READS_QUEUED {
            let mut buffer = spent.take().unwrap_or_else(|| self.pipe.allocate(packet));
            buffer.clear();
            buffer.set_requested_len(packet);
            self.pipe.submit(buffer);
        }
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            if let Some((buffer, at)) = &mut self.current {
                let rest = buffer.get(*at..).unwrap_or_default();
                if !rest.is_empty() {
                    let n = rest.len().min(out.remaining());
                    out.put_slice(rest.get(..n).unwrap_or_default());
                    *at += n;
                    return Poll::Ready(Ok(()));
                }
            }
            if let Some((kind, message)) = &self.failed {
                return Poll::Ready(Err(io::Error::new(*kind, message.clone())));
            }
            let completion = match self.pipe.poll_next_complete(cx) {
                Poll::Ready(completion) => completion,
                Poll::Pending => return Poll::Pending,
            };
            let spent = self.current.take().map(|(buffer, _)| buffer);
            match completion.status {
                // A zero-length packet just ends a transfer: nothing to hand on.
                Ok(()) => {
                    self.top_up(spent);
                    self.current = Some((completion.buffer, 0));
                }
                Err(err) => {
                    let err = transfer_error("IN", err);
                    self.failed = Some((err.kind(), err.to_string()));
                    // Whatever arrived before the failure is still the device's.
                    self.current = Some((completion.buffer, 0));
                }
            }
        }
    }
}

/// The OUT half: bytes to the device as transfers.
struct Writer<P> {
    pipe: P,
    failed: Option<(io::ErrorKind, String)>,
}

impl<P: BulkPipe> Writer<P> {
    /// Collects finished transfers without waiting; the first failure sticks.
    fn reap(&mut self, cx: &mut Context<'_>) {
        while self.pipe.pending() > 0 {
            match self.pipe.poll_next_complete(cx) {
                Poll::Ready(completion) => {
                    if let Err(err) = completion.status
                        && self.failed.is_none()
                    {
                        let err = transfer_error("OUT", err);
                        self.failed = Some((err.kind(), err.to_string()));
                    }
                }
                Poll::Pending => return,
            }
        }
    }

    fn failure(&self) -> Option<io::Error> {
        self.failed
            .as_ref()
            .map(|(kind, message)| io::Error::new(*kind, message.clone()))
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        self.reap(cx);
        if let Some(err) = self.failure() {
            return Poll::Ready(Err(err));
        }
        if bytes.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // A zero-length packet may follow, so keep room for two transfers.
        if self.pipe.pending() + 2 > WRITES_IN_FLIGHT {
            return Poll::Pending;
        }
        let chunk = bytes.get(..WRITE_CHUNK.min(bytes.len())).unwrap_or(bytes);
        // Written buffers are not reused, so the system allocator does (a zero-copy
        // buffer costs a mapping each).
        self.pipe.submit(Buffer::from(chunk.to_vec()));
        let packet = self.pipe.max_packet_size().max(1);
        if chunk.len() % packet == 0 {
            self.pipe.submit(Buffer::new(0));
        }
        Poll::Ready(Ok(chunk.len()))
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.reap(cx);
        if let Some(err) = self.failure() {
            return Poll::Ready(Err(err));
        }
        if self.pipe.pending() > 0 {
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    }
}

/// A bulk IN/OUT endpoint pair as one async byte stream; generic over the endpoints
/// so tests can drive it without hardware.
pub struct BulkStream<I, O> {
    reader: Reader<I>,
    writer: Writer<O>,
}

impl<I: BulkPipe, O: BulkPipe> BulkStream<I, O> {
    /// Starts the pump: the IN transfers are queued at once.
    pub fn new(ep_in: I, ep_out: O) -> BulkStream<I, O> {
        BulkStream {
            reader: Reader::new(ep_in),
            writer: Writer {
                pipe: ep_out,
                failed: None,
            },
        }
    }
}

impl<I: BulkPipe, O: BulkPipe> AsyncRead for BulkStream<I, O> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().reader.poll_read(cx, buf)
    }
}

impl<I: BulkPipe, O: BulkPipe> AsyncWrite for BulkStream<I, O> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().writer.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().writer.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().writer.poll_flush(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    use std::task::Waker;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::wire::{Frame, FrameCodec, Inbound, Kind};
    use bytes::{Bytes, BytesMut};
    use tokio_util::codec::{Decoder, Encoder};

    /// A scripted endpoint: IN transfers complete with the packets the test queues
    /// (one packet each, as a device sends them); OUT transfers are recorded and
    /// complete unless the test holds them.
    #[derive(Clone)]
    struct Script(Arc<Mutex<State>>);

    struct State {
        is_in: bool,
        max_packet: usize,
        submitted: VecDeque<Buffer>,
        /// IN: what the device sends next, a packet or an error.
        device: VecDeque<Result<Vec<u8>, TransferError>>,
        /// OUT: transfers the device took, in order (ZLPs as empty ones).
        sent: Vec<Vec<u8>>,
        /// OUT: the device takes nothing while set.
        hold_out: bool,
        unplugged: bool,
        waker: Option<Waker>,
    }

    impl Script {
        fn new(is_in: bool, max_packet: usize) -> Script {
            Script(Arc::new(Mutex::new(State {
                is_in,
                max_packet,
                submitted: VecDeque::new(),
                device: VecDeque::new(),
                sent: Vec::new(),
                hold_out: false,
                unplugged: false,
                waker: None,
            })))
        }
        fn input(max_packet: usize) -> Script {
            Script::new(true, max_packet)
        }
        fn output(max_packet: usize) -> Script {
            Script::new(false, max_packet)
        }
        fn state(&self) -> std::sync::MutexGuard<'_, State> {
            self.0.lock().unwrap()
        }
        fn wake(s: &mut State) {
            if let Some(waker) = s.waker.take() {
                waker.wake();
            }
        }
        fn device_sends(&self, what: Result<&[u8], TransferError>) {
            let mut s = self.state();
            s.device.push_back(what.map(<[u8]>::to_vec));
            Script::wake(&mut s);
        }
        fn release_out(&self) {
            let mut s = self.state();
            s.hold_out = false;
            Script::wake(&mut s);
        }
        fn unplug(&self) {
            let mut s = self.state();
            s.unplugged = true;
            Script::wake(&mut s);
        }
    }

    impl BulkPipe for Script {
        fn max_packet_size(&self) -> usize {
            self.state().max_packet
        }
        fn pending(&self) -> usize {
            self.state().submitted.len()
        }
        fn submit(&mut self, buffer: Buffer) {
            let mut s = self.state();
            if s.is_in {
                assert_eq!(
                    buffer.requested_len() % s.max_packet,
                    0,
                    "IN asks for whole packets"
                );
            }
            s.submitted.push_back(buffer);
        }
        fn poll_next_complete(&mut self, cx: &mut Context<'_>) -> Poll<Completion> {
            let mut s = self.state();
            assert!(
                !s.submitted.is_empty(),
                "poll_next_complete with nothing pending"
            );
            if s.is_in {
                let Some(next) = s.device.pop_front() else {
                    s.waker = Some(cx.waker().clone());
                    return Poll::Pending;
                };
                let mut buffer = s.submitted.pop_front().unwrap();
                let (actual_len, status) = match next {
                    Ok(packet) => {
                        assert!(
                            packet.len() <= buffer.requested_len(),
                            "one packet per transfer"
                        );
                        buffer.extend_from_slice(&packet);
                        (packet.len(), Ok(()))
                    }
                    Err(e) => (0, Err(e)),
                };
                return Poll::Ready(Completion {
                    buffer,
                    actual_len,
                    status,
                });
            }
            if s.hold_out && !s.unplugged {
                s.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let buffer = s.submitted.pop_front().unwrap();
            let status = if s.unplugged {
                Err(TransferError::Disconnected)
            } else {
                s.sent.push(buffer.to_vec());
                Ok(())
            };
            Poll::Ready(Completion {
                actual_len: buffer.len(),
                buffer,
                status,
            })
        }
    }

    fn frame_bytes(payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        FrameCodec::new()
            .encode(
                Frame::data(Kind::STATUS, 7, Bytes::copy_from_slice(payload)),
                &mut out,
            )
            .unwrap();
        out.to_vec()
    }

    async fn read_some(stream: &mut BulkStream<Script, Script>) -> io::Result<Vec<u8>> {
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("a read completes")?;
        Ok(buf[..n].to_vec())
    }

    #[tokio::test]
    async fn keeps_reads_queued_and_reassembles_short_packets_into_a_frame() {
        let ep_in = Script::input(64);
        let mut stream = BulkStream::new(ep_in.clone(), Script::output(64));
        assert_eq!(
            ep_in.pending(),
            READS_QUEUED,
            "reads are queued before any is asked for"
        );
        let frame = frame_bytes(&[b'x'; 150]);
        // Full packets, then a short one; the device is free to split anywhere.
        for packet in frame.chunks(64) {
            ep_in.device_sends(Ok(packet));
        }
        let mut got = Vec::new();
        while got.len() < frame.len() {
            got.extend(read_some(&mut stream).await.unwrap());
            assert_eq!(
                ep_in.pending(),
                READS_QUEUED,
                "every completed read is resubmitted"
            );
        }
        assert_eq!(got, frame);
        let mut decoded = BytesMut::from(&got[..]);
        match FrameCodec::new().decode(&mut decoded).unwrap() {
            Some(Inbound::Frame(f)) => assert_eq!(f.payload.len(), 150),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_zero_length_packet_is_not_the_end_of_the_stream() {
        let ep_in = Script::input(512);
        let mut stream = BulkStream::new(ep_in.clone(), Script::output(512));
        ep_in.device_sends(Ok(b"\x00ab"));
        ep_in.device_sends(Ok(b""));
        ep_in.device_sends(Ok(b""));
        ep_in.device_sends(Ok(b"cd"));
        assert_eq!(read_some(&mut stream).await.unwrap(), b"\x00ab");
        // The zero-length packets are skipped, not returned as a 0-byte read (EOF).
        assert_eq!(read_some(&mut stream).await.unwrap(), b"cd");
    }

    #[tokio::test]
    async fn a_disconnect_fails_reads_and_writes_for_good() {
        let ep_in = Script::input(64);
        let ep_out = Script::output(64);
        let mut stream = BulkStream::new(ep_in.clone(), ep_out.clone());
        ep_in.device_sends(Ok(b"last words"));
        ep_in.device_sends(Err(TransferError::Disconnected));
        ep_out.unplug();
        assert_eq!(read_some(&mut stream).await.unwrap(), b"last words");
        for _ in 0..2 {
            let err = read_some(&mut stream).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
            assert!(err.to_string().contains("disconnected"), "{err}");
        }
        stream.write_all(b"hello").await.unwrap();
        let err = stream.flush().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        assert!(stream.write_all(b"again").await.is_err());
    }

    #[tokio::test]
    async fn a_stall_is_named() {
        let ep_in = Script::input(64);
        let mut stream = BulkStream::new(ep_in.clone(), Script::output(64));
        ep_in.device_sends(Err(TransferError::Stall));
        let err = read_some(&mut stream).await.unwrap_err();
        assert!(err.to_string().contains("stalled its bulk IN"), "{err}");
    }

    #[tokio::test]
    async fn whole_packet_writes_end_with_a_zero_length_packet() {
        let ep_out = Script::output(64);
        let mut stream = BulkStream::new(Script::input(64), ep_out.clone());
        stream.write_all(&[1u8; 100]).await.unwrap();
        stream.write_all(&[2u8; 128]).await.unwrap();
        stream.flush().await.unwrap();
        let sent = ep_out.state().sent.clone();
        let lens: Vec<usize> = sent.iter().map(Vec::len).collect();
        assert_eq!(
            lens,
            vec![100, 128, 0],
            "a ZLP after the 128-byte transfer only"
        );
    }

    #[tokio::test]
    async fn writes_wait_while_the_device_is_not_taking_them() {
        let ep_out = Script::output(64);
        ep_out.state().hold_out = true;
        let mut stream = BulkStream::new(Script::input(64), ep_out.clone());
        let writer = tokio::spawn(async move {
            for i in 0..10u8 {
                stream.write_all(&[i; 10]).await.unwrap();
            }
            stream.flush().await.unwrap();
            stream
        });
        // The writer fills the window, then waits; it never goes past it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while ep_out.pending() < WRITES_IN_FLIGHT - 1 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the window never filled"
            );
            tokio::task::yield_now().await;
        }
        for _ in 0..100 {
            tokio::task::yield_now().await;
            assert!(
                ep_out.pending() < WRITES_IN_FLIGHT,
                "at most the window in flight"
            );
        }
        assert!(!writer.is_finished());
        ep_out.release_out();
        let _stream = tokio::time::timeout(Duration::from_secs(5), writer)
            .await
            .unwrap()
            .unwrap();
        let sent = ep_out.state().sent.clone();
        assert_eq!(sent.len(), 10);
        for (i, transfer) in sent.iter().enumerate() {
            assert_eq!(transfer, &vec![i as u8; 10], "in order");
        }
    }

    #[test]
    fn large_writes_are_split_into_bounded_transfers() {
        let ep_out = Script::output(512);
        let mut stream = BulkStream::new(Script::input(512), ep_out.clone());
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let big = vec![9u8; WRITE_CHUNK * 3];
        match Pin::new(&mut stream).poll_write(&mut cx, &big) {
            Poll::Ready(Ok(n)) => assert_eq!(n, WRITE_CHUNK),
            other => panic!("{other:?}"),
        }
    }
}
