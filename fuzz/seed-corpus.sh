#!/usr/bin/env bash
# Writes the seed corpora for the fuzz targets into fuzz/corpus/<target>/:
#   wire_decoder        every frame, stream and damaged vector in protocol/vectors/,
#                       as wire bytes behind the piece-size byte
#   message_parse       every payload in protocol/vectors/messages.json behind its kind
#   config_parse        config/posbridge.example.toml and variants of it (bare, every
#                       optional table on, OTT Pay, PaymentOptions)
#   provider_responses  realistic reply bodies of Antom, OTT Pay and PaymentOptions
#                       behind the selector byte (parser, signature verdict, status)
# Seeds have descriptive names; files libFuzzer adds while fuzzing are named by
# their SHA-1 and are not tracked (see .gitignore). Rerunning overwrites the seeds
# and leaves everything else alone.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec python3 - "$root" <<'PY'
import json
import re
import sys
from pathlib import Path

root = Path(sys.argv[1])
corpus = root / "fuzz" / "corpus"
written = {}


def seed(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    folder = corpus / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    written[target] = written.get(target, 0) + 1


def vectors(name):
    return json.loads((root / "protocol" / "vectors" / name).read_text())


def wire(hex_text):
    return bytes.fromhex(hex_text.replace(" ", ""))


def compact(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# wire_decoder: the first byte sets the piece size (max(byte, 1) * 17 bytes).
# Single frames and damaged ones go in one piece; streams in 17-byte pieces too.
for v in vectors("frames.json"):
    seed("wire_decoder", f"frame-{v['name']}", b"\xff" + wire(v["hex"]))
for v in vectors("damaged.json"):
    seed("wire_decoder", f"damaged-{v['name']}", b"\xff" + wire(v["hex"]))
for v in vectors("streams.json"):
    seed("wire_decoder", f"stream-{v['name']}", b"\xff" + wire(v["hex"]))
    seed("wire_decoder", f"stream-{v['name']}-pieces", b"\x01" + wire(v["hex"]))

# message_parse: the first byte is the frame kind, the rest the payload.
messages = vectors("messages.json")
for v in messages["valid"] + messages["invalid"]:
    payload = v["payloadText"] if "payloadText" in v else compact(v["payload"])
    seed("message_parse", f"{v['name']}", bytes([v["kind"]]) + payload.encode())

# config_parse: the example, and variants that switch on what it leaves commented.
example = (root / "config" / "posbridge.example.toml").read_text()
seed("config_parse", "example.toml", example)


def bare(text):
    """Without comments, blank lines and trailing comments."""
    out = []
    for line in text.splitlines():
        line = re.sub(r"\s+#.*$", "", line)
        if line.strip() and not line.lstrip().startswith("#"):
            out.append(line)
    return "\n".join(out) + "\n"


seed("config_parse", "example-bare.toml", bare(example))

# Uncomment the optional tables and keys, but not the alternative providers.
full, skipping = [], False
for line in example.splitlines():
    if re.match(r"# (OTT Pay|PaymentOptions) instead:", line):
        skipping = True
    elif skipping and not line.startswith("# "):
        skipping = False
    if not skipping and re.match(r"# (\[|[A-Za-z_]+ = )", line):
        line = line[2:]
    full.append(line)
seed("config_parse", "example-everything-on.toml", bare("\n".join(full)))


def alternative(heading):
    """The example with its commented `heading` provider in place of Antom's."""
    lines = example.splitlines()
    start = lines.index(f"# {heading} instead:") + 1
    block = []
    for line in lines[start:]:
        if not line.startswith("# "):
            break
        block.append(line[2:])
    text = bare(example)
    provider = re.compile(r"^\[provider(\.[a-z]+)?\]\n(?:[^\[].*\n)*", re.M)
    text = provider.sub("", text)
    return text + bare("\n".join(block))


seed("config_parse", "ottpay.toml", alternative("OTT Pay"))
seed("config_parse", "paymentoptions.toml", alternative("PaymentOptions"))

# provider_responses: selector = parser | verdict << 3 | status << 5.
PARSERS = {
    "antom-refund": 0,
    "antom-inquiry": 1,
    "antom-notify": 2,
    "antom-signature": 3,
    "ottpay-refund": 4,
    "ottpay-token": 5,
    "ottpay-refusal": 6,
    "paymentoptions-refund": 7,
}
VERDICTS = {"verified": 0, "unsigned": 1, "rejected": 2}
STATUSES = [200, 201, 302, 400, 401, 429, 500, 503]


def reply(parser, name, status, body, verdict="verified"):
    selector = PARSERS[parser] | VERDICTS[verdict] << 3 | STATUSES.index(status) << 5
    if not isinstance(body, (str, bytes)):
        body = compact(body)
    if isinstance(body, str):
        body = body.encode()
    seed("provider_responses", f"{parser}-{name}", bytes([selector]) + body)


def result(status, code, message):
    return {"resultStatus": status, "resultCode": code, "resultMessage": message}


reply("antom-refund", "success", 200, {
    "result": result("S", "SUCCESS", "Success."),
    "refundRequestId": "REQ-1",
    "refundId": "202604101900000000000000001",
    "refundTime": "2026-04-10T11:32:54Z",
})
reply("antom-refund", "v1-success-amount", 200, {
    "result": result("S", "SUCCESS", "Success."),
    "refundRequestId": "REQ-1",
    "refundId": "202604101900000000000000002",
    "refundTime": "2019-06-01T12:01:01+08:30",
    "refundAmount": {"value": "1250", "currency": "USD"},
})
reply("antom-refund", "in-process-unsigned", 200, {
    "result": result("U", "DPOS_REFUND_IN_PROCESS", "The refund is being processed."),
    "refundRequestId": "REQ-1",
}, "unsigned")
reply("antom-refund", "balance-low-unsigned", 200, {
    "result": result("F", "DPOS_MERCHANT_BALANCE_NOT_ENOUGH", "The merchant balance is insufficient."),
    "refundRequestId": "REQ-1",
}, "unsigned")
reply("antom-refund", "other-request", 200, {
    "result": result("S", "SUCCESS", "Success."),
    "refundRequestId": "REQ-2",
    "refundId": "X",
})
reply("antom-refund", "bad-signature", 200, {"result": result("S", "SUCCESS", "Success.")}, "rejected")
reply("antom-refund", "param-illegal-400", 400, {
    "result": result("F", "PARAM_ILLEGAL", "refundRequestId (1..64 characters) and paymentId are required"),
})
reply("antom-refund", "gateway-502-html", 500, "<html><body>502 Bad Gateway</body></html>")
reply("antom-inquiry", "success", 200, {
    "result": result("S", "SUCCESS", "Success."),
    "refundId": "RF-1",
    "refundRequestId": "REQ-1",
    "paymentId": "PAY-1",
    "refundStatus": "SUCCESS",
    "refundAmount": {"value": 1250, "currency": "USD"},
    "refundTime": "2026-04-10T11:32:54Z",
})
reply("antom-inquiry", "processing", 200, {
    "result": result("S", "SUCCESS", "Success."),
    "refundId": "RF-1",
    "refundStatus": "PROCESSING",
})
reply("antom-inquiry", "failed", 200, {
    "result": result("S", "SUCCESS", "Success."),
    "refundId": "RF-1",
    "refundStatus": "FAILED",
})
reply("antom-inquiry", "not-exist-unsigned", 200, {
    "result": result("F", "DPOS_PAYMENT_ORDER_NOT_EXIST", "The refund does not exist."),
}, "unsigned")
reply("antom-notify", "success", 200, {
    "notifyType": "REFUND_RESULT",
    "result": result("S", "SUCCESS", "success"),
    "refundStatus": "SUCCESS",
    "refundRequestId": "REQ-1",
    "refundId": "RF-1",
    "refundAmount": {"value": 1250, "currency": "USD"},
    "refundTime": "2026-04-10T11:32:54Z",
})
reply("antom-notify", "fail", 200, {
    "notifyType": "REFUND_RESULT",
    "result": result("F", "PROCESS_FAIL", "General business failure."),
    "refundStatus": "FAIL",
    "refundRequestId": "REQ-1",
    "refundId": "RF-1",
})
reply("antom-signature", "url-encoded", 200,
      "algorithm=RSA256,keyVersion=1,signature=KrwDE9tYrVxOaKXcL%2B%2F8ATY5hXN%2Fq3k%3D")
reply("antom-signature", "raw-spaced", 200,
      "algorithm=RSA256, keyVersion=2, signature=KrwDE9tYrVxOaKXcL+/8ATY5hXN/q3k=")
reply("ottpay-refund", "success", 200, {
    "status": "SUCCESS",
    "result": {
        "refundId": "REF187814130359",
        "refundAmount": "1250",
        "refundStatus": "success",
        "tradeTime": "2026-01-15 12:00:04",
        "exchangeRate": "",
    },
})
reply("ottpay-refund", "init", 200, {
    "status": "SUCCESS",
    "result": {"refundId": "REF17044844361839544", "refundAmount": 1250, "refundStatus": "init"},
})
reply("ottpay-refund", "insufficient-balance", 200, {
    "status": "ERROR",
    "result": {"code": 20007, "message": "Insufficient balance"},
})
reply("ottpay-refund", "invalid-parameter-400", 400, {
    "status": "ERROR",
    "result": {"code": "10005", "message": "Invalid parameter"},
})
reply("ottpay-token", "success", 200, {
    "status": "SUCCESS",
    "result": {"token": "eyJhbGciOiJIUzI1NiJ9.e30.sig", "expired": 1776000000000},
})
reply("ottpay-token", "bare", 200, {"token": "t0k3n", "expired": "1776000000000"})
reply("ottpay-token", "refused", 200, {
    "status": "ERROR",
    "result": {"code": 10003, "message": "Authorization failed"},
})
reply("ottpay-refusal", "unauthorized", 200, {
    "status": "ERROR",
    "result": {"code": 90000, "message": "Unauthorized"},
})
reply("paymentoptions-refund", "success", 201, {
    "success": True,
    "status_code": 201,
    "is_live": False,
    "transaction_type": "REFUND",
    "gateway_response": {"version": "1", "type": "INFO",
                         "message": "Amount successfully refunded.", "code": "INFO0002"},
    "payment_details": {"amount": 1000, "response_code": 0, "currency": "JPY"},
    "transaction_details": {"id": "626fa81d-9819-4947-bb9b-b0f11e00a50e", "ref": 74824,
                            "timestamp": "2024-11-25T08:51:52.000Z"},
})
reply("paymentoptions-refund", "declined", 200, {
    "success": False,
    "gateway_response": {"type": "ERROR", "message": "Refund amount exceeds the captured amount.",
                         "code": "ERR0021"},
})
reply("paymentoptions-refund", "unauthorized-401", 401, {"message": "Unauthorized"})
reply("paymentoptions-refund", "unavailable-503", 503, "Service Unavailable")

for target, count in sorted(written.items()):
    print(f"{target}: {count} seeds in {corpus / target}")
PY
