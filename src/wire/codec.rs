//! [`FrameCodec`]: delimiting, COBS, CRC and version checks over a byte stream.
//!
//! The decoder never fails and never panics: every run of bytes between two delimiters
//! becomes either a [`Frame`] or a [`Damage`] cause, so the link can answer with NAK.
//! Memory is bounded: a run longer than the largest possible frame is counted once as
//! [`Damage::Oversize`] and discarded up to the next delimiter instead of buffered.

use std::io;

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::frame::{Damage, Frame, Kind, WireError, checksum};
use super::{
    CRC_LEN, DELIMITER, HEADER_LEN, MAX_BODY, MAX_ENCODED, MAX_PAYLOAD, MIN_BODY, VERSION,
};

/// One item read off the line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// A frame that passed every check.
    Frame(Frame),
    /// Bytes that were not a frame, and why.
    Damaged(Damage),
}

/// Counters kept by a [`FrameCodec`] for the life of a connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WireStats {
    /// Good frames decoded.
    pub frames_in: u64,
    /// Frames encoded.
    pub frames_out: u64,
    /// Bytes consumed by the decoder, delimiters and noise included.
    pub bytes_in: u64,
    /// Bytes produced by the encoder, delimiters included.
    pub bytes_out: u64,
    damaged: [u64; Damage::ALL.len()],
}

impl WireStats {
    /// How many damaged frames of this cause were seen.
    pub fn damaged(&self, cause: Damage) -> u64 {
        self.damaged.get(cause as usize).copied().unwrap_or(0)
    }

    /// Damaged frames of every cause together.
    pub fn damaged_total(&self) -> u64 {
        self.damaged.iter().sum()
    }

    fn count(&mut self, cause: Damage) {
        if let Some(n) = self.damaged.get_mut(cause as usize) {
            *n += 1;
        }
    }
}

/// The link protocol v1 frame codec.
#[derive(Debug, Default)]
pub struct FrameCodec {
    stats: WireStats,
    /// Inside an oversize run: drop bytes until the next delimiter.
    discarding: bool,
    /// How much of the buffer is already known to hold no delimiter.
    scanned: usize,
    /// Keep each segment's raw bytes for traces.
    capture: bool,
    last_raw: Bytes,
}

impl FrameCodec {
    /// A codec with zeroed counters.
    pub fn new() -> FrameCodec {
        FrameCodec::default()
    }

