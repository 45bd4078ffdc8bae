//! The link's two I/O tasks: one reads frames off the byte stream, one writes them,
//! so a peer that stops reading never stalls the state machine's timers.

use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};

use super::core::ReaderItem;
use super::stats::LinkStats;
use super::{BoxIo, TraceDirection, Tracer};
use crate::wire::{Frame, FrameCodec, Inbound, WireStats};

/// Reads frames until the stream ends or fails, handing each to the state machine.
pub(super) async fn read_loop(
    reader: ReadHalf<BoxIo>,
    items: mpsc::Sender<ReaderItem>,
    stats: Arc<LinkStats>,
    tracer: Option<Tracer>,
) {
    let codec = if tracer.is_some() {
        FrameCodec::capturing()
    } else {
        FrameCodec::new()
    };
    let mut framed = FramedRead::new(reader, codec);
    let mut counted = WireStats::default();
    loop {
        let next = framed.next().await;
        let now = framed.decoder().stats().clone();
        stats.add_wire(&counted, &now);
        counted = now;
        let item = match next {
            Some(Ok(inbound)) => {
                if let Some(trace) = &tracer {
                    trace(TraceDirection::In, framed.decoder().last_raw(), &inbound);
                }
                ReaderItem::Inbound(inbound)
            }
            Some(Err(e)) => ReaderItem::Closed(e.to_string()),
            None => ReaderItem::Closed("end of stream".into()),
        };
        let last = matches!(item, ReaderItem::Closed(_));
        if items.send(item).await.is_err() || last {
            return;
        }
    }
}

/// Writes the frames it is given, in order, until the stream fails (its error is
/// returned) or the link stops.
pub(super) async fn write_loop(
    writer: WriteHalf<BoxIo>,
    mut frames: mpsc::Receiver<Frame>,
    stats: Arc<LinkStats>,
    tracer: Option<Tracer>,
) -> String {
    let mut framed = FramedWrite::new(writer, FrameCodec::new());
    let mut counted = WireStats::default();
    while let Some(first) = frames.recv().await {
        let mut next = Some(first);
        while let Some(frame) = next {
            if let Some(trace) = &tracer {
                let raw = FrameCodec::to_wire(&frame).unwrap_or_default();
                trace(TraceDirection::Out, &raw, &Inbound::Frame(frame.clone()));
            }
            if let Err(e) = SinkExt::<Frame>::feed(&mut framed, frame).await {
                return e.to_string();
            }
            next = frames.try_recv().ok();
        }
        if let Err(e) = SinkExt::<Frame>::flush(&mut framed).await {
            return e.to_string();
        }
        let now = framed.encoder().stats().clone();
        stats.add_wire(&counted, &now);
        counted = now;
    }
    "link stopped".into()
}
