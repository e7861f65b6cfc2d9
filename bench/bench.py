#!/usr/bin/env python3
"""strom vs Apache Kafka, side by side on one machine (issue 7). Called by bench/run.sh; see
docs/benchmarks.md for what every figure means.

Every run starts a fresh server process (so peak RSS, CPU and start-up belong to that run), on the
same port and the same directory layout for both systems (DIR/data), runs one load tool against it,
and stops it. Runs alternate A B A B (kafka, strom, kafka, strom, ...) for each scenario and tool.
"""
import argparse
import base64
import datetime
import json
import os
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import kafkaproto  # noqa: E402

HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024

# name -> definition. "records" is the total over all producers, per mode (full, smoke).
SCENARIOS = {
    "p100-a1-1p":   dict(kind="produce", size=100,  acks="1",   producers=1, records=(1_000_000, 40_000)),
    "p100-aall-1p": dict(kind="produce", size=100,  acks="all", producers=1, records=(1_000_000, 40_000)),
    "p100-a1-4p":   dict(kind="produce", size=100,  acks="1",   producers=4, records=(1_000_000, 40_000)),
    "p100-aall-4p": dict(kind="produce", size=100,  acks="all", producers=4, records=(1_000_000, 40_000)),
    "p1k-a1-1p":    dict(kind="produce", size=1000, acks="1",   producers=1, records=(300_000, 20_000)),
    "p1k-aall-1p":  dict(kind="produce", size=1000, acks="all", producers=1, records=(300_000, 20_000)),
    "p1k-a1-4p":    dict(kind="produce", size=1000, acks="1",   producers=4, records=(300_000, 20_000)),
    "p1k-aall-4p":  dict(kind="produce", size=1000, acks="all", producers=4, records=(300_000, 20_000)),
    # consume-only pass over a preloaded 5 GB log (5,000,000 x 1 KB), as the issue asks
    "consume-1k":   dict(kind="consume", size=1000, records=(5_000_000, 20_000)),
    # fixed rate below saturation (1,000 x 1 KB records/s = 1 MB/s; 5,000/s saturated Kafka on the busy 2-core box)
    "latency-1k":   dict(kind="latency", size=1000, acks="all", rate=(1000, 500), records=(20_000, 1_000)),
    # three local nodes (all brokers and controllers), one partition with replication factor 3
    "rf3-p1k-a1-1p":   dict(kind="rf3", size=1000, acks="1",   producers=1, records=(300_000, 10_000)),
    "rf3-p1k-aall-1p": dict(kind="rf3", size=1000, acks="all", producers=1, records=(300_000, 10_000)),
    # three nodes, RF=3: SIGKILL the partition's leader, time until an acks=all write succeeds again
    "rf3-failover":    dict(kind="failover", size=1000, acks="all", producers=1, records=(20_000, 2_000)),
}
DEFAULT_FULL = [s for s in SCENARIOS]
DEFAULT_SMOKE = ["p1k-a1-1p", "rf3-p1k-aall-1p"]

TOOLS = {
    "produce": ["kafka-producer-perf", "strom-bench"],
    "consume": ["kafka-consumer-perf", "java-assign-consumer", "strom-bench"],
    "latency": ["kafka-producer-perf", "strom-bench", "java-e2e"],
    "rf3": ["kafka-producer-perf", "strom-bench"],
    "failover": ["probe"],
}
SMOKE_TOOLS = {"rf3": ["strom-bench"]}
CLUSTER_SIZE = 3

# Kafka request keys a tool needs beyond produce/fetch/metadata.
GROUP_APIS = {10: "FindCoordinator", 11: "JoinGroup", 8: "OffsetCommit"}


