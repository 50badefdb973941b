#!/usr/bin/env python3
"""Readiness probes for the local stack (Kafka, S3, MongoDB wire), stdlib only.

Used by tools/stack/stack.sh before the project's virtualenv exists, so it must
not import anything outside the Python standard library.

    probe.py check kafka|s3|mongo            one attempt, exit 0 if it answers
    probe.py wait NAME --timeout 90 [--pid N] retry until it answers; fail early if
                                              process N dies
    probe.py port HOST:PORT                   exit 0 if something accepts TCP there
    probe.py buckets NAME...                  create S3 buckets (idempotent)
    probe.py random-secret                    print a random secret
    probe.py kafka-cluster-id                 print a random Kafka cluster id

Connection settings come from the environment (the same names as .stack/env):
KAFKA_BOOTSTRAP_SERVERS, S3_ENDPOINT_URL, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY,
MONGO_URI; defaults are the stack's loopback addresses.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import hmac
import os
import secrets
import socket
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092").split(",")[0]
S3_URL = os.environ.get("S3_ENDPOINT_URL", "http://127.0.0.1:9000").rstrip("/")
S3_KEY = os.environ.get("S3_ACCESS_KEY_ID", "")
S3_SECRET = os.environ.get("S3_SECRET_ACCESS_KEY", "")
S3_REGION = os.environ.get("S3_REGION", "us-east-1")
MONGO_URI = os.environ.get("MONGO_URI", "mongodb://127.0.0.1:27017/")


HTTP_OK = 200
KAFKA_API_METADATA = 3
KAFKA_API_VERSIONS = 18
KAFKA_METADATA_LAST_NON_FLEXIBLE = 8
KAFKA_METADATA_MIN_USED = 4
MONGO_OP_MSG = 2013
MONGO_HEADER_LEN = 16

BSON_DOUBLE = 0x01
BSON_STRING = 0x02
BSON_BINARY = 0x05
BSON_BOOL = 0x08
BSON_REGEX = 0x0B
BSON_INT32 = 0x10
BSON_INT64 = 0x12
BSON_FIXED_SIZES = {
    0x01: 8,
    0x07: 12,
    0x08: 1,
    0x09: 8,
    0x0A: 0,
    0x10: 4,
    0x11: 8,
    0x12: 8,
    0x13: 16,
}
BSON_SIZED = (0x03, 0x04, 0x0F)  # document, array, code with scope: int32 total size first
BSON_STRINGS = (0x02, 0x0D, 0x0E)  # string, js code, symbol: int32 length, bytes, NUL
BSON_SCALARS = {BSON_DOUBLE: "<d", BSON_INT32: "<i", BSON_INT64: "<q"}


class ProbeError(Exception):
    """The server did not give the expected answer (yet)."""


def _split_hostport(hostport: str, default_port: int) -> tuple[str, int]:
    host, _, port = hostport.rpartition(":")
    if not host:
        return hostport, default_port
    return host.strip("[]"), int(port)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ProbeError("connection closed by server")
        buf += chunk
    return bytes(buf)


# --------------------------------------------------------------------------- Kafka


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return int(value)

    def string(self) -> str | None:
        n = self.take(">h")
        if n < 0:
            return None
        s = self.data[self.pos : self.pos + n].decode()
        self.pos += n
        return s


def _kafka_call(sock: socket.socket, api_key: int, version: int, corr: int, body: bytes) -> bytes:
    client_id = b"video-runner-probe"
    header = struct.pack(">hhih", api_key, version, corr, len(client_id)) + client_id
    msg = header + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", _recv_exact(sock, 4))[0]
    resp = _recv_exact(sock, size)
    if struct.unpack_from(">i", resp)[0] != corr:
        raise ProbeError("kafka: correlation id mismatch")
    return resp[4:]


def check_kafka(timeout: float = 3.0) -> str:
    """ApiVersions, then a Metadata request that must list at least one broker."""
    host, port = _split_hostport(KAFKA, 9092)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        r = _Reader(_kafka_call(sock, KAFKA_API_VERSIONS, 0, 1, b""))
        err = r.take(">h")
        if err:
            raise ProbeError(f"kafka: ApiVersions error {err}")
        versions = {}
        for _ in range(r.take(">i")):
            key, lo, hi = r.take(">h"), r.take(">h"), r.take(">h")
            versions[key] = (lo, hi)
        if KAFKA_API_METADATA not in versions:
            raise ProbeError("kafka: broker does not offer Metadata")
        lo, hi = versions[KAFKA_API_METADATA]
        # v4..v8 are the newest encodings without tagged fields
        v = min(hi, KAFKA_METADATA_LAST_NON_FLEXIBLE)
        if v < max(lo, KAFKA_METADATA_MIN_USED):
            raise ProbeError(f"kafka: no usable Metadata version in {lo}..{hi}")
        body = struct.pack(">i", 0)  # topics: empty array -> no topics
        body += b"\x00"  # allow_auto_topic_creation=false (v4+)
        if v >= KAFKA_METADATA_LAST_NON_FLEXIBLE:
            body += b"\x00\x00"  # include cluster/topic authorized operations
        r = _Reader(_kafka_call(sock, KAFKA_API_METADATA, v, 2, body))
        r.take(">i")  # throttle_time_ms (v3+)
        brokers = []
        for _ in range(r.take(">i")):
            node = r.take(">i")
            bhost = r.string()
            bport = r.take(">i")
            r.string()  # rack
            brokers.append(f"{node}@{bhost}:{bport}")
        cluster_id = r.string()
        controller = r.take(">i")
        if not brokers:
            raise ProbeError("kafka: metadata lists no broker yet")
        if controller < 0:
            raise ProbeError("kafka: no active controller yet")
        return f"cluster {cluster_id}, brokers {', '.join(brokers)}"


# --------------------------------------------------------------------------- S3


def _s3_request(
    method: str, path: str, timeout: float = 5.0, body: bytes = b""
) -> tuple[int, bytes]:
    """Sends one SigV4-signed, path-style request; returns (status, body)."""
    if not S3_KEY or not S3_SECRET:
        raise ProbeError("s3: S3_ACCESS_KEY_ID / S3_SECRET_ACCESS_KEY not set")
    url = urllib.parse.urlsplit(S3_URL)
    now = dt.datetime.now(dt.UTC)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = now.strftime("%Y%m%d")
    payload_hash = hashlib.sha256(body).hexdigest()
    canonical_path = urllib.parse.quote(path, safe="/-_.~")
    headers = {"host": url.netloc, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        [
            method,
            canonical_path,
            "",
            "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
            signed,
            payload_hash,
        ]
    )
    scope = f"{day}/{S3_REGION}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )

    def _hmac(key: bytes, msg: str) -> bytes:
        return hmac.new(key, msg.encode(), hashlib.sha256).digest()

    key = _hmac(("AWS4" + S3_SECRET).encode(), day)
    for part in (S3_REGION, "s3", "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    req_headers = {k: v for k, v in headers.items() if k != "host"}
    req_headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={S3_KEY}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    if url.scheme not in ("http", "https"):
        raise ProbeError(f"s3: unsupported endpoint scheme in {S3_URL}")
    req = urllib.request.Request(  # noqa: S310 -- scheme checked above
        S3_URL + canonical_path,
        data=body if method in ("PUT", "POST") else None,
        method=method,
        headers=req_headers,
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def check_s3(timeout: float = 3.0) -> str:
    """An authenticated ListBuckets must succeed."""
    try:
        status, body = _s3_request("GET", "/", timeout=timeout)
    except (urllib.error.URLError, OSError) as e:
        raise ProbeError(f"s3: {e}") from e
    if status != HTTP_OK or b"ListAllMyBucketsResult" not in body:
        raise ProbeError(f"s3: ListBuckets answered {status}: {body[:200]!r}")
    return f"ListBuckets ok ({body.count(b'<Bucket>')} buckets)"


def create_buckets(names: list[str]) -> None:
    for name in names:
        status, body = _s3_request("PUT", f"/{name}")
        if status == HTTP_OK or b"BucketAlreadyOwnedByYou" in body:
            print(f"bucket {name}: ok")
            continue
        raise ProbeError(f"s3: CreateBucket {name} answered {status}: {body[:300]!r}")


# --------------------------------------------------------------------------- MongoDB


def _bson_cstring(s: str) -> bytes:
    return s.encode() + b"\x00"


def _bson_doc(items: list[tuple[str, object]]) -> bytes:
    out = bytearray()
    for k, v in items:
        if isinstance(v, bool):
            out += b"\x08" + _bson_cstring(k) + (b"\x01" if v else b"\x00")
        elif isinstance(v, int):
            out += b"\x10" + _bson_cstring(k) + struct.pack("<i", v)
        elif isinstance(v, str):
            raw = v.encode() + b"\x00"
            out += b"\x02" + _bson_cstring(k) + struct.pack("<i", len(raw)) + raw
        else:
            raise TypeError(type(v))
    return struct.pack("<i", len(out) + 5) + bytes(out) + b"\x00"


def _bson_skip(doc: bytes, kind: int, pos: int) -> int:
    """Position after the value of type `kind` that starts at `pos`."""
    if kind in BSON_FIXED_SIZES:
        return pos + BSON_FIXED_SIZES[kind]
    size: int = struct.unpack_from("<i", doc, pos)[0]
    if kind in BSON_STRINGS:
        return pos + 4 + size
    if kind in BSON_SIZED:
        return pos + size
    if kind == BSON_BINARY:
        return pos + 5 + size
    if kind == BSON_REGEX:
        return doc.index(b"\x00", doc.index(b"\x00", pos) + 1) + 1
    raise ProbeError(f"mongo: cannot parse BSON type {kind:#x}")


def _bson_top_level(doc: bytes) -> dict[str, object]:
    """Top-level numbers, booleans and strings of a BSON document (others are skipped)."""
    result: dict[str, object] = {}
    pos, end = 4, struct.unpack_from("<i", doc)[0] - 1
    while pos < end:
        kind = doc[pos]
        nul = doc.index(b"\x00", pos + 1)
        name = doc[pos + 1 : nul].decode()
        pos = nul + 1
        if kind in BSON_SCALARS:
            result[name] = struct.unpack_from(BSON_SCALARS[kind], doc, pos)[0]
        elif kind == BSON_BOOL:
            result[name] = doc[pos] == 1
        elif kind == BSON_STRING:
            size = struct.unpack_from("<i", doc, pos)[0]
            result[name] = doc[pos + 4 : pos + 3 + size].decode(errors="replace")
        pos = _bson_skip(doc, kind, pos)
    return result


def check_mongo(timeout: float = 3.0) -> str:
    """OP_MSG {ping: 1} on the admin database must answer ok: 1."""
    netloc = urllib.parse.urlsplit(MONGO_URI).netloc.rpartition("@")[2].split(",")[0]
    host, port = _split_hostport(netloc, 27017)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        body = struct.pack("<I", 0) + b"\x00" + _bson_doc([("ping", 1), ("$db", "admin")])
        header = struct.pack("<iiii", MONGO_HEADER_LEN + len(body), 1, 0, MONGO_OP_MSG)
        sock.sendall(header + body)
        length, _, _, opcode = struct.unpack("<iiii", _recv_exact(sock, MONGO_HEADER_LEN))
        payload = _recv_exact(sock, length - MONGO_HEADER_LEN)
        if opcode != MONGO_OP_MSG or payload[4] != 0:
            raise ProbeError(f"mongo: unexpected reply opcode {opcode}")
        reply = _bson_top_level(payload[5:])
        if reply.get("ok") != 1:
            raise ProbeError(f"mongo: ping answered {reply}")
        return "ping ok"


# --------------------------------------------------------------------------- CLI

CHECKS = {"kafka": check_kafka, "s3": check_s3, "mongo": check_mongo}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie still "exists" but will never answer
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def wait(name: str, timeout: float, pid: int | None) -> int:
    start = time.monotonic()
    last = "no attempt"
    while True:
        try:
            info = CHECKS[name]()
        except PROBE_ERRORS as e:
            last = str(e) or type(e).__name__
        else:
            print(f"{name}: ready after {time.monotonic() - start:.1f}s ({info})")
            return 0
        if pid is not None and not _pid_alive(pid):
            print(f"{name}: process {pid} exited before answering (last: {last})", file=sys.stderr)
            return 2
        if time.monotonic() - start > timeout:
            print(f"{name}: not ready after {timeout:.0f}s (last: {last})", file=sys.stderr)
            return 1
        time.sleep(0.3)


def kafka_cluster_id() -> str:
    """Same shape as org.apache.kafka.common.Uuid.randomUuid(): 22 url-safe base64 chars."""
    while True:
        s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not s.startswith("-"):
            return s


PROBE_ERRORS = (OSError, ProbeError, struct.error, ValueError, IndexError)


def _cmd_check(args: argparse.Namespace) -> int:
    try:
        print(f"{args.name}: {CHECKS[args.name](args.timeout)}")
    except PROBE_ERRORS as e:
        print(f"{args.name}: {e}", file=sys.stderr)
        return 1
    return 0


def _cmd_wait(args: argparse.Namespace) -> int:
    return wait(args.name, args.timeout, args.pid)


def _cmd_port(args: argparse.Namespace) -> int:
    host, port = _split_hostport(args.hostport, 0)
    try:
        socket.create_connection((host, port), timeout=1.0).close()
    except OSError:
        return 1
    return 0


def _cmd_buckets(args: argparse.Namespace) -> int:
    try:
        create_buckets(args.names)
    except PROBE_ERRORS as e:
        print(str(e), file=sys.stderr)
        return 1
    return 0


def _cmd_random_secret(_: argparse.Namespace) -> int:
    print(secrets.token_urlsafe(30))
    return 0


def _cmd_kafka_cluster_id(_: argparse.Namespace) -> int:
    print(kafka_cluster_id())
    return 0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("name", choices=sorted(CHECKS))
    c.add_argument("--timeout", type=float, default=3.0)
    c.set_defaults(func=_cmd_check)
    w = sub.add_parser("wait")
    w.add_argument("name", choices=sorted(CHECKS))
    w.add_argument("--timeout", type=float, default=90.0)
    w.add_argument("--pid", type=int)
    w.set_defaults(func=_cmd_wait)
    p = sub.add_parser("port")
    p.add_argument("hostport")
    p.set_defaults(func=_cmd_port)
    b = sub.add_parser("buckets")
    b.add_argument("names", nargs="+")
    b.set_defaults(func=_cmd_buckets)
    sub.add_parser("random-secret").set_defaults(func=_cmd_random_secret)
    sub.add_parser("kafka-cluster-id").set_defaults(func=_cmd_kafka_cluster_id)
    args = ap.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
