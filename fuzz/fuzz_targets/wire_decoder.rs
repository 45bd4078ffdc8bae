//! Feeds any bytes, in pieces whose sizes the input chooses, to the frame decoder.
//! It must never panic, never hold more than one maximum frame plus one piece, and
//! every frame it yields must survive a re-encode and decode unchanged.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use posbridge::wire::{FrameCodec, Inbound, MAX_ENCODED};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else {
        return;
    };
    let piece = usize::from(split).max(1) * 17;
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::new();
    let check = |item: Inbound| {
        if let Inbound::Frame(frame) = item {
            let wire = FrameCodec::to_wire(&frame).expect("a decoded frame re-encodes");
            assert_eq!(FrameCodec::decode_all(&wire), vec![Inbound::Frame(frame)]);
        }
    };
    for chunk in stream.chunks(piece) {
        buf.extend_from_slice(chunk);
        while let Some(item) = codec.decode(&mut buf).expect("the decoder never fails") {
            check(item);
        }
        assert!(buf.len() <= MAX_ENCODED + chunk.len());
    }
    while let Some(item) = codec.decode_eof(&mut buf).expect("the decoder never fails") {
        check(item);
    }
});
