"""Writes protocol/vectors/*.json from the reference implementation.

Run from the repository root:  python3 protocol/reference/generate.py
The files are committed; the Rust test suite (tests/vectors.rs) checks the
implementation against them.
"""

import json
import os
import sys
import unicodedata

sys.path.insert(0, os.path.dirname(__file__))
import posbridge_wire as w  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "vectors")


def hx(data):
    return " ".join(f"{b:02x}" for b in data)


def meaning(item):
    if item[0] == "frame":
        _, kind, seq, payload = item
        m = {"kind": kind, "kindName": w.KINDS.get(kind), "seq": seq, "payloadHex": hx(payload)}
        try:
            m["payloadText"] = payload.decode("utf-8")
        except UnicodeDecodeError:
            pass
        return m
    return {"damaged": item[1]}


def frame_vector(name, description, kind, seq, payload):
    wire = w.encode_frame(kind, seq, payload)
    items = w.decode_stream(wire)
    assert items == [("frame", kind, seq, payload)], name
    return {"name": name, "description": description, "hex": hx(wire), "expect": meaning(items[0])}


def j(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def frames():
    v = []
    v.append(frame_vector("ack", "ACK of the data frame with seq 2", 0x01, 2, b""))
    v.append(frame_vector("nak", "NAK, sent for a damaged frame; seq is 0", 0x02, 0, b""))
    v.append(frame_vector("ping", "PING number 5", 0x03, 5, b""))
    v.append(frame_vector("pong", "PONG answering PING number 5", 0x04, 5, b""))
    v.append(frame_vector("reset", "RESET: the bridge has no session; send HELLO", 0x05, 0, b""))
    v.append(frame_vector("hello", "HELLO opening a session, the terminal's first HELLO transmission (seq 1)", 0x10, 1,
                          j({"terminalId": "TERM-1", "model": "M400", "firmware": "2.4.1", "protocolVersion": 1,
                             "display": {"cols": 20, "rows": 4}})))
    v.append(frame_vector("hello_display_languages",
                          "HELLO of a 16x4 terminal that can draw Japanese and English (SPEC 6.1)", 0x10, 2,
                          j({"terminalId": "TERM-2", "display": {"cols": 16, "rows": 4, "charset": "utf-8",
                                                                 "languages": ["ja", "en"]}})))
    v.append(frame_vector("welcome", "WELCOME, the bridge's first data frame of the session (seq 0)", 0x11, 0,
                          j({"bridgeVersion": "0.1.0", "online": True, "queued": 0, "time": "2026-11-24T18:00:00Z"})))
    v.append(frame_vector("refund", "REFUND of 12.50 USD, the terminal's first data frame after HELLO seq 1", 0x20, 2,
                          j({"originalMerchantRefundId": "REF-1", "paymentId": "PAY-1",
                             "refundAmount": {"value": 1250, "currency": "USD"}})))
    v.append(frame_vector("refund_full", "REFUND of the whole payment (no refundAmount) with a memo", 0x20, 3,
                          j({"originalMerchantRefundId": "REF-2", "paymentId": "PAY-2", "memo": "box damaged"})))
    v.append(frame_vector("refund_update", "REFUND_UPDATE: REF-1 succeeded", 0x21, 1,
                          j({"originalMerchantRefundId": "REF-1", "state": "SUCCEEDED",
                             "refundRequestId": "PB0019B2C3D4E5F60123456789ABCDEF", "refundId": "2026112419401089",
                             "refundTime": "2026-11-24T18:00:01Z", "refundAmount": {"value": 1250, "currency": "USD"},
                             "resultCode": "SUCCESS", "resultMessage": "Success."})))
    v.append(frame_vector("inquiry", "INQUIRY about REF-1", 0x22, 4, j({"originalMerchantRefundId": "REF-1"})))
    v.append(frame_vector("display", "DISPLAY of two lines, good news", 0x30, 2,
                          j({"lines": ["Refund approved", "12.50 USD"], "tone": "ok"})))
    v.append(frame_vector("status", "STATUS (an empty object)", 0x40, 5, b"{}"))
    v.append(frame_vector("status_report", "STATUS_REPORT: offline with 3 refunds queued", 0x41, 3,
                          j({"online": False, "queued": 3, "lastCloudContact": "2026-11-24T17:55:00Z",
                             "provider": "antom"})))
    v.append(frame_vector("error", "ERROR about REF-9's amount", 0x7F, 4,
                          j({"code": "AMOUNT_OUT_OF_RANGE",
                             "message": "refundAmount.value: must be an integer from 1 to 2147483647 (minor units)",
                             "ref": "REF-9"})))
    v.append(frame_vector("seq_255", "sequence numbers wrap: seq 255 (the next is 0)", 0x21, 255, b"{}"))
    v.append(frame_vector("unknown_data_kind", "a well-formed frame of a data kind version 1 does not define: "
                          "acknowledged, then refused with ERROR UNKNOWN_KIND", 0x23, 6, b"{}"))
    v.append(frame_vector("zeros_in_payload", "a payload with zero bytes: COBS removes them from the wire", 0x20, 7,
                          bytes([0, 1, 0, 0, 2, 0])))
    v.append(frame_vector("run_254", "a body of exactly 254 non-zero bytes: one full COBS block", 0x30, 8,
                          bytes((i % 250) + 1 for i in range(247))))
    v.append(frame_vector("run_255", "a body of 255 non-zero bytes: a full block and one more", 0x30, 9,
                          bytes((i % 250) + 1 for i in range(248))))
    v.append(frame_vector("max_payload", "the largest payload, 4096 bytes", 0x30, 10,
                          bytes((i % 255) + 1 if i % 100 else 0 for i in range(4096))))
    return v


def damaged_vector(name, description, stream, action):
    items = w.decode_stream(stream)
    return {"name": name, "description": description, "hex": hx(stream),
            "expect": [meaning(i) for i in items], "action": action}


def damaged():
    good = w.encode_frame(0x20, 2, j({"originalMerchantRefundId": "REF-1", "paymentId": "PAY-1"}))
    v = []
    v.append(damaged_vector("bad_cobs", "a code byte points past the closing delimiter",
                            bytes([0x00, 0x09, 0x01, 0x20, 0x02, 0x00]), "NAK"))
    header = bytes([1, 0x01, 0])
    v.append(damaged_vector("too_short", "valid COBS, but the body is 6 bytes: shorter than header and CRC",
                            b"\x00" + w.cobs_encode(header + b"\x11\x22\x33") + b"\x00", "NAK"))
    flipped = bytearray(good)
    flipped[20] ^= 0x04
    if flipped[20] == 0:
        flipped[20] = 0x33
    v.append(damaged_vector("crc_mismatch", "one payload bit flipped on the line", bytes(flipped), "NAK"))
    body = bytes([2, 0x01, 0])
    body += w.crc32c(body).to_bytes(4, "little")
    v.append(damaged_vector("wrong_version", "a good CRC, but version 2", b"\x00" + w.cobs_encode(body) + b"\x00", "NAK"))
    v.append(damaged_vector("oversize_run", "4200 bytes without a delimiter: longer than any frame; counted once and "
                            "discarded up to the next delimiter, never buffered whole",
                            b"\x00" + bytes([0x11]) * 4200 + b"\x00", "NAK"))
    v.append(damaged_vector("truncated", "the stream ends in the middle of a frame", good[:-5], "ignore"))
    v.append(damaged_vector("noise_then_frame", "line noise, then a delimiter, then a good frame: the frame is read",
                            bytes([0x41, 0x8C, 0x22, 0x7E]) + good, "NAK, then handle the frame"))
    v.append(damaged_vector("empty_frames", "delimiters in a row are empty frames: ignored, no NAK",
                            b"\x00\x00\x00" + good + b"\x00\x00", "handle the frame"))
    return v


def streams():
    a = w.encode_frame(0x10, 1, j({"terminalId": "T1"}))
    b = w.encode_frame(0x01, 0, b"")
    c = w.encode_frame(0x20, 2, j({"originalMerchantRefundId": "R", "paymentId": "P"}))
    noise = bytes([0x13, 0x37, 0x00])
    return [
        {"name": "session_start", "description": "HELLO, its ACK and a REFUND back to back, as one read",
         "hex": hx(a + b + c), "expect": [meaning(i) for i in w.decode_stream(a + b + c)]},
        {"name": "noise_between", "description": "noise closed by a delimiter between two frames",
         "hex": hx(a + noise + c), "expect": [meaning(i) for i in w.decode_stream(a + noise + c)]},
        {"name": "shared_delimiters", "description": "a sender may let one delimiter close a frame and open the next",
         "hex": hx(a[:-1] + c), "expect": [meaning(i) for i in w.decode_stream(a[:-1] + c)]},
    ]


def messages():
    # Expectations come from SPEC §6 (messages) and §7 (error codes).
    valid = [
        {"name": "hello_minimal", "kind": 0x10, "payload": {"terminalId": "T1"},
         "parsed": {"terminalId": "T1", "protocolVersion": 1, "display": {"cols": 20, "rows": 4}}},
        {"name": "refund_amount", "kind": 0x20,
         "payload": {"originalMerchantRefundId": "REF-1", "paymentId": "PAY-1",
                     "refundAmount": {"value": 1, "currency": "JPY"}, "extraField": [1, 2]},
         "parsed": {"originalMerchantRefundId": "REF-1", "paymentId": "PAY-1",
                    "refundAmount": {"value": 1, "currency": "JPY"}}},
        {"name": "refund_null_amount", "kind": 0x20,
         "payload": {"originalMerchantRefundId": "REF-2", "paymentId": "PAY-2", "refundAmount": None},
         "parsed": {"originalMerchantRefundId": "REF-2", "paymentId": "PAY-2"}},
        {"name": "refund_max_amount", "kind": 0x20,
         "payload": {"originalMerchantRefundId": "R", "paymentId": "P",
                     "refundAmount": {"value": 2147483647, "currency": "USD"}},
         "parsed": {"originalMerchantRefundId": "R", "paymentId": "P",
                    "refundAmount": {"value": 2147483647, "currency": "USD"}}},
        {"name": "inquiry", "kind": 0x22, "payload": {"originalMerchantRefundId": "REF-1"},
         "parsed": {"originalMerchantRefundId": "REF-1"}},
        {"name": "status", "kind": 0x40, "payload": {}, "parsed": {}},
        {"name": "hello_display_full", "kind": 0x10,
         "payload": {"terminalId": "T1", "display": {"cols": 16, "rows": 4, "charset": "utf-8",
                                                     "languages": ["zh-Hant", "en"], "ambiguousWidth": 2}},
         "parsed": {"terminalId": "T1", "protocolVersion": 1,
                    "display": {"cols": 16, "rows": 4, "charset": "utf-8",
                                "languages": ["zh-Hant", "en"], "ambiguousWidth": 2}}},
        {"name": "hello_display_ascii_any_case", "kind": 0x10,
         "payload": {"terminalId": "T1", "display": {"cols": 20, "rows": 2, "charset": "ASCII"}},
         "parsed": {"terminalId": "T1", "protocolVersion": 1,
                    "display": {"cols": 20, "rows": 2, "charset": "ascii"}}},
        {"name": "display_wide_line", "kind": 0x30,
         "payload": {"lines": ["\u8fd4" * 40], "tone": "ok"},
         "parsed": {"lines": ["\u8fd4" * 40], "tone": "ok"}},
        {"name": "display_decomposed_line", "kind": 0x30,
         "payload": {"lines": ["e\u0301" * 80], "tone": "info"},
         "parsed": {"lines": ["e\u0301" * 80], "tone": "info"}},
    ]
    invalid = [
        {"name": "not_json", "kind": 0x20, "payloadText": "refund please", "code": "INVALID_JSON", "field": None},
        {"name": "array", "kind": 0x20, "payload": [1], "code": "INVALID_JSON", "field": None},
        # A key twice in one object (SPEC 6): parsers differ on which one counts, so
        # it is refused, naming the key. JSON objects cannot hold these, hence text.
        {"name": "duplicate_key", "kind": 0x20,
         "payloadText": '{"originalMerchantRefundId":"R","paymentId":"PAY-B","paymentId":"PAY-A"}',
         "code": "INVALID_JSON", "field": "paymentId"},
        {"name": "duplicate_nested_key", "kind": 0x20,
         "payloadText": '{"originalMerchantRefundId":"R","paymentId":"P",'
                        '"refundAmount":{"value":100,"currency":"USD","value":999999}}',
         "code": "INVALID_JSON", "field": "refundAmount.value"},
        {"name": "duplicate_key_same_value", "kind": 0x10,
         "payloadText": '{"terminalId":"T1","terminalId":"T1"}',
         "code": "INVALID_JSON", "field": "terminalId"},
        {"name": "duplicate_key_in_display", "kind": 0x10,
         "payloadText": '{"terminalId":"T1","display":{"cols":16,"rows":4,"rows":2}}',
         "code": "INVALID_JSON", "field": "display.rows"},
        {"name": "missing_payment", "kind": 0x20, "payload": {"originalMerchantRefundId": "R"},
         "code": "MISSING_FIELD", "field": "paymentId"},
        {"name": "null_payment", "kind": 0x20, "payload": {"originalMerchantRefundId": "R", "paymentId": None},
         "code": "MISSING_FIELD", "field": "paymentId"},
        {"name": "id_too_long", "kind": 0x20, "payload": {"originalMerchantRefundId": "x" * 65, "paymentId": "P"},
         "code": "FIELD_TOO_LONG", "field": "originalMerchantRefundId"},
        {"name": "id_with_space", "kind": 0x20, "payload": {"originalMerchantRefundId": "R 1", "paymentId": "P"},
         "code": "INVALID_FIELD", "field": "originalMerchantRefundId"},
        {"name": "amount_zero", "kind": 0x20,
         "payload": {"originalMerchantRefundId": "R", "paymentId": "P", "refundAmount": {"value": 0, "currency": "USD"}},
         "code": "AMOUNT_OUT_OF_RANGE", "field": "refundAmount.value"},
        {"name": "amount_too_big", "kind": 0x20,
         "payload": {"originalMerchantRefundId": "R", "paymentId": "P",
                     "refundAmount": {"value": 2147483648, "currency": "USD"}},
         "code": "AMOUNT_OUT_OF_RANGE", "field": "refundAmount.value"},
        {"name": "amount_fraction", "kind": 0x20,
         "payload": {"originalMerchantRefundId": "R", "paymentId": "P", "refundAmount": {"value": 12.5, "currency": "USD"}},
         "code": "AMOUNT_OUT_OF_RANGE", "field": "refundAmount.value"},
        {"name": "amount_string", "kind": 0x20,
         "payload": {"originalMerchantRefundId": "R", "paymentId": "P", "refundAmount": {"value": "1250", "currency": "USD"}},
         "code": "INVALID_FIELD", "field": "refundAmount.value"},
        {"name": "currency_lower", "kind": 0x20,
         "payload": {"originalMerchantRefundId": "R", "paymentId": "P", "refundAmount": {"value": 1, "currency": "usd"}},
         "code": "INVALID_CURRENCY", "field": "refundAmount.currency"},
        {"name": "memo_too_long", "kind": 0x20,
         "payload": {"originalMerchantRefundId": "R", "paymentId": "P", "memo": "m" * 257},
         "code": "FIELD_TOO_LONG", "field": "memo"},
        {"name": "hello_without_id", "kind": 0x10, "payload": {}, "code": "MISSING_FIELD", "field": "terminalId"},
        {"name": "hello_version_2", "kind": 0x10, "payload": {"terminalId": "T1", "protocolVersion": 2},
         "code": "UNSUPPORTED_VERSION", "field": "protocolVersion"},
        {"name": "hello_display_zero", "kind": 0x10, "payload": {"terminalId": "T1", "display": {"cols": 0, "rows": 4}},
         "code": "INVALID_FIELD", "field": "display.cols"},
        {"name": "hello_charset_unknown", "kind": 0x10,
         "payload": {"terminalId": "T1", "display": {"cols": 20, "rows": 4, "charset": "latin-1"}},
         "code": "INVALID_FIELD", "field": "display.charset"},
        {"name": "hello_languages_not_a_list", "kind": 0x10,
         "payload": {"terminalId": "T1", "display": {"cols": 20, "rows": 4, "languages": "ja"}},
         "code": "INVALID_FIELD", "field": "display.languages"},
        {"name": "hello_language_not_a_tag", "kind": 0x10,
         "payload": {"terminalId": "T1", "display": {"cols": 20, "rows": 4, "languages": ["ja", "zh Hant"]}},
         "code": "INVALID_FIELD", "field": "display.languages[1]"},
        {"name": "hello_too_many_languages", "kind": 0x10,
         "payload": {"terminalId": "T1", "display": {"cols": 20, "rows": 4, "languages": ["en"] * 9}},
         "code": "FIELD_TOO_LONG", "field": "display.languages"},
        {"name": "hello_ambiguous_width_3", "kind": 0x10,
         "payload": {"terminalId": "T1", "display": {"cols": 20, "rows": 4, "ambiguousWidth": 3}},
         "code": "INVALID_FIELD", "field": "display.ambiguousWidth"},
        {"name": "display_line_too_wide", "kind": 0x30,
         "payload": {"lines": ["\u8fd4" * 41], "tone": "ok"},
         "code": "FIELD_TOO_LONG", "field": "lines[0]"},
        {"name": "unknown_kind", "kind": 0x23, "payload": {}, "code": "UNKNOWN_KIND", "field": None},
        {"name": "wrong_direction", "kind": 0x11, "direction": "toBridge",
         "payload": {"bridgeVersion": "1", "online": True, "queued": 0, "time": "2026-11-24T18:00:00Z"},
         "code": "UNEXPECTED_KIND", "field": None},
    ]
    return {"valid": valid, "invalid": invalid}


def char_width(c, ambiguous_wide):
    """SPEC 6.6 from Python's own Unicode database: 0 for marks, format characters
    and conjoining Hangul vowels and finals, 2 for wide and fullwidth (and for
    ambiguous ones other than letters and modifier symbols where the display draws
    them wide), 1 otherwise."""
    category = unicodedata.category(c)
    if category in ("Mn", "Me", "Cf") or 0x1160 <= ord(c) <= 0x11FF:
        return 0
    eaw = unicodedata.east_asian_width(c)
    if eaw in ("W", "F"):
        return 2
    if eaw == "A" and ambiguous_wide and not category.startswith("L") and category != "Sk":
        return 2
    return 1


def widths():
    texts = ["Refund approved", "\u8fd4\u91d1\u5b8c\u4e86", "Mu\u0308ller", "\uffe51,250",
             "\ud658\ubd88 \uc644\ub8cc", "\u1100\u1161\u11a8", "\u0e04\u0e37\u0e19\u0e40\u0e07\u0e34\u0e19\u0e2a\u0e33\u0e40\u0e23\u0e47\u0e08",
             "12,50\u00a0$", "\u2026", "25\u00b0C", "\uff32\uff45\uff46\uff55\uff4e\uff44",
             "\uff8d\uff9d\uff77\uff9d", "Rembours\u00e9", "\u300c\u8fd4\u91d1\u300d\u3002"]
    return [{"text": t,
             "columns": sum(char_width(c, False) for c in t),
             "columnsAmbiguousWide": sum(char_width(c, True) for c in t)} for t in texts]


def write(name, obj):
    path = os.path.join(OUT, name)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    write("frames.json", frames())
    write("damaged.json", damaged())
    write("streams.json", streams())
    write("messages.json", messages())
    write("widths.json", widths())
