"""The examples of /docs are true: every request example validates against its model and, sent as
it is, is answered (not refused); every documented error example is an answer the route really
gives at that status, shown here by provoking each one from a real app over a trained home."""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from fastapi.testclient import TestClient
from servers import free_port
from sqlalchemy import func, select

from omniwatch.serving.app import DESCRIPTION, create_app
from omniwatch.serving.errors import ERROR_EXAMPLES
from omniwatch.serving.schemas import ErrorResponse, Strict
from omniwatch.settings import Settings
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

from .conftest import AUTH, client_for, flush, serving

NO_ID = "00000000-0000-4000-8000-000000000000"
# The schema does not depend on data: read it once from an app over an empty home.
SPEC = create_app(Settings(home=Path(tempfile.mkdtemp(prefix="omniwatch-openapi-"))), serving()).openapi()
COMPONENTS = SPEC["components"]["schemas"]
OPS = [(f"{method.upper()} {path}", op) for path, item in SPEC["paths"].items() for method, op in item.items()]


def _models() -> dict[str, type[Strict]]:
    """Every request model (the bodies are all ``Strict``), by the component name FastAPI gives it."""
    found, todo = {}, [Strict]
    while todo:
        cls = todo.pop()
        found[cls.__name__] = cls
        todo += cls.__subclasses__()
    return found


def _body_component(op: dict) -> str | None:
    schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    return schema["$ref"].rsplit("/", 1)[-1] if "$ref" in schema else None


def _examples(name: str) -> list[dict[str, Any]]:
    return COMPONENTS[name].get("examples", [])


def _validate(name: str, value: Any) -> None:
    """JSON Schema validation against the published component (refs resolved within the document)."""
    jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": SPEC["components"]}
                                    ).validate(value)


BODIES = sorted({(key, name) for key, op in OPS if (name := _body_component(op))})


@pytest.mark.parametrize(("op", "name"), BODIES)
def test_every_request_body_example_validates_against_its_model(op, name):
    examples = _examples(name)
    if "/data-quality/" not in op:  # that area documents its own bodies
        assert examples, f"{op}: {name} has no example"
    model = _models()[name]
    for example in examples:
        _validate(name, example)
        model.model_validate_json(json.dumps(example))  # the model's own validators too (windows, clocks)


def test_a_wrong_example_is_caught():
    """The check above can fail: an example with a typo'd field or a reversed window is refused."""
    with pytest.raises(jsonschema.ValidationError):
        _validate("PredictLiquidRequest", {"targt": "BTC"})
    with pytest.raises(ValueError, match="end must be after start"):
        _models()["BacktestRequest"].model_validate({"start": "2024-08-02T00:00:00Z", "end": "2024-08-01T00:00:00Z"})


def test_the_description_says_how_to_set_a_key():
    for needed in ("X-API-Key", "OMNIWATCH_API_KEYS", "name:secret", "OMNIWATCH_API_OPEN_READS", "Authorize"):
        assert needed in DESCRIPTION
    assert SPEC["info"]["description"] == DESCRIPTION


