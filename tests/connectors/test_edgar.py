"""SEC EDGAR connector: recorded submissions JSONs, real Form D XMLs and the Form D tables."""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from itertools import pairwise

import pandas as pd
import pytest

from omniwatch.connectors.edgar import (
    EdgarClient,
    parse_companies_csv,
    parse_form_d,
    parse_formd_filings_csv,
    parse_submissions,
)
from omniwatch.connectors.events_replay import SAMPLE_EVENTS_DIR, EventsReplaySource
from omniwatch.connectors.http import MalformedPayloadError
from omniwatch.frames import EVENT_COLUMNS

from .fake_events import FEMASYS_FILE, PRIMARY_DOCS, TESLA_FILE

UA = "Omniwatch research ops@example.org"
FORMD_CSV = SAMPLE_EVENTS_DIR / "edgar/formd/listed_issuers_formd_filings_2008-10_2025-08.csv.gz"
COMPANIES_CSV = SAMPLE_EVENTS_DIR / "edgar/formd/listed_issuers_companies_snapshot_2025-08-02.csv.gz"
FEMASYS_PATH = "/submissions/CIK0001339005.json"

# file -> (issuer name, state, industry group, offering, sold, first sale, amendment, exemptions)
PRIMARY_DOC_FACTS = {
    "D-A_cik0001544190_shepherds-finance_2023-01-31.xml": (
        "Shepherd's Finance, LLC", "FL", "Other Banking and Financial Services", 8_000_000,
        5_725_051, "2017-03-16", True, ["06b"]),
    "D_cik0001958740_ap-fund-iv_2023-01-30.xml": (
        "AP Fund IV, a series of Inference Technology Partners, LP", "WA",
        "Pooled Investment Fund", 659_752, 659_752, "2023-01-20", False, ["06b", "3C.1"]),
    "D_0001140361-10-001434_quantapoint.xml": (
        "QUANTAPOINT INC", "PA", "Other", 3_000_000, 3_000_000, "2009-12-30", False, ["06"]),
    "D_0001829412-20-000002_qcode-media.xml": (
        "QCode Media, Inc.", "CA", "Other", 6_400_010, 6_400_010, "2020-10-09", False, ["06b"]),
    "D_0001585895-13-000001_entratympanic.xml": (
        "EntraTympanic, LLC", "MA", "Other Health Care", 5_000_000, 25_000, "2013-08-21", False,
        ["06"]),
    "D_0001517055-11-000001_indepth-exploration.xml": (
        "Indepth Exploration LLC", "TX", "Oil and Gas", 448_450, 0, None, False, ["06"]),
    "D_0001517055-12-000002_indepth-exploration.xml": (
        "Indepth Exploration LLC", "TX", "Oil and Gas", 1_650_000, 0, None, False, ["06"]),
}


def ts(value: str) -> pd.Timestamp:
    return pd.Timestamp(value, tz="UTC")


@pytest.fixture(scope="module")
def formd_events() -> pd.DataFrame:
    return parse_formd_filings_csv(FORMD_CSV)


# -- client: SEC fair-access rules -----------------------------------------------------------
def test_user_agent_is_sent(events_server):
    events_server.serve(FEMASYS_PATH, FEMASYS_FILE.read_bytes(), "application/json")
    with EdgarClient(UA, data_url=events_server.url, max_retries=0) as client:
        company, filings = client.fetch_submissions("1339005")
    seen = events_server.seen(FEMASYS_PATH)
    assert len(seen) == 1 and seen[0].headers["User-Agent"] == UA
    assert company.name == "FEMASYS INC" and len(filings) == 241


@pytest.mark.parametrize("user_agent", ["", "   ", "omniwatch/0.1", "ops@example.org", None])
def test_missing_or_anonymous_user_agent_is_refused(user_agent):
    with pytest.raises(ValueError, match="User-Agent"):
        EdgarClient(user_agent)


