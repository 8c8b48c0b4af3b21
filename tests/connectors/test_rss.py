"""RSS/Atom connector over the recorded CoinDesk and Cointelegraph feeds (loopback HTTP)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from omniwatch.assets.ingest import upsert_keeping_first_seen
from omniwatch.connectors.events_replay import EventsReplaySource
from omniwatch.connectors.http import MalformedPayloadError
from omniwatch.connectors.rss import DEFAULT_FEEDS, RssClient, canonical_link, feed_build_time, parse_feed
from omniwatch.features import liquid
from omniwatch.frames import EVENT_COLUMNS, EVENT_KEY
from omniwatch.resources.event_sources import LiveNewsResource
from omniwatch.resources.warehouse import WarehouseResource
from tests.features.news_inputs import EMPTY, btc_bars, count_at

from .fake_events import COINDESK_FILE, COINTELEGRAPH_FILE

RSS = "application/rss+xml"
FETCHED = pd.Timestamp("2026-09-30 18:00", tz="UTC")


def ts(value: str) -> pd.Timestamp:
    return pd.Timestamp(value, tz="UTC")


@pytest.fixture(scope="module")
def coindesk() -> bytes:
    return COINDESK_FILE.read_bytes()


@pytest.fixture(scope="module")
def cointelegraph() -> bytes:
    return COINTELEGRAPH_FILE.read_bytes()


def test_both_real_feeds_parse(coindesk, cointelegraph):
    cd, cd_rejects = parse_feed(coindesk, "coindesk", FETCHED)
    ct, ct_rejects = parse_feed(cointelegraph, "cointelegraph", FETCHED)
    assert cd_rejects == [] and ct_rejects == []
    assert len(cd) == len(ct) == 3
    assert list(cd.columns) == EVENT_COLUMNS
    assert cd["source_id"].tolist() == ["aae5dfb1-54bc-455f-a89a-5ec5d919c3b0",
                                        "d5f98956-4026-4243-bab7-f5cdaa22e868",
                                        "0006ab07-3e4e-45ce-9014-348c995c8db0"]
    assert cd["available_time"].tolist() == [ts("2026-09-30 17:16:31"), ts("2026-09-30 15:34:50"),
                                             ts("2026-09-30 15:19:36")]
    assert (cd["event_time"] == cd["available_time"]).all()
    # CoinDesk's empty <dc:description/> must not wipe the real <description>.
    assert cd["body"].iloc[0].startswith("In the first half of this year")
    # Cointelegraph: guid is the permalink; the summary's HTML is stripped.
    first = ct.iloc[0]
    assert first["source_id"] == ("https://cointelegraph.com/news/brazils-petrobras-uses-cardano-"
                                  "to-track-sustainable-aviation-fuel-renewable-diesel")
    assert first["body"].startswith("Petrobras developed") and "<" not in first["body"]
    # Item 3 was updated (03:10) before its pubDate (13:30): the published time is used.
    assert ct["available_time"].iloc[2] == ts("2026-09-30 13:30:00")
    assert ct["payload"].iloc[2]["time_field"] == "published"
    for frame in (cd, ct):
        assert frame["tone"].between(-1, 1).all()
        assert set(frame["source"]) == {"rss"} and set(frame["track"]) == {"liquid"}
        json.dumps(list(frame["payload"]), allow_nan=False)
    assert ct["tone"].iloc[2] < -0.5  # "...prosecution over stolen Bitget funds?"


def test_entry_without_date_or_title_is_rejected_and_reported(coindesk):
    no_date = coindesk.replace(b"<pubDate>Wed, 30 Sep 2026 15:34:50 +0000</pubDate>", b"", 1)
    no_title = no_date.replace(
        b"<title><![CDATA[U.S. CFTC  seeks event contract definitions that may defy states' "
        b"gambling claims]]></title>", b"<title></title>", 1)
    assert no_title.count(b"<pubDate>") == 2 and b"<title></title>" in no_title
    frame, rejects = parse_feed(no_title, "coindesk", FETCHED)
    assert frame["source_id"].tolist() == ["aae5dfb1-54bc-455f-a89a-5ec5d919c3b0"]
    assert [(r.where, r.line, r.reason) for r in rejects] == [
        ("coindesk", 2, "no parseable published/updated date"), ("coindesk", 3, "empty title")]


def test_available_time_never_after_fetch(coindesk):
    fetched = ts("2026-09-30 16:00")  # before item 1's stamped pubDate (17:16)
    frame, _ = parse_feed(coindesk, "coindesk", fetched)
    assert frame["available_time"].iloc[0] == fetched
    assert frame["event_time"].iloc[0] == ts("2026-09-30 17:16:31")


def test_atom_entries_use_updated_when_not_published():
    atom = b"""<?xml version="1.0" encoding="utf-8"?>
    <feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><id>urn:feed</id>
      <updated>2026-09-30T17:00:00Z</updated>
      <entry><title>Bitget gradually back to usual</title><id>urn:entry:1</id>
        <link href="https://cointelegraph.com/news/bitget-operations-protection-fund-security-breach"/>
        <updated>2026-09-30T16:32:06Z</updated><summary>Protection fund</summary></entry>
    </feed>"""
    frame, rejects = parse_feed(atom, "atom", FETCHED)
    assert rejects == [] and frame["source_id"].tolist() == ["urn:entry:1"]
    assert frame["available_time"].iloc[0] == ts("2026-09-30 16:32:06")
    assert feed_build_time(atom) == ts("2026-09-30 17:00")


def test_a_document_that_is_not_a_feed_is_malformed():
    with pytest.raises(MalformedPayloadError, match="not an RSS/Atom feed"):
        parse_feed(b"<html><body>Just a moment...</body></html>", "coindesk", FETCHED)


def test_canonical_link_drops_tracking_only():
    assert canonical_link("https://Cointelegraph.com/news/x/?utm_source=rss&id=7#top") == \
        "https://cointelegraph.com/news/x?id=7"


def test_same_story_in_two_feeds_is_one_event(events_server, coindesk, cointelegraph):
    # A venture feed syndicating CoinDesk's first story (other guid, tracking parameters added).
    item_start = coindesk.index(b"<item>")
    story = coindesk[item_start:coindesk.index(b"</item>") + len(b"</item>")]
    story = story.replace(b"aae5dfb1-54bc-455f-a89a-5ec5d919c3b0", b"venture-guid-1").replace(
        b"the-deal</link>", b"the-deal?utm_source=venture&amp;utm_medium=rss</link>")
    venture = cointelegraph.replace(b"</channel>", story + b"</channel>")
    feeds = {"coindesk": events_server.serve("/coindesk", coindesk, RSS),
             "venture": events_server.serve("/venture", venture, RSS)}
    with RssClient(feeds, timeout=2.0, tracks={"venture": "vc"}) as client:
        frame, statuses = client.fetch_all()
    assert [(s.feed, s.ok, s.events) for s in statuses] == [("coindesk", True, 3),
                                                            ("venture", True, 4)]
    assert len(frame) == 6 and frame["source_id"].is_unique
    story_row = frame.set_index("source_id").loc["aae5dfb1-54bc-455f-a89a-5ec5d919c3b0"]
    assert story_row["payload"]["feeds"] == ["coindesk", "venture"]
    assert "venture-guid-1" not in set(frame["source_id"])
    assert set(frame["track"]) == {"liquid", "vc"}


def test_a_timed_out_feed_does_not_lose_the_others(events_server, coindesk, cointelegraph):
    feeds = {"coindesk": events_server.serve("/coindesk", coindesk, RSS),
             "cointelegraph": events_server.serve("/ct", cointelegraph, RSS, delay_s=1.5),
             "broken": events_server.serve("/broken", b"<html>503 upstream</html>", "text/html")}
    with RssClient(feeds, timeout=0.3, max_retries=0) as client:
        frame, statuses = client.fetch_all()
    assert sorted(frame["payload"].map(lambda p: p["feed"]).unique()) == ["coindesk"]
    assert len(frame) == 3
    by_feed = {s.feed: s for s in statuses}
    assert by_feed["coindesk"].ok and by_feed["coindesk"].error is None
    assert not by_feed["cointelegraph"].ok
    assert "ConnectorTimeout" in by_feed["cointelegraph"].error
    assert "timed out" in by_feed["cointelegraph"].error
    assert not by_feed["broken"].ok and "MalformedPayloadError" in by_feed["broken"].error


def test_default_feeds_cover_crypto_and_venture():
    client = RssClient()
    assert client.feeds == DEFAULT_FEEDS
    assert {"coindesk", "cointelegraph"} <= set(client.feeds)
    assert {client.tracks[n] for n in client.feeds} == {"liquid", "vc"}


def test_replay_reads_the_recorded_feeds():
    result = EventsReplaySource().rss(ts("2026-09-30"), ts("2026-10-01"))
    assert len(result.frame) == 6
    assert result.frame["available_time"].is_monotonic_increasing
    assert any("techcrunch_venture" in n for n in result.notes)  # no recording of it
    late = EventsReplaySource().rss(ts("2026-09-30 17:00"), ts("2026-10-01"))
    assert len(late.frame) == 2  # 17:16:31 (CoinDesk) and 17:17:54 (Cointelegraph)


# ------------------------------------------- first sight through the live write path, end to end
FEED_DAY = "2026-09-30"  # the recorded CoinDesk capture: items published 15:19:36, 15:34:50, 17:16:31


@pytest.fixture
def live_news(events_server) -> LiveNewsResource:
    feed = events_server.serve("/coindesk", COINDESK_FILE.read_bytes(), "application/rss+xml")
    # GDELT has no export for the day on this server (every slot answers 404, reported as rejects).
    return LiveNewsResource(gdelt_base_url=events_server.url + "/gdeltv2", gdelt_requests_per_second=None,
                            rss_feeds={"coindesk": feed}, timeout_s=2.0)


def fetch_at(monkeypatch, clock: pd.Timestamp, news: LiveNewsResource, warehouse: WarehouseResource) -> None:
    """One live fetch of the feed's day at ``clock``, written the way ``news_events`` writes (the
    feed's day lies outside the asset's daily partitions, so the asset itself cannot run it)."""
    monkeypatch.setattr(RssClient, "now", staticmethod(lambda: clock))
    batch = news.fetch_news(ts(FEED_DAY), ts(FEED_DAY) + pd.Timedelta(days=1))
    assert len(batch.frame) == 3
    upsert_keeping_first_seen(warehouse, "events", batch.frame, EVENT_KEY)


def stored(warehouse: WarehouseResource) -> pd.DataFrame:
    return warehouse.read_table("events").set_index("source_id")


def test_live_fetch_keeps_first_sight_and_news_counts_from_it(monkeypatch, events_server, live_news, warehouse_url):
    warehouse = WarehouseResource(database_url=warehouse_url)
    first_fetch = ts("2026-09-30 21:00")
    fetch_at(monkeypatch, first_fetch, live_news, warehouse)
    rows = stored(warehouse)
    assert len(rows) == 3
    seen = pd.to_datetime(rows["first_seen_at"], utc=True)
    assert (seen == first_fetch).all()
    published = pd.to_datetime(rows["available_time"], utc=True)
    assert (published < first_fetch).all()  # available_time stays the publication time

    # A re-fetch three hours later updates the row but never moves first sight later.
    fetch_at(monkeypatch, first_fetch + pd.Timedelta(hours=3), live_news, warehouse)
    rows = stored(warehouse)
    assert len(rows) == 3
    assert (pd.to_datetime(rows["first_seen_at"], utc=True) == first_fetch).all()
    assert set(rows["payload"].map(lambda p: p["fetched_at"])) == {(first_fetch + pd.Timedelta(hours=3)).isoformat()}
    # An older recording written afterwards (a backfill) moves it earlier: the earliest sight wins.
    earlier = ts("2026-09-30 19:00")
    fetch_at(monkeypatch, earlier, live_news, warehouse)
    assert (pd.to_datetime(stored(warehouse)["first_seen_at"], utc=True) == earlier).all()

    # As stored, the items are usable from first sight: nothing at as_of in [P, T), all of it at T.
    events = warehouse.read_window("events", ts("2026-09-29"), ts("2026-10-02"), time_column="available_time")
    features = liquid.compute_features(btc_bars(), EMPTY, EMPTY, ["BTC"], news=events)
    first_published = published.min()
    before = pd.date_range(first_published.ceil("h"), earlier, freq="h", inclusive="left")
    assert len(before) >= 3
    for as_of in before:
        assert np.isnan(count_at(features, as_of)), as_of  # no item usable yet: no news coverage at all
    assert count_at(features, earlier) == 0.0  # covered from first sight (the items name no symbol)
