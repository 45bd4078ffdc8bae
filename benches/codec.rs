//! Wire codec throughput: encode and decode of one frame, for 64 B, 512 B and 4 KiB
//! payloads. Run with `cargo bench --bench codec`; figures in docs/PERFORMANCE.md.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use posbridge::wire::{Frame, FrameCodec, Inbound, Kind};
use tokio_util::codec::{Decoder, Encoder};

/// A JSON-like payload: mostly printable bytes with a few zeros, as real frames are
/// JSON (no zeros) but the codec must not assume it.
fn payload(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            if i % 97 == 0 {
                0
            } else {
                b' ' + (i % 90) as u8
            }
        })
        .collect()
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    for len in [64usize, 512, 4096] {
        let frame = Frame::data(Kind::REFUND, 7, payload(len));
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(format!("encode+decode {len} B"), |b| {
            let mut codec = FrameCodec::new();
            let mut buf = BytesMut::with_capacity(2 * len + 64);
            b.iter(|| {
                codec.encode(black_box(&frame), &mut buf).unwrap();
                match codec.decode(&mut buf).unwrap() {
                    Some(Inbound::Frame(f)) => black_box(f),
                    other => panic!("decoded {other:?}"),
                };
            });
        });
        group.bench_function(format!("encode {len} B"), |b| {
            let mut codec = FrameCodec::new();
            let mut buf = BytesMut::with_capacity(2 * len + 64);
            b.iter(|| {
                buf.clear();
                codec.encode(black_box(&frame), &mut buf).unwrap();
            });
        });
        let wire = FrameCodec::to_wire(&frame).unwrap();
        group.bench_function(format!("decode {len} B"), |b| {
            let mut codec = FrameCodec::new();
            let mut buf = BytesMut::with_capacity(wire.len());
            b.iter(|| {
                buf.extend_from_slice(black_box(&wire));
                match codec.decode(&mut buf).unwrap() {
                    Some(Inbound::Frame(f)) => black_box(f),
                    other => panic!("decoded {other:?}"),
                };
            });
        });
    }
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
