"""What every drill shares: its state folder, drill databases on the local PostgreSQL, and
background servers in their own process groups.

Everything a drill cuts or starts leaves a marker in the state folder first (``cuts/<db>``,
``databases/<db>``, ``pids/<server>.pid``), so ``recover`` can undo it from another process after
a drill was interrupted. Only databases named ``omniwatch_chaos_*`` are ever cut, re-allowed or
dropped: other databases on the shared server (other tests, a developer's warehouse) are never
touched, and nothing here stops a server it did not start.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

STATE_ENV = "OMNIWATCH_CHAOS_DIR"
ADMIN_ENV = "OMNIWATCH_CHAOS_PG_ADMIN_URL"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DRILL_PREFIX = "omniwatch_chaos_"


@dataclass(frozen=True)
class ChaosConfig:
    """Where drills keep their state, which PostgreSQL they create drill databases on (an
    administrative database such as ``postgres``), and how long a cut is held."""

    state_dir: Path
    pg_admin_url: str = DEFAULT_ADMIN_URL
    hold_s: float = 1.0
    # mlflow_interrupt: "kill" the server (SIGKILL, then a restart on the same store) or "proxy":
    # cut a TCP proxy in front of it (one server start; what tests use, a start costing seconds).
    mlflow_cut: str = "kill"
    # An MLflow server already running (e.g. a test session's) to drill through the proxy instead
    # of starting one: "http://127.0.0.1:PORT".
    mlflow_server: str | None = None

    @classmethod
    def from_env(cls, hold_s: float = 1.0, mlflow_cut: str = "kill", mlflow_server: str | None = None
                 ) -> ChaosConfig:
        state = os.environ.get(STATE_ENV) or str(Path(tempfile.gettempdir()) / "omniwatch-chaos")
        return cls(Path(state), os.environ.get(ADMIN_ENV) or DEFAULT_ADMIN_URL, hold_s, mlflow_cut, mlflow_server)

    def folder(self, name: str) -> Path:
        path = self.state_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _guard(name: str) -> None:
    if not name.startswith(DRILL_PREFIX) or not name.replace("_", "").isalnum():
        raise ValueError(f"chaos drills only touch databases named {DRILL_PREFIX}*, not {name!r}")


@dataclass
class Postgres:
    """Drill databases on one PostgreSQL server, through its administrative database."""

    config: ChaosConfig

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(self.config.pg_admin_url, autocommit=True, connect_timeout=10)

    def url(self, name: str) -> str:
        return make_url(self.config.pg_admin_url).set(database=name).render_as_string(hide_password=False)

    def create(self, template: str | None = None) -> str:
        """A new, empty drill database (or a copy of ``template``, another drill database)."""
        name = f"{DRILL_PREFIX}{uuid.uuid4().hex[:12]}"
        (self.config.folder("databases") / name).touch()
        if template is not None:
            _guard(template)
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return name

    def drop(self, name: str) -> None:
        from omniwatch.warehouse.engine import get_engine

        _guard(name)
        get_engine(self.url(name)).dispose()
        with self._admin() as conn:  # dropping needs no connection to it: a cut database drops too
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        for folder in ("databases", "cuts"):
            (self.config.folder(folder) / name).unlink(missing_ok=True)

    def exists(self, name: str) -> bool:
        with self._admin() as conn:
            return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None

    def cut(self, name: str) -> int:
        """Refuse new connections to ``name`` and end the open ones; returns how many were ended."""
        _guard(name)
        (self.config.folder("cuts") / name).touch()  # before the cut: recover must find it
        with self._admin() as conn:
            conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
            ended = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                 "WHERE datname = %s AND pid <> pg_backend_pid()", (name,)).fetchone()
        return int(ended[0]) if ended else 0

    def allow(self, name: str) -> None:
        _guard(name)
        with self._admin() as conn:
            conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        (self.config.folder("cuts") / name).unlink(missing_ok=True)

    def accepts_connections(self, name: str) -> bool:
        with self._admin() as conn:
            row = conn.execute("SELECT datallowconn FROM pg_database WHERE datname = %s", (name,)).fetchone()
        return bool(row and row[0])

    def cut_databases(self) -> list[str]:
        """Drill databases that refuse connections now (a marker or not)."""
        with self._admin() as conn:
            rows = conn.execute("SELECT datname FROM pg_database WHERE NOT datallowconn AND datname LIKE %s",
                                (DRILL_PREFIX.replace("_", r"\_") + "%",)).fetchall()
        return [r[0] for r in rows]


@dataclass
class Servers:
    """Background servers of a drill, each in its own process group, with a pid file that names
    the command, so ``recover`` (another process) stops exactly what a drill started."""

    config: ChaosConfig
    running: dict[str, subprocess.Popen] = field(default_factory=dict)

    def pid_file(self, name: str) -> Path:
        return self.config.folder("pids") / f"{name}.pid"

    def start(self, name: str, cmd: list[str], *, env: dict[str, str], ready: Callable[[], bool],
              timeout_s: float = 60) -> float:
        """Start ``cmd`` and wait until ``ready()``; returns the seconds it took. Fails with the
        log's tail when the process exits or the time runs out first."""
        log_path = self.config.folder("logs") / f"{name}.log"
        started = time.monotonic()
        with log_path.open("a") as log:
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.running[name] = proc
        self.pid_file(name).write_text(f"{proc.pid}\n{Path(cmd[0]).name} {' '.join(cmd[1:3])}\n")
        while True:
            if proc.poll() is not None:
                self._forget(name)
                raise RuntimeError(f"{name} exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
            if time.monotonic() - started > timeout_s:
                self.kill(name)
                raise RuntimeError(f"{name} was not ready in {timeout_s:.0f} s: {log_path.read_text()[-2000:]}")
            try:
                if ready():
                    return time.monotonic() - started
            except Exception:  # noqa: BLE001 - not listening yet
                pass
            time.sleep(0.1)

    def kill(self, name: str, sig: int = signal.SIGKILL, wait_s: float = 15) -> int | None:
        """Send ``sig`` to the server's process group; returns its exit status (None if it was
        not running). After ``wait_s`` without an exit, SIGKILL."""
        proc = self.running.get(name)
        if proc is None:
            return None
        try:
            os.killpg(proc.pid, sig)
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        except ProcessLookupError:
            proc.wait(5)
        self._forget(name)
        return proc.returncode

    def stop_all(self) -> None:
        for name in list(self.running):
            self.kill(name, signal.SIGTERM)

    def _forget(self, name: str) -> None:
        self.running.pop(name, None)
        self.pid_file(name).unlink(missing_ok=True)

    def log_tail(self, name: str, chars: int = 2000) -> str:
        path = self.config.state_dir / "logs" / f"{name}.log"
        return path.read_text()[-chars:] if path.exists() else ""


def _stop_recorded(pid_file: Path) -> str:
    """Stop the process group a pid file names, if its leader still runs the recorded command."""
    lines = pid_file.read_text().splitlines()
    pid, what = int(lines[0]), (lines[1] if len(lines) > 1 else "")
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        pid_file.unlink(missing_ok=True)
        return f"{pid_file.stem}: not running"
    if what.split(" ")[0] not in cmdline:  # the pid was reused by something else: leave it alone
        pid_file.unlink(missing_ok=True)
        return f"{pid_file.stem}: pid {pid} now runs another command, left alone"
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        for _ in range(50):
            if not _alive(pid):
                break
            time.sleep(0.1)
        else:
            continue
        break
    pid_file.unlink(missing_ok=True)
    return f"{pid_file.stem}: stopped process group {pid}"


def _alive(pid: int) -> bool:
    """Running (a zombie, whose parent has not reaped it yet, has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def recover(config: ChaosConfig) -> list[str]:
    """Undo whatever drills left behind: re-allow connections to cut drill databases, stop drill
    servers by their pid files, drop drill databases. Returns one line per action."""
    pg = Postgres(config)
    done: list[str] = []
    for pid_file in sorted((config.state_dir / "pids").glob("*.pid")):
        done.append(_stop_recorded(pid_file))
    marked = {p.name for p in (config.state_dir / "cuts").glob(f"{DRILL_PREFIX}*")}
    for name in sorted(marked | set(pg.cut_databases())):
        if pg.exists(name):
            pg.allow(name)
            done.append(f"{name}: connections allowed again")
        (config.state_dir / "cuts" / name).unlink(missing_ok=True)
    for marker in sorted((config.state_dir / "databases").glob(f"{DRILL_PREFIX}*")):
        pg.drop(marker.name)
        done.append(f"{marker.name}: drill database dropped")
    return done
