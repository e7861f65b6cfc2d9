"""The Connect web console (`GET /ui` of a `strom connect standalone` worker) in a real browser.

Headless Chromium (Debian's `chromium`, installed by scripts/install-test-deps.sh) loads the page
from the worker, runs its script against the worker's REST API, and the test reads what a user
would see: the rendered DOM. The second test drives the page over the Chrome DevTools Protocol
(a click on the Pause button, as a user's) and checks the outcome through the REST API, the way
a user's curl would. Without Chromium the tests skip with the reason.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import _die_with_parent
from test_connect import Worker, http, wait_until, write_props
from util import create_topic

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium not installed (Debian package `chromium`; scripts/install-test-deps.sh "
    "installs it when apt has it)",
)

CONNECTOR = "console-file-src"


def chromium_args(profile: Path) -> list[str]:
    # --no-sandbox: the suite may run as root, where Chromium's sandbox refuses to start.
    return [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}"]


def start_worker_with_source(server, topic: str, tmp_path: Path) -> Worker:
    create_topic(server.bootstrap, topic)
    src = tmp_path / "in.txt"
    src.write_text("".join(f"line {i}\n" for i in range(10)), encoding="utf-8")
    source = write_props(tmp_path / "source.properties", {
        "name": CONNECTOR,
        "connector.class": "FileStreamSource",
        "file": str(src),
        "topic": topic,
    })
    w = Worker(tmp_path / "worker", server.bootstrap).start([source])
    wait_until(lambda: (lambda st: st[0] == 200 and st[1]["connector"]["state"] == "RUNNING"
                        and [t["state"] for t in st[1]["tasks"]] == ["RUNNING"])(
        http("GET", f"{w.url}/connectors/{CONNECTOR}/status")), what="connector RUNNING", log=w.log)
    return w


def row_of(dom: str, name: str) -> str:
    """The HTML of the connectors table row for `name`, or '' when there is none."""
    start = dom.find(f'<tr data-connector="{name}">')
    if start < 0:
        return ""
    return dom[start:dom.find("</tr>", start)]


def test_console_lists_the_connector_and_its_state(server, topic, tmp_path):
    w = start_worker_with_source(server, topic, tmp_path)
    try:
        out = subprocess.run(
            [*chromium_args(tmp_path / "profile"), "--virtual-time-budget=5000", "--dump-dom",
             f"{w.url}/ui/"],
            capture_output=True, text=True, timeout=90, preexec_fn=_die_with_parent)
        dom = out.stdout
        assert out.returncode == 0, out.stderr[-4000:]
        row = row_of(dom, CONNECTOR)
        assert row, f"no row for {CONNECTOR} in the rendered page:\n{dom[-4000:]}\n{out.stderr[-2000:]}"
        assert f'#/connectors/{CONNECTOR}' in row
        # The connector's state and its one task's state, each shown as a state badge.
        assert row.count('class="state state-RUNNING">RUNNING</span>') == 2, row
        assert "FileStreamSource" in row
        assert 'data-action="pause"' in row
        # The header shows the worker (GET /).
        assert "worker " in dom and "Kafka cluster" in dom, dom[:2000]
        assert 'id="error" class="error" hidden' in dom, "no API error shown"
    finally:
        assert w.stop() == 0, w.log()


class DevTools:
    """A minimal Chrome DevTools Protocol client: one page target over a WebSocket (RFC 6455,
    client side only: masked text frames out, unmasked frames in), stdlib only."""

    def __init__(self, ws_url: str):
        u = urllib.parse.urlparse(ws_url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            assert chunk, "DevTools closed the handshake"
            head += chunk
        assert head.split(b" ", 2)[1] == b"101", head
        self.next_id = 0

    def _read(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            assert chunk, "DevTools connection closed"
            buf += chunk
        return buf

    def _send(self, text: str) -> None:
        payload = text.encode()
        n = len(payload)
        head = bytes([0x81])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _recv(self) -> dict:
        message = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(n)
            opcode = b0 & 0x0F
            assert opcode != 8, "DevTools closed the connection"
            if opcode in (0, 1, 2):
                message += payload
                if b0 & 0x80:
                    return json.loads(message)

    def call(self, method: str, **params):
        self.next_id += 1
        self._send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = self._recv()  # events are skipped; only our answer counts
            if msg.get("id") == self.next_id:
                assert "error" not in msg, msg
                return msg["result"]

    def evaluate(self, expression: str):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in r, r
        return r["result"].get("value")


def test_console_pause_button_pauses_the_connector(server, topic, tmp_path):
    w = start_worker_with_source(server, topic, tmp_path)
    profile = tmp_path / "profile"
    browser = subprocess.Popen([*chromium_args(profile), "--remote-debugging-port=0", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               preexec_fn=_die_with_parent)
    try:
        # Chromium writes the port it picked (and the browser target's path) to this file.
        port_file = profile / "DevToolsActivePort"
        wait_until(lambda: port_file.exists() and port_file.read_text().strip(), what="DevTools port")
        port = int(port_file.read_text().split()[0])
        targets = wait_until(lambda: [t for t in json.load(urllib.request.urlopen(
            f"http://127.0.0.1:{port}/json/list", timeout=10)) if t["type"] == "page"], what="a page")
        dt = DevTools(targets[0]["webSocketDebuggerUrl"])
        dt.call("Page.navigate", url=f"{w.url}/ui/")

        pause = f'button[data-action="pause"][data-connector="{CONNECTOR}"]'
        wait_until(lambda: dt.evaluate(f"document.querySelector('{pause}') !== null"),
                   what="the Pause button")
        # Pause asks no confirmation; a click is what a user does.
        dt.evaluate(f"document.querySelector('{pause}').click()")

        def state():
            status, st, _ = http("GET", f"{w.url}/connectors/{CONNECTOR}/status")
            assert status == 200, st
            return st["connector"]["state"], [t["state"] for t in st["tasks"]]

        wait_until(lambda: state() == ("PAUSED", ["PAUSED"]), what="PAUSED over REST", log=w.log)
        # And the page shows it, after re-reading the list.
        cell = f'tr[data-connector="{CONNECTOR}"] .connector-state'
        wait_until(lambda: dt.evaluate(f"(document.querySelector('{cell}') || {{}}).textContent")
                   == "PAUSED", what="PAUSED in the page")
        notice = dt.evaluate("document.getElementById('notice').textContent")
        assert notice == f"Pause {CONNECTOR}: done", notice
    finally:
        browser.terminate()
        try:
            browser.wait(10)
        except subprocess.TimeoutExpired:
            browser.kill()
        assert w.stop() == 0, w.log()
