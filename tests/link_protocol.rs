//! The link's rules, frame by frame, against a hand-driven peer (SPEC §3–4).
//!
//! Time is paused: the runtime jumps to the next timer as soon as every task waits,
//! so timer behaviour is checked to the millisecond without any real waiting.

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use posbridge::link::{
    DownReason, Link, LinkConfig, LinkEvent, LinkHandle, OneShot, Role, SendError,
};
use posbridge::wire::{Frame, FrameCodec, Inbound, Kind};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::Framed;

const HELLO: &str = r#"{"terminalId":"T1"}"#;

/// The far end of the line, driven by the test.
struct Peer {
    framed: Framed<DuplexStream, FrameCodec>,
}

impl Peer {
    async fn send(&mut self, frame: Frame) {
        self.framed.send(frame).await.unwrap();
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.framed.get_mut().write_all(bytes).await.unwrap();
    }

    /// The next frame, or None if nothing comes within `wait` (virtual time).
    async fn within(&mut self, wait: Duration) -> Option<Frame> {
        match tokio::time::timeout(wait, self.framed.next()).await {
            Ok(Some(Ok(Inbound::Frame(f)))) => Some(f),
            Ok(other) => panic!("peer read {other:?}"),
            Err(_) => None,
        }
    }

    async fn next(&mut self) -> Frame {
        self.within(Duration::from_secs(60))
            .await
            .expect("a frame within a minute")
    }
}

fn start(role: Role) -> (LinkHandle, mpsc::Receiver<LinkEvent>, Peer) {
    let (near, far) = tokio::io::duplex(16 * 1024);
    let (handle, events) = Link::spawn(LinkConfig::new(role, None), OneShot::new(near));
    let peer = Peer {
        framed: Framed::new(far, FrameCodec::new()),
    };
    (handle, events, peer)
}

fn terminal_role() -> Role {
    Role::Terminal {
        hello: Bytes::from_static(HELLO.as_bytes()),
    }
}

async fn event(events: &mut mpsc::Receiver<LinkEvent>) -> LinkEvent {
    tokio::time::timeout(Duration::from_secs(60), events.recv())
        .await
        .expect("an event within a minute")
        .expect("link alive")
}

/// Opens a session on a bridge link and returns with HELLO acknowledged.
async fn bridge_session() -> (LinkHandle, mpsc::Receiver<LinkEvent>, Peer) {
    let (link, mut events, mut peer) = start(Role::Bridge);
    assert_eq!(peer.next().await.kind, Kind::RESET);
    peer.send(Frame::data(Kind::HELLO, 0, HELLO)).await;
    assert!(matches!(
        event(&mut events).await,
        LinkEvent::Up { session: 1 }
    ));
    // HELLO is acknowledged at once, before the layer above sees it.
    assert_eq!(peer.next().await, Frame::control(Kind::ACK, 0));
    let LinkEvent::Data(hello) = event(&mut events).await else {
        panic!("HELLO not delivered")
    };
    assert_eq!(hello.kind, Kind::HELLO);
    (link, events, peer)
}

#[tokio::test(start_paused = true)]
async fn bridge_without_session_answers_reset() {
    let (_link, mut events, mut peer) = start(Role::Bridge);
    assert_eq!(peer.next().await, Frame::control(Kind::RESET, 0));
    peer.send(Frame::data(Kind::REFUND, 9, "{}")).await;
    assert_eq!(peer.next().await.kind, Kind::RESET);
    peer.send(Frame::control(Kind::PING, 4)).await;
    assert_eq!(peer.next().await.kind, Kind::RESET);
    assert!(
        tokio::time::timeout(Duration::from_millis(10), events.recv())
            .await
            .is_err(),
        "nothing is delivered without a session"
    );
}