    /// A codec that also keeps the raw bytes of the last item decoded (for `--trace`).
    pub fn capturing() -> FrameCodec {
        FrameCodec {
            capture: true,
            ..FrameCodec::default()
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> &WireStats {
        &self.stats
    }

    /// The raw bytes behind the last decoded item, trailing delimiter included; empty
    /// unless the codec was made with [`FrameCodec::capturing`].
    pub fn last_raw(&self) -> &Bytes {
        &self.last_raw
    }

    fn damaged(&mut self, cause: Damage) -> Inbound {
        self.stats.count(cause);
        Inbound::Damaged(cause)
    }

    /// Turns the bytes between two delimiters into an item.
    fn parse_segment(&mut self, mut segment: BytesMut) -> Inbound {
        if segment.len() > MAX_ENCODED {
            return self.damaged(Damage::Oversize);
        }
        let body_len = match cobs::decode_in_place_report(&mut segment) {
            Ok(report) if report.parsed_size() == segment.len() => report.frame_size(),
            _ => return self.damaged(Damage::Cobs),
        };
        if body_len < MIN_BODY {
            return self.damaged(Damage::TooShort);
        }
        if body_len > MAX_BODY {
            return self.damaged(Damage::Oversize);
        }
        segment.truncate(body_len);
        let crc_at = body_len - CRC_LEN;
        let (Some(&[version, kind, seq]), Some(crc_bytes)) =
            (segment.get(..HEADER_LEN), segment.get(crc_at..))
        else {
            return self.damaged(Damage::TooShort);
        };
        let received = u32::from_le_bytes(crc_bytes.try_into().unwrap_or_default());
        let payload_ref = segment.get(HEADER_LEN..crc_at).unwrap_or_default();
        if checksum(&[version, kind, seq], payload_ref) != received {
            return self.damaged(Damage::Crc);
        }
        if version != VERSION {
            return self.damaged(Damage::Version);
        }
        segment.truncate(crc_at);
        let payload = segment.freeze().slice(HEADER_LEN..);
        self.stats.frames_in += 1;
        Inbound::Frame(Frame {
            kind: Kind(kind),
            seq,
            payload,
        })
    }
}

impl Decoder for FrameCodec {
    type Item = Inbound;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Inbound>, io::Error> {
        loop {
            let unscanned = src.get(self.scanned..).unwrap_or_default();
            let Some(offset) = unscanned.iter().position(|&b| b == DELIMITER) else {
                self.scanned = src.len();
                if src.len() > MAX_ENCODED {
                    // Not a frame whatever follows: forget it rather than buffer it.
                    self.stats.bytes_in += src.len() as u64;
                    src.clear();
                    self.scanned = 0;
                    if !self.discarding {
                        self.discarding = true;
                        self.last_raw = Bytes::new();
                        return Ok(Some(self.damaged(Damage::Oversize)));
                    }
                }
                return Ok(None);
            };
            let end = self.scanned + offset;
            self.scanned = 0;
            let mut segment = src.split_to(end + 1);
            self.stats.bytes_in += segment.len() as u64;
            if std::mem::take(&mut self.discarding) {
                // The tail of an oversize run, counted when it began.
                continue;
            }
            if end == 0 {
                // Two delimiters in a row: an empty frame, ignored by definition.
                continue;
            }
            if self.capture {
                self.last_raw = segment.clone().freeze();
            }
            segment.truncate(end);
            return Ok(Some(self.parse_segment(segment)));
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Inbound>, io::Error> {
        if let Some(item) = self.decode(src)? {
            return Ok(Some(item));
        }
        let pending = !src.is_empty() && !self.discarding;
        self.stats.bytes_in += src.len() as u64;
        src.clear();
        self.scanned = 0;
        self.discarding = false;
        Ok(pending.then(|| self.damaged(Damage::Truncated)))
    }
}

impl Encoder<&Frame> for FrameCodec {
    type Error = io::Error;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), io::Error> {
        if frame.payload.len() > MAX_PAYLOAD {
            let err = WireError::PayloadTooLong {
                len: frame.payload.len(),
            };
            return Err(io::Error::new(io::ErrorKind::InvalidInput, err));
        }
        let header = [VERSION, frame.kind.0, frame.seq];
        let crc = checksum(&header, &frame.payload).to_le_bytes();
        let body_len = HEADER_LEN + frame.payload.len() + CRC_LEN;
        let start = dst.len();
        let room = cobs::max_encoding_length(body_len);
        dst.reserve(room + 2);
        dst.put_u8(DELIMITER);
        dst.resize(start + 1 + room, 0);
        let written = {
            let out = dst.get_mut(start + 1..).unwrap_or_default();
            let mut cobs = cobs::CobsEncoder::new(out);
            let pushed = cobs
                .push(&header)
                .and_then(|()| cobs.push(&frame.payload))
                .and_then(|()| cobs.push(&crc));
            if pushed.is_err() {
                dst.truncate(start);
                return Err(io::Error::other("COBS output buffer too small"));
            }
            cobs.finalize()
        };
        dst.truncate(start + 1 + written);
        dst.put_u8(DELIMITER);
        self.stats.frames_out += 1;
        self.stats.bytes_out += (written + 2) as u64;
        Ok(())
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = io::Error;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), io::Error> {
        self.encode(&frame, dst)
    }
}

impl FrameCodec {
    /// Encodes one frame to its wire bytes, both delimiters included.
    pub fn to_wire(frame: &Frame) -> Result<Vec<u8>, WireError> {
        let mut out = BytesMut::new();
        match FrameCodec::new().encode(frame, &mut out) {
            Ok(()) => Ok(out.to_vec()),
            Err(_) => Err(WireError::PayloadTooLong {
                len: frame.payload.len(),
            }),
        }
    }

    /// Decodes everything in `bytes` as if it were a whole stream that then ended.
    pub fn decode_all(bytes: &[u8]) -> Vec<Inbound> {
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::from(bytes);
        let mut items = Vec::new();
        while let Ok(Some(item)) = codec.decode_eof(&mut buf) {
            items.push(item);
        }
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: Kind, seq: u8, payload: &[u8]) -> Frame {
        Frame::data(kind, seq, payload.to_vec())
    }

    #[test]
    fn round_trip_and_delimiters() {
        let f = frame(Kind::REFUND, 7, br#"{"a":0}"#);
        let wire = FrameCodec::to_wire(&f).unwrap();
        assert_eq!(wire.first(), Some(&0));
        assert_eq!(wire.last(), Some(&0));
        assert!(!wire[1..wire.len() - 1].contains(&0));
        assert_eq!(FrameCodec::decode_all(&wire), vec![Inbound::Frame(f)]);
    }

    #[test]
    fn ack_wire_bytes_are_stable() {
        // version 1, kind ACK, seq 0, CRC-32C(01 01 00) little-endian, then COBS.
        let wire = FrameCodec::to_wire(&Frame::control(Kind::ACK, 0)).unwrap();
        let crc = checksum(&[1, 1, 0], &[]).to_le_bytes();
        let mut body = vec![1, 1, 0];
        body.extend_from_slice(&crc);
        let mut expected = vec![0];
        expected.extend(cobs::encode_vec(&body));
        expected.push(0);
        assert_eq!(wire, expected);
    }

    #[test]
    fn garbage_then_frame_resyncs() {
        let f = frame(Kind::HELLO, 0, b"{}");
        let mut stream = vec![0x41, 0x42, 0x43];
        stream.extend(FrameCodec::to_wire(&f).unwrap());
        let items = FrameCodec::decode_all(&stream);
        assert_eq!(items.len(), 2);
        assert!(matches!(items[0], Inbound::Damaged(_)));
        assert_eq!(items[1], Inbound::Frame(f));
    }

    #[test]
    fn corrupted_byte_is_crc_damage() {
        let mut wire = FrameCodec::to_wire(&frame(Kind::REFUND, 1, b"{\"x\":1}")).unwrap();
        // Flip a payload bit but keep it non-zero so COBS structure survives.
        let i = wire.len() - 7;
        wire[i] ^= 0x02;
        if wire[i] == 0 {
            wire[i] = 0x55;
        }
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::from(&wire[..]);
        let item = codec.decode(&mut buf).unwrap();
        assert_eq!(item, Some(Inbound::Damaged(Damage::Crc)));
        assert_eq!(codec.stats().damaged(Damage::Crc), 1);
    }

    #[test]
    fn wrong_version_is_counted() {
        let header = [2u8, 0x01, 0];
        let mut body = header.to_vec();
        body.extend(checksum(&header, &[]).to_le_bytes());
        let mut wire = vec![0];
        wire.extend(cobs::encode_vec(&body));
        wire.push(0);
        assert_eq!(
            FrameCodec::decode_all(&wire),
            vec![Inbound::Damaged(Damage::Version)]
        );
    }

    #[test]
    fn oversize_run_is_dropped_once_and_bounded() {
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::new();
        let mut items = Vec::new();
        for _ in 0..10 {
            buf.extend_from_slice(&[0x11; 1000]);
            while let Some(item) = codec.decode(&mut buf).unwrap() {
                items.push(item);
            }
            assert!(buf.len() <= MAX_ENCODED + 1000);
        }
        let good = frame(Kind::PING, 3, b"");
        buf.extend_from_slice(&FrameCodec::to_wire(&good).unwrap());
        while let Some(item) = codec.decode(&mut buf).unwrap() {
            items.push(item);
        }
        assert_eq!(
            items,
            vec![Inbound::Damaged(Damage::Oversize), Inbound::Frame(good)]
        );
        assert_eq!(codec.stats().damaged(Damage::Oversize), 1);
    }

    #[test]
    fn byte_at_a_time_equals_whole() {
        let frames: Vec<Frame> = (0..5u8)
            .map(|i| frame(Kind::REFUND_UPDATE, i, &vec![i; 300 * i as usize]))
            .collect();
        let mut stream = Vec::new();
        for f in &frames {
            stream.extend(FrameCodec::to_wire(f).unwrap());
        }
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in stream {
            buf.extend_from_slice(&[b]);
            while let Some(Inbound::Frame(f)) = codec.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
    }

    #[test]
    fn truncated_at_eof() {
        let wire = FrameCodec::to_wire(&frame(Kind::STATUS, 0, b"{}")).unwrap();
        let cut = &wire[..wire.len() - 3];
        assert_eq!(
            FrameCodec::decode_all(cut),
            vec![Inbound::Damaged(Damage::Truncated)]
        );
    }

    #[test]
    fn max_payload_round_trips_and_one_more_is_refused() {
        let f = frame(Kind::DISPLAY, 255, &vec![0u8; MAX_PAYLOAD]);
        let wire = FrameCodec::to_wire(&f).unwrap();
        assert_eq!(FrameCodec::decode_all(&wire), vec![Inbound::Frame(f)]);
        let long = frame(Kind::DISPLAY, 0, &vec![1u8; MAX_PAYLOAD + 1]);
        assert!(FrameCodec::to_wire(&long).is_err());
    }
}