def _error_examples() -> list[tuple[str, int, str, dict[str, Any]]]:
    """(operation, status, code, example body) of every documented error example."""
    found = []
    for key, op in OPS:
        for status, response in op["responses"].items():
            if int(status) < 400:
                continue
            content = response["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}, (key, status)
            examples = content.get("examples")
            assert examples, f"{key} {status}: no example"
            for code, example in examples.items():
                found.append((key, int(status), code, example["value"]))
    return found


ERRORS = _error_examples()


def test_every_error_example_is_the_one_error_shape_with_its_own_code():
    assert ERRORS
    for key, status, code, value in ERRORS:
        ErrorResponse.model_validate(value)
        assert value["code"] == code and ERROR_EXAMPLES[code][0] == status, (key, status, code)
    by_status = {(s, c) for _, s, c, _ in ERRORS}
    assert {s for s, _ in by_status} >= {401, 403, 404, 410, 422, 503}
    # Not every status says model_artifact_missing (the old docs did): each has its own codes.
    assert {c for s, c in by_status if s == 401} == {"unauthorized"}
    assert {c for s, c in by_status if s == 404} == {"not_found"}
    assert {c for s, c in by_status if s == 410} == {"gone"}
    assert {c for s, c in by_status if s == 403} == {"pipeline_source", "live_trading_disabled"}
    assert {c for s, c in by_status if s == 423} == {"kill_switch_triggered:liquid:liquid_v2", "daily_loss_exceeded",
                                                     "consecutive_loss_exceeded", "max_order_notional"}
    assert {"validation_error", "insufficient_features", "in_sample_window", "blocked_by_data_quality"} <= {
        c for s, c in by_status if s == 422}
    assert {"stale_features", "model_artifact_missing", "registry_unavailable", "task_executor_unavailable"} == {
        c for s, c in by_status if s == 503}


def test_validation_examples_name_a_field_the_route_takes():
    for key, _, code, value in ERRORS:
        if code != "validation_error":
            continue
        op = dict(OPS)[key]
        where, _, name = value["errors"][0]["field"].partition(".")
        if where == "body":
            assert name in COMPONENTS[_body_component(op)]["properties"] or name == "typo", (key, name)
        else:
            assert (where, name) in {(p["in"], p["name"]) for p in op.get("parameters", [])}, (key, where, name)


# ----------------------------------------------------------------------------- provoked answers
@dataclass
class Apps:
    main: TestClient      # trained home, open reads, one key
    closed: TestClient    # reads keyed too
    no_model: TestClient  # the same warehouse, an empty registry
    stale: TestClient     # bars have run five hours past the newest snapshot
    no_webserver: TestClient  # tasks go to a Dagster webserver that does not answer
    home: Settings


def _bars_run_ahead(url: str, by: timedelta) -> None:
    """A bar ``by`` past the newest snapshot: the feature pipeline lags, every snapshot is stale."""
    b, f = tables.market_bars, tables.feature_snapshots
    with get_engine(url).begin() as conn:
        newest = conn.execute(select(func.max(f.c.as_of_ts))).scalar_one()
        last = dict(conn.execute(select(b).order_by(b.c.available_time.desc()).limit(1)).mappings().one())
        bar = {k: v for k, v in last.items() if k not in ("id", "ingested_at")}
        conn.execute(b.insert().values(**{**bar, "event_time": newest + by - timedelta(hours=1),
                                          "available_time": newest + by}))


@pytest.fixture(scope="module")
def apps(trained_home, tmp_path_factory) -> Iterator[Apps]:
    """Apps over a private copy of the trained home (provoking writes failed runs, events, audit rows)."""
    for name in ("warehouse.db", "mlflow.db"):
        get_engine(f"sqlite:///{trained_home / name}").dispose()
    root = tmp_path_factory.mktemp("openapi_examples")
    for copy in ("home", "stale"):
        shutil.copytree(trained_home, root / copy, ignore=shutil.ignore_patterns("dagster", "checkpoints"))
    home = Settings(home=root / "home")
    no_model = Settings(home=root / "empty", database_url=home.warehouse_url)
    stale = Settings(home=root / "stale")
    _bars_run_ahead(stale.warehouse_url, timedelta(hours=5))
    with (client_for(home, sizing_weight_band=0.0, risk_limits=PROVOKED_LIMITS) as main,
          client_for(home, api_open_reads=False) as closed,
          client_for(no_model) as empty, client_for(stale, data_clock_ttl_s=0) as old,
          client_for(home, dagster_webserver_url=f"http://127.0.0.1:{free_port()}") as refusing):
        yield Apps(main, closed, empty, old, refusing, home)


Call = Callable[[Apps], httpx.Response]
WINDOW = {"start": "2024-08-01T00:00:00Z", "end": "2024-08-03T00:00:00Z"}  # inside the training span
DQ_EVENT = {"source": "partner_feed", "source_id": "x-1", "track": "vc", "event_type": "funding_round",
            "title": "  ", "event_time": "2024-08-30T14:05:00Z"}


def _post(app: str, path: str, body: dict) -> Call:
    return lambda a: getattr(a, app).post(path, json=body, headers=AUTH)


def _explained_by(app: str, target: str) -> Call:
    """A stored prediction of ``target`` (by the trained app), explained by ``app``."""
    def call(a: Apps) -> httpx.Response:
        pid = a.main.post("/api/v2/predict/liquid", json={"target": target}, headers=AUTH).json()["prediction_id"]
        flush(a.main)
        return getattr(a, app).get(f"/api/v2/predictions/{pid}/explanation", headers=AUTH)
    return call


def _snapshot_gone(a: Apps) -> httpx.Response:
    """A stored prediction whose feature snapshot was deleted since (its snapshot_id nulled by the
    foreign key): a copy of a fresh SOL prediction pointed at SOL's oldest snapshot, then deleted."""
    p, f = tables.predictions_v2, tables.feature_snapshots
    pid = a.main.post("/api/v2/predict/liquid", json={"target": "SOL"}, headers=AUTH).json()["prediction_id"]
    flush(a.main)
    copy = str(uuid.uuid4())
    with get_engine(a.home.warehouse_url).begin() as conn:
        row = dict(conn.execute(select(p).where(p.c.prediction_id == pid)).mappings().one())
        oldest = conn.execute(select(func.min(f.c.id)).where(f.c.target == "SOL")).scalar_one()
        conn.execute(p.insert().values({**row, "prediction_id": copy, "snapshot_id": oldest}))
        conn.execute(f.delete().where(f.c.id == oldest))
        assert conn.execute(select(p.c.snapshot_id).where(p.c.prediction_id == copy)).scalar_one() is None
    return a.main.get(f"/api/v2/predictions/{copy}/explanation", headers=AUTH)


# Per predicting route: a body naming a target without snapshots, and one the trained home serves.
PREDICTING: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "/api/v2/predict/liquid": ({"target": "DOGE"}, {"target": "BTC"}),
    "/api/v2/signals/generate": ({"targets": ["DOGE"]}, {}),
    "/api/v2/portfolio/score": ({"weights": {"DOGE": 0.1}}, {"weights": {"BTC": 0.1}}),
    "/api/v2/portfolio/rebalance": ({"targets": ["DOGE"]}, {})}
