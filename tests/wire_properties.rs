//! Properties of the wire codec and the message parser, over generated inputs:
//! any frame survives a round trip; any byte stream decodes without a panic, within
//! bounded memory, to the same items however it is split; frames survive the noise
//! between them.

use bytes::BytesMut;
use posbridge::message::Message;
use posbridge::wire::{Frame, FrameCodec, Inbound, Kind, MAX_ENCODED, MAX_PAYLOAD};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

fn any_frame() -> impl Strategy<Value = Frame> {
    (
        any::<u8>(),
        any::<u8>(),
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300),
            proptest::collection::vec(any::<u8>(), 0..=MAX_PAYLOAD),
            // Runs without zero bytes stress COBS's 254-byte blocks.
            proptest::collection::vec(1u8..=255, 250..=520),
        ],
    )
        .prop_map(|(kind, seq, payload)| Frame::data(Kind(kind), seq, payload))
}

/// Decodes `stream` fed in pieces of the given sizes, checking the buffer bound.
fn decode_in_pieces(stream: &[u8], pieces: &[usize]) -> Vec<Inbound> {
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    let mut rest = stream;
    let mut sizes = pieces.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        buf.extend_from_slice(piece);
        while let Some(item) = codec.decode(&mut buf).unwrap() {
            items.push(item);
        }
        assert!(
            buf.len() <= MAX_ENCODED + n,
            "buffered {} bytes; at most one frame plus one read may wait",
            buf.len()
        );
    }
    while let Some(item) = codec.decode_eof(&mut buf).unwrap() {
        items.push(item);
    }
    items
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_frame_round_trips(frame in any_frame()) {
        let wire = FrameCodec::to_wire(&frame).unwrap();
        prop_assert_eq!(wire.first(), Some(&0));
        prop_assert_eq!(wire.last(), Some(&0));
        prop_assert!(!wire[1..wire.len() - 1].contains(&0));
        prop_assert!(wire.len() <= posbridge::wire::max_wire_len(frame.payload.len()));
        prop_assert_eq!(FrameCodec::decode_all(&wire), vec![Inbound::Frame(frame)]);
    }

    #[test]
    fn any_bytes_decode_without_panic_the_same_however_split(
        stream in proptest::collection::vec(any::<u8>(), 0..12_000),
        pieces in proptest::collection::vec(1usize..5000, 1..8),
    ) {
        let whole = FrameCodec::decode_all(&stream);
        let split = decode_in_pieces(&stream, &pieces);
        prop_assert_eq!(whole, split);
    }

    #[test]
    fn frames_survive_the_noise_between_them(
        frames in proptest::collection::vec(any_frame(), 1..6),
        noise in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 6),
        pieces in proptest::collection::vec(1usize..3000, 1..6),
    ) {
        let mut stream = Vec::new();
        for (frame, garbage) in frames.iter().zip(&noise) {
            // Noise closed by a delimiter, as when a line glitches between frames.
            stream.extend_from_slice(garbage);
            stream.push(0);
            stream.extend(FrameCodec::to_wire(frame).unwrap());
        }
        // Noise passes a CRC-32C check by chance once in four billion tries.
        let good: Vec<Frame> = decode_in_pieces(&stream, &pieces)
            .into_iter()
            .filter_map(|item| match item {
                Inbound::Frame(f) => Some(f),
                Inbound::Damaged(_) => None,
            })
            .collect();
        prop_assert_eq!(good, frames);
    }

    #[test]
    fn message_parser_never_panics(kind in any::<u8>(), payload in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Message::parse(Kind(kind), &payload);
    }

    #[test]
    fn message_parser_never_panics_on_json(kind in 0x10u8..=0x7f, json in json_object()) {
        let _ = Message::parse(Kind(kind), json.as_bytes());
    }
}

/// JSON objects built from the protocol's field names with values of any type.
fn json_object() -> impl Strategy<Value = String> {
    let names = prop_oneof![
        Just("terminalId"),
        Just("originalMerchantRefundId"),
        Just("paymentId"),
        Just("refundAmount"),
        Just("value"),
        Just("currency"),
        Just("memo"),
        Just("display"),
        Just("cols"),
        Just("rows"),
        Just("lines"),
        Just("tone"),
        Just("state"),
        Just("protocolVersion"),
    ];
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        "[A-Z]{0,4}".prop_map(serde_json::Value::from),
        ".{0,300}".prop_map(serde_json::Value::from),
    ];
    let value = leaf.prop_recursive(3, 24, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("value".to_owned()),
                    Just("currency".to_owned()),
                    Just("cols".to_owned()),
                    Just("rows".to_owned())
                ],
                inner,
                0..4
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    });
    proptest::collection::btree_map(names, value, 0..8).prop_map(|m| {
        let map: serde_json::Map<String, serde_json::Value> =
            m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        serde_json::Value::Object(map).to_string()
    })
}
