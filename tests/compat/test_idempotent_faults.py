"""An idempotent producer whose produce responses get lost: a TCP proxy between client and broker
drops the response to some Produce requests (after the broker appended them) and cuts the
connection, so the client retries batches the broker already has. The log must hold every record
exactly once, in order: no duplicates, no gaps.

The broker advertises the proxy's address, so every client connection goes through it.
"""

from __future__ import annotations

import socket
import struct
import threading

from confluent_kafka import Producer

from conftest import free_port
from util import OP_TIMEOUT, consume_all, create_topic

PRODUCE = 0


def _recv_exact(s: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        try:
            chunk = s.recv(n - len(buf))
        except OSError:
            return None
        if not chunk:
            return None
        buf += chunk
    return buf


def _frame(s: socket.socket) -> bytes | None:
    head = _recv_exact(s, 4)
    if head is None:
        return None
    (size,) = struct.unpack(">i", head)
    body = _recv_exact(s, size)
    return None if body is None else head + body


class DroppingProxy:
    """Forwards Kafka frames; the response to every `every`-th Produce request (up to `max_drops`) is
    swallowed and both sides of that connection are closed, as a network failure would."""

    def __init__(self, listen_port: int, upstream: tuple[str, int], every: int = 4, max_drops: int = 8):
        self.upstream = upstream
        self.every = every
        self.max_drops = max_drops
        self.produce_requests = 0
        self.dropped = 0
        self.lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", listen_port))
        self.server.settimeout(0.2)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                client, _ = self.server.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            try:
                up = socket.create_connection(self.upstream, timeout=OP_TIMEOUT)
            except OSError:
                client.close()
                continue
            up.settimeout(None)
            client.settimeout(None)
            doomed: set[int] = set()  # correlation ids whose responses are to be dropped
            threading.Thread(target=self._requests, args=(client, up, doomed), daemon=True).start()
            threading.Thread(target=self._responses, args=(client, up, doomed), daemon=True).start()

    def _requests(self, client: socket.socket, up: socket.socket, doomed: set[int]):
        while True:
            frame = _frame(client)
            if frame is None:
                break
            api_key, _version, correlation = struct.unpack_from(">hhi", frame, 4)
            if api_key == PRODUCE:
                with self.lock:
                    self.produce_requests += 1
                    if self.produce_requests % self.every == 0 and self.dropped < self.max_drops:
                        doomed.add(correlation)
            try:
                up.sendall(frame)
            except OSError:
                break
        self._close(client, up)

    def _responses(self, client: socket.socket, up: socket.socket, doomed: set[int]):
        while True:
            frame = _frame(up)
            if frame is None:
                break
            (correlation,) = struct.unpack_from(">i", frame, 4)
            if correlation in doomed:
                with self.lock:
                    self.dropped += 1
                break  # the broker appended it; the client never hears so
            try:
                client.sendall(frame)
            except OSError:
                break
        self._close(client, up)

    @staticmethod
    def _close(*socks: socket.socket):
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def stop(self):
        self.stopping.set()
        self.server.close()
        self.thread.join(5)


def test_lost_produce_responses_leave_no_duplicates_and_no_gaps(server_factory, topic):
    proxy_port = free_port()
    srv = server_factory({"advertised.listeners": f"PLAINTEXT://127.0.0.1:{proxy_port}"})
    proxy = DroppingProxy(proxy_port, ("127.0.0.1", srv.port))
    try:
        bootstrap = f"127.0.0.1:{proxy_port}"
        create_topic(bootstrap, topic, 2)
        n = 3000
        p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                      "linger.ms": 2, "batch.num.messages": 50, "max.in.flight.requests.per.connection": 5,
                      "retry.backoff.ms": 50, "message.timeout.ms": 120000})
        errors = []
        for i in range(n):
            p.produce(topic, value=b"%d" % i, partition=i % 2,
                      on_delivery=lambda err, msg: errors.append(err) if err else None)
            p.poll(0)
        assert p.flush(120) == 0
        assert errors == []
        assert proxy.dropped > 0, "the proxy dropped no produce response: the test tested nothing"
        stored = consume_all(bootstrap, topic, 2)
        for part in range(2):
            want = [b"%d" % i for i in range(part, n, 2)]
            got = stored[part]
            values = [m.value() for m in got]
            assert len(values) == len(set(values)), f"partition {part}: duplicates after retries"
            assert values == want, f"partition {part}: {len(values)} records, expected {len(want)} in order"
            assert [m.offset() for m in got] == list(range(len(want)))
    finally:
        proxy.stop()
