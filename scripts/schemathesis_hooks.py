"""Schemathesis hooks for scripts/schemathesis: a real hub, an enrolled node, a supervisor.

Loaded through SCHEMATHESIS_HOOKS=schemathesis_hooks (PYTHONPATH=scripts). It reads, from the
environment that scripts/schemathesis sets up:

  FERRY_NODE_JSON         the enrolled node's node.json (node_id, private_key, hub_public_key)
  FERRY_SUPERVISOR_TOKEN  a bearer token from POST /v1/admin/login
  FERRY_VECTORS           protocol/vectors (changesets to put behind a valid exchange header)
  FERRY_CHANGESETS        changesets the enrolled node pushed (scripts/schemathesis_capture.py)
  FERRY_STANDARD_VERSION  the version the hub publishes; FERRY_STANDARD_FILE its TOML (the tables)
  FERRY_ENROL_TOKENS      unused enrolment tokens of the node's unit, comma-separated
  FERRY_ORGS              org node ids to ask the report routes about, comma-separated (inside
                          the account's subtree, above it, and beside it)

and registers:

- a request signer (protocol/HTTP.md, "Signed requests") for /v1/exchange, /v1/reconcile,
  /v1/standard and /v1/upload: it runs on the request as it will be sent (requests' PreparedRequest, after the
  body is serialized), so the hash and the signature cover exactly the bytes on the wire, with a
  fresh nonce and the current time for every call (the hub refuses replays and stale requests);
  it replaces whatever Ferry-Node/-Timestamp/-Nonce/-Content-SHA256 schemathesis generated, and
  gzips a body sent with Content-Encoding: gzip, as a node does (one in eight left as it is). In
  negative cases that drop the security parameter (Ferry-Signature), schemathesis applies no
  auth, so unsigned requests are sent as well;
- the supervisor's bearer token for /v1/report/*;
- generators that put real values where random ones would stop at the first check, besides
  the generated cases: enrolments with a real token and a correct proof (200, token_used) or a
  proof for an unknown token (401), reconcile requests for the hub's standard and tables,
  report queries for org nodes that exist;
- a generator for application/vnd.ferry.exchange bodies: valid envelopes with generated
  ExchangeRequest headers and behind them the node's own pushes (whole, with a byte changed, cut
  short; with and without a valid checksum) or the protocol's changeset vectors, damaged
  envelopes and arbitrary bytes, so that the run reaches the decoder, validation and apply;
- a count of the statuses each operation answered (signed requests apart), for the summary;
- a check, ferry_signed_answer: every answer to a request this hook signed must carry a
  Ferry-Hub-Signature that verifies with the hub's key (protocol/HTTP.md, "Signed answers").
"""

from __future__ import annotations

import atexit
import base64
import glob
import gzip
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
import zlib

import requests
import schemathesis
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import strategies as st

SIGNED_PATHS = ("/v1/exchange", "/v1/reconcile", "/v1/standard", "/v1/upload")
EXCHANGE_MEDIA_TYPE = "application/vnd.ferry.exchange"

with open(os.environ["FERRY_NODE_JSON"], encoding="utf-8") as f:
    _node = json.load(f)
NODE_ID: str = _node["node_id"]
# SigningKey.base64 in Sources/FerryTrust/Trust.swift: base64 of the 32 raw private bytes.
_private_key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(_node["private_key"]))
_hub_key = Ed25519PublicKey.from_public_bytes(base64.b64decode(_node["hub_public_key"]))
SUPERVISOR_TOKEN = os.environ["FERRY_SUPERVISOR_TOKEN"]
STANDARD_VERSION = os.environ["FERRY_STANDARD_VERSION"]
ENROL_TOKENS = [t for t in os.environ.get("FERRY_ENROL_TOKENS", "").split(",") if t]
ORGS = [o for o in os.environ.get("FERRY_ORGS", "").split(",") if o]


