//! The implementation against `protocol/vectors/`, which the reference implementation
//! in `protocol/reference/` (plain Python, written from the specification) produced.

use std::collections::HashSet;

use posbridge::message::{Direction, Message};
use posbridge::wire::{Frame, FrameCodec, Inbound, Kind};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!("{}/protocol/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON: {e}"))
}

fn list<'a>(value: &'a Value, what: &str) -> &'a Vec<Value> {
    let list = value
        .as_array()
        .unwrap_or_else(|| panic!("{what}: expected a list"));
    assert!(!list.is_empty(), "{what}: no vectors");
    list
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("vector {}: `{key}` missing", v["name"]))
}

fn bytes(hex: &str) -> Vec<u8> {
    hex.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap_or_else(|_| panic!("bad hex {b:?}")))
        .collect()
}

/// An expected item, in the vectors' words, against what the codec decoded.
fn check_item(vector: &str, expect: &Value, got: &Inbound) {
    match (expect.get("damaged"), got) {
        (Some(cause), Inbound::Damaged(d)) => {
            assert_eq!(Some(d.name()), cause.as_str(), "{vector}");
        }
        (None, Inbound::Frame(frame)) => {
            assert_eq!(
                expect["kind"].as_u64(),
                Some(u64::from(frame.kind.0)),
                "{vector}: kind"
            );
            assert_eq!(
                expect["seq"].as_u64(),
                Some(u64::from(frame.seq)),
                "{vector}: seq"
            );
            assert_eq!(
                bytes(text(expect, "payloadHex")),
                frame.payload.to_vec(),
                "{vector}: payload"
            );
            if let Some(name) = expect["kindName"].as_str() {
                assert_eq!(frame.kind.name(), Some(name), "{vector}: kind name");
            }
        }
        _ => panic!("{vector}: expected {expect}, decoded {got:?}"),
    }
}

#[test]
fn every_frame_vector_decodes_and_encodes_byte_for_byte() {
    let vectors = load("frames.json");
    let mut kinds = HashSet::new();
    for v in list(&vectors, "frames.json") {
        let name = text(v, "name");
        let wire = bytes(text(v, "hex"));
        let items = FrameCodec::decode_all(&wire);
        assert_eq!(items.len(), 1, "{name}: {items:?}");
        check_item(name, &v["expect"], &items[0]);
        let Inbound::Frame(frame) = &items[0] else {
            unreachable!()
        };
        kinds.insert(frame.kind);
        let again = FrameCodec::to_wire(&Frame::data(frame.kind, frame.seq, frame.payload.clone()))
            .unwrap();
        assert_eq!(again, wire, "{name}: our encoding differs");
    }
    for kind in Kind::ALL {
        assert!(kinds.contains(&kind), "no vector for {kind}");
    }
}

#[test]
fn damaged_and_stream_vectors_decode_as_specified() {
    for file in ["damaged.json", "streams.json"] {
        let vectors = load(file);
        for v in list(&vectors, file) {
            let name = text(v, "name");
            let items = FrameCodec::decode_all(&bytes(text(v, "hex")));
            let expect = list(&v["expect"], name);
            assert_eq!(items.len(), expect.len(), "{file} {name}: {items:?}");
            for (e, got) in expect.iter().zip(&items) {
                check_item(name, e, got);
            }
        }
    }
}

fn payload_of(v: &Value) -> Vec<u8> {
    match v.get("payloadText") {
        Some(text) => text.as_str().unwrap_or_default().as_bytes().to_vec(),
        None => serde_json::to_vec(&v["payload"]).unwrap(),
    }
}

#[test]
fn message_vectors_are_accepted_or_refused_by_name() {
    let vectors = load("messages.json");
    for v in list(&vectors["valid"], "messages.valid") {
        let name = text(v, "name");
        let kind = Kind(v["kind"].as_u64().unwrap() as u8);
        let message =
            Message::parse(kind, &payload_of(v)).unwrap_or_else(|e| panic!("{name}: refused: {e}"));
        let parsed: Value = serde_json::from_slice(&message.to_frame_payload()).unwrap();
        assert_eq!(parsed, v["parsed"], "{name}");
    }
    for v in list(&vectors["invalid"], "messages.invalid") {
        let name = text(v, "name");
        let kind = Kind(v["kind"].as_u64().unwrap() as u8);
        let result = match v["direction"].as_str() {
            Some("toBridge") => Message::parse_from(Direction::ToBridge, kind, &payload_of(v)),
            _ => Message::parse(kind, &payload_of(v)),
        };
        let err = result.expect_err(name);
        assert_eq!(err.code.as_str(), text(v, "code"), "{name}: {err}");
        assert_eq!(err.field.as_deref(), v["field"].as_str(), "{name}: {err}");
    }
}

/// Display widths (SPEC §6.6), as the generator computed them from Python's own
/// Unicode database, against the fitter's measure.
#[test]
fn width_vectors_measure_the_same() {
    let vectors = load("widths.json");
    for v in list(&vectors, "widths.json") {
        let line = text(v, "text");
        for (key, wide) in [("columns", false), ("columnsAmbiguousWide", true)] {
            assert_eq!(
                Some(posbridge::message::text_width(line, wide) as u64),
                v[key].as_u64(),
                "{line:?} {key}"
            );
        }
    }
}