def test_user_agent_is_a_required_argument():
    with pytest.raises(TypeError):
        EdgarClient()  # type: ignore[call-arg]


@pytest.mark.parametrize("rate", [10, 25, None, 0])
def test_rates_at_or_above_sec_limit_are_refused(rate):
    with pytest.raises(ValueError, match="10 requests/s"):
        EdgarClient(UA, requests_per_second=rate)


def test_requests_stay_under_ten_per_second(events_server):
    path = "/Archives/edgar/data/1091185/000114036110001434/primary_doc.xml"
    events_server.serve(path, (PRIMARY_DOCS / "D_0001140361-10-001434_quantapoint.xml")
                        .read_bytes(), "application/xml")
    with EdgarClient(UA, archives_url=events_server.url, max_retries=0) as client:
        # One request per 125 ms, one budget for data.sec.gov and www.sec.gov together.
        assert [(r.limit, r.interval) for r in client.limiter.buckets()[0].rates] == [(1, 125)]
        assert client.rate_limit_key == "sec.gov"
        for _ in range(10):
            client.fetch_form_d("0001091185", "0001140361-10-001434")
    arrivals = [r.at for r in events_server.seen(path)]
    assert len(arrivals) == 10
    gaps = [b - a for a, b in pairwise(arrivals)]
    # Arrival jitter on a loaded machine can shave a gap; the span below is the robust bound.
    assert min(gaps) > 0.06
    assert arrivals[-1] - arrivals[0] > 1.0  # ten requests took more than a second


def test_form_d_fetch_uses_raw_xml_not_the_xsl_view(events_server):
    path = "/Archives/edgar/data/1958740/000195874023000001/primary_doc.xml"
    events_server.serve(path, (PRIMARY_DOCS / "D_cik0001958740_ap-fund-iv_2023-01-30.xml")
                        .read_bytes(), "application/xml")
    with EdgarClient(UA, archives_url=events_server.url, max_retries=0) as client:
        form = client.fetch_form_d(1958740, "0001958740-23-000001", "xslFormDX01/primary_doc.xml")
    assert [r.path for r in events_server.seen()] == [path]
    assert form.accession == "0001958740-23-000001" and len(form.issuers) == 2


# -- submissions -----------------------------------------------------------------------------
def test_tesla_submissions_use_acceptance_time():
    raw = json.loads(TESLA_FILE.read_bytes())
    company, frame = parse_submissions(raw)
    recent = raw["filings"]["recent"]
    assert (company.cik, company.name, company.tickers, company.sic) == (
        "0001318605", "Tesla, Inc.", ["TSLA"], "3711")
    assert company.former_names[0]["name"] == "TESLA MOTORS INC"
    assert company.history_truncated  # filings.files lists older pages
    assert len(frame) == 25 and list(frame.columns) == EVENT_COLUMNS
    by_id = frame.set_index("source_id")
    for acc, accepted, filed, form in zip(recent["accessionNumber"], recent["acceptanceDateTime"],
                                          recent["filingDate"], recent["form"], strict=True):
        assert by_id.loc[acc, "available_time"] == pd.Timestamp(accepted)
        assert by_id.loc[acc, "event_time"] == ts(filed)
        assert by_id.loc[acc, "event_type"] == form
    ten_q = frame[frame["event_type"] == "10-Q"].iloc[0]
    assert ten_q["payload"]["report_date"] == "2022-09-30"  # the period end, kept in payload only
    assert ten_q["available_time"] > ts("2022-10-01")
    assert set(frame["source"]) == {"edgar"} and set(frame["track"]) == {"vc"}


