"""Fixtures for the compat suite: a real broker process per session (and per test when asked).

COMPAT_TARGET=strom (default) starts `$STROM_BIN server ...`; COMPAT_TARGET=kafka starts a real
Apache Kafka single KRaft node through scripts/kafka-run.sh (the oracle). Every test talks to the
broker only through real clients and real sockets, so the same test validates both.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
TARGET = os.environ.get("COMPAT_TARGET", "strom").strip().lower()
if TARGET not in ("strom", "kafka"):
    raise pytest.UsageError(f"COMPAT_TARGET must be 'strom' or 'kafka', not {TARGET!r}")

# Kafka's JVM needs seconds to start (and recover after a crash); strom promises ~200 ms.
START_TIMEOUT = float(os.environ.get("COMPAT_START_TIMEOUT", "90" if TARGET == "kafka" else "20"))
STOP_TIMEOUT = 30.0

_ALL_SERVERS: list["Server"] = []


def strom_bin_candidates() -> list[Path]:
    if os.environ.get("STROM_BIN"):
        return [Path(os.environ["STROM_BIN"])]
    target = os.environ.get("CARGO_TARGET_DIR") or str(Path.home() / ".cache" / "strom" / "target")
    return [Path(target) / "release" / "strom", ROOT / "target" / "release" / "strom"]


def find_strom_bin() -> Path | None:
    for p in strom_bin_candidates():
        if p.is_file() and os.access(p, os.X_OK):
            return p
    return None


def require_strom_bin() -> Path:
    p = find_strom_bin()
    if p is None:
        pytest.fail(
            "strom binary not found (looked at: "
            + ", ".join(str(c) for c in strom_bin_candidates())
            + "). Build it with `cargo build --release -p strom-cli`, set STROM_BIN, "
            "or run the oracle mode with COMPAT_TARGET=kafka.",
            pytrace=False,
        )
    return p


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    # If pytest itself is killed, take the broker down with it (PR_SET_PDEATHSIG = 1).
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except Exception:
        pass


def api_versions_probe(host: str, port: int, timeout: float = 2.0) -> bool:
    """Send a raw ApiVersions v0 request; True if a well-formed response with error 0 comes back."""
    client_id = b"strom-compat-probe"
    corr = 0x5EED
    body = struct.pack(">hhih", 18, 0, corr, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(struct.pack(">i", len(body)) + body)
            hdr = _recv_exact(s, 4)
            (size,) = struct.unpack(">i", hdr)
            if size < 6 or size > 1 << 20:
                return False
            resp = _recv_exact(s, size)
            got_corr, err = struct.unpack(">ih", resp[:6])
            return got_corr == corr and err == 0
    except OSError:
        return False


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


class Server:
    """One broker process (strom or Kafka) on a free port with its own data dir."""

    def __init__(self, workdir: Path, overrides: dict[str, str] | None = None, name: str = "broker"):
        self.kind = TARGET
        self.name = name
        self.workdir = Path(workdir)
        self.datadir = self.workdir / "data"
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.overrides = dict(overrides or {})
        self.port = free_port()
        self.controller_port = free_port()
        self.host = "127.0.0.1"
        self.log_path = self.workdir / f"{name}.stderr.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        _ALL_SERVERS.append(self)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        extra: list[str] = []
        for k, v in self.overrides.items():
            extra += ["--override", f"{k}={v}"]
        if self.kind == "strom":
            binary = require_strom_bin()
            return [
                str(binary), "server",
                "--override", f"listeners=PLAINTEXT://{self.host}:{self.port}",
                "--override", f"log.dirs={self.datadir}",
                *extra,
            ]
        return [
            "bash", str(SCRIPTS / "kafka-run.sh"),
            "--port", str(self.port), "--controller-port", str(self.controller_port),
            "--dir", str(self.workdir / "kafka"), *extra,
        ]

    def start(self, timeout: float = START_TIMEOUT) -> "Server":
        assert not self.alive(), "server already running"
        cmd = self.command()
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"\n===== start #{self.starts}: {' '.join(cmd)}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent, cwd=str(self.workdir),
        )
        log.close()
        t0 = time.monotonic()
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"{self.kind} server exited with code {self.proc.returncode} during startup.\n"
                    f"command: {' '.join(cmd)}\n--- its stderr (tail) ---\n{self.log_tail()}",
                    pytrace=False,
                )
            if api_versions_probe(self.host, self.port, timeout=1.0):
                self.startup_seconds = time.monotonic() - t0
                return self
            time.sleep(0.05)
        out = self.log_tail()
        self.kill()
        pytest.fail(
            f"{self.kind} server did not answer ApiVersions on {self.bootstrap} within {timeout:.0f}s.\n"
            f"command: {' '.join(cmd)}\n--- its stderr (tail) ---\n{out}",
            pytrace=False,
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM (clean shutdown); SIGKILL if it does not exit in time. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self) -> "Server":
        self.stop()
        return self.start()

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_tail(self, since: int = 0, max_bytes: int = 16000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(since, self.log_size() - max_bytes))
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return "(no log)"


def _cleanup_all() -> None:
    for s in _ALL_SERVERS:
        try:
            s.kill()
        except Exception:
            pass


@pytest.fixture(scope="session")
def compat_tmp():
    d = Path(tempfile.mkdtemp(prefix=f"strom-compat-{TARGET}-"))
    yield d
    _cleanup_all()
    if os.environ.get("COMPAT_KEEP_TMP") != "1":
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def _shared_server(compat_tmp):
    srv = Server(compat_tmp / "shared", name="shared")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def server(_shared_server, request):
    """The session's broker (default config). Tests use their own topic names (see `topic`)."""
    if not _shared_server.alive():
        # An earlier test took it down; that test already reported it. Start it again.
        _shared_server.start()
    yield _shared_server
    if not _shared_server.alive():
        code = _shared_server.proc.returncode if _shared_server.proc else None
        tail = _shared_server.log_tail()
        pytest.fail(f"the broker died during this test (exit code {code}).\n--- its stderr (tail) ---\n{tail}",
                    pytrace=False)