# Strategies whose limits make each refusal easy to provoke (the main app's OMNIWATCH_RISK_LIMITS).
PROVOKED_LIMITS = {"liquid:prov_daily": {"daily_loss_limit_usd": 0.01},
                   "liquid:prov_streak": {"max_consecutive_losses": 1},
                   "liquid:prov_big": {"max_order_notional_usd": 1.0}}
RUN, ORDERS = "/api/v2/execution/run", "/api/v2/execution/orders"


def _refused(route: str, code: str) -> Call:
    """An execution route refused by risk with ``code``: the strategy is first put in that state
    (a kill switch on liquid_v2, lifted again after; a losing fill for the daily loss; a losing round
    trip for the streak; a one-dollar order limit). Each call uses its own strategy for the breakers."""
    def call(a: Apps) -> httpx.Response:
        body = {"horizon": "24h"} if route == RUN else {"symbol": "ETH", "side": "buy", "qty": 0.05}
        if code.startswith("kill_switch_triggered"):
            switch = {"track": "liquid", "strategy_id": "liquid_v2", "reason": "docs example"}
            a.main.post("/api/v2/risk/kill-switch/trigger", json=switch, headers=AUTH)
            try:
                return a.main.post(route, json=body, headers=AUTH)
            finally:
                a.main.post("/api/v2/risk/kill-switch/reset", json=switch, headers=AUTH)
        strategy = {"daily_loss_exceeded": "prov_daily", "consecutive_loss_exceeded": "prov_streak",
                    "max_order_notional": "prov_big"}[code]
        trade = {"symbol": "BTC", "qty": 0.01, "strategy_id": strategy, "client_order_id": f"{strategy}-{route[-3:]}"}
        if strategy != "prov_big":
            a.main.post(ORDERS, json={**trade, "side": "buy"}, headers=AUTH)
        if strategy == "prov_streak":
            a.main.post(ORDERS, json={**trade, "side": "sell", "client_order_id": f"{trade['client_order_id']}-x"},
                        headers=AUTH)
        return a.main.post(route, json={**body, "strategy_id": strategy}, headers=AUTH)
    return call


RISK_CODES = ("kill_switch_triggered:liquid:liquid_v2", "daily_loss_exceeded", "consecutive_loss_exceeded",
              "max_order_notional")
