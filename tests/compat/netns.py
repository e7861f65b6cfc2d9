"""A private network for cluster nodes: one Linux network namespace per node, each joined by a veth
pair to a bridge in the root namespace, where the tests' clients run. Node i has 10.77.K.i/24 on
its `eth0`; the root namespace has 10.77.K.254 on the bridge (K is 0 unless a concurrent run holds
that subnet). Taking a node's `eth0` down cuts it off from its peers and from every client outside
its namespace, while its own address still answers inside the namespace (Linux keeps local routes
of a downed link), so a client started with `exec_prefix(i)` can still talk to the cut-off node.

Every name carries a per-run tag, so concurrent runs never collide; `destroy()` removes whatever
`create()` got as far as making, and ignores what is already gone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

ROOT_HOST = 254


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    if check and r.returncode != 0:
        raise RuntimeError(f"`ip {' '.join(args)}` failed ({r.returncode}): {r.stderr.strip()}")
    return r


def netns_unavailable() -> str | None:
    """Why namespaces cannot be made here (None if they can): needs root and iproute2."""
    if os.geteuid() != 0:
        return "not root (creating network namespaces needs CAP_SYS_ADMIN)"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    probe = f"strom-probe-{uuid.uuid4().hex[:8]}"
    r = _ip("netns", "add", probe, check=False)
    if r.returncode != 0:
        return f"`ip netns add` failed: {r.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


def _free_subnet() -> int:
    """The first 10.77.K.0/24 no route in the root namespace uses yet."""
    routes = _ip("-4", "route", "show").stdout
    for k in range(256):
        if f"10.77.{k}." not in routes:
            return k
    raise RuntimeError("every 10.77.K.0/24 subnet is taken")


class NodeNetwork:
    def __init__(self, n: int):
        self.n = n
        self.tag = uuid.uuid4().hex[:6]
        # Interface names are at most 15 bytes.
        self.bridge = f"stb{self.tag}"
        self.namespaces = {i: f"strom-{self.tag}-n{i}" for i in range(1, n + 1)}
        self.host_veths = {i: f"stv{self.tag}{i}" for i in range(1, n + 1)}
        self.subnet = 0
        self.made: list[tuple[str, str]] = []  # ("link"|"netns", name), in creation order

    def address(self, i: int) -> str:
        return f"10.77.{self.subnet}.{i}"

    @property
    def root_address(self) -> str:
        return f"10.77.{self.subnet}.{ROOT_HOST}"

    def exec_prefix(self, i: int) -> list[str]:
        return ["ip", "netns", "exec", self.namespaces[i]]

    def create(self) -> None:
        self.subnet = _free_subnet()
        _ip("link", "add", self.bridge, "type", "bridge")
        self.made.append(("link", self.bridge))
        # Bridged frames must not meet a host firewall (br_netfilter with a DROP forward policy).
        _ip("link", "set", self.bridge, "type", "bridge", "nf_call_iptables", "0", check=False)
        _ip("addr", "add", f"{self.root_address}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i in range(1, self.n + 1):
            ns, veth = self.namespaces[i], self.host_veths[i]
            _ip("netns", "add", ns)
            self.made.append(("netns", ns))
            _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            self.made.append(("link", veth))
            _ip("link", "set", veth, "master", self.bridge, "up")
            _ip("-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", "eth0", "up")

    def cut(self, i: int) -> None:
        """Node i loses its only link: to its peers and to every client outside its namespace."""
        _ip("-n", self.namespaces[i], "link", "set", "eth0", "down")

    def heal(self, i: int) -> None:
        _ip("-n", self.namespaces[i], "link", "set", "eth0", "up")

    def destroy(self) -> None:
        # Reverse order: veths (their peers go with them), namespaces, the bridge last.
        errors = []
        for kind, name in reversed(self.made):
            r = _ip("link", "del", name, check=False) if kind == "link" else _ip("netns", "del", name, check=False)
            if r.returncode != 0 and "Cannot find" not in r.stderr and "No such" not in r.stderr:
                errors.append(f"{kind} {name}: {r.stderr.strip()}")
        self.made.clear()
        if errors:
            raise RuntimeError("network teardown left: " + "; ".join(errors))
