"""Wire-level checks no client library shows: ApiVersions at old, new and unknown versions; min.insync."""

from __future__ import annotations

import socket
import struct

import pytest

from util import create_topic, produce_all, producer

API_VERSIONS = 18


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise AssertionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def roundtrip(server, header_and_body: bytes) -> bytes:
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.settimeout(10)
        s.sendall(struct.pack(">i", len(header_and_body)) + header_and_body)
        (size,) = struct.unpack(">i", _recv_exact(s, 4))
        return _recv_exact(s, size)


def uvarint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def parse_v0_body(body: bytes) -> tuple[int, dict[int, tuple[int, int]]]:
    err, n = struct.unpack(">hi", body[:6])
    apis, pos = {}, 6
    for _ in range(n):
        k, lo, hi = struct.unpack(">hhh", body[pos:pos + 6])
        apis[k] = (lo, hi)
        pos += 6
    return err, apis


def test_api_versions_v0(server):
    resp = roundtrip(server, struct.pack(">hhih", API_VERSIONS, 0, 7, 6) + b"compat")
    (corr,) = struct.unpack(">i", resp[:4])
    assert corr == 7
    err, apis = parse_v0_body(resp[4:])
    assert err == 0
    # the APIs every client in this suite needs, with the ranges Kafka 4.x accepts at least
    for key, need_max in {0: 3, 1: 4, 2: 1, 3: 1, 18: 3, 19: 2, 20: 1, 32: 1, 37: 0, 60: 0}.items():
        assert key in apis, f"api key {key} not advertised"
        lo, hi = apis[key]
        assert lo <= need_max <= hi, (key, apis[key])
    assert apis[API_VERSIONS][0] == 0, "ApiVersions must accept v0"


def test_api_versions_v3_flexible(server):
    name, ver = b"strom-compat", b"1.0"
    # request header v2: api_key, api_version, correlation_id, client_id (nullable string), tagged fields
    header = struct.pack(">hhih", API_VERSIONS, 3, 99, 6) + b"compat" + b"\x00"
    body = bytes([len(name) + 1]) + name + bytes([len(ver) + 1]) + ver + b"\x00"
    resp = roundtrip(server, header + body)
    # ApiVersions responses always use response header v0 (no tagged fields), so clients can parse them
    (corr,) = struct.unpack(">i", resp[:4])
    assert corr == 99
    (err,) = struct.unpack(">h", resp[4:6])
    assert err == 0
    n, pos = uvarint(resp, 6)
    apis = {}
    for _ in range(n - 1):
        k, lo, hi = struct.unpack(">hhh", resp[pos:pos + 6])
        pos += 6
        tags, pos = uvarint(resp, pos)
        assert tags == 0
        apis[k] = (lo, hi)
    (throttle,) = struct.unpack(">i", resp[pos:pos + 4])
    assert throttle == 0
    assert apis[API_VERSIONS][1] >= 3 and 0 in apis and 1 in apis and 3 in apis


def test_api_versions_unknown_version_gets_v0_error_reply(server):
    # A client newer than the broker asks with a version the broker does not know: the broker must
    # answer UNSUPPORTED_VERSION (35) in the v0 format, listing what it supports, so the client can retry.
    resp = roundtrip(server, struct.pack(">hhih", API_VERSIONS, 127, 1234, 6) + b"compat" + b"\x00" + b"\x01\x01\x00")
    (corr,) = struct.unpack(">i", resp[:4])
    assert corr == 1234
    err, apis = parse_v0_body(resp[4:])
    assert err == 35
    assert API_VERSIONS in apis and apis[API_VERSIONS][0] == 0


def test_min_insync_replicas_above_replication_factor_is_capped(server, topic):
    # Seen on Kafka 4.1: with replication factor 1, a topic's min.insync.replicas=2 does not refuse
    # acks=all writes (the effective minimum ISR is capped at the replication factor), so a single
    # node accepts them. strom must not answer NOT_ENOUGH_REPLICAS here.
    create_topic(server.bootstrap, topic, 1, {"min.insync.replicas": "2"})
    p = producer(server.bootstrap, {"acks": "all", "message.timeout.ms": 5000})
    log = produce_all(p, [dict(topic=topic, value=b"acks=all #%d" % i) for i in range(3)], timeout=30)
    assert not log.errors, [(e.code(), e.str()) for e, _ in log.errors]
    assert [m.offset() for m in log.ok] == [0, 1, 2]
