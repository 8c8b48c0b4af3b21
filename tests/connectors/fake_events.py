"""The recorded payloads the events connectors (GDELT, RSS, SEC EDGAR, CryptoPanic) are tested against.

They are served per test by the ``events_server`` fixture (a plain ``LoopbackServer``, see
``conftest``) with ``serve(path, body, content_type, ...)``; anything unregistered answers 404,
as GDELT does for a missing slot. The request log records headers and arrival times, so tests
can assert what the client actually sent (SEC's User-Agent) and how fast (SEC's rate limit).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from .loopback import LoopbackServer, Reply, json_reply

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "events"
GDELT_FILE = FIXTURES / "gdelt" / "20191024143000.export.trimmed.CSV"
COINDESK_FILE = FIXTURES / "rss" / "coindesk_rss_2026-09-30_trimmed.xml"
COINTELEGRAPH_FILE = FIXTURES / "rss" / "cointelegraph_rss_2026-09-30_trimmed.xml"
TESLA_FILE = FIXTURES / "sec_edgar" / "submissions_CIK0001318605_tesla_trimmed25.json"
FEMASYS_FILE = FIXTURES / "sec_edgar" / "submissions_CIK0001339005_femasys_2025-08-02.json"
PRIMARY_DOCS = FIXTURES / "primary_doc"
NEWS_FIXTURES = FIXTURES.parent / "news"
CRYPTOPANIC_PAGES = [NEWS_FIXTURES / f"cryptopanic_posts_2025-07-14_page{n}.json" for n in (1, 2)]
CRYPTOPANIC_SLICE = NEWS_FIXTURES / "cryptopanic_slice_2025-07-13_2025-07-15.csv.gz"


def zipped(name: str, content: bytes) -> bytes:
    """``content`` as the single member ``name`` of a zip archive (GDELT's packaging)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, content)
    return buffer.getvalue()


class FakeCryptoPanicServer(LoopbackServer):
    """CryptoPanic's posts endpoint over the two recorded pages (real posts of 2025-07-14, newest
    first): ``page`` picks the page, ``next`` points back at this server with every parameter,
    the token included, as the API's does. A missing or wrong ``auth_token`` answers 401."""

    PATH = "/api/developer/v2/posts/"

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self.pages = [json.loads(p.read_text(encoding="utf-8")) for p in CRYPTOPANIC_PAGES]

    @property
    def base_url(self) -> str:
        return self.url + "/api/developer/v2"

    def route(self, path: str, params: dict[str, str]) -> Reply | None:
        if path != self.PATH:
            return None
        if params.get("auth_token") != self.token:
            return json_reply(401, {"status": "Incomplete", "info": "Token not found"})
        number = int(params.get("page", "1"))
        if not 1 <= number <= len(self.pages):
            return json_reply(404, {"detail": "Invalid page."})
        page = json.loads(json.dumps(self.pages[number - 1]))
        for key in ("next", "previous"):
            if page[key]:
                page[key] = page[key].format(server=self.url, token=self.token)
        return json_reply(200, page)
