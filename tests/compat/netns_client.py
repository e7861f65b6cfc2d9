"""A one-record acks=all producer run as its own process, so a test can start it inside a node's
network namespace (`ip netns exec NS python netns_client.py ...`) and reach a node that is cut
off from everything outside. Prints one JSON line: {"acked": bool, "offset": int|null, "error": str|null}.

    python netns_client.py BOOTSTRAP TOPIC PARTITION VALUE TIMEOUT_MS
"""

from __future__ import annotations

import json
import sys

from confluent_kafka import Producer


def main() -> int:
    bootstrap, topic, partition, value, timeout_ms = sys.argv[1:6]
    result = {"acked": False, "offset": None, "error": "no delivery report"}

    def on_delivery(err, msg):
        if err is None:
            result.update(acked=True, offset=msg.offset(), error=None)
        else:
            result.update(error=str(err))

    p = Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        # Not idempotent: a cut-off broker may be unable to hand out producer ids (the controller
        # allocates them), and the point is the Produce request itself. One attempt, no retries.
        "enable.idempotence": False,
        "retries": 0,
        "message.timeout.ms": int(timeout_ms),
        "request.timeout.ms": int(timeout_ms),
    })
    p.produce(topic, value=value.encode(), partition=int(partition), on_delivery=on_delivery)
    p.flush(int(timeout_ms) / 1000 + 5)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