# Typed answers, by (operation, status, code): how to provoke each. 401, 404, 410 and
# validation_error are provoked for every route below (``_generic``).
PROVOKE: dict[tuple[str, int, str], Call] = {
    **{(f"POST {p}", 422, "insufficient_features"): _post("main", p, bad) for p, (bad, _) in PREDICTING.items()},
    **{(f"POST {p}", 503, "model_artifact_missing"): _post("no_model", p, ok) for p, (_, ok) in PREDICTING.items()},
    **{(f"POST {p}", 503, "stale_features"): _post("stale", p, ok) for p, (_, ok) in PREDICTING.items()},
    ("POST /api/v2/predict/vc", 503, "model_artifact_missing"): _post(
        "main", "/api/v2/predict/vc", {"entity_id": "cik:0000000001"}),
    ("POST /api/v2/backtest/run", 422, "insufficient_features"): _post(
        "main", "/api/v2/backtest/run", {"start": "2023-01-01T00:00:00Z", "end": "2023-02-01T00:00:00Z"}),
    ("POST /api/v2/backtest/run", 422, "insufficient_prices"): _post(
        "main", "/api/v2/backtest/run",
        {"start": "2024-09-01T00:00:00Z", "end": "2024-09-01T01:00:00Z", "allow_in_sample": True}),
    ("POST /api/v2/backtest/run", 422, "in_sample_window"): _post("main", "/api/v2/backtest/run", WINDOW),
    ("POST /api/v2/backtest/run", 503, "model_artifact_missing"): _post(
        "main", "/api/v2/backtest/run", {**WINDOW, "model_version": "99"}),
    **{(f"POST /api/v2/tasks/{k}", 503, "task_executor_unavailable"): _post(
        "no_webserver", f"/api/v2/tasks/{k}", WINDOW) for k in ("backtest", "pnl-attribution")},
    ("POST /api/v2/ingest/events", 403, "pipeline_source"): _post(
        "main", "/api/v2/ingest/events", {"events": [{**DQ_EVENT, "source": "edgar", "title": "Form D"}]}),
    ("POST /api/v2/ingest/events", 422, "blocked_by_data_quality"): _post(
        "main", "/api/v2/ingest/events", {"events": [DQ_EVENT]}),
    ("GET /api/v2/predictions/{prediction_id}/explanation", 422, "insufficient_features"): _snapshot_gone,
    ("GET /api/v2/predictions/{prediction_id}/explanation", 503, "model_artifact_missing"): _explained_by(
        "no_model", "ETH"),
    **{(f"POST {r}", 423, c): _refused(r, c) for r in (RUN, ORDERS) for c in RISK_CODES},
    **{(f"POST {r}", 403, "live_trading_disabled"): _post("main", r, {**b, "adapter": "coinbase_live"})
       for r, b in ((RUN, {}), (ORDERS, {"symbol": "BTC", "side": "buy", "qty": 0.01}))},
    (f"POST {RUN}", 404, "not_found"): _post("main", RUN, {"signal_id": NO_ID}),
    ("POST /api/v2/risk/check", 404, "not_found"): _post("main", "/api/v2/risk/check", {
        "symbol": "BTC", "side": "buy", "qty": 0.1, "price": 60000.0, "model_version": "99"}),
    (f"POST {ORDERS}", 422, "insufficient_prices"): _post("main", ORDERS, {"symbol": "DOGE", "side": "buy",
                                                                          "qty": 1.0}),
}
REGISTRY_DOWN = "registry_unavailable"  # every models route, with MLflow answering an error (below)


def _path(path: str) -> str:
    for name, value in (("{prediction_id}", NO_ID), ("{run_id}", NO_ID), ("{task_id}", NO_ID),
                        ("{entity_id}", "no-such-entity"), ("{rest}", "x")):
        path = path.replace(name, value)
    return path


def _first_example(op: dict) -> dict:
    name = _body_component(op)
    return _examples(name)[0] if name else {}


def _query_value(problem: str) -> str:
    return {"greater_than_equal": "0", "string_pattern_mismatch": "not valid!", "literal_error": "nope",
            "datetime_from_date_parsing": "yesterday", "bool_parsing": "maybe", "int_parsing": "x"}[problem]


