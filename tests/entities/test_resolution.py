"""Entity resolution: name normalisation, the entity table, lookups and event links."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from omniwatch.entities import EntityIndex, build_entities, link_events, make_entity_id, normalize_name

COMPANIES_CSV = (Path(__file__).resolve().parents[2] / "omniwatch" / "sample" / "events" / "edgar" / "formd"
                 / "listed_issuers_companies_snapshot_2025-08-02.csv.gz")
FEMASYS = "cik:0001339005"


@pytest.fixture(scope="module")
def companies() -> pd.DataFrame:
    """Real names, CIKs and tickers (from the 2025-08-02 EDGAR snapshot) of look-alike companies."""
    return pd.DataFrame({
        "cik": ["0001339005", "0000320193", "0001418121", "0001326801", None, "0001679788", "0001577526"],
        "entity_name": ["FEMASYS INC", "Apple Inc.", "Apple Hospitality REIT, Inc.", "Meta Platforms, Inc.",
                        "Metaplanet Inc.", "Coinbase Global, Inc.", "C3.ai, Inc."],
        "tickers": ["FEMY", "AAPL", "APLE", "META", "MTPLF", "COIN", "AI"],
        "sic": ["3841", "3571", "6798", "7370", None, "6199", "7372"],
        "business_state": ["GA", "CA", "VA", "CA", "M0", "DE", "CA"],
        "entity_type": ["operating"] * 7,
        "coverage_start": ["2005-01-04", "1994-01-26", "2007-11-06", "2012-02-01", None, "2017-05-26", "2020-11-06"],
    })


@pytest.fixture(scope="module")
def index(companies: pd.DataFrame) -> EntityIndex:
    return EntityIndex(build_entities(companies))


@pytest.mark.parametrize("raw, expected", [
    ("FEMASYS INC", "femasys"), ("Femasys Incorporated", "femasys"), ("Goldman Sachs & Co", "goldman sachs"),
    ("CACI INTERNATIONAL INC /DE/", "caci international"), ("Novo Nordisk A/S", "novo nordisk"),
    ("Fomento Economico Mexicano S.A.B. de C.V.", "fomento economico mexicano"),
    ("Acme Holdings, L.L.C.", "acme"), ("Acme Labs Ltd./ADR", "acme"), ("The Coca-Cola Company", "coca cola"),
    ("Sangoma Technologies Corp", "sangoma technologies"), ("Société Générale S.A.", "societe generale"),
    ("Holdings Inc", "holdings"), ("AT&T INC.", "at and t"), ("Johnson and Johnson", "johnson and johnson"),
])
def test_normalize_name_drops_legal_forms_only(raw: str, expected: str) -> None:
    assert normalize_name(raw) == expected
    assert normalize_name(expected) == expected  # idempotent


def test_entity_ids_use_cik_when_known_else_name(companies: pd.DataFrame) -> None:
    entities = build_entities(companies)
    assert set(entities["entity_id"]) >= {FEMASYS, "name:metaplanet"}
    femasys = entities.set_index("entity_id").loc[FEMASYS]
    assert (femasys["track"], femasys["ticker"], femasys["state"]) == ("vc", "FEMY", "GA")
    assert femasys["aliases"] == ["FEMASYS INC", "FEMY"]
    assert femasys["coverage_start"] == pd.Timestamp("2005-01-04", tz="UTC")
    assert make_entity_id(1339005) == FEMASYS
    assert len(make_entity_id(None, "x" * 200)) <= 64
    with pytest.raises(ValueError):
        make_entity_id(None, "")


@pytest.mark.parametrize("variant", ["FEMASYS INC", "Femasys, Inc.", "femasys inc", "Femasys Incorporated"])
def test_name_variants_resolve_to_one_entity(index: EntityIndex, variant: str) -> None:
    links = index.resolve(name=variant)
    assert [lk.entity_id for lk in links] == [FEMASYS]
    assert links[0].confidence >= 0.9 and links[0].method == "name"


@pytest.mark.parametrize("name, expected", [
    ("Apple Inc", "cik:0000320193"), ("Apple Hospitality REIT", "cik:0001418121"),
    ("Meta Platforms", "cik:0001326801"), ("Metaplanet", "name:metaplanet"),
])
def test_similar_names_of_different_companies_stay_apart(index: EntityIndex, name: str, expected: str) -> None:
    assert [lk.entity_id for lk in index.resolve(name=name)] == [expected]


def test_fuzzy_needs_every_token_to_line_up(index: EntityIndex) -> None:
    # A typo in a long word is found, with less confidence than an exact name ...
    [link] = index.resolve(name="Coinbase Globl")
    assert link.entity_id == "cik:0001679788" and link.method == "fuzzy" and 0.7 < link.confidence < 0.9
    # ... but an extra or different distinguishing word is never a match.
    assert index.resolve(name="Apple Hospitality") == []
    assert index.resolve(name="Meta Planet Platforms") == []
    assert index.resolve(name="Femasys Biotech") == []


def test_cik_beats_name_and_ticker(index: EntityIndex) -> None:
    links = index.resolve(name="Apple Inc", cik="1339005", ticker="AAPL")
    assert links == [(FEMASYS, 1.0, "cik")]
    # An unknown CIK rules out every entity that has another CIK: only CIK-less ones remain.
    assert index.resolve(name="Apple Inc", cik="0000000001") == []
    assert [lk.entity_id for lk in index.resolve(name="Metaplanet", cik="0000000001")] == ["name:metaplanet"]


def test_ticker_lookup_is_exact_and_case_insensitive(index: EntityIndex) -> None:
    assert index.resolve(ticker="femy") == [(FEMASYS, 0.95, "ticker")]
    assert index.resolve(ticker="FEM") == []


def _events() -> pd.DataFrame:
    return pd.DataFrame({
        "source": ["rss", "rss", "rss", "gdelt", "edgar"],
        "source_id": ["n1", "n2", "n3", "n4", "0001339005-25-000001"],
        "title": ["FEMY jumps after FDA nod", "AI stocks rally as rates fall",
                  "Apple Hospitality REIT (NYSE: APLE) buys hotel", "COIN AND META SURGE", "D"],
        "body": [None, "C3.ai ($AI) led the move.", "Shares of Apple were flat.", None, None],
        "payload": [{}, {}, {}, {}, {"cik": "1339005", "entity_name": "FEMASYS INC", "form": "D"}],
    })


def test_link_events_by_cik_ticker_and_name(index: EntityIndex) -> None:
    links = link_events(_events(), index)
    got = {(r.source_id, r.entity_id): (r.confidence, r.method) for r in links.itertuples()}
    assert got == {
        ("n1", FEMASYS): (0.95, "ticker"),                 # a headline ticker, upper case
        ("n2", "cik:0001577526"): (0.95, "ticker"),        # "AI" counts only as the cashtag "$AI"
        ("n3", "cik:0001418121"): (0.95, "ticker"),        # name and ticker: the ticker link wins
        ("n3", "cik:0000320193"): (0.9, "name"),           # "Apple" alone, capitalised
        ("0001339005-25-000001", FEMASYS): (1.0, "cik"),   # EDGAR: the payload's CIK
    }  # n4 is all caps: every word looks like a ticker there, so none is taken bare
    assert list(links.columns) == ["source", "source_id", "entity_id", "confidence", "method"]


def test_resolution_is_idempotent(companies: pd.DataFrame) -> None:
    first, second = build_entities(companies), build_entities(companies.iloc[::-1])
    pd.testing.assert_frame_equal(first, second)
    pd.testing.assert_frame_equal(link_events(_events(), EntityIndex(first)),
                                  link_events(_events(), EntityIndex(second)))


def test_real_snapshot_builds_unique_resolvable_entities() -> None:
    raw = pd.read_csv(COMPANIES_CSV, dtype={"cik": str, "sic": str})
    entities = build_entities(raw)
    assert len(entities) == 7876 and entities["entity_id"].is_unique
    assert entities["entity_id"].str.len().max() <= 64
    index = EntityIndex(entities)
    assert [lk.entity_id for lk in index.resolve(name="Femasys Incorporated")] == [FEMASYS]
    assert index.resolve(ticker="FEMY")[0].entity_id == FEMASYS
    # Every company's own conformed name finds it (shared names give a split, lower confidence).
    sample = entities.sample(300, random_state=0)
    pairs = zip(sample.entity_id, sample.name, strict=True)
    assert all(e in [lk.entity_id for lk in index.resolve(name=n)] for e, n in pairs)
