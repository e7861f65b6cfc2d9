"""A few hand-encoded Kafka requests for the start-up probe (stdlib only).

The probe must not carry a client library's own start-up or reconnect back-off into the figure, so it
speaks the wire protocol directly: ApiVersions v0, Metadata v4 (auto-create), Produce v3 with one v2
record batch.
"""
import socket
import struct
import time

_CRC32C_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC32C_TABLE.append(_c)


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    t = _CRC32C_TABLE
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _varint(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)  # zigzag
    out = bytearray()
    while True:
        b = z & 0x7F
        z >>= 7
        if z:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _str(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def record_batch(value: bytes) -> bytes:
    ts = int(time.time() * 1000)
    rec = b"\x00" + _varint(0) + _varint(0) + _varint(-1) + _varint(len(value)) + value + _varint(0)
    rec = _varint(len(rec)) + rec
    after_crc = struct.pack(">hiqqqhii", 0, 0, ts, ts, -1, -1, -1, 1) + rec
    body = struct.pack(">ib", -1, 2) + struct.pack(">I", crc32c(after_crc)) + after_crc
    return struct.pack(">qi", 0, len(body)) + body


class Conn:
    def __init__(self, host, port, timeout=5.0):
        self.s = socket.create_connection((host, port), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.corr = 0

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    def _recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("connection closed by broker")
            buf += chunk
        return bytes(buf)

    def request(self, api_key, version, body: bytes) -> bytes:
        self.corr += 1
        hdr = struct.pack(">hhi", api_key, version, self.corr) + _str("strom-bench-probe")
        msg = hdr + body
        self.s.sendall(struct.pack(">i", len(msg)) + msg)
        (size,) = struct.unpack(">i", self._recv_exact(4))
        resp = self._recv_exact(size)
        (corr,) = struct.unpack(">i", resp[:4])
        if corr != self.corr:
            raise ConnectionError("correlation id mismatch")
        return resp[4:]

    def api_versions(self):
        """ApiVersions v0 -> {api_key: (min, max)}."""
        r = self.request(18, 0, b"")
        err, n = struct.unpack(">hi", r[:6])
        out = {}
        for i in range(n):
            k, lo, hi = struct.unpack(">hhh", r[6 + 6 * i: 12 + 6 * i])
            out[k] = (lo, hi)
        return err, out

    def metadata_leader(self, topic):
        """Metadata v4 with auto-creation; returns (topic_error, partition0_error, leader_id)."""
        r = self.request(3, 4, struct.pack(">i", 1) + _str(topic) + b"\x01")
        p = 4  # throttle
        (nb,) = struct.unpack(">i", r[p:p + 4]); p += 4
        for _ in range(nb):
            p += 4
            (hl,) = struct.unpack(">h", r[p:p + 2]); p += 2 + hl
            p += 4
            (rl,) = struct.unpack(">h", r[p:p + 2]); p += 2 + max(rl, 0)
        (cl,) = struct.unpack(">h", r[p:p + 2]); p += 2 + max(cl, 0)
        p += 4  # controller
        (nt,) = struct.unpack(">i", r[p:p + 4]); p += 4
        if nt < 1:
            return -1, -1, -1
        (terr,) = struct.unpack(">h", r[p:p + 2]); p += 2
        (tl,) = struct.unpack(">h", r[p:p + 2]); p += 2 + tl
        p += 1
        (np_,) = struct.unpack(">i", r[p:p + 4]); p += 4
        if np_ < 1:
            return terr, -1, -1
        perr, _idx, leader = struct.unpack(">hii", r[p:p + 10])
        return terr, perr, leader

    def broker_ids(self):
        """Metadata v4 asking for no topics; returns the ids of the brokers the cluster lists."""
        r = self.request(3, 4, struct.pack(">i", 0) + b"\x00")
        p = 4  # throttle
        (nb,) = struct.unpack(">i", r[p:p + 4]); p += 4
        ids = []
        for _ in range(nb):
            (node,) = struct.unpack(">i", r[p:p + 4]); p += 4
            (hl,) = struct.unpack(">h", r[p:p + 2]); p += 2 + hl
            p += 4
            (rl,) = struct.unpack(">h", r[p:p + 2]); p += 2 + max(rl, 0)
            ids.append(node)
        return ids

    def produce_one(self, topic, value=b"probe", acks=1):
        """Produce v3, one record to partition 0; returns the partition error code."""
        batch = record_batch(value)
        body = (struct.pack(">hhi", -1, acks, 10000) + struct.pack(">i", 1) + _str(topic)
                + struct.pack(">ii", 1, 0) + struct.pack(">i", len(batch)) + batch)
        r = self.request(0, 3, body)
        p = 4  # topic count
        (tl,) = struct.unpack(">h", r[p:p + 2]); p += 2 + tl
        p += 4  # partition count
        _idx, err = struct.unpack(">ih", r[p:p + 6])
        return err


def probe_startup(host, port, t0, topic="bench-probe", deadline_s=180.0, alive=lambda: True):
    """Poll a starting broker. Returns dict with accept_ms (first ApiVersions answered) and
    first_produce_ms (first Produce acknowledged with no error), both measured from t0
    (time.monotonic() taken just before the process was spawned), and the ApiVersions map."""
    out = {"accept_ms": None, "first_produce_ms": None, "api_versions": {}}
    end = t0 + deadline_s
    conn = None
    while time.monotonic() < end and alive():
        try:
            conn = Conn(host, port, timeout=5.0)
            _err, out["api_versions"] = conn.api_versions()
            out["accept_ms"] = (time.monotonic() - t0) * 1000
            break
        except OSError:
            if conn:
                conn.close()
            conn = None
            time.sleep(0.002)
    if out["accept_ms"] is None:
        return out
    while time.monotonic() < end and alive():
        try:
            terr, perr, leader = conn.metadata_leader(topic)
            if terr == 0 and perr == 0 and leader >= 0 and conn.produce_one(topic) == 0:
                out["first_produce_ms"] = (time.monotonic() - t0) * 1000
                break
            time.sleep(0.005)
        except OSError:
            conn.close()
            time.sleep(0.005)
            try:
                conn = Conn(host, port, timeout=5.0)
            except OSError:
                pass
    conn.close()
    return out