def _generic(a: Apps, key: str, status: int, code: str, example: dict) -> httpx.Response | None:
    method, path = key.split(" ", 1)
    op = dict(OPS)[key]
    body = _first_example(op) if method == "POST" else None
    if code == "unauthorized":
        return a.closed.request(method, _path(path), json=body)  # no key
    if code == "gone":
        return a.main.request(method, _path(path))
    if code == "not_found":
        if path.startswith("/api/v2/models/"):
            if method == "GET":
                return a.main.get(path, params={"model_name": "no-such-model"})
            return a.main.post(path, json={**(body or {}), "model_name": "no-such-model"}, headers=AUTH)
        return a.main.request(method, _path(path), json=body, headers=AUTH)
    if code == "validation_error":
        error = example["errors"][0]
        where, _, name = error["field"].partition(".")
        if where == "body":
            sent = {k: v for k, v in (body or {}).items() if k != name} if error["type"] == "missing" else {
                **(body or {}), name: 1}
            return a.main.request(method, _path(path), json=sent, headers=AUTH)
        return a.main.request(method, _path(path), params={name: _query_value(error["type"])}, headers=AUTH)
    return None


# Not provoked here: data-quality belongs to its own tests (it only uses the generic codes).
CHECKED = [e for e in ERRORS if "/data-quality/" not in e[0]]


def test_every_documented_error_is_answered_by_its_route(apps, monkeypatch):
    registry = [e for e in CHECKED if e[2] == REGISTRY_DOWN]
    wrong = []
    for key, status, code, example in [e for e in CHECKED if e[2] != REGISTRY_DOWN]:
        provoke = PROVOKE.get((key, status, code))
        r = provoke(apps) if provoke else _generic(apps, key, status, code, example)
        if r is None:
            wrong.append(f"{key}: documents {status} {code}, which no test here provokes")
        elif (r.status_code, r.json().get("code")) != (status, code):
            wrong.append(f"{key}: documents {status} {code}, answered {r.status_code} {r.text[:300]}")
        elif code in ("validation_error", "gone", "pipeline_source"):  # the example is the very answer
            got = r.json()
            if (got.get("errors"), got.get("context")) != (example.get("errors"), example.get("context")):
                wrong.append(f"{key}: answered {got}, the example says {example}")
        elif code == "blocked_by_data_quality" and example["context"]["checks"][0] not in r.json()["context"]["checks"]:
            wrong.append(f"{key}: answered {r.json()}, the example names check {example['context']['checks']}")
    assert not wrong, "\n".join(wrong)

    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE

    from omniwatch.resources.mlflow import MLflowResource

    def down(self):
        raise MlflowException("registry is restarting", error_code=TEMPORARILY_UNAVAILABLE)

    monkeypatch.setattr(MLflowResource, "client", down)
    assert len(registry) == 7
    for key, status, code, _ in registry:
        method, path = key.split(" ", 1)
        r = apps.main.request(method, path, json=_first_example(dict(OPS)[key]) if method == "POST" else None,
                              headers=AUTH)
        assert (r.status_code, r.json().get("code")) == (status, code), (key, r.text[:500])


# ----------------------------------------------------------------------------- request examples, sent
SENT = ["POST /api/v2/predict/liquid", "POST /api/v2/signals/generate", "POST /api/v2/portfolio/score",
        "POST /api/v2/portfolio/rebalance", "POST /api/v2/ingest/events", "POST /api/v2/models/audit/log",
        "POST /api/v2/models/rollout/advance"]


def test_request_examples_sent_as_they_are_are_answered(apps):
    """Swagger UI's 'Try it out' sends the first example unchanged: it must be served, not refused."""
    ops = dict(OPS)
    for key in SENT:
        method, path = key.split(" ", 1)
        r = apps.main.request(method, path, json=_first_example(ops[key]), headers=AUTH)
        assert r.status_code < 400, (key, r.status_code, r.text[:500])
    # The backtest example that fits the sample's window (the first one is out of sample, after it).
    example = _examples("BacktestRequest")[1]
    r = apps.main.post("/api/v2/backtest/run", json=example, headers=AUTH)
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text[:500]
    r = apps.main.post("/api/v2/backtest/run", json=_examples("BacktestRequest")[0], headers=AUTH)
    assert r.status_code == 422 and r.json()["code"] == "insufficient_features", r.text[:500]  # after the home's data