def _factory(compat_tmp, request):
    mine: list[Server] = []

    def make(overrides: dict[str, str] | None = None, start: bool = True) -> Server:
        label = "".join(c if c.isalnum() else "-" for c in request.node.name)[:60]
        d = compat_tmp / f"{label}-{len(mine)}-{uuid.uuid4().hex[:6]}"
        srv = Server(d, overrides, name=f"dedicated:{label}")
        mine.append(srv)
        if start:
            srv.start()
        return srv

    return make, mine


@pytest.fixture
def server_factory(compat_tmp, request):
    """Start dedicated brokers for one test: server_factory(overrides={...}) -> started Server."""
    make, mine = _factory(compat_tmp, request)
    yield make
    for s in mine:
        s.stop()


@pytest.fixture(scope="module")
def module_server_factory(compat_tmp, request):
    """Like server_factory, but the brokers live for the whole test module."""
    make, mine = _factory(compat_tmp, request)
    yield make
    for s in mine:
        s.stop()


@pytest.fixture
def topic(request) -> str:
    """A fresh, valid topic name for this test."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name)[:80]
    return f"t-{base}-{uuid.uuid4().hex[:8]}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    # Mark where each broker's log stands, so a failure shows only what the broker said meanwhile.
    item._compat_log_marks = {id(s): s.log_size() for s in _ALL_SERVERS}
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        marks = getattr(item, "_compat_log_marks", {})
        for srv in _ALL_SERVERS:
            since = marks.get(id(srv), 0)
            tail = srv.log_tail(since=since) if srv.log_size() > since else ""
            if tail and tail.strip() not in str(rep.longrepr):
                rep.sections.append(
                    (f"{srv.kind} server stderr ({srv.name}, {srv.bootstrap})", tail)
                )


def pytest_report_header(config):
    if TARGET == "kafka":
        return "compat target: Apache Kafka (oracle) via scripts/kafka-run.sh"
    b = find_strom_bin()
    return f"compat target: strom ({b if b else 'binary NOT FOUND: ' + ', '.join(map(str, strom_bin_candidates()))})"
