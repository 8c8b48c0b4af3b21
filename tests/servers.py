"""Background servers started by tests: a free loopback port, starting a server and waiting until
it is ready, and stopping its process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_group(proc: subprocess.Popen, grace_s: float = 30, parent_sigint: bool = False) -> None:
    """SIGTERM to the process group (started with ``start_new_session=True``), SIGKILL after
    ``grace_s``: servers such as ``dagster dev`` leave children behind otherwise. ``parent_sigint``:
    SIGINT to the parent alone instead (Ctrl-C: ``dagster dev`` then shuts its services down itself,
    in about 2.5 s here, where SIGTERM to the whole group often outlasted 10 s), and SIGKILL to
    whatever the group still holds once it exited (its code server may outlive it)."""
    if parent_sigint:
        os.kill(proc.pid, signal.SIGINT)
    else:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # the whole group is gone
        pass
    proc.wait(10)


@contextmanager
def running(cmd: list[str], *, env: dict[str, str], cwd: Path, log_path: Path, ready: Callable[[], bool],
            what: str = "the server", timeout_s: float = 120) -> Iterator[subprocess.Popen]:
    """``cmd`` in its own process group, its output in ``log_path``; yields once ``ready()`` is
    true (exceptions from ``ready`` count as not yet), fails with the log's tail if the process
    exits or ``timeout_s`` passes first; stops the group on exit. Scope the fixture that uses it
    to the module when its tests can share one server (one start-up instead of one per test)."""
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + timeout_s
        while True:
            assert proc.poll() is None, f"{what} exited: " + log_path.read_text()[-3000:]
            assert time.time() < deadline, f"{what} was not ready in {timeout_s:.0f} s: " + log_path.read_text()[-3000:]
            try:
                if ready():
                    break
            except Exception:  # noqa: BLE001 - not listening yet, or answering errors while loading
                pass
            time.sleep(0.3)
        yield proc
    finally:
        stop_group(proc)
