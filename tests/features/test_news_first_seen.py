"""News counts from when we first saw an item, not from its publication stamp.

A live connector sees an item when it fetches it. An item published at P and first fetched at
T > P could not have been served before T, so a snapshot at as_of in [P, T) must not count it.
Layers here: the plain feature functions, the look-ahead probe, the 0006 backfill. The live write
path (recorded feed on loopback -> news_events -> stored first_seen_at -> features) is tested in
tests/connectors/test_rss.py.
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from omniwatch.features import liquid
from omniwatch.features.news_time import usable_time
from omniwatch.features.probes import lookahead_probe
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine
from omniwatch.warehouse.migrate import upgrade
from tests.features.news_inputs import EMPTY, btc_bars, count_at, ts

PUBLISHED = pd.Timestamp("2026-09-30 10:00", tz="UTC")   # P
FIRST_SEEN = pd.Timestamp("2026-09-30 14:00", tz="UTC")  # T


def news_item(source_id: str, title: str, published: pd.Timestamp, first_seen: pd.Timestamp | None) -> dict:
    return {"source": "rss", "source_id": source_id, "track": "liquid", "event_type": "news", "title": title,
            "body": None, "url": None, "event_time": published, "available_time": published, "tone": 0.5,
            "payload": {}, "first_seen_at": first_seen}


def news_frame() -> pd.DataFrame:
    return pd.DataFrame([
        # Seen as published: keeps the feed "covered" so a missing count is 0, not NaN.
        news_item("old", "Markets open quietly", PUBLISHED - pd.Timedelta(hours=5), PUBLISHED - pd.Timedelta(hours=5)),
        news_item("late", "Bitcoin rallies after ETF approval", PUBLISHED, FIRST_SEEN),
    ])


def test_usable_time_is_the_later_of_publication_and_first_sight():
    frame = pd.DataFrame({"available_time": [ts("2026-01-01 10:00"), ts("2026-01-01 10:00"), ts("2026-01-01 10:00")],
                          "first_seen_at": [ts("2026-01-01 12:00"), ts("2026-01-01 09:00"), pd.NaT]})
    assert list(usable_time(frame)) == [ts("2026-01-01 12:00"), ts("2026-01-01 10:00"), ts("2026-01-01 10:00")]


def test_item_first_seen_after_publication_counts_from_first_sight():
    features = liquid.compute_features(btc_bars(), EMPTY, EMPTY, ["BTC"], news=news_frame())
    for as_of in pd.date_range(PUBLISHED, FIRST_SEEN, freq="h", inclusive="left"):  # [P, T)
        assert count_at(features, as_of) == 0.0, as_of
    assert count_at(features, FIRST_SEEN) == 1.0
    # Without first sight the same item would have counted from publication: the leak this closes.
    leaky = liquid.compute_features(btc_bars(), EMPTY, EMPTY, ["BTC"], news=news_frame().drop(columns="first_seen_at"))
    assert count_at(leaky, PUBLISHED) == 1.0


def test_lookahead_probe_catches_features_that_ignore_first_sight():
    bars, news = btc_bars(), news_frame()
    cuts = list(pd.date_range(PUBLISHED, FIRST_SEEN, freq="h"))
    compared, mismatches = lookahead_probe(liquid.compute_features, bars, EMPTY, EMPTY, cuts, liquid.FEATURES,
                                           news=news)
    assert compared > 0 and mismatches == []

    def ignores_first_sight(bars, funding, onchain, news=None):
        return liquid.compute_features(bars, funding, onchain, news=news.drop(columns="first_seen_at"))

    _, leaks = lookahead_probe(ignores_first_sight, bars, EMPTY, EMPTY, cuts, liquid.FEATURES, news=news)
    assert {m["feature"] for m in leaks} >= {"news_count_24h"}


def test_migration_backfills_first_seen_from_the_recorded_fetch_time(sqlite_url):
    upgrade(sqlite_url, "0005")
    events = tables.events  # inserting only the columns revision 0005 has
    engine = get_engine(sqlite_url)
    published, fetched, ingested = ts("2026-09-30 15:00"), ts("2026-09-30 18:00"), ts("2026-12-01 08:00")
    base = {"track": "liquid", "event_type": "news", "event_time": published.to_pydatetime(),
            "available_time": published.to_pydatetime(), "ingested_at": ingested.to_pydatetime()}
    with engine.begin() as conn:
        conn.execute(sa.insert(events), [
            {**base, "source": "rss", "source_id": "replayed", "payload": {"fetched_at": "2026-09-30T18:00:00+00:00"}},
            {**base, "source": "rss", "source_id": "refetched",
             "payload": {"fetched_at": "2026-12-02T08:00:00+00:00"}},  # re-fetched after it was written
            {**base, "source": "gdelt", "source_id": "1", "payload": {}},
        ])
    engine.dispose()
    upgrade(sqlite_url)
    with get_engine(sqlite_url).connect() as conn:
        got = {r.source_id: pd.Timestamp(r.first_seen_at)
               for r in conn.execute(sa.select(tables.events.c.source_id, tables.events.c.first_seen_at))}
    assert got == {"replayed": fetched, "refetched": ingested, "1": published}