#[tokio::test(start_paused = true)]
async fn ack_waits_for_the_receiver_and_duplicates_are_not_redelivered() {
    let (_link, mut events, mut peer) = bridge_session().await;
    peer.send(Frame::data(Kind::REFUND, 1, r#"{"n":1}"#)).await;
    let LinkEvent::Data(refund) = event(&mut events).await else {
        panic!("REFUND not delivered")
    };
    assert_eq!(
        peer.within(Duration::from_millis(150)).await,
        None,
        "ACK before the receiver let it go"
    );
    // A retransmission while the receiver still holds the frame is neither delivered nor acknowledged.
    peer.send(Frame::data(Kind::REFUND, 1, r#"{"n":1}"#)).await;
    assert_eq!(peer.within(Duration::from_millis(50)).await, None);
    refund.ack();
    assert_eq!(peer.next().await, Frame::control(Kind::ACK, 1));
    // Once acknowledged, a repeat is acknowledged again and still not delivered.
    peer.send(Frame::data(Kind::REFUND, 1, r#"{"n":1}"#)).await;
    assert_eq!(peer.next().await, Frame::control(Kind::ACK, 1));
    peer.send(Frame::data(Kind::INQUIRY, 2, r#"{"n":2}"#)).await;
    let LinkEvent::Data(next) = event(&mut events).await else {
        panic!("INQUIRY not delivered")
    };
    assert_eq!((next.kind, next.seq), (Kind::INQUIRY, 2));
}

#[tokio::test(start_paused = true)]
async fn damaged_frames_are_nakked_and_counted() {
    let (link, _events, mut peer) = bridge_session().await;
    peer.send_raw(&[0x00, 0x13, 0x37, 0x42, 0x00]).await;
    assert_eq!(peer.next().await, Frame::control(Kind::NAK, 0));
    let mut wire = FrameCodec::to_wire(&Frame::data(Kind::REFUND, 1, "{}")).unwrap();
    let i = wire.len() - 3;
    wire[i] = wire[i].wrapping_add(1).max(1);
    peer.send_raw(&wire).await;
    assert_eq!(peer.next().await, Frame::control(Kind::NAK, 0));
    let stats = link.stats();
    assert_eq!(stats.damaged_total(), 2);
    assert_eq!(stats.naks_sent, 2);
}

#[tokio::test(start_paused = true)]
async fn retransmits_on_timeout_three_times_then_goes_down() {
    let (link, mut events, mut peer) = bridge_session().await;
    let sender = link.clone();
    let sent =
        tokio::spawn(async move { sender.send(Kind::WELCOME, Bytes::from_static(b"{}")).await });
    let first = peer.next().await;
    assert_eq!((first.kind, first.seq), (Kind::WELCOME, 0));
    let t0 = Instant::now();
    for n in 1..=3u32 {
        let again = peer.next().await;
        assert_eq!(again, first, "retransmission {n} is the same frame");
        assert_eq!(t0.elapsed(), Duration::from_millis(200) * n);
    }
    assert_eq!(peer.within(Duration::from_millis(199)).await, None);
    assert_eq!(
        sent.await.unwrap(),
        Err(SendError::Unconfirmed(DownReason::NoAck))
    );
    assert!(matches!(
        event(&mut events).await,
        LinkEvent::Down {
            session: 1,
            reason: DownReason::NoAck
        }
    ));
    assert_eq!(link.stats().retransmissions, 3);
    // Without a session the bridge asks for HELLO again.
    peer.send(Frame::control(Kind::PING, 1)).await;
    assert_eq!(peer.next().await.kind, Kind::RESET);
}

#[tokio::test(start_paused = true)]
async fn nak_retransmits_at_once_and_ack_advances_seq() {
    let (link, _events, mut peer) = bridge_session().await;
    let sender = link.clone();
    let sent = tokio::spawn(async move {
        sender
            .send(Kind::DISPLAY, Bytes::from_static(b"{}"))
            .await?;
        sender.send(Kind::DISPLAY, Bytes::from_static(b"{}")).await
    });
    let first = peer.next().await;
    let t0 = Instant::now();
    peer.send(Frame::control(Kind::NAK, 0)).await;
    assert_eq!(peer.next().await, first);
    assert!(t0.elapsed() < Duration::from_millis(1));
    peer.send(Frame::control(Kind::ACK, first.seq)).await;
    let second = peer.next().await;
    assert_eq!(second.seq, first.seq.wrapping_add(1));
    // A stale ACK changes nothing; the right one completes the send.
    peer.send(Frame::control(Kind::ACK, first.seq)).await;
    peer.send(Frame::control(Kind::ACK, second.seq)).await;
    assert_eq!(sent.await.unwrap(), Ok(()));
}

#[tokio::test(start_paused = true)]
async fn ping_is_answered_and_silence_brings_the_link_down() {
    let (_link, mut events, mut peer) = bridge_session().await;
    peer.send(Frame::control(Kind::PING, 77)).await;
    assert_eq!(peer.next().await, Frame::control(Kind::PONG, 77));
    let t0 = Instant::now();
    for n in 1..=3u32 {
        let ping = peer.next().await;
        assert_eq!(ping.kind, Kind::PING);
        assert_eq!(t0.elapsed(), Duration::from_secs(5) * n);
    }
    assert!(matches!(
        event(&mut events).await,
        LinkEvent::Down {
            reason: DownReason::PeerSilent,
            ..
        }
    ));
    assert_eq!(t0.elapsed(), Duration::from_secs(20));
}

#[tokio::test(start_paused = true)]
async fn a_new_hello_resets_the_session() {
    let (link, mut events, mut peer) = bridge_session().await;
    let sender = link.clone();
    let sent =
        tokio::spawn(async move { sender.send(Kind::WELCOME, Bytes::from_static(b"{}")).await });
    let welcome = peer.next().await;
    assert_eq!(welcome.seq, 0);
    // The terminal restarted and never saw WELCOME: it says HELLO again.
    peer.send(Frame::data(Kind::HELLO, 0, HELLO)).await;
    assert_eq!(
        sent.await.unwrap(),
        Err(SendError::Unconfirmed(DownReason::Reset))
    );
    assert!(matches!(
        event(&mut events).await,
        LinkEvent::Down { session: 1, .. }
    ));
    assert!(matches!(
        event(&mut events).await,
        LinkEvent::Up { session: 2 }
    ));
    assert_eq!(peer.next().await, Frame::control(Kind::ACK, 0));
    let LinkEvent::Data(hello) = event(&mut events).await else {
        panic!("second HELLO not delivered")
    };
    assert_eq!(hello.session, 2);
    let sender = link.clone();
    tokio::spawn(async move { sender.send(Kind::WELCOME, Bytes::from_static(b"{}")).await });
    assert_eq!(peer.next().await.seq, 0, "sequence numbers start again");
}

#[tokio::test(start_paused = true)]
async fn terminal_opens_with_hello_and_retries_it() {
    let (link, mut events, mut peer) = start(terminal_role());
    // Queued before the session exists: it must wait for HELLO's ACK.
    let sender = link.clone();
    let sent =
        tokio::spawn(async move { sender.send(Kind::REFUND, Bytes::from_static(b"{}")).await });
    let hello = peer.next().await;
    assert_eq!(hello.kind, Kind::HELLO);
    assert_eq!(&hello.payload[..], HELLO.as_bytes());
    // Each repeat is a new HELLO with the next seq, 200 ms apart.
    let t0 = Instant::now();
    let mut last = hello.seq;
    for n in 1..=3u32 {
        let again = peer.next().await;
        assert_eq!((again.kind, &again.payload), (Kind::HELLO, &hello.payload));
        assert_eq!(again.seq, last.wrapping_add(1));
        assert_eq!(t0.elapsed(), Duration::from_millis(200) * n);
        last = again.seq;
    }
    // Four transmissions unanswered: a pause of hello_retry, then a fresh HELLO.
    let t1 = Instant::now();
    let retry = peer.next().await;
    assert_eq!(retry.kind, Kind::HELLO);
    assert_eq!(t1.elapsed(), Duration::from_millis(200 + 1000));
    // Data before the session is up may be from an old session: not delivered, not acknowledged.
    peer.send(Frame::data(Kind::WELCOME, 0, "{}")).await;
    assert_eq!(peer.within(Duration::from_millis(100)).await, None);
    // Only the ACK of the latest HELLO opens the session.
    peer.send(Frame::control(Kind::ACK, last)).await;
    assert_eq!(
        peer.within(Duration::from_millis(50)).await.map(|f| f.kind),
        None
    );
    peer.send(Frame::control(Kind::ACK, retry.seq)).await;
    assert!(matches!(
        event(&mut events).await,
        LinkEvent::Up { session: 1 }
    ));
    let refund = peer.next().await;
    assert_eq!(
        (refund.kind, refund.seq),
        (Kind::REFUND, retry.seq.wrapping_add(1))
    );
    peer.send(Frame::control(Kind::ACK, refund.seq)).await;
    assert_eq!(sent.await.unwrap(), Ok(()));
}

#[tokio::test(start_paused = true)]
async fn terminal_answers_reset_with_a_new_hello() {
    let (_link, mut events, mut peer) = start(terminal_role());
    let hello = peer.next().await;
    assert_eq!(hello.kind, Kind::HELLO);
    // A RESET while HELLO is in flight is already answered by it.
    peer.send(Frame::control(Kind::RESET, 0)).await;
    peer.send(Frame::control(Kind::ACK, hello.seq)).await;
    assert!(matches!(
        event(&mut events).await,
        LinkEvent::Up { session: 1 }
    ));
    peer.send(Frame::data(Kind::WELCOME, 0, "{}")).await;
    assert!(matches!(event(&mut events).await, LinkEvent::Data(_)));
    assert_eq!(peer.next().await, Frame::control(Kind::ACK, 0));
    // The bridge restarted: the terminal starts over.
    peer.send(Frame::control(Kind::RESET, 0)).await;
    assert!(matches!(
        event(&mut events).await,
        LinkEvent::Down {
            reason: DownReason::Reset,
            ..
        }
    ));
    let again = peer.next().await;
    assert_eq!(
        (again.kind, again.seq),
        (Kind::HELLO, hello.seq.wrapping_add(1))
    );
    peer.send(Frame::control(Kind::ACK, again.seq)).await;
    assert!(matches!(
        event(&mut events).await,
        LinkEvent::Up { session: 2 }
    ));
    // The terminal forgot what it had delivered: a bridge frame with seq 0 is new.
    peer.send(Frame::data(Kind::WELCOME, 0, "{}")).await;
    assert!(matches!(event(&mut events).await, LinkEvent::Data(_)));
}

#[test]
fn ack_timeout_scales_with_the_line() {
    let usb = LinkConfig::new(Role::Bridge, None);
    assert_eq!(usb.ack_timeout(4096), Duration::from_millis(200));
    let fast = LinkConfig::new(Role::Bridge, Some(115_200));
    let slow = LinkConfig::new(Role::Bridge, Some(9_600));
    assert!(fast.ack_timeout(0) > Duration::from_millis(200));
    assert!(fast.ack_timeout(4096) > fast.ack_timeout(64));
    // 4 KiB at 9600 baud takes over four seconds on the line.
    assert!(slow.ack_timeout(4096) > Duration::from_millis(4400));
    assert!(slow.ack_timeout(4096) < Duration::from_millis(4700));
}

/// A stream that reads nothing and fails every write, like a device unplugged
/// under the writer.
struct BrokenWrites;

impl tokio::io::AsyncRead for BrokenWrites {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Pending
    }
}

impl tokio::io::AsyncWrite for BrokenWrites {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(Err(std::io::Error::other("device gone")))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// First a stream whose writes fail, then a good one.
struct BrokenThenGood(Option<DuplexStream>, bool);

impl posbridge::link::Connector for BrokenThenGood {
    fn connect(
        &mut self,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Option<posbridge::link::BoxIo>> + Send + '_>,
    > {
        let io: Option<posbridge::link::BoxIo> = if self.1 {
            self.0.take().map(|d| Box::new(d) as posbridge::link::BoxIo)
        } else {
            self.1 = true;
            Some(Box::new(BrokenWrites))
        };
        Box::pin(async move { io })
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_write_ends_the_stream_and_the_link_reconnects() {
    // Found by the fault campaign: the link polled its finished writer task again
    // and its task panicked, leaving the line dead until the process restarted.
    let (near, far) = tokio::io::duplex(16 * 1024);
    let (_link, _events) = Link::spawn(
        LinkConfig::new(Role::Bridge, None),
        BrokenThenGood(Some(near), false),
    );
    let mut peer = Peer {
        framed: Framed::new(far, FrameCodec::new()),
    };
    assert_eq!(peer.next().await.kind, Kind::RESET);
}

#[tokio::test(start_paused = true)]
async fn a_late_ack_of_the_last_data_frame_does_not_open_the_next_session() {
    // Found by the power-cut campaign: a bridge slow to record a REFUND acknowledged it
    // after the terminal had given up on it and said HELLO again. That HELLO carried the
    // REFUND's own seq, so the late ACK opened the terminal's session while the bridge
    // was still in the old one, and the bridge's next frame (seq 3 of the old session)
    // was delivered where a new session's seq 0 was due.
    let (link, mut events, mut peer) = start(terminal_role());
    let hello = peer.next().await;
    peer.send(Frame::control(Kind::ACK, hello.seq)).await;
    assert!(matches!(
        event(&mut events).await,
        LinkEvent::Up { session: 1 }
    ));
    let sender = link.clone();
    let sent =
        tokio::spawn(async move { sender.send(Kind::REFUND, Bytes::from_static(b"{}")).await });
    let refund = peer.next().await;
    assert_eq!(refund.seq, hello.seq.wrapping_add(1));
    for _ in 0..3 {
        assert_eq!(peer.next().await, refund, "retransmission");
    }
    assert_eq!(
        sent.await.unwrap(),
        Err(SendError::Unconfirmed(DownReason::NoAck))
    );
    assert!(matches!(
        event(&mut events).await,
        LinkEvent::Down {
            session: 1,
            reason: DownReason::NoAck
        }
    ));
    let again = peer.next().await;
    assert_eq!(again.kind, Kind::HELLO);
    assert_ne!(
        again.seq, refund.seq,
        "a HELLO must not reuse the seq of a frame whose ACK may still come"
    );
    // The bridge, still in the old session, acknowledges the REFUND at last and sends
    // its next frame of that session.
    peer.send(Frame::control(Kind::ACK, refund.seq)).await;
    peer.send(Frame::data(Kind::REFUND_UPDATE, 3, "{}")).await;
    assert_eq!(peer.within(Duration::from_millis(100)).await, None);
    assert!(
        tokio::time::timeout(Duration::from_millis(1), events.recv())
            .await
            .is_err(),
        "nothing of the old session is delivered, no session opens"
    );
    // Then it sees the HELLO and answers it: the new session starts at seq 0.
    let latest = peer.next().await;
    assert_eq!(latest.kind, Kind::HELLO);
    peer.send(Frame::control(Kind::ACK, latest.seq)).await;
    assert!(matches!(
        event(&mut events).await,
        LinkEvent::Up { session: 2 }
    ));
    peer.send(Frame::data(Kind::REFUND_UPDATE, 0, "{}")).await;
    let LinkEvent::Data(first) = event(&mut events).await else {
        panic!("the new session's first frame was not delivered")
    };
    assert_eq!((first.session, first.seq), (2, 0));
}
