"""The Alembic history builds the canonical schema on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect

from omniwatch.cli import main
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine
from omniwatch.warehouse.migrate import current_revision, downgrade

CANONICAL = {
    "entities", "events", "event_links", "feature_snapshots", "model_registry", "predictions_v2",
    "prediction_explanations", "backtest_runs", "signal_candidates", "orders_sim",
    "positions_snapshots", "risk_events", "model_promotions", "data_quality_audit", "market_bars",
    "orderbook_l2", "trades_ticks", "funding_rates", "onchain_signals",
}


def test_migrations_create_every_canonical_table_with_natural_keys(warehouse_url):
    inspector = inspect(get_engine(warehouse_url))
    assert CANONICAL <= set(inspector.get_table_names())
    assert current_revision(warehouse_url) is not None
    uniques = {u["name"]: u["column_names"] for u in inspector.get_unique_constraints("market_bars")}
    assert ["venue", "venue_symbol", "interval", "event_time"] in uniques.values()
    index_columns = [i["column_names"] for i in inspector.get_indexes("market_bars")]
    assert ["symbol", "interval", "event_time"] in index_columns
    for raw in ("market_bars", "trades_ticks", "orderbook_l2", "funding_rates", "onchain_signals", "events"):
        columns = {c["name"] for c in inspector.get_columns(raw)}
        assert {"event_time", "available_time"} <= columns, raw
    snap = {c["name"] for c in inspector.get_columns("feature_snapshots")}
    assert {"as_of_ts", "event_time", "data_version", "lineage_id", "target", "track"} <= snap


def test_migrated_schema_matches_the_table_definitions(warehouse_url):
    """No drift between the tables package and the Alembic history (autogenerate finds nothing to do)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with get_engine(warehouse_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), tables.metadata)
    assert diff == []


def test_downgrade_to_base_drops_everything(warehouse_url):
    downgrade(warehouse_url, "base")
    left = set(inspect(get_engine(warehouse_url)).get_table_names()) - {"alembic_version"}
    assert left == set()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_cli_db_upgrade_uses_omniwatch_database_url(backend, request, tmp_path, monkeypatch):
    url = (f"sqlite:///{tmp_path / 'cli.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url"))
    monkeypatch.setenv("OMNIWATCH_DATABASE_URL", url)
    from omniwatch.settings import get_settings

    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["db", "upgrade"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert f"at revision {current_revision(url)}" in result.output and current_revision(url) is not None
    assert "market_bars" in inspect(get_engine(url)).get_table_names()