def test_femasys_has_13_form_d_and_2_amendments():
    company, frame = parse_submissions(FEMASYS_FILE.read_bytes())
    assert (company.cik, company.tickers, company.business_state) == ("0001339005", ["FEMY"], "GA")
    assert not company.history_truncated
    counts = frame["event_type"].value_counts()
    assert (counts["D"], counts["D/A"]) == (13, 2)
    row = frame.set_index("source_id").loc["0001339005-09-000003"]
    # Accepted 2009-06-09 22:14 UTC (after 17:30 ET), so EDGAR dated it the next day.
    assert row["available_time"] == ts("2009-06-09 22:14:06")
    assert row["event_time"] == ts("2009-06-10")
    assert row["url"] == ("https://www.sec.gov/Archives/edgar/data/1339005/000133900509000003/"
                          "0001339005-09-000003-index.htm")
    payload = row["payload"]
    assert payload == {**payload, "cik": "0001339005", "form": "D", "file_number": "021-81237",
                       "exemptions": ["06"], "primary_document": "xslFormDX01/primary_doc.xml",
                       "is_amendment": False, "tickers": ["FEMY"], "entity_name": "FEMASYS INC"}
    json.dumps(list(frame["payload"]), allow_nan=False)


def test_submissions_with_ragged_arrays_are_malformed():
    raw = json.loads(TESLA_FILE.read_bytes())
    raw["filings"]["recent"]["form"] = raw["filings"]["recent"]["form"][:-1]
    with pytest.raises(MalformedPayloadError, match="form"):
        parse_submissions(raw)
    with pytest.raises(MalformedPayloadError):
        parse_submissions(b'{"cik": "1318605", "name": "Tesla, Inc.", "filings": {}}')


# -- Form D primary_doc.xml ------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(PRIMARY_DOC_FACTS))
def test_all_seven_primary_docs_parse(name):
    raw = (PRIMARY_DOCS / name).read_bytes()
    issuer, state, industry, offering, sold, first_sale, amendment, exemptions = \
        PRIMARY_DOC_FACTS[name]
    form = parse_form_d(raw)
    assert form.primary_issuer["name"] == issuer and form.primary_issuer["state"] == state
    assert form.industry_group == industry
    assert (form.total_offering_amount, form.total_amount_sold) == (offering, sold)
    assert form.date_of_first_sale == first_sale and form.yet_to_occur == (first_sale is None)
    assert form.is_amendment == amendment and form.exemptions == exemptions
    assert len(form.primary_issuer["cik"]) == 10


def test_leading_newline_files_need_the_lstrip():
    leading = [n for n in PRIMARY_DOC_FACTS if (PRIMARY_DOCS / n).read_bytes().startswith(b"\n")]
    assert sorted(leading) == ["D-A_cik0001544190_shepherds-finance_2023-01-31.xml",
                               "D_cik0001958740_ap-fund-iv_2023-01-30.xml"]
    for name in leading:
        with pytest.raises(ET.ParseError):  # what a strict parser does with them
            ET.fromstring((PRIMARY_DOCS / name).read_bytes())
        assert parse_form_d((PRIMARY_DOCS / name).read_bytes()).issuers


def test_ap_fund_iv_has_two_issuers():
    form = parse_form_d((PRIMARY_DOCS / "D_cik0001958740_ap-fund-iv_2023-01-30.xml").read_bytes())
    assert [(i["cik"], i["name"]) for i in form.issuers] == [
        ("0001958740", "AP Fund IV, a series of Inference Technology Partners, LP"),
        ("0001963203", "AP Fund IV AL Vehicle, a series of Inference Technology Partners, LP")]
    assert form.investment_fund_type == "Venture Capital Fund"


def test_indefinite_offering_amount_is_none():
    raw = (PRIMARY_DOCS / "D_0001585895-13-000001_entratympanic.xml").read_bytes()
    original = b"<totalOfferingAmount>5000000</totalOfferingAmount>"
    assert raw.count(original) == 1
    form = parse_form_d(raw.replace(original, b"<totalOfferingAmount>Indefinite</totalOfferingAmount>"))
    assert form.total_offering_amount is None and form.total_amount_sold == 25_000


