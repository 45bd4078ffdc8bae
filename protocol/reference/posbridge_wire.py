"""Link protocol v1 wire format: a reference implementation in plain Python.

Written from the definitions in protocol/SPEC.md (COBS, CRC-32C, the frame layout
and the receiver's rules for damaged frames), independently of the Rust code, so the
test vectors it produces check that code from the outside. Standard library only.
"""

VERSION = 1
MAX_PAYLOAD = 4096
HEADER_LEN = 3
CRC_LEN = 4
MIN_BODY = HEADER_LEN + CRC_LEN
MAX_BODY = HEADER_LEN + MAX_PAYLOAD + CRC_LEN


def max_encoded_len(n):
    """The longest COBS encoding of n bytes: one code byte per 254 data bytes."""
    return n + (1 if n == 0 else -(-n // 254))


MAX_ENCODED = max_encoded_len(MAX_BODY)

KINDS = {
    0x01: "ACK", 0x02: "NAK", 0x03: "PING", 0x04: "PONG", 0x05: "RESET",
    0x10: "HELLO", 0x11: "WELCOME", 0x20: "REFUND", 0x21: "REFUND_UPDATE",
    0x22: "INQUIRY", 0x30: "DISPLAY", 0x40: "STATUS", 0x41: "STATUS_REPORT",
    0x7F: "ERROR",
}


def crc32c(data):
    """CRC-32C (Castagnoli): reflected polynomial 0x82F63B78, init and xor-out
    0xFFFFFFFF."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def cobs_encode(data):
    """COBS: the data as blocks, each a code byte (1 + the block's length) and up to
    254 non-zero bytes; a block shorter than 254 bytes stands for its bytes followed
    by a zero. A block of 254 bytes ends the encoding if the data ends there."""
    out = bytearray([0])
    code_at = 0
    code = 1
    full_block_just_closed = False
    for byte in data:
        full_block_just_closed = False
        if byte == 0:
            out[code_at] = code
            code_at = len(out)
            out.append(0)
            code = 1
            continue
        out.append(byte)
        code += 1
        if code == 0xFF:
            out[code_at] = code
            code_at = len(out)
            out.append(0)
            code = 1
            full_block_just_closed = True
    if full_block_just_closed:
        # The data ended exactly at a full block: no empty block follows it.
        out.pop()
    else:
        out[code_at] = code
    return bytes(out)


def cobs_decode(encoded):
    """Decodes one COBS block sequence (no zero bytes in it); None if malformed."""
    out = bytearray()
    i = 0
    while i < len(encoded):
        code = encoded[i]
        if code == 0 or i + code > len(encoded) and code != 1:
            return None
        out += encoded[i + 1:i + code]
        i += code
        if code != 0xFF and i < len(encoded):
            out.append(0)
    return bytes(out)


def encode_frame(kind, seq, payload=b""):
    """The wire bytes of a frame, both delimiters included."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("payload too long")
    header = bytes([VERSION, kind, seq])
    body = header + payload + crc32c(header + payload).to_bytes(4, "little")
    return b"\x00" + cobs_encode(body) + b"\x00"


def classify(segment):
    """What a receiver makes of the bytes between two delimiters (not empty):
    ("frame", kind, seq, payload) or ("damaged", cause)."""
    if len(segment) > MAX_ENCODED:
        return ("damaged", "oversize")
    body = cobs_decode(segment)
    if body is None:
        return ("damaged", "cobs")
    if len(body) < MIN_BODY:
        return ("damaged", "too_short")
    if len(body) > MAX_BODY:
        return ("damaged", "oversize")
    crc = int.from_bytes(body[-4:], "little")
    if crc32c(body[:-4]) != crc:
        return ("damaged", "crc")
    if body[0] != VERSION:
        return ("damaged", "version")
    return ("frame", body[1], body[2], body[3:-4])


def decode_stream(stream):
    """Everything a receiver reads from a whole byte stream that then ends."""
    items = []
    parts = stream.split(b"\x00")
    for part in parts[:-1]:
        if part:
            items.append(classify(part))
    if parts[-1]:
        # Bytes after the last delimiter when the stream ends.
        items.append(("damaged", "oversize") if len(parts[-1]) > MAX_ENCODED else ("damaged", "truncated"))
    return items
