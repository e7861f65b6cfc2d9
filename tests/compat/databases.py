"""Real PostgreSQL and MariaDB servers for the JDBC connector tests, each on a private port and data
directory, started and stopped by the test (installed from Debian by scripts/install-test-deps.sh).

PostgreSQL refuses to run as root, so under root its data directory belongs to the `postgres` user
and its programs run through `runuser`. Setup SQL goes through the servers' own command-line clients
(psql, mariadb) over their Unix sockets.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from conftest import _die_with_parent, free_port

PASSWORD = "1q2w3e4r"  # the seed's password; never expected in any message strom prints
START_TIMEOUT = 60.0


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def postgres_available() -> bool:
    return _pg_bin("initdb") is not None and _pg_bin("pg_ctl") is not None and shutil.which("psql") is not None


def mariadb_available() -> bool:
    return (os.path.exists("/usr/sbin/mariadbd") or shutil.which("mariadbd") is not None) and \
        shutil.which("mariadb-install-db") is not None and shutil.which("mariadb") is not None


class Postgres:
    """initdb + pg_ctl on 127.0.0.1:<free port>; user postgres with PASSWORD (scram over TCP)."""

    def __init__(self):
        self.port = free_port()
        # Not under pytest's tmp dir: its 0700 parents would lock the postgres user out.
        self.dir = Path(tempfile.mkdtemp(prefix="strom-pg-"))
        self.data = self.dir / "data"
        self.as_root = os.geteuid() == 0

    def _run(self, args: list[str], **kw) -> subprocess.CompletedProcess:
        if self.as_root:
            args = ["runuser", "-u", "postgres", "--", *args]
        return subprocess.run(args, check=True, capture_output=True, text=True, timeout=START_TIMEOUT, **kw)

    def start(self) -> "Postgres":
        pwfile = self.dir / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        self._run([_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth-local=trust",
                   "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync"])
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run([_pg_bin("pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.dir / "log"),
                   "-w", "-t", "60", "start"])
        self.sql("CREATE DATABASE mydb")
        return self

    def sql(self, statement: str, db: str = "postgres") -> str:
        """Runs SQL through psql over the socket; returns the unaligned, tuples-only output."""
        r = subprocess.run(["psql", "-h", str(self.dir), "-p", str(self.port), "-U", "postgres", "-d", db,
                            "-v", "ON_ERROR_STOP=1", "-X", "-A", "-t", "-F", "|", "-c", statement],
                           check=True, capture_output=True, text=True, timeout=60)
        return r.stdout.strip()

    def rows(self, query: str, db: str = "mydb") -> list[list[str]]:
        out = self.sql(query, db)
        return [line.split("|") for line in out.splitlines() if line]

    def url(self, db: str = "mydb") -> str:
        return f"jdbc:postgresql://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        try:
            self._run([_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])
        except Exception:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


class MariaDb:
    """mariadb-install-db + mariadbd on 127.0.0.1:<free port>; root with PASSWORD over TCP."""

    def __init__(self):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="strom-mariadb-"))
        self.data = self.dir / "data"
        self.sock = self.dir / "sock"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "MariaDb":
        user = ["--user=root"] if os.geteuid() == 0 else []
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={self.data}", *user,
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True, text=True, timeout=120)
        binary = "/usr/sbin/mariadbd" if os.path.exists("/usr/sbin/mariadbd") else shutil.which("mariadbd")
        log = open(self.dir / "mariadbd.log", "ab")
        self.proc = subprocess.Popen(
            [binary, "--no-defaults", f"--datadir={self.data}", f"--port={self.port}", f"--socket={self.sock}",
             "--bind-address=127.0.0.1", f"--pid-file={self.dir / 'pid'}", f"--tmpdir={self.dir}",
             "--skip-name-resolve", "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=2",
             "--skip-log-bin", *user],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self.proc.poll() is None, (self.dir / "mariadbd.log").read_text(errors="replace")[-4000:]
            r = subprocess.run(["mariadb", "--no-defaults", "-S", str(self.sock), "-u", "root", "-e", "SELECT 1"],
                               capture_output=True, text=True, timeout=30)
            if r.returncode == 0:
                break
            assert time.monotonic() < deadline, f"mariadbd did not start: {r.stderr}"
            time.sleep(0.2)
        self.sql(f"CREATE USER 'root'@'%' IDENTIFIED BY '{PASSWORD}'; "
                 "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION; "
                 f"ALTER USER 'root'@'localhost' IDENTIFIED BY '{PASSWORD}'; "
                 # mariadb-install-db also makes password-less root@127.0.0.1 and root@::1.
                 f"ALTER USER IF EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'; "
                 f"ALTER USER IF EXISTS 'root'@'::1' IDENTIFIED BY '{PASSWORD}'; "
                 "CREATE DATABASE mydb; FLUSH PRIVILEGES")
        return self

    def sql(self, statement: str, db: str | None = None) -> str:
        args = ["mariadb", "--no-defaults", "-S", str(self.sock), "-u", "root", f"-p{PASSWORD}",
                "-N", "-B", "-e", statement]
        if db:
            args.append(db)
        r = subprocess.run(args, capture_output=True, text=True, timeout=60)
        if r.returncode != 0 and "Access denied" in r.stderr:
            # Before the password is set.
            args.remove(f"-p{PASSWORD}")
            r = subprocess.run(args, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"mariadb: {r.stderr.strip()} (statement: {statement})")
        return r.stdout.strip()

    def rows(self, query: str, db: str = "mydb") -> list[list[str]]:
        out = self.sql(query, db)
        return [line.split("\t") for line in out.splitlines() if line]

    def url(self, db: str = "mydb", sub: str = "mariadb") -> str:
        return f"jdbc:{sub}://localhost:{self.port}/{db}"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)
