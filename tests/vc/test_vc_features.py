"""Form D features and label: a hand-checked two-company case, a look-ahead probe, the real data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from omniwatch.entities import EntityIndex, build_entities, link_events
from omniwatch.vc.features import (
    FEATURES,
    FORMD_DIR,
    build_vc_frame,
    filings_from_events,
    linked_news,
    load_formd,
)

UTC = "UTC"
A, B = "0000000001", "0000000002"


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=UTC)


@pytest.fixture(scope="module")
def hand() -> pd.DataFrame:
    """Company A (covered from 2020-01-15, ticker, SIC 3841, GA): new D a1 2020-02-10 12:00 (506b,
    $1M), D/A a2 exactly at 2020-03-01 00:00 (506b), new D a3 2020-05-20 09:00 (506c + 4(a)(5),
    amount "Indefinite"). Company B (covered since 2019, no ticker/SIC, CA): new D b1 at
    2020-03-01 00:00:00.2 (old Rule 506, amount 0). News: A at 02-20 (tone 2) and 04-25 (tone -1),
    feed starting 2020-01-01. Horizon 60 days, data end 2020-12-01."""
    filings = pd.DataFrame({
        "cik": [A, A, A, B], "accession_number": ["a1", "a2", "a3", "b1"],
        "is_amendment": [False, True, False, False],
        "available_time": [ts("2020-02-10 12:00"), ts("2020-03-01"), ts("2020-05-20 09:00"),
                           ts("2020-03-01 00:00:00.2")],
        "exemptions": ["06b", "06b", "06c,4a5", "06"],
    })
    companies = pd.DataFrame({"cik": [B, A], "coverage_start": ["2019-12-01", "2020-01-15"],
                              "sic": [None, "3841"], "business_state": ["CA", "GA"], "tickers": [None, "AAA"]})
    offerings = pd.DataFrame({"accession_number": ["a1", "a3", "b1"],
                              "total_offering_amount": ["1000000", "Indefinite", "0"]})
    news = pd.DataFrame({"entity_id": ["cik:0000000009", f"cik:{A}", f"cik:{A}"],
                         "available_time": [ts("2020-01-01"), ts("2020-02-20"), ts("2020-04-25")],
                         "tone": [0.0, 2.0, -1.0]})
    return build_vc_frame(filings, companies, offerings=offerings, news=news, horizon_days=60,
                          grid_start=ts("2020-01-01"), data_end=ts("2020-12-01"))


def row(frame: pd.DataFrame, cik: str, as_of: str) -> pd.Series:
    [i] = np.flatnonzero((frame["cik"] == cik) & (frame["as_of"] == ts(as_of)))
    return frame.iloc[i]


def check(actual: pd.Series, expected: dict) -> None:
    for key, want in expected.items():
        got = actual[key]
        if want is None:
            assert pd.isna(got), f"{key}: {got} should be missing"
        else:
            assert not pd.isna(got) and math.isclose(float(got), want, rel_tol=1e-9, abs_tol=1e-9), \
                f"{key}: {got} != {want}"


def test_grid_follows_coverage_and_data_end(hand: pd.DataFrame) -> None:
    assert list(hand.columns) == ["entity_id", "cik", "as_of", *FEATURES, "label"]
    months_a = hand.loc[hand["cik"] == A, "as_of"]
    assert months_a.min() == ts("2020-02-01") and months_a.max() == ts("2020-11-01") and len(months_a) == 10
    assert hand.loc[hand["cik"] == B, "as_of"].min() == ts("2020-01-01")
    # as_of + 60 days must lie before the data end for a label: 2020-10-01 yes, 2020-11-01 no.
    assert not pd.isna(row(hand, A, "2020-10-01")["label"]) and pd.isna(row(hand, A, "2020-11-01")["label"])


def test_company_a_by_hand(hand: pd.DataFrame) -> None:
    check(row(hand, A, "2020-02-01"), {
        "n_raises_total": 0, "n_amendments_total": 0, "days_since_last_raise": None, "share_506b": None,
        "news_mentions_30d": 0, "news_tone_30d": None, "news_mentions_90d": None, "label": 1})
    check(row(hand, A, "2020-03-01"), {  # a2, accepted exactly at as_of, counts
        "n_raises_total": 1, "n_amendments_total": 1, "n_raises_365d": 1, "days_since_last_raise": 19.5,
        "raise_cadence_days": None, "share_506b": 1, "share_506c": 0, "share_other_exemption": 0,
        "last_offering_amount": 1e6, "log_last_offering_amount": math.log(1e6),
        "news_mentions_30d": 1, "news_tone_30d": 2.0, "news_mentions_90d": None, "news_tone_90d": None,
        "label": 0})  # a3 (05-20) is after 03-01 + 60 days
    check(row(hand, A, "2020-04-01"), {"label": 1})
    check(row(hand, A, "2020-05-01"), {
        "news_mentions_30d": 1, "news_tone_30d": -1.0, "news_mentions_90d": 2, "news_tone_90d": 0.5})
    check(row(hand, A, "2020-06-01"), {
        "n_raises_total": 2, "n_amendments_total": 1, "n_raises_365d": 2, "days_since_last_raise": 11.625,
        "raise_cadence_days": 99.875, "share_506b": 2 / 3, "share_506c": 1 / 3, "share_other_exemption": 1 / 3,
        "last_offering_amount": None, "log_last_offering_amount": None,  # "Indefinite" is not an amount
        "news_mentions_30d": 0, "news_tone_30d": None, "news_mentions_90d": 1, "news_tone_90d": -1.0,
        "label": 0})


def test_company_b_by_hand(hand: pd.DataFrame) -> None:
    # b1 was accepted 0.2 s after midnight: not yet known at the 03-01 as_of, but inside its label.
    check(row(hand, B, "2020-03-01"), {"n_raises_total": 0, "days_since_last_raise": None, "label": 1,
                                       "news_mentions_30d": 0})
    # Acceptance times are rounded up to the whole second (never early): b1 counts as 00:00:01.
    check(row(hand, B, "2020-04-01"), {
        "n_raises_total": 1, "share_506b": 1, "share_506c": 0, "days_since_last_raise": 31 - 1 / 86400,
        "last_offering_amount": None, "label": 0})  # amount 0 -> unknown


def test_attributes_known_only_from_todays_snapshot_are_not_features() -> None:
    """SIC, state and tickers exist only as of the 2025 snapshot: changing them changes nothing."""
    filings = pd.DataFrame({"cik": [A, B], "accession_number": ["a1", "b1"], "is_amendment": [False, False],
                            "available_time": [ts("2020-02-10"), ts("2020-03-10")], "exemptions": ["06b", "06b"]})
    today = pd.DataFrame({"cik": [A, B], "coverage_start": ["2020-01-01", "2020-01-01"], "sic": ["3841", "6798"],
                          "business_state": ["GA", "CA"], "tickers": ["AAA", None]})
    other = today.assign(sic=["7372", None], business_state=["NY", "TX"], tickers=[None, "BBB"])
    kw = {"grid_start": ts("2020-01-01"), "data_end": ts("2020-12-01"), "horizon_days": 60}
    a, b = build_vc_frame(filings, today, **kw), build_vc_frame(filings, other, **kw)
    pd.testing.assert_frame_equal(a, b)
    assert not {"sic_major", "state_code", "has_ticker"} & set(FEATURES)


def test_news_counts_from_first_sight_not_publication() -> None:
    """An item published 02-20 that our feed first saw 03-05 is not news at the 03-01 snapshot."""
    filings = pd.DataFrame({"cik": [A], "accession_number": ["a1"], "is_amendment": [False],
                            "available_time": [ts("2019-06-10")], "exemptions": ["06b"]})
    companies = pd.DataFrame({"cik": [A], "coverage_start": ["2019-01-01"]})
    events = pd.DataFrame({
        "source": ["rss", "rss"], "source_id": ["feed-start", "late"], "tone": [0.0, 0.5],
        "available_time": [ts("2019-01-01"), ts("2020-02-20")],
        "first_seen_at": [ts("2019-01-01"), ts("2020-03-05")],
    })
    links = pd.DataFrame({"source": ["rss", "rss"], "source_id": ["feed-start", "late"],
                          "entity_id": ["cik:0000000009", f"cik:{A}"], "confidence": [1.0, 1.0]})
    news = linked_news(events, links)
    assert news.set_index("entity_id").loc[f"cik:{A}", "available_time"] == ts("2020-03-05")
    frame = build_vc_frame(filings, companies, news=news, grid_start=ts("2019-01-01"), data_end=ts("2020-12-01"))
    assert row(frame, A, "2020-03-01")["news_mentions_30d"] == 0
    assert row(frame, A, "2020-04-01")["news_mentions_30d"] == 1
    # Had it counted from publication, the 03-01 snapshot would have seen it (the leak).
    leaky = build_vc_frame(filings, companies, news=linked_news(events.drop(columns="first_seen_at"), links),
                           grid_start=ts("2019-01-01"), data_end=ts("2020-12-01"))
    assert row(leaky, A, "2020-03-01")["news_mentions_30d"] == 1


def test_without_news_or_documents_the_features_are_missing_not_zero() -> None:
    filings = pd.DataFrame({"cik": [A], "accession_number": ["a1"], "is_amendment": [False],
                            "available_time": [ts("2020-02-10")], "exemptions": ["06b"]})
    companies = pd.DataFrame({"cik": [A], "coverage_start": ["2020-01-01"]})
    frame = build_vc_frame(filings, companies, grid_start=ts("2020-01-01"), data_end=ts("2020-06-01"))
    news_and_amounts = [c for c in FEATURES if c.startswith(("news_", "last_", "log_"))]
    assert frame[news_and_amounts].isna().all().all()


def test_filings_from_events_reads_the_edgar_payload() -> None:
    events = pd.DataFrame({
        "source": ["edgar", "edgar", "edgar"], "source_id": ["x-1", "x-2", "x-3"],
        "event_type": ["form_d", "form_d", "10-K"], "available_time": ["2020-01-02T15:00:00Z"] * 3,
        "payload": [{"cik": 1339005, "form": "D", "items": "06b"}, {"cik": "1339005", "form": "D/A"},
                    {"cik": "1339005", "form": "10-K"}],
    })
    f = filings_from_events(events)
    assert f["cik"].tolist() == ["0001339005"] * 2 and f["is_amendment"].tolist() == [False, True]
    assert f["accession_number"].tolist() == ["x-1", "x-2"] and f["exemptions"].iloc[0] == "06b"
    assert f["available_time"].iloc[0] == ts("2020-01-02 15:00")


def test_news_linked_by_resolution_feeds_the_mention_counts() -> None:
    companies = pd.DataFrame({"cik": [A], "entity_name": ["Acme Robotics, Inc."], "tickers": ["ACMR"],
                              "coverage_start": ["2020-01-01"]})
    events = pd.DataFrame({
        "source": ["rss"] * 3, "source_id": ["1", "2", "3"], "tone": [1.0, -3.0, 5.0],
        "available_time": [ts("2020-01-05"), ts("2020-02-10"), ts("2020-02-11")],
        "title": ["Acme Robotics raises a round", "ACMR falls", "Acmes are birds"], "body": [None] * 3,
        "payload": [{}] * 3,
    })
    news = linked_news(events, link_events(events, EntityIndex(build_entities(companies))))
    assert news["tone"].tolist() == [1.0, -3.0]  # "Acmes" is another word
    filings = pd.DataFrame(columns=["cik", "accession_number", "is_amendment", "available_time", "exemptions"])
    frame = build_vc_frame(filings, companies, news=news, grid_start=ts("2020-01-01"), data_end=ts("2020-06-01"))
    check(row(frame, A, "2020-03-01"), {"news_mentions_30d": 1, "news_tone_30d": -3.0, "n_raises_total": 0,
                                        "news_mentions_90d": None, "label": None})  # 180 d pass the end


@pytest.fixture(scope="module")
def real() -> tuple[pd.DataFrame, pd.DataFrame]:
    if not FORMD_DIR.exists():
        pytest.fail(f"bundled Form D data missing at {FORMD_DIR}")
    return load_formd()


@pytest.fixture(scope="module")
def real_frame(real) -> pd.DataFrame:
    return build_vc_frame(*real)


@pytest.mark.parametrize("cut", ["2012-06-01", "2016-01-01 00:00", "2020-03-15 12:34:56.5"])
def test_truncating_filings_leaves_earlier_rows_unchanged(real, real_frame, cut: str) -> None:
    filings, companies = real
    full = real_frame
    short = build_vc_frame(filings[filings["available_time"] <= ts(cut)], companies)
    early_full, early_short = full[full["as_of"] <= ts(cut)], short[short["as_of"] <= ts(cut)]
    assert len(early_full) > 10_000
    pd.testing.assert_frame_equal(early_full[FEATURES].reset_index(drop=True),
                                  early_short[FEATURES].reset_index(drop=True))
    # The probe has power: the label, which looks forward, does change.
    assert not early_full["label"].reset_index(drop=True).equals(early_short["label"].reset_index(drop=True))


def test_real_data_base_rate(real, real_frame) -> None:
    filings, companies = real
    assert len(filings) == 13_231 and len(companies) == 7_876
    frame = real_frame
    labelled = frame.dropna(subset=["label"])
    prior = labelled[labelled["n_raises_total"] >= 1]
    ever = labelled[labelled["cik"].isin(filings.loc[~filings["is_amendment"], "cik"])]
    print(f"\nrows {len(frame):,} labelled {len(labelled):,} entities {frame['entity_id'].nunique():,}; "
          f"base rate all {labelled['label'].mean():.4f}, with a past raise {prior['label'].mean():.4f} "
          f"({len(prior):,} rows), ever-filers {ever['label'].mean():.4f} ({len(ever):,} rows)")
    assert frame["entity_id"].nunique() == 7_876
    assert 0.03 < labelled["label"].mean() < 0.08        # every listed company, most never file a D
    assert 0.10 < prior["label"].mean() < 0.16           # companies that have raised before
    assert labelled["as_of"].max() == ts("2025-02-01")   # the last as_of whose 180 days are observed