def _tables() -> list[str]:
    try:
        import tomllib

        with open(os.environ["FERRY_STANDARD_FILE"], "rb") as f:
            return [t["name"] for t in tomllib.load(f).get("table", [])]
    except (KeyError, OSError, ImportError, ValueError):
        return ["member", "branch", "directive"]


TABLES = _tables()

_lock = threading.Lock()


def _sha256_hex(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _body_bytes(body: object) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    raise TypeError(f"cannot sign a streamed body ({type(body).__name__})")


class NodeSignature(requests.auth.AuthBase):
    """Signs one request as the enrolled node (RequestSigning.canonical in FerryWire/Wire.swift)."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = _body_bytes(r.body)
        if r.headers.get("Content-Encoding", "").lower() == "gzip" and body[:2] != b"\x1f\x8b":
            # A node gzips the body it says is gzip'd; one body in eight goes as it is, which
            # the hub must refuse as damaged (400 corrupted).
            if hashlib.sha256(body).digest()[0] >= 32:
                body = gzip.compress(body, mtime=0)
                r.body = body
                r.headers["Content-Length"] = str(len(body))
        body_hash = _sha256_hex(body)
        timestamp = str(time.time_ns() // 1_000_000)
        nonce = secrets.token_hex(16)
        canonical = "\n".join(["FERRY-SIG-V1", r.method.upper(), r.path_url, timestamp, nonce, body_hash])
        r.headers["Ferry-Node"] = NODE_ID
        r.headers["Ferry-Timestamp"] = timestamp
        r.headers["Ferry-Nonce"] = nonce
        r.headers["Ferry-Content-SHA256"] = body_hash
        r.headers["Ferry-Signature"] = base64.b64encode(_private_key.sign(canonical.encode("utf-8"))).decode()
        r.register_hook("response", _keep_raw_body)
        return r


def _keep_raw_body(response: requests.Response, **_: object) -> requests.Response:
    """Reads the body undecoded (the hub signs it as sent), then gives requests the decoded one."""
    if response._content is False and response.raw is not None:
        raw = response.raw.read(decode_content=False) or b""
        content = raw
        if raw and response.headers.get("Content-Encoding", "").strip().lower() == "gzip":
            try:
                content = gzip.decompress(raw)
            except (OSError, EOFError, zlib.error):
                content = raw
        response._content = content
        response._content_consumed = True
        # The check finds it on the request (schemathesis's Response keeps requests' PreparedRequest).
        response.request._ferry_raw_answer = raw
    return response


class KeepRawAnswer(requests.auth.AuthBase):
    """No credentials (enrolment has none): keeps the answer as sent, for its signature."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.register_hook("response", _keep_raw_body)
        return r


class SupervisorBearer(requests.auth.AuthBase):
    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {SUPERVISOR_TOKEN}"
        return r


schemathesis.auth.set_from_requests(NodeSignature()).apply_to(path=list(SIGNED_PATHS))
schemathesis.auth.set_from_requests(SupervisorBearer()).apply_to(path_regex="^/v1/report/")
schemathesis.auth.set_from_requests(KeepRawAnswer()).apply_to(path="/v1/enrol")


# The exchange envelope (protocol/HTTP.md, "The envelope"): FRYX, 01, LEB128 header length,
# the JSON header, then optionally one changeset to the end of the body.


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def envelope(header: bytes, changeset: bytes = b"", version: int = 1) -> bytes:
    return b"FRYX" + bytes([version]) + _varint(len(header)) + header + changeset


def _vectors() -> list[bytes]:
    found = []
    for path in sorted(glob.glob(os.path.join(os.environ.get("FERRY_VECTORS", "protocol/vectors"), "*.json"))):
        with open(path, encoding="utf-8") as f:
            found.append(bytes.fromhex(json.load(f)["hex"]))
    return found


def _pushed() -> list[bytes]:
    found = []
    for path in sorted(glob.glob(os.path.join(os.environ.get("FERRY_CHANGESETS", ""), "*.bin"))):
        with open(path, "rb") as f:
            found.append(f.read())
    return found


def _damaged(changeset: bytes, at: int, byte: int, cut: int) -> bytes:
    """The node's changeset with one byte replaced, then cut short (cut 0: whole)."""
    if not changeset:
        return changeset
    at %= len(changeset)
    damaged = changeset[:at] + bytes([byte]) + changeset[at + 1 :]
    return damaged[: len(damaged) - cut % len(damaged)] if cut else damaged


PUSHED = _pushed()


_hex_key = st.binary(min_size=1, max_size=12).map(lambda b: b.hex())
_row_ref = st.fixed_dictionaries(
    {"table": st.sampled_from(TABLES + ["nope", ""]), "key": _hex_key | st.text(max_size=8)},
    optional={"scope": st.sampled_from(["u1", "u2", ""])},
)
_counter = st.integers(min_value=0, max_value=2**20) | st.integers(min_value=-(2**63), max_value=2**64)
_exchange_request = st.fixed_dictionaries(
    {
        "max_bytes": _counter,
        "standard_version": st.sampled_from([STANDARD_VERSION, "1.0.0", "9.9.9", "../standard", ""]),
        "pending_rows": _counter,
        "clock_ms": st.just(1_800_000_000_000) | _counter,
        "epoch": st.integers(min_value=0, max_value=3) | _counter,
        "resend": st.lists(_row_ref, max_size=3),
        "repair": st.lists(_row_ref, max_size=3),
    },
    optional={
        "pulled": st.fixed_dictionaries({"sequence": _counter, "through": _counter, "final": st.booleans()}),
    },
)
_header = _exchange_request.map(lambda d: json.dumps(d).encode())
_exchange_body = st.one_of(
    # The enrolled node's own pushes again (the hub acknowledges a batch it applied before),
    # and damaged: the checksum, the decoder and validation each refuse some. (Hypothesis
    # favours the first choices, so the deepest come first.)
    st.tuples(_header, st.sampled_from(PUSHED or [b""])).map(lambda t: envelope(*t)),
    st.tuples(
        _header,
        st.builds(
            _damaged,
            st.sampled_from(PUSHED or [b""]),
            st.integers(min_value=0, max_value=2**16),
            st.integers(min_value=0, max_value=255),
            st.integers(min_value=0, max_value=64),
        ),
    ).map(lambda t: envelope(*t)),
    # A valid header with one of the protocol's changesets (and errors) behind it.
    st.tuples(_header, st.sampled_from(_vectors() or [b""])).map(lambda t: envelope(*t)),
    # A valid envelope and header alone: the hub answers 200 (or refuses the header's values).
    _header.map(envelope),
    st.tuples(_header, st.binary(max_size=256)).map(lambda t: envelope(*t)),
    # Damaged envelopes: another version, a header length past the end, a header that is not JSON.
    st.tuples(_header, st.integers(min_value=0, max_value=255)).map(lambda t: envelope(t[0], version=t[1])),
    _header.map(lambda h: b"FRYX\x01" + _varint(len(h) + 100) + h),
    st.binary(max_size=64).map(envelope),
    st.binary(max_size=512).map(lambda b: b"FRYX" + b),
    st.binary(max_size=512),
)
schemathesis.openapi.media_type(EXCHANGE_MEDIA_TYPE, _exchange_body)


def _crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as the changeset's checksum (protocol/CHANGESET.md §10)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _crc_table()
assert _crc32c(b"123456789") == 0xE3069283


def _resealed(body: bytes) -> bytes:
    """A changeset's body (without its checksum) with a valid checksum after it."""
    return body + _crc32c(body).to_bytes(4, "little")


@schemathesis.hook("map_case").apply_to(path="/v1/exchange")
def _vary_pushes(ctx, case):
    """Damages the node's own push in most cases, chosen from the whole generated case.

    Within a run, schemathesis draws the simplest body (the first choice above) again and again
    with other headers; the headers it generated (before the signer replaces them) vary, so they
    pick how the push is damaged, keeping the run deterministic: kept whole (1 in 8); one byte
    changed (1 in 8: the checksum refuses it); one byte changed and the checksum made valid again
    (4 in 8: the decoder, validation and the merge see it); cut short and resealed (2 in 8)."""
    body = case.body
    if not isinstance(body, (bytes, bytearray)) or not PUSHED:
        return case
    body = bytes(body)
    pushed = next((p for p in PUSHED if body.endswith(p)), None)
    if pushed is None or len(pushed) < 10:
        return case
    prefix, inner = body[: len(body) - len(pushed)], pushed[:-4]
    # Not the push itself: its clocks differ from run to run.
    digest = hashlib.sha256(repr(sorted((case.headers or {}).items())).encode() + prefix).digest()
    choice, at, byte, cut = digest[0] % 8, int.from_bytes(digest[1:3], "big"), digest[3], digest[4]
    if choice == 0:
        return case
    if choice == 1:
        damaged = _damaged(pushed, at, byte, 0)
    elif choice <= 5:
        # Past the magic and version (bytes 0-4), so the change reaches the parser.
        damaged = _resealed(inner[:5] + _damaged(inner[5:], at, byte, 0))
    else:
        damaged = _resealed(inner[: max(5, len(inner) - 1 - cut % (len(inner) - 5))])
    case.body = prefix + damaged
    return case


# Real values for the checks that random data never passes. Each hook keeps the generated case
# as one choice, so schemathesis's own cases are all still sent.


def _token_secret(token: str) -> str:
    return token.replace("-", "").upper()[:32]


def _enrolment(token: str, key_seed: bytes, hostname: str, nonce: str, restoring: bool | None) -> dict:
    secret = _token_secret(token)
    public_key = base64.b64encode(
        Ed25519PrivateKey.from_private_bytes(key_seed).public_key().public_bytes_raw()
    ).decode()
    proof_key = hashlib.sha256(f"FERRY-ENROL-PROOF-V1\n{secret}".encode()).digest()
    proof = hmac.new(proof_key, f"FERRY-ENROL-V1\n{public_key}\n{hostname}\n{nonce}".encode(), "sha256").hexdigest()
    body = {
        "token_digest": hashlib.sha256(secret.encode()).hexdigest(),
        "proof": proof,
        "public_key": public_key,
        "hostname": hostname,
        "nonce": nonce,
    }
    if restoring is not None:
        body["restoring"] = restoring
    return body


# An unknown token, in the form the hub issues (for 401 token_invalid with a valid proof).
_UNKNOWN_TOKEN = "0000-0000-0000-0000-0000-0000-0000-0000-0000-0000-0000-0000"


@schemathesis.hook("flatmap_body").apply_to(path="/v1/enrol")
def _real_enrolments(ctx, body):
    enrolment = st.builds(
        _enrolment,
        st.sampled_from(ENROL_TOKENS + [_UNKNOWN_TOKEN]),
        # A few keys only, so that a token comes back with the key that used it (200, the same
        # record) and with another one (401 token_used).
        st.sampled_from([bytes([i]) * 32 for i in range(1, 4)]),
        st.sampled_from(["schemathesis", "box-2", "x" * 128, "名字"]),
        st.text("0123456789abcdef", min_size=16, max_size=64),
        st.none() | st.booleans(),
    )
    return st.one_of(st.just(body), enrolment)


def _reconcile_request(ranges: list) -> dict:
    return {"standard_version": STANDARD_VERSION, "ranges": ranges}


@schemathesis.hook("flatmap_body").apply_to(path="/v1/reconcile")
def _real_reconcile(ctx, body):
    ranges = st.lists(
        st.fixed_dictionaries(
            {"table": st.sampled_from(TABLES), "prefix": st.text("0123456789abcdef", max_size=16)}
        ),
        min_size=1,
        max_size=8,
    )
    return st.one_of(st.just(body), st.builds(_reconcile_request, ranges))


@schemathesis.hook("flatmap_query").apply_to(path_regex="^/v1/report/(indicators|freshness|conflicts|quarantine)$")
def _real_orgs(ctx, query):
    if not ORGS or not isinstance(query, dict):
        return st.just(query)
    extra = {"org": st.sampled_from(ORGS)}
    if ctx.operation.path == "/v1/report/indicators":
        extra["industry"] = st.sampled_from(["medical", "education"])
        extra["at"] = st.dates().map(str)
    real = st.fixed_dictionaries({}, optional=extra).map(lambda q: {**query, **q})
    return st.one_of(st.just(query), real)


# Statuses seen per operation (with the error code, or whether an exchange's push was
# acknowledged), written at exit to FERRY_SCHEMATHESIS_STATUSES for the summary.
_statuses: dict[str, dict[str, int]] = {}


@schemathesis.hook
def after_call(ctx, case, response):
    signed = response.request.headers.get("Ferry-Signature") and case.path in SIGNED_PATHS
    label = case.operation.label
    key = f"{response.status_code}{'s' if signed else ''}"
    detail = _answer_detail(response)
    if detail:
        key += f" {detail}"
    with _lock:
        counts = _statuses.setdefault(label, {})
        counts[key] = counts.get(key, 0) + 1


def _answer_detail(response) -> str:
    """The error code, or for an exchange whether a push was acknowledged."""
    content = response.content or b""
    try:
        if content[:5] == b"FRYX\x01":
            length, shift, i = 0, 0, 5
            while content[i] & 0x80:
                length |= (content[i] & 0x7F) << shift
                shift, i = shift + 7, i + 1
            length |= content[i] << shift
            header = json.loads(content[i + 1 : i + 1 + length])
            return "pushed" if "pushed" in header else ""
        if content[:1] == b"{":
            return str(json.loads(content).get("code") or "")
    except (ValueError, IndexError, AttributeError):
        pass
    return ""


@atexit.register
def _write_statuses() -> None:
    path = os.environ.get("FERRY_SCHEMATHESIS_STATUSES")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(_statuses, f, indent=1, sort_keys=True)


def _response_header(response, name: str) -> str | None:
    for key, value in response.headers.items():
        if key.lower() == name.lower():
            return value[0] if isinstance(value, list) else value
    return None


@schemathesis.check
def ferry_signed_answer(ctx, response, case):
    """An answer to a signed request is signed by the hub over its nonce, status, time and body."""
    request = response.request
    if case.path == "/v1/enrol" and response.status_code == 200:
        # A successful enrolment is signed for the EnrolRequest's nonce.
        _verify(response, json.loads(request.body)["nonce"], _answer_as_sent(response))
        return True
    if request.headers.get("Ferry-Signature") is None or request.headers.get("Ferry-Node") != NODE_ID:
        return None
    if not request.url.split("?")[0].endswith(SIGNED_PATHS):
        return None
    # The router's own answers (an unknown path, another method, an escaped 500) never reach a
    # node route and are not signed (protocol/HTTP.md, "Signed answers"); a 500 fails
    # not_a_server_error anyway. Refusals before the body is read (401, 413, 503) are signed.
    if response.status_code in (404, 405, 500):
        return None
    _verify(response, request.headers["Ferry-Nonce"], _answer_as_sent(response))
    return True


def _answer_as_sent(response) -> bytes:
    """The body as the hub sent it (signed after gzip), before requests undid any gzip."""
    raw = getattr(response.request, "_ferry_raw_answer", None)
    return raw if raw is not None else (response.content or b"")


def _verify(response, nonce: str, body: bytes) -> None:
    signature = _response_header(response, "Ferry-Hub-Signature")
    if not signature:
        raise AssertionError(f"the answer ({response.status_code}) to a signed request has no Ferry-Hub-Signature")
    hub_time = _response_header(response, "Ferry-Hub-Time") or ""
    message = "\n".join(["FERRY-RESPONSE-V2", nonce, str(response.status_code), hub_time, _sha256_hex(body)])
    try:
        _hub_key.verify(base64.b64decode(signature), message.encode())
    except (InvalidSignature, ValueError) as exc:
        raise AssertionError(
            f"Ferry-Hub-Signature of the answer ({response.status_code}) does not verify with the hub's key"
        ) from exc
