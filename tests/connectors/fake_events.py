"""The recorded payloads the events connectors (GDELT, RSS, SEC EDGAR) are tested against.

They are served per test by the ``events_server`` fixture (a plain ``LoopbackServer``, see
``conftest``) with ``serve(path, body, content_type, ...)``; anything unregistered answers 404,
as GDELT does for a missing slot. The request log records headers and arrival times, so tests
can assert what the client actually sent (SEC's User-Agent) and how fast (SEC's rate limit).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "events"
GDELT_FILE = FIXTURES / "gdelt" / "20191024143000.export.trimmed.CSV"
COINDESK_FILE = FIXTURES / "rss" / "coindesk_rss_2026-09-30_trimmed.xml"
COINTELEGRAPH_FILE = FIXTURES / "rss" / "cointelegraph_rss_2026-09-30_trimmed.xml"
TESLA_FILE = FIXTURES / "sec_edgar" / "submissions_CIK0001318605_tesla_trimmed25.json"
FEMASYS_FILE = FIXTURES / "sec_edgar" / "submissions_CIK0001339005_femasys_2025-08-02.json"
PRIMARY_DOCS = FIXTURES / "primary_doc"


def zipped(name: str, content: bytes) -> bytes:
    """``content`` as the single member ``name`` of a zip archive (GDELT's packaging)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, content)
    return buffer.getvalue()
