"""CryptoPanic: recorded real posts in the API's wire format (parsed, and served over loopback HTTP),
the bundled-set replay on a fixture slice, VADER headline tone, community votes, point in time,
and a live resource that never calls CryptoPanic without the user's token."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest

from omniwatch.checks import run_checks
from omniwatch.connectors.cryptopanic import (
    CryptoPanicClient,
    CryptoPanicReplay,
    load_recorded,
    parse_posts,
    redact_token,
    votes_tone,
)
from omniwatch.connectors.http import ConnectorHTTPError, MalformedPayloadError
from omniwatch.connectors.tone import tone
from omniwatch.frames import EVENT_COLUMNS
from omniwatch.resources import build_resources
from omniwatch.resources.event_sources import LiveNewsResource, ReplayNewsResource
from omniwatch.settings import BUNDLED_SAMPLE_DIR, Settings

from .fake_events import CRYPTOPANIC_PAGES, CRYPTOPANIC_SLICE, FakeCryptoPanicServer
from .loopback import Fault

TOKEN = "cp-test-token-5d1f0c"  # what a user's token looks like in a URL; never to be logged
DAY = pd.Timestamp("2025-07-14", tz="UTC")
ATH_ID = "23265250"  # "BREAKING: Bitcoin hits new ATH of 123456!", 11 positive votes, 0 negative


def ts(value: str) -> pd.Timestamp:
    return pd.Timestamp(value, tz="UTC")


@pytest.fixture(scope="module")
def pages() -> list[dict]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in CRYPTOPANIC_PAGES]


@pytest.fixture(scope="module")
def posts(pages) -> list[dict]:
    return [post for page in pages for post in page["results"]]


@pytest.fixture
def cryptopanic_server():
    with FakeCryptoPanicServer(TOKEN) as server:
        yield server


def client(server: FakeCryptoPanicServer, token: str = TOKEN, **kwargs) -> CryptoPanicClient:
    fast = {"timeout": 2.0, "max_retries": 1, "backoff_base_s": 0.01, "requests_per_second": None}
    return CryptoPanicClient(token, server.base_url, **(fast | kwargs))


# ----------------------------------------------------------------------------- parsing
def test_recorded_posts_parse_into_canonical_events(posts):
    frame, rejects = parse_posts({"results": posts})
    assert rejects == []
    assert list(frame.columns) == EVENT_COLUMNS and len(frame) == len(posts) == 20
    assert set(frame["source"]) == {"cryptopanic"} and set(frame["track"]) == {"liquid"}
    assert list(frame["source_id"]) == [str(p["id"]) for p in posts]
    published = pd.to_datetime([p["published_at"] for p in posts], utc=True)
    # A recording's first sight is the publication time: both stamps are published_at.
    assert (frame["event_time"].to_numpy() == published.to_numpy()).all()
    assert (frame["available_time"] == frame["event_time"]).all()
    assert str(frame["available_time"].dt.tz) == "UTC"
    json.dumps(list(frame["payload"]), allow_nan=False)


def test_tone_is_vader_compound_of_the_headline_on_the_pipeline_scale(posts):
    frame, _ = parse_posts({"results": posts})
    assert list(frame["tone"]) == pytest.approx([tone(p["title"]) for p in posts])
    assert frame["tone"].between(-1, 1).all() and frame["tone"].nunique() > 5
    row = frame.set_index("source_id").loc[ATH_ID]
    assert row["title"] == "BREAKING: Bitcoin hits new ATH of 123456!"
    assert row["payload"]["tone_basis"] == "vader_compound_title"


def test_votes_are_a_second_figure_where_present(posts):
    frame, _ = parse_posts({"results": posts})
    payload = frame.set_index("source_id")["payload"]
    assert payload[ATH_ID]["votes"] == {"positive": 11, "negative": 0}
    assert payload[ATH_ID]["votes_tone"] == 1.0
    split = payload["23272101"]  # "SharpLink Gaming buys $49M of ETH ...": 6 up, 6 down
    assert split["votes"] == {"positive": 6, "negative": 6} and split["votes_tone"] == 0.0
    unvoted = [p for p in payload if p["votes"] is None]
    assert unvoted and all(p["votes_tone"] is None for p in unvoted)  # absent, never a made-up 0
    assert sum(p["votes"] is not None for p in payload) == sum("votes" in p for p in posts)


@pytest.mark.parametrize(("votes", "expected"), [
    ({"positive": 3, "negative": 1}, 0.5), ({"positive": 1, "negative": 5}, -4 / 6),
    ({"positive": 0, "negative": 0, "important": 4}, None), (None, None), ({}, None),
])
def test_votes_tone_formula(votes, expected):
    assert votes_tone(votes) == (pytest.approx(expected) if expected is not None else None)


def test_currency_codes_map_to_liquid_symbols(posts):
    post = {**posts[0], "currencies": [{"code": "btc"}, {"code": "XRP"}, {"code": "SOL"}]}
    frame, _ = parse_posts({"results": [post]}, symbols=("BTC", "ETH"))
    payload = frame["payload"].iloc[0]
    assert payload["currencies"] == ["BTC", "XRP", "SOL"] and payload["symbols"] == ["BTC"]
    frame, _ = parse_posts({"results": posts})
    multi = frame.set_index("source_id").loc["23274072", "payload"]  # "Crypto Price Analysis 7-14"
    assert multi["symbols"] == ["BTC", "ETH", "SOL"]


def test_unusable_posts_are_rejected_by_place_and_the_rest_kept(posts):
    broken = [dict(posts[0], id=None), dict(posts[1], title="  "), dict(posts[2], published_at="yesterday"),
              posts[3], dict(posts[4], id=posts[3]["id"]), "not an object", posts[5]]
    frame, rejects = parse_posts({"results": broken})
    assert list(frame["source_id"]) == [str(posts[3]["id"]), str(posts[5]["id"])]
    assert [(r.line, r.reason.split(" ")[0]) for r in rejects] == [
        (1, "id"), (2, "empty"), (3, "published_at"), (5, "duplicate"), (6, "post")]
    with pytest.raises(MalformedPayloadError, match="results"):
        parse_posts({"count": 0, "detail": "Token not found"})
    with pytest.raises(MalformedPayloadError):
        parse_posts(b'{"results": [')


def test_a_post_stamped_after_the_fetch_counts_from_the_fetch(posts):
    fetched = ts("2025-07-14 12:00")
    frame, _ = parse_posts({"results": posts}, fetched_at=fetched)
    late = frame["event_time"] > fetched
    assert late.any() and (~late).any()
    assert (frame.loc[late, "available_time"] == fetched).all()
    assert (frame.loc[~late, "available_time"] == frame.loc[~late, "event_time"]).all()
    assert set(frame["payload"].map(lambda p: p["fetched_at"])) == {fetched.isoformat()}


# ----------------------------------------------------------------------------- live client
def test_live_client_pages_through_the_api_with_the_token(monkeypatch, cryptopanic_server):
    monkeypatch.setattr(CryptoPanicClient, "now", staticmethod(lambda: ts("2025-07-15 01:00")))
    with client(cryptopanic_server) as c:
        frame, rejects = c.fetch_window(DAY, DAY + pd.Timedelta(days=1))
    assert rejects == [] and len(frame) == 20
    assert frame["available_time"].is_monotonic_increasing
    first, second = cryptopanic_server.seen(FakeCryptoPanicServer.PATH)
    assert first.params == {"auth_token": TOKEN, "public": "true", "currencies": "BTC,ETH,SOL", "kind": "news"}
    assert second.params["page"] == "2" and second.params["auth_token"] == TOKEN  # followed ``next``


def test_live_client_stops_paging_once_a_page_reaches_before_the_window(monkeypatch, cryptopanic_server):
    monkeypatch.setattr(CryptoPanicClient, "now", staticmethod(lambda: ts("2025-07-15 01:00")))
    start = ts("2025-07-14 15:00")
    with client(cryptopanic_server) as c:
        frame, _ = c.fetch_window(start, DAY + pd.Timedelta(days=1))
    assert len(cryptopanic_server.seen()) == 1  # page 1 already goes back to 12:36
    assert len(frame) == 7 and (frame["available_time"] >= start).all()


def test_live_client_says_when_max_pages_cut_the_window_short(monkeypatch, cryptopanic_server):
    monkeypatch.setattr(CryptoPanicClient, "now", staticmethod(lambda: ts("2025-07-15 01:00")))
    with client(cryptopanic_server, max_pages=1) as c:
        frame, rejects = c.fetch_window(ts("2025-07-10"), DAY + pd.Timedelta(days=1))
    assert len(frame) == 10 and len(rejects) == 1 and "stopped after 1 pages" in rejects[0].reason
    assert TOKEN not in rejects[0].where and "auth_token=***" in rejects[0].where


def test_the_token_never_reaches_errors_or_logs(caplog):
    caplog.set_level(logging.DEBUG, logger="omniwatch")
    with FakeCryptoPanicServer("another-token") as server, client(server) as c:
        server.inject(FakeCryptoPanicServer.PATH, Fault(status=500))  # one retry (logged), then 401
        with pytest.raises(ConnectorHTTPError) as failure:
            c.fetch_page()
    assert failure.value.status == 401 and failure.value.attempts == 2
    assert TOKEN not in str(failure.value) and "auth_token=***" in str(failure.value)
    assert TOKEN not in repr(c)
    messages = [r.getMessage() for r in caplog.records]
    assert any("retrying" in m for m in messages) and all(TOKEN not in m for m in messages)
    assert redact_token(f"https://x/posts/?auth_token={TOKEN}&page=2") == "https://x/posts/?auth_token=***&page=2"
    with pytest.raises(ValueError, match="token"):
        CryptoPanicClient("", server.base_url)


# ----------------------------------------------------------------------------- resources
def live_news(server: FakeCryptoPanicServer, token: str | None) -> LiveNewsResource:
    # GDELT has no export on this server (every slot answers 404) and no RSS feed is configured.
    return LiveNewsResource(gdelt_base_url=server.url + "/gdeltv2", gdelt_requests_per_second=None,
                            rss_feeds={}, timeout_s=2.0, cryptopanic_max_retries=0, cryptopanic_token=token,
                            cryptopanic_base_url=server.base_url, cryptopanic_requests_per_second=None)


def test_live_resource_without_a_token_never_calls_cryptopanic(cryptopanic_server):
    batch = live_news(cryptopanic_server, None).fetch_news(ts("2025-07-14 12:00"), ts("2025-07-14 13:00"))
    assert cryptopanic_server.seen(FakeCryptoPanicServer.PATH) == []
    assert batch.frame.empty
    assert any("cryptopanic: no token" in n for n in batch.notes)


def test_live_resource_with_a_token_adds_cryptopanic_posts_of_the_window(monkeypatch, cryptopanic_server):
    monkeypatch.setattr(CryptoPanicClient, "now", staticmethod(lambda: ts("2025-07-15 01:00")))
    batch = live_news(cryptopanic_server, TOKEN).fetch_news(ts("2025-07-14 12:00"), ts("2025-07-14 13:00"))
    assert len(cryptopanic_server.seen(FakeCryptoPanicServer.PATH)) == 2
    assert set(batch.frame["source"]) == {"cryptopanic"}
    assert sorted(batch.frame["source_id"]) == ["23272101", "23272274"]  # 12:25 and 12:36
    assert all(TOKEN not in n for n in batch.notes)


def test_a_failing_cryptopanic_keeps_the_other_sources_and_says_why(cryptopanic_server):
    batch = live_news(cryptopanic_server, "wrong-token").fetch_news(ts("2025-07-14 12:00"), ts("2025-07-14 13:00"))
    assert batch.frame.empty and any("cryptopanic: ConnectorHTTPError: HTTP 401" in n for n in batch.notes)
    assert all("wrong-token" not in n for n in batch.notes)


def test_build_resources_wires_cryptopanic_into_replay_and_live_by_token(monkeypatch):
    monkeypatch.delenv("OMNIWATCH_CRYPTOPANIC_TOKEN", raising=False)
    replay = build_resources(Settings(source="replay"))["news"]
    assert isinstance(replay, ReplayNewsResource) and replay.include_cryptopanic
    assert build_resources(Settings(source="live"))["news"].cryptopanic_token is None
    monkeypatch.setenv("OMNIWATCH_CRYPTOPANIC_TOKEN", TOKEN)
    settings = Settings(source="live")
    assert TOKEN not in repr(settings) and TOKEN not in str(settings.model_dump())
    news = build_resources(settings)["news"]
    # Dagster resolves the variable at run time; config and the UI show its name only.
    assert TOKEN not in repr(news) and "OMNIWATCH_CRYPTOPANIC_TOKEN" in repr(news)


# ----------------------------------------------------------------------------- replay
def test_replay_reads_the_recorded_set_as_the_api_shape():
    frame, notes = load_recorded(CRYPTOPANIC_SLICE)
    # 42 rows: 40 of 2025-07-13..15 and one post id recorded twice (a whitespace variant) in 2024.
    assert len(frame) == 41 and frame["source_id"].is_unique
    assert any("1 row(s) repeat an earlier row's post id" in n for n in notes)
    assert (frame["available_time"] == frame["event_time"]).all()
    payload = frame.set_index("source_id")["payload"]
    assert payload[ATH_ID]["votes"] == {"positive": 11, "negative": 0} and payload[ATH_ID]["match"] == "title+tag"
    assert payload["23272101"]["votes_tone"] == 0.0
    assert (frame["payload"].map(lambda p: p["votes"] is None) == frame["payload"].map(
        lambda p: p["votes_tone"] is None)).all()


def test_replay_and_live_give_the_same_rows_for_the_same_posts(posts):
    live, _ = parse_posts({"results": posts})
    replay = CryptoPanicReplay(CRYPTOPANIC_SLICE).window(DAY, DAY + pd.Timedelta(days=1)).frame
    cols = ["source", "source_id", "track", "title", "url", "event_time", "available_time", "tone"]
    a = live.sort_values("source_id")[cols].reset_index(drop=True)
    b = replay.sort_values("source_id")[cols].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    key = ("currencies", "symbols", "votes", "votes_tone")
    assert [{k: p[k] for k in key} for p in live.sort_values("source_id")["payload"]] == \
        [{k: p[k] for k in key} for p in replay.sort_values("source_id")["payload"]]


def test_replay_window_is_half_open_on_available_time():
    replay = CryptoPanicReplay(CRYPTOPANIC_SLICE)
    at = ts("2025-07-14 08:39:25")  # the ATH post's publication
    before = replay.window(DAY, at).frame
    after = replay.window(at, DAY + pd.Timedelta(days=1)).frame
    assert ATH_ID not in set(before["source_id"]) and ATH_ID in set(after["source_id"])
    assert (before["available_time"] < at).all() and len(before) + len(after) == 20


def test_replay_news_resource_adds_cryptopanic_beside_gdelt_and_rss():
    start, end = DAY, DAY + pd.Timedelta(days=1)
    events_dir = str(BUNDLED_SAMPLE_DIR / "events")
    with_cp = ReplayNewsResource(replay_dir=events_dir, cryptopanic_path=str(CRYPTOPANIC_SLICE)).fetch_news(start, end)
    without = ReplayNewsResource(replay_dir=events_dir, include_cryptopanic=False).fetch_news(start, end)
    assert without.frame.empty  # the recorded GDELT/RSS payloads are from other days
    assert len(with_cp.frame) == 20 and set(with_cp.frame["source"]) == {"cryptopanic"}
    assert any(n.startswith("CryptoPanic ") for n in with_cp.notes)


def test_replayed_posts_pass_the_blocking_event_checks():
    start, end = DAY, DAY + pd.Timedelta(days=1)
    frame = CryptoPanicReplay(CRYPTOPANIC_SLICE).window(start, end).frame
    outcomes = run_checks("news_events", frame, start, end, end)
    assert len(frame) == 20 and len(outcomes) >= 5
    assert {o.name: o.passed for o in outcomes} == {o.name: True for o in outcomes}
