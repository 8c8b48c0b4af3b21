"""Unknown ids answer 404 whatever their format (the seed's contract): never 422 for a well-formed
request that names nothing."""

from __future__ import annotations

import pytest

from .conftest import AUTH

P = "/api/v2"
IDS = ["does-not-exist-123", "00000000-0000-4000-8000-000000000000", "x" * 300, "%20", "1.5e308"]


@pytest.mark.parametrize("unknown", IDS)
@pytest.mark.parametrize(("template", "what"), [
    ("/backtest/{}", "backtest run"),
    ("/tasks/{}", "task"),
    ("/predictions/{}/explanation", "prediction"),
    ("/entities/{}", "entity"),
])
def test_unknown_ids_are_404_naming_what_is_missing(client, template, what, unknown):
    r = client.get(P + template.format(unknown), headers=AUTH)
    assert r.status_code == 404, r.text
    body = r.json()
    assert body["code"] == "not_found" and what in body["detail"]
