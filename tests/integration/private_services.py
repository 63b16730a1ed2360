"""Throwaway Postgres, Redis and Mosquitto instances for tests that stop and start them.

The machine's shared services are used by other tests concurrently, so a test that needs
to take a service down starts its own copy on a free port, in a temporary directory.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MOSQUITTO_DIR = REPO / "deploy" / "mosquitto"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, up: bool = True, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                is_up = True
        except OSError:
            is_up = False
        if is_up == up:
            return
        time.sleep(0.1)
    raise TimeoutError(f"port {port} did not {'open' if up else 'close'} within {timeout}s")


def _stop(proc: subprocess.Popen[bytes] | None, timeout: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


class PrivateRedis:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)

    def stop(self) -> None:
        _stop(self.proc)
        wait_port(self.port, up=False)


class PrivatePostgres:
    """A cluster made with initdb in a temporary directory (as ``postgres`` when root)."""

    def __init__(self) -> None:
        # Outside pytest's tmp tree: pytest re-chmods that 0700 whenever any session starts,
        # which would lock the postgres user out mid-test.
        self.workdir = Path(tempfile.mkdtemp(prefix="gg-pg-"))
        self.datadir = self.workdir / "data"
        self.port = free_port()
        self.bindir = Path(sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1])

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        prefix: list[str] = []
        if os.geteuid() == 0:
            prefix = ["runuser", "-u", "postgres", "--"]
        subprocess.run([*prefix, *argv], check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.workdir, entry.pw_uid, entry.pw_gid)
        self._run(str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.workdir} -c fsync=off"
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-o", opts,
                  "-l", str(self.workdir / "log"), "-w", "start")
        wait_port(self.port)

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop")
        wait_port(self.port, up=False)

    def stop_quietly(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, TimeoutError):
            self.stop()

    def cleanup(self) -> None:
        self.stop_quietly()
        shutil.rmtree(self.workdir, ignore_errors=True)


class PrivateMosquitto:
    """Mosquitto with the shipped auth/TLS configuration and files made by setup.sh.

    The shipped ``conf.d/10-auth-tls.conf`` is used verbatim except for its paths (the
    compose mount point becomes ``workdir``) and its TLS port; a plaintext listener on
    127.0.0.1 is added, as the bridge uses inside the deployment's private network.
    """

    def __init__(self, workdir: Path, courses: tuple[str, ...] = ("cs101", "cs102")) -> None:
        self.workdir = workdir
        self.courses = courses
        self.port = free_port()
        self.tls_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def setup(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [str(MOSQUITTO_DIR / "setup.sh"), "-o", str(self.workdir), *self.courses],
            check=True, capture_output=True, timeout=120,
        )
        shipped = (MOSQUITTO_DIR / "conf.d" / "10-auth-tls.conf").read_text()
        conf = shipped.replace("/mosquitto/config", str(self.workdir))
        conf = conf.replace("listener 8883", f"listener {self.tls_port} 127.0.0.1")
        user = pwd.getpwuid(os.geteuid()).pw_name
        (self.workdir / "test.conf").write_text(
            f"user {user}\npersistence false\nlog_dest stderr\n"
            f"listener {self.port} 127.0.0.1\n{conf}"
        )

    def password(self, account: str) -> str:
        return (self.workdir / "credentials" / account).read_text().strip()

    @property
    def ca_file(self) -> Path:
        return self.workdir / "certs" / "ca.crt"

    def start(self) -> None:
        self.log = (self.workdir / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.workdir / "test.conf")], stdout=self.log, stderr=self.log
        )
        wait_port(self.port)
        wait_port(self.tls_port)

    def stop(self) -> None:
        _stop(self.proc)
        wait_port(self.port, up=False)