def log(*a):
    print("[bench %s]" % time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def proc_status(pid):
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def proc_cpu_s(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # fields[0] is field 3 (state); utime and stime are fields 14 and 15
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except OSError:
        return None


def wait_quiet(max_wait_s, threshold=1.0, poll_s=30):
    t0 = time.monotonic()
    la = loadavg()
    while la[0] >= threshold and time.monotonic() - t0 < max_wait_s:
        log("load %.2f >= %.1f, waiting (%.0f s so far, up to %.0f s)" % (la[0], threshold, time.monotonic() - t0, max_wait_s))
        time.sleep(poll_s)
        la = loadavg()
    return {"load_1m": la[0], "waited_s": round(time.monotonic() - t0, 1), "quiet": la[0] < threshold}


def run_cmd(cmd, out_path, timeout, env=None):
    """Run a tool in its own process group; kill that group on timeout. Returns (rc, stdout, stderr)."""
    with open(out_path + ".out", "wb") as fo, open(out_path + ".err", "wb") as fe:
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe, start_new_session=True, env=env)
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            rc = "timeout"
    with open(out_path + ".out", errors="replace") as f:
        so = f.read()
    with open(out_path + ".err", errors="replace") as f:
        se = f.read()
    with open(out_path + ".cmd", "w") as f:
        f.write(" ".join(cmd) + "\n")
    return rc, so, se


class Server:
    """One broker process of either system, on PORT with data in DIR/data. With `node` (node_id, voters,
    cluster_id) it is one member of a local cluster, with a CONTROLLER listener on PORT + 1."""

    def __init__(self, h, system, rundir, port=None, node=None):
        self.h, self.system, self.dir = h, system, rundir
        self.port = port or h.port
        self.node = node
        self.proc = None

    def command(self, format_only=False):
        if self.system == "strom":
            conf = {"listeners": "PLAINTEXT://%s:%d" % (HOST, self.port), "log.dirs": os.path.join(self.dir, "data")}
            if self.node:
                conf.update({"node.id": str(self.node["node_id"]), "process.roles": "broker,controller",
                             "listeners": "PLAINTEXT://%s:%d,CONTROLLER://%s:%d" % (HOST, self.port, HOST, self.port + 1),
                             "controller.listener.names": "CONTROLLER",
                             "controller.quorum.voters": self.node["voters"]})
            cmd = [self.h.strom, "server"]
            for k, v in conf.items():
                cmd += ["--override", "%s=%s" % (k, v)]
            return cmd
        cmd = [os.path.join(self.h.repo, "scripts", "kafka-run.sh"), "--port", str(self.port),
               "--controller-port", str(self.port + 1), "--dir", self.dir]
        if self.node:
            cmd += ["--node-id", str(self.node["node_id"]), "--voters", self.node["voters"],
                    "--cluster-id", self.node["cluster_id"]]
        return cmd + (["--format-only"] if format_only else [])

    def spawn(self):
        os.makedirs(os.path.join(self.dir, "logs"), exist_ok=True)
        self.logf = open(os.path.join(self.dir, "logs", "server.log"), "ab")
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"), NO_COLOR="1")
        self.proc = subprocess.Popen(self.command(), stdout=self.logf, stderr=self.logf, env=env, start_new_session=True)
        self.pid = self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        t0 = time.monotonic()
        self.spawn()
        st = kafkaproto.probe_startup(HOST, self.port, t0, topic="probe-%d" % int(time.time() * 1000),
                                      alive=self.alive, deadline_s=self.h.start_timeout)
        if st["first_produce_ms"] is None:
            self.stop(kill=True)
            raise RuntimeError("%s did not accept a produce within %.0f s (see %s)" % (
                self.system, self.h.start_timeout, os.path.join(self.dir, "logs", "server.log")))
        return st

    def rss(self):
        return proc_status(self.pid)

    def cpu(self):
        return proc_cpu_s(self.pid)

    def stop(self, kill=False, timeout=30):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.logf.close()


def ask(port, call):
    """CALL on a fresh raw-protocol connection to 127.0.0.1:PORT, closed afterwards."""
    c = kafkaproto.Conn(HOST, port)
    try:
        return call(c)
    finally:
        c.close()


class Cluster:
    """CLUSTER_SIZE nodes of one system on 127.0.0.1, node i on PORT + 10 (i - 1) (its controller on the port
    after), all brokers and controllers, as three hosts would run them. Figures are sums over the nodes."""

    def __init__(self, h, system, rundir):
        self.h, self.system, self.dir = h, system, rundir
        ports = {i: h.port + 10 * (i - 1) for i in range(1, CLUSTER_SIZE + 1)}
        voters = ",".join("%d@%s:%d" % (i, HOST, p + 1) for i, p in ports.items())
        # As Kafka's Uuid.randomUuid: never an id starting with '-', which kafka-storage would take
        # for an option (format then fails with its usage text).
        cluster_id = "-"
        while cluster_id.startswith("-"):
            cluster_id = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        self.nodes = {i: Server(h, system, os.path.join(rundir, "node%d" % i), port=p,
                                node=dict(node_id=i, voters=voters, cluster_id=cluster_id))
                      for i, p in ports.items()}
        self.port = ports[1]
        self.bootstrap = ",".join("%s:%d" % (HOST, p) for p in ports.values())

    def start(self):
        if self.system == "kafka":  # `kafka-storage format` is a separate one-time step in Kafka: not timed
            fmts = [subprocess.Popen(n.command(format_only=True), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                    for n in self.nodes.values()]
            for f in fmts:
                _, err = f.communicate(timeout=120)
                if f.returncode != 0:
                    raise RuntimeError("kafka format failed: %s" % err.decode(errors="replace")[-500:])
        t0 = time.monotonic()
        for n in self.nodes.values():
            n.spawn()
        self.pid = self.nodes[1].pid
        st = self.first_produce(t0, "probe-%d" % int(time.time() * 1000))
        if st["first_produce_ms"] is None:
            self.stop(kill=True)
            raise RuntimeError("%s cluster did not accept a produce within %.0f s (see %s/node*/logs)" % (
                self.system, self.h.start_timeout, self.dir))
        # The first produce needs one broker; an RF=3 topic needs all of them registered, which on a loaded
        # machine Kafka may not have yet (topic creation then fails with InvalidReplicationFactor).
        if not self.all_brokers_registered(t0 + self.h.start_timeout):
            self.stop(kill=True)
            raise RuntimeError("%s cluster did not list all %d brokers within %.0f s (see %s/node*/logs)" % (
                self.system, CLUSTER_SIZE, self.h.start_timeout, self.dir))
        return st

    def all_brokers_registered(self, end):
        want = set(self.nodes)
        return self.poll(end, 0.05, lambda: want <= set(ask(self.port, lambda c: c.broker_ids())))

    def first_produce(self, t0, topic):
        """As kafkaproto.probe_startup, but the produce goes to whichever node leads the auto-created topic."""
        st = {"accept_ms": None, "first_produce_ms": None, "api_versions": {}}
        port_of = {i: n.port for i, n in self.nodes.items()}

        def attempt():
            if st["accept_ms"] is None:
                _e, st["api_versions"] = ask(self.port, lambda c: c.api_versions())
                st["accept_ms"] = (time.monotonic() - t0) * 1000
            terr, perr, leader = ask(self.port, lambda c: c.metadata_leader(topic))
            if terr == 0 and perr == 0 and leader in port_of and ask(port_of[leader], lambda c: c.produce_one(topic)) == 0:
                st["first_produce_ms"] = (time.monotonic() - t0) * 1000
                return True
            return False

        self.poll(t0 + self.h.start_timeout, 0.005, attempt)
        return st

    def poll(self, end, pause, attempt):
        """Call ATTEMPT every PAUSE s until it returns true (then true), END passes or a node dies (false).
        Refused connections and short answers of a node still starting count as a failed attempt."""
        while time.monotonic() < end and all(n.alive() for n in self.nodes.values()):
            try:
                if attempt():
                    return True
            except (OSError, struct.error):
                pass
            time.sleep(pause)
        return False

    def live(self):
        return [n for n in self.nodes.values() if n.alive()]

    def rss(self):
        out = {}
        for n in self.live():
            for k, v in n.rss().items():
                out[k] = out.get(k, 0) + v
        return out

    def cpu(self):
        xs = [n.cpu() for n in self.live()]
        return sum(x for x in xs if x is not None)

    def stop(self, kill=False, timeout=30):
        for n in self.nodes.values():
            n.stop(kill=kill, timeout=timeout)

    def logs(self):
        return [(i, os.path.join(n.dir, "logs", "server.log")) for i, n in self.nodes.items()]

    def failover(self, topic, deadline_s=90.0):
        """SIGKILL the leader of TOPIC-0, then time until an acks=all Produce to it succeeds through a new
        leader. Raw protocol, so no client library's backoff is in the figure."""
        port_of = {i: n.port for i, n in self.nodes.items()}
        c = kafkaproto.Conn(HOST, self.port)
        try:
            terr, perr, old = c.metadata_leader(topic)
        finally:
            c.close()
        if terr or perr or old not in self.nodes:
            raise RuntimeError("no leader for %s-0 before the kill (errors %s/%s, leader %s)" % (topic, terr, perr, old))
        self.nodes[old].stop(kill=True)
        t0 = time.monotonic()
        attempts = 0
        trail, last = [], {}  # (ms, what) each time a node's answer changes: where the failover time went

        def note(what):
            src = what.split(":")[0]
            if last.get(src) != what:
                last[src] = what
                trail.append((round((time.monotonic() - t0) * 1000, 1), what))
        while time.monotonic() - t0 < deadline_s:
            for n in self.live():
                attempts += 1
                try:
                    c = kafkaproto.Conn(HOST, n.port, timeout=15.0)
                    try:
                        terr, perr, leader = c.metadata_leader(topic)
                    finally:
                        c.close()
                    if terr or perr or leader == old or leader not in port_of:
                        note("metadata via %d: errors %d/%d, leader %d" % (n.node["node_id"], terr, perr, leader))
                        continue
                    c = kafkaproto.Conn(HOST, port_of[leader], timeout=15.0)
                    try:
                        err = c.produce_one(topic, acks=-1)
                        if err == 0:
                            return dict(failover_ms=round((time.monotonic() - t0) * 1000, 1), killed=old,
                                        new_leader=leader, attempts=attempts, trail=trail)
                        note("produce to %d: error %d" % (leader, err))
                    finally:
                        c.close()
                except (OSError, struct.error) as e:
                    note("via %d: %s" % (n.node["node_id"], type(e).__name__))
            time.sleep(0.005)
        raise RuntimeError("no acks=all write succeeded within %.0f s of killing node %d" % (deadline_s, old))


class RssSampler(threading.Thread):
    """Samples VmRSS every 100 ms (peak also comes from VmHWM; this gives the series for the raw file)."""

    def __init__(self, srv):
        super().__init__(daemon=True)
        self.srv, self.samples, self.stop_ev = srv, [], threading.Event()

    def run(self):
        t0 = time.monotonic()
        while not self.stop_ev.wait(0.1):
            r = self.srv.rss().get("VmRSS")
            if r is None:
                return
            self.samples.append((round(time.monotonic() - t0, 2), r))


# ---------------------------------------------------------------- tool output parsers

PP_RE = re.compile(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
                   r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th")


def parse_producer_perf(so):
    m = None
    for m in PP_RE.finditer(so):
        pass
    if not m:
        raise ValueError("no ProducerPerformance summary line")
    g = m.groups()
    return dict(records=int(g[0]), records_per_s=float(g[1]), mib_per_s=float(g[2]),
                lat_ms=dict(avg=float(g[3]), max=float(g[4]), p50=float(g[5]), p95=float(g[6]),
                            p99=float(g[7]), p999=float(g[8])))


def parse_strom_produce(so):
    j = json.loads(so.strip().splitlines()[-1])
    lat = j["latency_ms"]
    return dict(records=j["records"], records_per_s=j["records_per_sec"], mib_per_s=j["mb_per_sec"],
                errors=j.get("errors", 0),
                lat_ms=dict(avg=lat["avg"], max=lat["max"], p50=lat["p50"], p95=lat["p95"], p99=lat["p99"],
                            p999=lat["p99_9"]))


def parse_consumer_perf(so):
    rows = [ln for ln in so.strip().splitlines() if ln.count(",") >= 9 and not ln.startswith("start.time")]
    f = [x.strip() for x in rows[-1].split(",")]
    # start, end, MB, MB.sec, nMsg, nMsg.sec, rebalance.ms, fetch.ms, fetch.MB.sec, fetch.nMsg.sec
    return dict(records=int(f[4]), records_per_s=float(f[9]), mib_per_s=float(f[8]),
                overall_mib_per_s=float(f[3]), rebalance_ms=float(f[6]))


def parse_strom_consume(so):
    j = json.loads(so.strip().splitlines()[-1])
    return dict(records=j["messages"], records_per_s=j["records_per_sec"], mib_per_s=j["mb_per_sec"])


def parse_java_json(so):
    j = json.loads(so.strip().splitlines()[-1])
    if j["tool"] == "java-assign-consume":
        return dict(records=j["records"], records_per_s=j["records_per_sec"], mib_per_s=j["mb_per_sec"])
    return dict(records=j["received"], errors=j["errors"], achieved_rate=j["achieved_rate"],
                lat_ms=dict(p50=j["e2e_ms"]["p50"], p99=j["e2e_ms"]["p99"], p999=j["e2e_ms"]["p99_9"],
                            max=j["e2e_ms"]["max"]),
                ack_ms=j["ack_ms"])


# ---------------------------------------------------------------- the harness

class Harness:
    def __init__(self, a):
        self.a = a
        self.repo = os.path.dirname(HERE)
        self.strom = a.strom
        self.libs = a.kafka_libs
        self.classes = a.classes
        self.port = a.port
        self.smoke = a.smoke
        self.mode = 1 if a.smoke else 0
        self.start_timeout = 60 if a.smoke else 180
        self.tool_timeout = 40 if a.smoke else 600
        self.out = a.out
        self.work = a.work
        self.raw = os.path.join(self.out, "raw")
        os.makedirs(self.raw, exist_ok=True)
        os.makedirs(self.work, exist_ok=True)
        self.log4j = os.path.join(self.work, "tools-log4j2.properties")
        with open(self.log4j, "w") as f:
            f.write("status = error\nappender.e.type = Console\nappender.e.name = E\nappender.e.target = SYSTEM_ERR\n"
                    "appender.e.layout.type = PatternLayout\nappender.e.layout.pattern = %p %m%n\n"
                    "rootLogger.level = WARN\nrootLogger.appenderRef.e.ref = E\n")
        self.results = []
        self.preloaded = {}

    # -- java
    def java(self, main, *args):
        return ["java", "-Dlog4j2.configurationFile=" + self.log4j, "-cp",
                "%s/*:%s" % (self.libs, self.classes), main] + [str(x) for x in args]

    # -- kafka template (formatted once: `kafka-storage format` is a separate, one-time step in Kafka)
    def kafka_template(self):
        tmpl = os.path.join(self.a.cache, "kafka-template-%s-port%d" % (self.a.kafka_version, self.port))
        if os.path.exists(os.path.join(tmpl, "data", "meta.properties")) and os.path.exists(tmpl + ".ok"):
            return tmpl
        shutil.rmtree(tmpl, ignore_errors=True)
        log("formatting the Kafka template dir (one time): " + tmpl)
        s = Server(self, "kafka", tmpl)
        st = s.start()
        s.stop()
        # the template keeps its probe topic; every run probes with a topic of its own (auto-created)
        with open(tmpl + ".ok", "w") as f:
            json.dump({"format_and_first_start": st}, f)
        return tmpl

    def fresh_dir(self, system, name, template=True):
        d = os.path.join(self.work, "%s-%s" % (system, name))
        shutil.rmtree(d, ignore_errors=True)
        if system == "kafka" and template:
            shutil.copytree(self.kafka_template(), d, symlinks=True)
        else:
            os.makedirs(d)
        return d

    def create_topic(self, topic, partitions, rf=1):
        rc, so, se = run_cmd([self.strom, "topic", "create", topic, "--partitions", str(partitions),
                              "--replication-factor", str(rf), "--bootstrap-server", "%s:%d" % (HOST, self.port)],
                             os.path.join(self.work, "topic-create"), 60)
        if rc != 0:
            raise RuntimeError("topic create failed: " + se[-500:])

    # -- one run
    def run(self, scen_name, tool, system, rep):
        sc = SCENARIOS[scen_name]
        rid = "%s.%s.%s.%d" % (scen_name, tool, system, rep)
        rec = dict(scenario=scen_name, tool=tool, system=system, rep=rep, ok=False, load_start=loadavg())
        log("run " + rid)
        clustered = sc["kind"] in ("rf3", "failover")
        if sc["kind"] == "consume":
            d = self.preload(system)
        else:
            d = self.fresh_dir(system, "run", template=not clustered)
        srv = Cluster(self, system, d) if clustered else Server(self, system, d)
        rawp = os.path.join(self.raw, rid)
        try:
            st = srv.start()
            rec["startup"] = dict(accept_ms=round(st["accept_ms"], 1), first_produce_ms=round(st["first_produce_ms"], 1))
            if tool == "kafka-consumer-perf" and not all(k in st["api_versions"] for k in GROUP_APIS):
                rec.update(skipped=True, reason="not supported by %s yet: ConsumerPerformance needs consumer groups (%s)"
                           % (system, ", ".join(v for k, v in GROUP_APIS.items() if k not in st["api_versions"])))
                return rec
            time.sleep(0.5 if self.smoke else 1.5)
            rec["idle_rss_kb"] = srv.rss().get("VmRSS")
            topic = "t-" + scen_name if sc["kind"] == "consume" else "bench"
            if sc["kind"] != "consume":
                self.create_topic(topic, sc.get("producers", 1), rf=CLUSTER_SIZE if clustered else 1)
            sampler = RssSampler(srv)
            sampler.start()
            cpu0, t0 = srv.cpu(), time.monotonic()
            res, nbytes = self.load(sc, tool, topic, rawp, srv)
            wall = time.monotonic() - t0
            cpu1 = srv.cpu()
            sampler.stop_ev.set()
            st2 = srv.rss()
            rec.update(res)
            rec.update(wall_s=round(wall, 2), server_cpu_s=round(cpu1 - cpu0, 2), bytes=nbytes,
                       cpu_s_per_gb=round((cpu1 - cpu0) / (nbytes / 1e9), 2) if nbytes else None,
                       peak_rss_kb=st2.get("VmHWM"), end_rss_kb=st2.get("VmRSS"),
                       sampled_peak_rss_kb=max([s[1] for s in sampler.samples], default=None))
            with open(rawp + ".rss.json", "w") as f:
                json.dump(sampler.samples, f)
            rec["ok"] = True
        except Exception as e:  # a failed run is recorded, the harness goes on
            rec["error"] = str(e)[:2000]
            log("FAILED %s: %s" % (rid, str(e)[:300]))
        finally:
            srv.stop(kill=(sc["kind"] != "consume"))
            rec["load_end"] = loadavg()
            self.results.append(rec)
            logs = srv.logs() if clustered else [("", os.path.join(d, "logs", "server.log"))]
            for i, path in logs:
                try:
                    shutil.copy(path, "%s.server%s.log" % (rawp, i))
                except OSError:
                    pass
            if sc["kind"] != "consume":
                shutil.rmtree(d, ignore_errors=True)
        return rec

    def load(self, sc, tool, topic, rawp, srv):
        bs = getattr(srv, "bootstrap", "%s:%d" % (HOST, self.port))
        n = sc["records"][self.mode]
        size = sc["size"]
        nbytes = n * size
        to = self.tool_timeout
        if sc["kind"] == "failover":
            # some data on the partition first, so the new leader has a log to take over
            rc, so, se = run_cmd([self.strom, "bench", "produce", "--topic", topic, "--num-records", str(n),
                                  "--record-size", str(size), "--acks", "all", "--json", "--bootstrap-server", bs],
                                 rawp + ".fill", to)
            if rc != 0:
                raise RuntimeError("fill before the kill failed: " + (se or so)[-500:])
            time.sleep(1.0)  # let the followers catch up and the ISR settle, as a steady cluster would be
            res = srv.failover(topic)
            log("failover: node %d killed, node %d took over, %.0f ms; %s" % (
                res["killed"], res["new_leader"], res["failover_ms"], res["trail"][-6:]))
            return res, n * size
        if sc["kind"] in ("produce", "rf3"):
            k = sc["producers"]
            cmds = []
            for _ in range(k):
                if tool == "kafka-producer-perf":
                    cmds.append(self.java("org.apache.kafka.tools.ProducerPerformance", "--topic", topic,
                                          "--num-records", n // k, "--record-size", size, "--throughput", -1,
                                          "--producer-props", "bootstrap.servers=" + bs, "acks=" + sc["acks"]))
                else:
                    cmds.append([self.strom, "bench", "produce", "--topic", topic, "--num-records", str(n // k),
                                 "--record-size", str(size), "--acks", sc["acks"], "--json",
                                 "--bootstrap-server", bs])
            outs = self.parallel(cmds, rawp, to)
            parse = parse_producer_perf if tool == "kafka-producer-perf" else parse_strom_produce
            parts = [parse(so) for so in outs]
            res = dict(records=sum(p["records"] for p in parts),
                       records_per_s=sum(p["records_per_s"] for p in parts),
                       mib_per_s=sum(p["mib_per_s"] for p in parts),
                       # worst producer's percentile (the tools report per producer)
                       lat_ms={q: max(p["lat_ms"][q] for p in parts) for q in ("p50", "p99", "p999", "max")},
                       per_producer=parts)
            if res["records"] != n - n % k:
                raise RuntimeError("sent %d of %d records" % (res["records"], n))
            return res, res["records"] * size
        if sc["kind"] == "consume":
            if tool == "kafka-consumer-perf":
                cmd = self.java("org.apache.kafka.tools.ConsumerPerformance", "--bootstrap-server", bs, "--topic", topic,
                                "--messages", n, "--timeout", 10000, "--hide-header")
                parse = parse_consumer_perf
            elif tool == "java-assign-consumer":
                cmd = self.java("AssignConsumerPerf", bs, topic, n, 10000)
                parse = parse_java_json
            else:
                cmd = [self.strom, "bench", "consume", "--topic", topic, "--messages", str(n), "--json",
                       "--bootstrap-server", bs]
                parse = parse_strom_consume
            so = self.parallel([cmd], rawp, to)[0]
            res = parse(so)
            if res["records"] < n:
                raise RuntimeError("consumed %d of %d records" % (res["records"], n))
            return res, res["records"] * size
        if sc["kind"] == "latency":
            rate = sc["rate"][self.mode]
            if tool == "kafka-producer-perf":
                cmd = self.java("org.apache.kafka.tools.ProducerPerformance", "--topic", topic, "--num-records", n,
                                "--record-size", size, "--throughput", rate, "--producer-props",
                                "bootstrap.servers=" + bs, "acks=" + sc["acks"], "linger.ms=0")
                parse = parse_producer_perf
            elif tool == "java-e2e":
                cmd = self.java("E2ELatency", bs, topic, rate, n, size, sc["acks"])
                parse = parse_java_json
            else:
                cmd = [self.strom, "bench", "produce", "--topic", topic, "--num-records", str(n), "--record-size",
                       str(size), "--throughput", str(rate), "--acks", sc["acks"], "--json",
                       "--producer-props", "linger.ms=0", "--bootstrap-server", bs]
                parse = parse_strom_produce
            so = self.parallel([cmd], rawp, to)[0]
            res = parse(so)
            return res, res["records"] * size
        raise ValueError(sc["kind"])

    def parallel(self, cmds, rawp, timeout):
        results = [None] * len(cmds)

        def one(i):
            results[i] = run_cmd(cmds[i], "%s.tool%d" % (rawp, i), timeout)

        ts = [threading.Thread(target=one, args=(i,)) for i in range(len(cmds))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        outs = []
        for i, (rc, so, se) in enumerate(results):
            if rc != 0:
                raise RuntimeError("tool %d exited %s: %s" % (i, rc, (se or so)[-800:]))
            outs.append(so)
        return outs

    def preload(self, system):
        """A per-system log for the consume scenario, written once per harness invocation."""
        if system in self.preloaded:
            return self.preloaded[system]
        sc = SCENARIOS["consume-1k"]
        n = sc["records"][self.mode]
        d = self.fresh_dir(system, "consume")
        log("preloading %d x %d B into %s" % (n, sc["size"], system))
        srv = Server(self, system, d)
        try:
            srv.start()
            self.create_topic("t-consume-1k", 1)
            rc, so, se = run_cmd([self.strom, "bench", "produce", "--topic", "t-consume-1k", "--num-records", str(n),
                                  "--record-size", str(sc["size"]), "--acks", "1", "--json",
                                  "--bootstrap-server", "%s:%d" % (HOST, self.port)],
                                 os.path.join(self.raw, "preload.%s" % system), self.tool_timeout)
            if rc != 0:
                raise RuntimeError("preload failed: " + se[-500:])
        finally:
            srv.stop()
        self.preloaded[system] = d
        return d

    def cleanup(self):
        for d in self.preloaded.values():
            shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- machine limits and facts

def sh(cmd, timeout=60):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=timeout).stdout.strip()
    except subprocess.TimeoutExpired:
        return ""


def machine_info(h):
    mem = sh("awk '/MemTotal/ {print $2}' /proc/meminfo")
    return dict(
        nproc=int(sh("nproc") or 0),
        cpu_model=sh("awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo"),
        mem_total_mib=int(mem) // 1024 if mem else None,
        kernel=sh("uname -r"),
        disk=sh("df -hT %s | tail -1" % h.work),
        block_devices=sh("lsblk -d -o NAME,ROTA,SIZE,MODEL 2>/dev/null"),
        java=sh("java -version 2>&1 | head -1"),
        kafka_version=h.a.kafka_version,
        strom_git=sh("git -C %s rev-parse --short HEAD" % h.repo) + (" (dirty tree)" if sh("git -C %s status --porcelain --untracked-files=no" % h.repo) else ""),
        strom_binary=h.strom,
    )


def loopback_socket(secs):
    """Loopback TCP bandwidth without iperf3: one stream of 1 MiB sendall() calls from a child process
    into a reader that discards, as iperf3's default single stream does. Python's per-call cost is
    negligible at 1 MiB a call, so this is the socket path's limit, not the interpreter's."""
    return (loopback_stream("end=time.monotonic()+%f\nwhile time.monotonic()<end: s.sendall(b)" % secs),
            "python socket, one stream, 1 MiB sendall, %d s (iperf3 not installed)" % secs)


def loopback_into_file(path, mb):
    """The path every produced byte takes, with no broker in it: MB MiB sent over one loopback TCP stream
    (1 MiB sendall() calls from a child process) and written by the reader into a new file, no fsync.
    A broker writing through the page cache cannot beat this on the same machine. MiB/s."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        return loopback_stream("for _ in range(%d): s.sendall(b)" % mb, sink=lambda chunk: os.write(fd, chunk))
    finally:
        os.close(fd)


def loopback_stream(send_loop, sink=None):
    """MiB/s of one loopback TCP stream: a child process runs SEND_LOOP (Python, with socket `s` and a
    1 MiB buffer `b`); the reader hands each received chunk to SINK, or drops it."""
    import socket
    ls = socket.socket()
    ls.bind((HOST, 0))
    ls.listen(1)
    port = ls.getsockname()[1]
    sender = subprocess.Popen([sys.executable, "-c",
                               "import socket,sys,time\n"
                               "s=socket.create_connection((sys.argv[1],int(sys.argv[2])))\n"
                               "b=bytes(1<<20)\n" + send_loop + "\ns.close()\n", HOST, str(port)])
    try:
        conn, _ = ls.accept()
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        n, t0 = 0, time.monotonic()
        while True:
            k = conn.recv_into(buf)
            if not k:
                break
            if sink:
                sink(view[:k])
            n += k
        dt = time.monotonic() - t0
        conn.close()
    finally:
        ls.close()
        sender.wait(timeout=300)
    return round(n / dt / MIB, 1)


def machine_limits(h):
    out = {}
    secs = 1 if h.smoke else 5
    if shutil.which("iperf3"):
        port = h.port + 7
        srv = subprocess.Popen(["iperf3", "-s", "-1", "-B", HOST, "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            time.sleep(0.3)
            j = json.loads(sh("iperf3 -c %s -p %d -t %d -J" % (HOST, port, secs), timeout=secs + 30) or "{}")
            bps = j.get("end", {}).get("sum_received", {}).get("bits_per_second")
            out["loopback_tcp_mib_per_s"] = round(bps / 8 / MIB, 1) if bps else None
            out["loopback_tool"] = "iperf3 -t %d (one stream)" % secs
        finally:
            if srv.poll() is None:
                srv.kill()
            srv.wait()
    if not out.get("loopback_tcp_mib_per_s"):
        out["loopback_tcp_mib_per_s"], out["loopback_tool"] = loopback_socket(secs)
    # Each way three times, rounds interleaved, median kept: on this kind of VM the first write into page
    # cache memory the guest has not touched yet runs several times slower than a later one.
    mb, rounds = (64, 1) if h.smoke else (2048, 3)
    f = os.path.join(h.work, "dd.test")

    def dd(flags, count):
        t0 = time.monotonic()
        subprocess.run("dd if=/dev/zero of=%s bs=1M count=%d %s status=none" % (f, count, flags), shell=True,
                       timeout=300)
        return round(count / (time.monotonic() - t0), 1)

    def dd_way(name, flags, count):
        return name, "dd if=/dev/zero of=FILE bs=1M count=%d %s" % (count, flags), lambda: dd(flags, count)

    ways = [dd_way("disk_write_buffered_no_fsync", "", mb), dd_way("disk_write_buffered_fsync_at_end", "conv=fsync", mb),
            dd_way("disk_write_o_direct", "oflag=direct", mb), dd_way("disk_write_o_dsync_1m", "oflag=dsync", max(16, mb // 8)),
            ("loopback_into_file", "bench.py loopback_into_file: %d MiB, one TCP stream, written to a new file" % mb,
             lambda: loopback_into_file(f, mb))]
    runs = {name: [] for name, _, _ in ways}
    for _ in range(rounds):
        for name, cmd, measure in ways:
            runs[name].append(measure())
            out[name + "_cmd"] = cmd
            os.unlink(f)
    for name, xs in runs.items():
        out[name + "_mib_per_s"] = statistics.median(xs)
        out[name + "_runs_mib_per_s"] = xs
    return out


# ---------------------------------------------------------------- summary

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize(results):
    """(scenario, tool) -> system -> aggregated figures."""
    agg = {}
    for r in results:
        key = (r["scenario"], r["tool"])
        s = agg.setdefault(key, {}).setdefault(r["system"], {"runs": [], "failed": 0})
        if r.get("skipped"):
            s["skipped"] = r["reason"]
        elif r.get("ok"):
            s["runs"].append(r)
        else:
            s["failed"] += 1
            s["error"] = r.get("error")
    for key, per in agg.items():
        for system, s in per.items():
            runs = s["runs"]
            if not runs:
                continue
            def col(f):
                return [f(r) for r in runs]
            for name, f in (("records_per_s", lambda r: r.get("records_per_s")),
                            ("mib_per_s", lambda r: r.get("mib_per_s")),
                            ("p50_ms", lambda r: r.get("lat_ms", {}).get("p50")),
                            ("p99_ms", lambda r: r.get("lat_ms", {}).get("p99")),
                            ("p999_ms", lambda r: r.get("lat_ms", {}).get("p999")),
                            ("failover_ms", lambda r: r.get("failover_ms")),
                            ("peak_rss_mib", lambda r: r["peak_rss_kb"] / 1024 if r.get("peak_rss_kb") else None),
                            ("idle_rss_mib", lambda r: r["idle_rss_kb"] / 1024 if r.get("idle_rss_kb") else None),
                            ("cpu_s_per_gb", lambda r: r.get("cpu_s_per_gb")),
                            ("accept_ms", lambda r: r["startup"]["accept_ms"]),
                            ("first_produce_ms", lambda r: r["startup"]["first_produce_ms"])):
                xs = [x for x in col(f) if x is not None]
                if xs:
                    s[name] = dict(median=statistics.median(xs), min=min(xs), max=max(xs), n=len(xs))
            del s["runs"]
            s["n"] = len(runs)
    return agg


def fmt(x, nd=1):
    if x is None:
        return "–"
    if abs(x) >= 1000:
        return "{:,.0f}".format(x)
    return ("{:.%df}" % nd).format(x)


def cell(s, name, nd=1):
    v = s.get(name)
    if not v:
        return "–"
    if v["n"] == 1 or v["min"] == v["max"]:
        return fmt(v["median"], nd)
    return "%s (%s–%s)" % (fmt(v["median"], nd), fmt(v["min"], nd), fmt(v["max"], nd))


def ratio(a, b, name):
    va, vb = (a or {}).get(name), (b or {}).get(name)
    if not va or not vb or not vb["median"]:
        return "–"
    r = va["median"] / vb["median"]
    return "%.2f" % r if r >= 0.1 else "%.4f (1/%.0f)" % (r, 1 / r) if r > 0 else "0"


def markdown(agg, info, limits, meta):
    L = []
    L.append("# strom vs Apache Kafka %s — %s\n" % (info.get("kafka_version"), meta["started"]))
    L.append("Mode: **%s**, %s rep(s) per system, alternating kafka/strom run by run. Load 1-min at start %.2f, end %.2f%s.\n" % (
        "smoke" if meta["smoke"] else "full", meta["reps"], meta["load_start"][0], meta["load_end"][0],
        "" if meta["quiet"]["quiet"] else " (**machine was not quiet**: waited %.0f s, load never < 1.0)" % meta["quiet"]["waited_s"]))
    L.append("Machine: %s cores (%s), %s MiB RAM, kernel %s; disk `%s`.\n" % (
        info["nproc"], info["cpu_model"], info["mem_total_mib"], info["kernel"], info["disk"]))
    if limits:
        def disk(name):
            xs = limits.get(name + "_runs_mib_per_s") or []
            return "%s MiB/s%s" % (limits.get(name + "_mib_per_s"),
                                   " (median of %s)" % ", ".join("%g" % x for x in xs) if len(xs) > 1 else "")
        L.append("Limits: loopback TCP %s MiB/s (%s); disk write buffered %s, buffered+fsync %s, "
                 "O_DIRECT %s, O_DSYNC (1 MiB writes) %s.\n" % (
                     limits.get("loopback_tcp_mib_per_s"), limits.get("loopback_tool"),
                     disk("disk_write_buffered_no_fsync"), disk("disk_write_buffered_fsync_at_end"),
                     disk("disk_write_o_direct"), disk("disk_write_o_dsync_1m")))
        L.append("Loopback TCP into a new file (one stream, 1 MiB writes, no fsync: a produce's path with no broker "
                 "in it): %s.\n" % disk("loopback_into_file"))
    L.append("Cells: median (min–max). Ratios are strom / Kafka medians (throughput: higher is better for strom; "
             "latency, RSS, CPU, start-up: lower is better).\n")
    lo = (limits or {}).get("loopback_tcp_mib_per_s")
    dk = (limits or {}).get("disk_write_buffered_fsync_at_end_mib_per_s")
    tf = (limits or {}).get("loopback_into_file_mib_per_s")

    def frac(s):
        v = (s.get("mib_per_s") or {}).get("median")
        if not v or not lo or not dk:
            return "–"
        return "%.0f%% / %.0f%% / %s" % (100 * v / lo, 100 * v / dk, "%.0f%%" % (100 * v / tf) if tf else "–")

    L.append("`% limits` = median MiB/s as a share of loopback TCP / of sequential disk write (buffered + fsync) / "
             "of loopback TCP into a new file.\n")
    L.append("| scenario | tool | system | records/s | MiB/s | % limits | p50 ms | p99 ms | p99.9 ms | peak RSS MiB | idle RSS MiB | CPU s/GB | first produce ms |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (scen, tool), per in agg.items():
        for system in ("kafka", "strom"):
            s = per.get(system)
            if s is None:
                continue
            if s.get("skipped") and not s.get("n"):
                L.append("| %s | %s | %s | %s ||||||||||" % (scen, tool, system, s["skipped"]))
                continue
            if not s.get("n"):
                L.append("| %s | %s | %s | FAILED: %s ||||||||||" % (scen, tool, system, (s.get("error") or "")[:120].replace("|", "/").replace("\n", " ")))
                continue
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                scen, tool, system, cell(s, "records_per_s", 0), cell(s, "mib_per_s"), frac(s), cell(s, "p50_ms"), cell(s, "p99_ms"),
                cell(s, "p999_ms"), cell(s, "peak_rss_mib"), cell(s, "idle_rss_mib"), cell(s, "cpu_s_per_gb", 2),
                cell(s, "first_produce_ms", 0)))
    L.append("\n## Ratios strom / Kafka (medians)\n")
    L.append("| scenario | tool | throughput | p99 | peak RSS | idle RSS | CPU s/GB | first produce |")
    L.append("|---|---|---|---|---|---|---|---|")
    for (scen, tool), per in agg.items():
        k, s = per.get("kafka"), per.get("strom")
        if not (k and s and k.get("n") and s.get("n")):
            why = (s or {}).get("skipped") or (k or {}).get("skipped") or "a side failed"
            L.append("| %s | %s | %s |||||| " % (scen, tool, why))
            continue
        if "failover_ms" in k:
            L.append("| %s | %s | failover %s |||| | | %s |" % (scen, tool, ratio(s, k, "failover_ms"),
                                                            ratio(s, k, "first_produce_ms")))
            continue
        thr = "records_per_s" if "records_per_s" in k else "mib_per_s"
        L.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            scen, tool, ratio(s, k, thr), ratio(s, k, "p99_ms"), ratio(s, k, "peak_rss_mib"), ratio(s, k, "idle_rss_mib"),
            ratio(s, k, "cpu_s_per_gb"), ratio(s, k, "first_produce_ms")))
    fo = [(key, per) for key, per in agg.items() if any("failover_ms" in v for v in per.values())]
    if fo:
        L.append("\n## Failover (three nodes, RF=3): SIGKILL of the partition leader to the first acks=all write "
                 "acknowledged by the new leader, ms\n")
        L.append("| scenario | system | failover ms | cluster first produce ms | peak RSS MiB (sum of nodes) |")
        L.append("|---|---|---|---|---|")
        for (scen, _tool), per in fo:
            for system in ("kafka", "strom"):
                if per.get(system, {}).get("n"):
                    v = per[system]
                    L.append("| %s | %s | %s | %s | %s |" % (scen, system, cell(v, "failover_ms", 0),
                                                          cell(v, "first_produce_ms", 0), cell(v, "peak_rss_mib")))
    return "\n".join(L) + "\n"


def resummarize(path):
    """bench.py summarize DIR: rebuild summary.{md,json} from DIR/results.json."""
    with open(os.path.join(path, "results.json")) as f:
        r = json.load(f)
    agg = summarize(r["runs"])
    with open(os.path.join(path, "summary.json"), "w") as f:
        json.dump(dict(meta=r["meta"], machine=r["machine"], limits=r["limits"],
                       scenarios=[dict(scenario=k[0], tool=k[1], **v) for k, v in agg.items()]), f, indent=1)
    md = markdown(agg, r["machine"], r["limits"], r["meta"])
    with open(os.path.join(path, "summary.md"), "w") as f:
        f.write(md)
    print(md)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "summarize":
        resummarize(sys.argv[2])
        return 0
    ap = argparse.ArgumentParser()
    ap.add_argument("scenarios", nargs="*")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--reps", type=int)
    ap.add_argument("--tools", help="comma-separated subset of tools")
    ap.add_argument("--systems", default="kafka,strom")
    ap.add_argument("--port", type=int, default=19092)
    ap.add_argument("--strom", required=True)
    ap.add_argument("--kafka-libs", required=True)
    ap.add_argument("--kafka-version", required=True)
    ap.add_argument("--classes", required=True)
    ap.add_argument("--cache", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--wait-quiet", type=float, help="seconds to wait for 1-min load < 1.0 (default 1200, smoke 0)")
    ap.add_argument("--no-limits", action="store_true")
    a = ap.parse_args()
    scen = a.scenarios or (DEFAULT_SMOKE if a.smoke else DEFAULT_FULL)
    for s in scen:
        if s not in SCENARIOS:
            ap.error("unknown scenario %s (known: %s)" % (s, ", ".join(SCENARIOS)))
    reps = a.reps or (1 if a.smoke else 3)
    systems = a.systems.split(",")
    h = Harness(a)
    meta = dict(started=datetime.datetime.now().isoformat(timespec="seconds"), smoke=a.smoke, reps=reps,
                scenarios=scen, argv=sys.argv[1:])
    meta["quiet"] = wait_quiet(a.wait_quiet if a.wait_quiet is not None else (0 if a.smoke else 1200))
    meta["load_start"] = loadavg()
    info = machine_info(h)
    limits = {} if a.no_limits else machine_limits(h)
    try:
        for s in scen:
            kind = SCENARIOS[s]["kind"]
            tools = (SMOKE_TOOLS.get(kind) if a.smoke else None) or TOOLS[kind]
            if a.tools:
                tools = [t for t in tools if t in a.tools.split(",")]
            for tool in tools:
                for rep in range(1, reps + 1):
                    for system in systems:
                        h.run(s, tool, system, rep)
    finally:
        h.cleanup()
        meta["load_end"] = loadavg()
        agg = summarize(h.results)
        with open(os.path.join(a.out, "results.json"), "w") as f:
            json.dump(dict(meta=meta, machine=info, limits=limits, runs=h.results), f, indent=1)
        with open(os.path.join(a.out, "summary.json"), "w") as f:
            json.dump(dict(meta=meta, machine=info, limits=limits,
                           scenarios=[dict(scenario=k[0], tool=k[1], **v) for k, v in agg.items()]), f, indent=1)
        md = markdown(agg, info, limits, meta)
        with open(os.path.join(a.out, "summary.md"), "w") as f:
            f.write(md)
        print(md)
    failed = [r for r in h.results if not r.get("ok") and not r.get("skipped")]
    if failed:
        log("%d run(s) failed" % len(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
