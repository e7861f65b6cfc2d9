"""A soak run of three strom nodes under random faults, in the style of Jepsen's Kafka tests (on
demand, not in CI): an idempotent acks=all producer writes to an RF=3 topic with
min.insync.replicas=2 while, every few seconds, one random fault hits one random node (SIGKILL
and restart, SIGTERM and restart, or SIGSTOP for longer than the session timeout and SIGCONT),
never more than one node down at a time. At the end every acknowledged record must be read back
exactly once, at its acknowledged offset, and nothing may be stored twice.

    ~/.cache/strom/venv/bin/python tests/soak/cluster_soak.py --minutes 10 [--seed 7]

Exits 0 when the history checks out, 1 with the first violations otherwise. Needs the release
binary (STROM_BIN or ~/.cache/strom/target/release/strom), like the compat suite.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "compat"))

from cluster import SESSION_TIMEOUT_MS, Cluster  # noqa: E402
from test_cluster_faults import PARTITIONS, TOPIC, check_read_back, full_isr  # noqa: E402
from test_replication import OVERRIDES, WAIT, AckedProducer, create_replicated_topic  # noqa: E402


def fault(c: Cluster, rng: random.Random, log) -> None:
    node = c.node(rng.choice(sorted(c.nodes)))
    kind = rng.choice(["kill", "term", "freeze"])
    log(f"fault: {kind} node {node.node_id}")
    if kind == "kill":
        node.kill()
        time.sleep(rng.uniform(0.5, 5))
        node.start()
    elif kind == "term":
        node.stop()
        time.sleep(rng.uniform(0.5, 5))
        node.start()
    else:
        os.kill(node.proc.pid, signal.SIGSTOP)
        try:
            time.sleep(SESSION_TIMEOUT_MS / 1000 + rng.uniform(0.5, 4))
        finally:
            os.kill(node.proc.pid, signal.SIGCONT)
    # One node down at most: wait for a full ISR before the next fault.
    c.wait_for(lambda: full_isr(c), WAIT, what=f"every ISR full after {kind} of node {node.node_id}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--pause", type=float, default=3.0, help="seconds of quiet between faults")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    start = time.monotonic()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - start:7.1f}s] {msg}", flush=True)

    log(f"seed {args.seed}, {args.minutes} minutes")
    with tempfile.TemporaryDirectory(prefix="strom-soak-") as work:
        c = Cluster(Path(work), 3, OVERRIDES).start()
        try:
            create_replicated_topic(c, TOPIC, PARTITIONS, 3, {"min.insync.replicas": "2"})
            prod = AckedProducer(c.bootstrap, TOPIC, PARTITIONS)
            prod.thread.start()
            faults = 0
            while time.monotonic() - start < args.minutes * 60:
                time.sleep(rng.uniform(0, args.pause))
                fault(c, rng, log)
                faults += 1
                log(f"acknowledged so far: {prod.acked_count()}, delivery errors: {len(prod.errors)}")
            prod.finish()
            ends = check_read_back(c, prod)
            log(f"ok: {faults} faults, {prod.acked_count()} acknowledged records read back exactly once; "
                f"ends {ends}; delivery errors (not acknowledged, allowed): {len(prod.errors)}")
            return 0
        except AssertionError as e:
            log(f"VIOLATION: {e}")
            print(c.logs(), file=sys.stderr)
            return 1
        finally:
            c.stop()


if __name__ == "__main__":
    sys.exit(main())