def test_malformed_xml_raises():
    raw = (PRIMARY_DOCS / "D_0001829412-20-000002_qcode-media.xml").read_bytes()
    with pytest.raises(MalformedPayloadError, match="well-formed"):
        parse_form_d(raw[: len(raw) // 2])
    with pytest.raises(MalformedPayloadError, match="edgarSubmission"):
        parse_form_d(b"<?xml version='1.0'?><ownershipDocument/>")
    with pytest.raises(MalformedPayloadError, match="totalAmountSold"):
        parse_form_d(raw.replace(b"<totalAmountSold>6400010<", b"<totalAmountSold>lots<"))


# -- bundled tables and replay ---------------------------------------------------------------
def test_formd_csv_yields_13231_unique_events(formd_events):
    frame = formd_events
    assert len(frame) == 13_231 and frame["source_id"].duplicated().sum() == 0
    assert list(frame.columns) == EVENT_COLUMNS
    assert frame["event_type"].value_counts().to_dict() == {"D": 11_472, "D/A": 1_759}
    assert str(frame["available_time"].dt.tz) == "UTC"
    assert frame["available_time"].min() == ts("2008-10-01 18:27:52")
    femasys = frame[frame["payload"].map(lambda p: p["cik"]) == "0001339005"]
    assert len(femasys) == 15
    worlds = frame.set_index("source_id").loc["0001264931-13-000063"]
    assert worlds["payload"]["exemptions"] == ["05", "06", "46"]  # leading zeros kept
    assert worlds["payload"]["sic"] == "7372" and worlds["payload"]["is_amendment"] is False


def test_companies_snapshot():
    companies = parse_companies_csv(COMPANIES_CSV)
    assert len(companies) == 7_876 and companies["cik"].is_unique
    assert str(companies["coverage_start"].dt.tz) == "UTC"
    femasys = companies.set_index("cik").loc["0001339005"]
    assert femasys["coverage_start"] == ts("2005-09-15") and femasys["tickers"] == ["FEMY"]
    assert (femasys["n_formd_new"], femasys["n_formd_amend"]) == (13, 2)
    assert int(companies["history_truncated"].sum()) == 2_053


def test_replay_filings_are_deduplicated_by_accession():
    source = EventsReplaySource()
    result = source.edgar_filings(ts("2000-01-01"), ts("2030-01-01"))
    frame = result.frame
    assert frame["source_id"].is_unique
    assert len(frame) == 13_231 + 241 + 25 - 15  # Femasys' 15 Form Ds are in both inputs
    kept = frame.set_index("source_id").loc["0000945621-25-000546"]
    assert kept["payload"]["primary_document"] == "xslFormDX01/primary_doc.xml"
    assert any("15 filing(s)" in n for n in result.notes)
    window = source.edgar_filings(ts("2009-06-09"), ts("2009-06-10"))
    assert "0001339005-09-000003" in set(window.frame["source_id"])  # accepted on the 9th


def test_replay_form_d_documents_keyed_by_accession():
    docs = EventsReplaySource().form_d_documents()
    assert len(docs.documents) == 7
    assert docs.documents["0001517055-11-000001"].yet_to_occur
    assert len([n for n in docs.notes if "accession number unknown" in n]) == 2


def test_sample_folder_is_small_and_byte_identical_to_the_fixtures():
    files = [p for p in SAMPLE_EVENTS_DIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 2 * 1024 * 1024
    fixtures = {p.name: p for p in PRIMARY_DOCS.parent.rglob("*") if p.is_file()}
    shared = [p for p in files if p.name in fixtures]
    assert len(shared) == 12  # GDELT, 2 RSS, 2 submissions, 7 primary docs
    assert all(p.read_bytes() == fixtures[p.name].read_bytes() for p in shared)
    # The two tables are the research copies (sha256 as in shared/data/PROVENANCE.md, 6a and 6b).
    assert hashlib.sha256(FORMD_CSV.read_bytes()).hexdigest().startswith("a662bc8ce466cd2d")
    assert hashlib.sha256(COMPANIES_CSV.read_bytes()).hexdigest().startswith("72038463921a628c")
