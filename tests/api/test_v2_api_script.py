"""scripts/test_v2_api.sh, the operators' post-deploy check, run against a real uvicorn server
over a trained home: it passes there, writes only what it documents, and fails (non-zero, with
the failures counted) against a wrong key or a server that answers the wrong shape."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from conftest import copy_home  # the root conftest
from servers import free_port, running
from sqlalchemy import text

from omniwatch.warehouse.engine import get_engine

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "test_v2_api.sh"
SECRET = "ops-check-secret"
SUMMARY = re.compile(r"^v2 API check: (\d+) passed, (\d+) failed", re.M)


def run_script(base: str, *args: str, key: str | None = SECRET) -> tuple[int, int, int, str]:
    """(exit status, passed, failed, output) of the script against ``base``."""
    env = {k: v for k, v in os.environ.items() if k != "OMNIWATCH_API_KEY"}
    env.update(API_BASE=base, CHECK_TIMEOUT_S="120")
    if key is not None:
        env["OMNIWATCH_API_KEY"] = key
    out = subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=540)
    output = out.stdout + out.stderr
    found = SUMMARY.search(out.stdout)
    assert found, output[-3000:]
    return out.returncode, int(found.group(1)), int(found.group(2)), output


@pytest.fixture(scope="module")
def server(trained_home, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """``python -m omniwatch.serving.app`` (uvicorn) over a private copy of the trained home,
    with one named key; yields its base URL and the home."""
    for name in ("warehouse.db", "mlflow.db"):
        get_engine(f"sqlite:///{trained_home / name}").dispose()
    root = tmp_path_factory.mktemp("v2_script")
    home = copy_home(trained_home, root / "home")
    port = free_port()
    env = {**os.environ, "OMNIWATCH_HOME": str(home), "DAGSTER_HOME": str(root),
           "OMNIWATCH_DAGSTER_DIR": str(home / "dagster"), "OMNIWATCH_API_PORT": str(port),
           "OMNIWATCH_API_HOST": "127.0.0.1", "OMNIWATCH_API_KEYS": f"ops:{SECRET}"}
    env.pop("OMNIWATCH_DATABASE_URL", None)
    base = f"http://127.0.0.1:{port}"
    with running([sys.executable, "-W", "ignore", "-m", "omniwatch.serving.app"], env=env, cwd=REPO,
                 log_path=root / "api.log", ready=lambda: httpx.get(f"{base}/api/v2/health").status_code == 200,
                 what="the API", timeout_s=90):
        yield base, home


def _count(home: Path, sql: str) -> int:
    with get_engine(f"sqlite:///{home / 'warehouse.db'}").connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


CHECK_EVENTS = "SELECT count(*) FROM events WHERE source = 'api_check'"
CHECK_NOTES = "SELECT count(*) FROM model_promotions WHERE reason LIKE 'omniwatch API check%'"


def test_read_only_then_full_check_pass_and_write_only_what_they_document(server):
    base, home = server
    code, passed, failed, output = run_script(base, "--read-only")
    assert (code, failed) == (0, 0), output[-3000:]
    assert passed >= 40, output
    assert _count(home, CHECK_EVENTS) == 0 and _count(home, CHECK_NOTES) == 0  # --read-only wrote nothing

    code, passed_all, failed, output = run_script(base)
    assert (code, failed) == (0, 0), output[-3000:]
    assert passed_all >= passed + 35, output  # predict, signals, portfolio, backtest, tasks, events, notes
    assert _count(home, CHECK_EVENTS) == 1 and _count(home, CHECK_NOTES) == 1
    assert _count(home, "SELECT count(*) FROM predictions_v2 WHERE request_key = 'omniwatch-api-check'") >= 1
    assert _count(home, "SELECT count(*) FROM signal_candidates WHERE strategy_id = 'omniwatch_api_check'") == 2


def test_a_wrong_key_fails_the_check(server):
    base, _ = server
    code, passed, failed, output = run_script(base, "--read-only", key="not-the-key")
    assert code == 1 and failed > 0, output[-3000:]
    assert "FAIL [errors] predict/liquid with a lower-case symbol: status 401, expected 422" in output
    assert re.search(r"v2 API check: \d+ passed, [1-9]\d* failed", output)


class _WrongShape(BaseHTTPRequestHandler):
    """Answers 200 with a body of the wrong shape to everything (a proxy's placeholder, an old build)."""

    def _answer(self) -> None:
        body = json.dumps({"status": "fine", "models": [], "paths": {}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


def test_a_server_answering_the_wrong_shape_fails_the_check():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _WrongShape)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        code, passed, failed, output = run_script(f"http://127.0.0.1:{httpd.server_address[1]}")
    finally:
        httpd.shutdown()
    assert code == 1 and failed >= 20, output[-3000:]
    assert "FAIL [health] health.status is ok or degraded" in output
    assert "FAIL [auth] predict/liquid without X-API-Key: status 200, expected 401" in output


def test_no_server_fails_at_once():
    code, passed, failed, output = run_script(f"http://127.0.0.1:{free_port()}")
    assert (code, passed, failed) == (1, 0, 1), output
    assert "the server does not answer" in output
