"""SEC EDGAR: company submissions, Form D notices and the bundled Form D filing tables.

``data.sec.gov/submissions/CIK##########.json`` gives company info plus every filing in
``filings.recent`` as an event (``source_id`` = accession number, ``event_type`` = form);
``www.sec.gov/Archives/edgar/data/<cik>/<accession, no dashes>/primary_doc.xml`` is a Form D
notice (issuers, amounts, first sale, exemptions). Point in time: ``available_time`` is EDGAR's
``acceptanceDateTime`` (UTC), never a period or report date; ``event_time`` is the filing date
(day), which can fall *after* acceptance (filings accepted after 17:30 ET are dated the next
business day). SEC fair access: a descriptive User-Agent with a contact address and fewer than
10 requests/second; ``EdgarClient`` refuses to start without either.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from omniwatch.frames import EVENT_COLUMNS, conform, empty_frame
from omniwatch.jsonsafe import json_safe

from .http import HttpClient, MalformedPayloadError, load_payload

SOURCE = "edgar"
TRACK = "vc"
DATA_URL = "https://data.sec.gov"
ARCHIVES_URL = "https://www.sec.gov"
SEC_MAX_REQUESTS_PER_SECOND = 10.0
FORM_D_TYPES = ("D", "D/A")
_REQUIRED = ("accessionNumber", "filingDate", "acceptanceDateTime", "form")
_EMPTY = ("", "None", "none", "N/A")
_PAYLOAD_KEYS = ("cik", "entity_name", "form", "file_number", "sic", "business_state",
                 "state_of_incorporation", "primary_document", "report_date")


def normalize_cik(cik: Any) -> str:
    """The 10-digit zero-padded CIK string EDGAR uses in URLs and JSON."""
    digits = str(cik).strip().upper().removeprefix("CIK").lstrip("0") or "0"
    if not digits.isdigit() or len(digits) > 10:
        raise ValueError(f"not a CIK: {cik!r}")
    return digits.zfill(10)


def filing_index_url(cik: Any, accession: str) -> str:
    """The filing's index page on www.sec.gov (stable, human-readable)."""
    return (f"{ARCHIVES_URL}/Archives/edgar/data/{int(normalize_cik(cik))}/"
            f"{accession.replace('-', '')}/{accession}-index.htm")


def _split(value: Any) -> list[str]:
    return [v.strip() for v in str(value or "").split(",") if v.strip()]


def _clean(value: Any) -> Any:
    """A payload field as JSON: missing (NaN, None) and placeholder text ("N/A") -> None."""
    value = json_safe(value)
    return None if isinstance(value, str) and value in _EMPTY else value


@dataclass
class CompanyInfo:
    """The company block of a submissions JSON."""

    cik: str
    name: str
    tickers: list[str]
    exchanges: list[str]
    sic: str | None
    sic_description: str | None
    state_of_incorporation: str | None
    business_state: str | None
    entity_type: str | None
    former_names: list[dict[str, Any]] = field(default_factory=list)
    history_truncated: bool = False  # older filings sit in ``filings.files`` pages not read here


def _filing_events(rows: pd.DataFrame) -> pd.DataFrame:
    """Filing rows (cik, entity_name, form, accession_number, filing_date, acceptance_datetime,
    file_number, items, ...) -> EVENT_COLUMNS; payload carries the entity-resolution fields."""
    if rows.empty:
        return empty_frame(EVENT_COLUMNS)
    payloads = []
    for rec in rows.to_dict("records"):
        payload = {k: _clean(rec.get(k)) for k in _PAYLOAD_KEYS}
        items = _split(rec.get("items"))
        payload.update(is_amendment=str(rec["form"]).endswith("/A"), items=items,
                       exemptions=items if rec["form"] in FORM_D_TYPES else [],
                       tickers=list(rec.get("tickers") or []))
        payloads.append(payload)
    try:
        event_time = pd.to_datetime(rows["filing_date"], format="%Y-%m-%d", utc=True)
        available = pd.to_datetime(rows["acceptance_datetime"], format="ISO8601", utc=True)
    except (ValueError, TypeError) as exc:
        raise MalformedPayloadError(f"filings: unparseable filing/acceptance time ({exc})") from None
    frame = pd.DataFrame({
        "source": SOURCE, "source_id": rows["accession_number"].to_numpy(), "track": TRACK,
        "event_type": rows["form"].to_numpy(),
        "title": [f"{p['entity_name']}: Form {p['form']}" for p in payloads], "body": None,
        "url": [filing_index_url(c, a) for c, a in zip(rows["cik"], rows["accession_number"], strict=True)],
        "event_time": event_time.to_numpy(), "available_time": available.to_numpy(),
        "tone": math.nan, "payload": payloads,
    })
    frame = frame.drop_duplicates("source_id").sort_values(["available_time", "source_id"])
    return conform(frame, EVENT_COLUMNS)


def parse_submissions(payload: Any) -> tuple[CompanyInfo, pd.DataFrame]:
    """A submissions JSON -> ``(CompanyInfo, filings as EVENT_COLUMNS)`` (``filings.recent`` only)."""
    data = load_payload(payload)
    if not isinstance(data, dict) or "cik" not in data or "name" not in data:
        raise MalformedPayloadError("submissions: expected an object with 'cik' and 'name'")
    recent = (data.get("filings") or {}).get("recent")
    if not isinstance(recent, dict):
        raise MalformedPayloadError("submissions: missing filings.recent", field="filings.recent")
    if missing := [k for k in _REQUIRED if not isinstance(recent.get(k), list)]:
        raise MalformedPayloadError(f"submissions: filings.recent lacks {missing}", field=missing[0])
    n = len(recent["accessionNumber"])
    if bad := [k for k, v in recent.items() if isinstance(v, list) and len(v) != n]:
        raise MalformedPayloadError(f"submissions: arrays {bad} are not {n} long", field=bad[0])
    business = ((data.get("addresses") or {}).get("business") or {})
    company = CompanyInfo(
        cik=normalize_cik(data["cik"]), name=str(data["name"]),
        tickers=list(data.get("tickers") or []), exchanges=list(data.get("exchanges") or []),
        sic=_clean(data.get("sic")), sic_description=_clean(data.get("sicDescription")),
        state_of_incorporation=_clean(data.get("stateOfIncorporation")),
        business_state=_clean(business.get("stateOrCountry")),
        entity_type=_clean(data.get("entityType")),
        former_names=list(data.get("formerNames") or []),
        history_truncated=bool((data.get("filings") or {}).get("files")))
    column = {"accessionNumber": "accession_number", "filingDate": "filing_date",
              "acceptanceDateTime": "acceptance_datetime", "fileNumber": "file_number",
              "primaryDocument": "primary_document", "reportDate": "report_date"}
    rows = pd.DataFrame({column.get(k, k): v for k, v in recent.items() if isinstance(v, list)})
    rows = rows.assign(cik=company.cik, entity_name=company.name, sic=company.sic,
                       business_state=company.business_state,
                       state_of_incorporation=company.state_of_incorporation)
    rows["tickers"] = [company.tickers] * len(rows)
    return company, _filing_events(rows)


# -- Form D primary_doc.xml -------------------------------------------------------------------
@dataclass
class FormD:
    """The fields of a Form D notice that the VC track reads."""

    submission_type: str
    is_amendment: bool
    issuers: list[dict[str, Any]]  # primary issuer first, then ``issuerList`` co-issuers
    industry_group: str | None
    investment_fund_type: str | None
    total_offering_amount: float | None  # None when the filer wrote "Indefinite"
    total_amount_sold: float | None
    total_remaining: float | None
    date_of_first_sale: str | None  # ISO date; None when ``yetToOccur``
    yet_to_occur: bool
    exemptions: list[str]
    num_investors: int | None
    signature_date: str | None
    accession: str | None = None

    @property
    def primary_issuer(self) -> dict[str, Any]:
        return self.issuers[0]


def _text(node: ET.Element | None, path: str) -> str | None:
    found = node.find(path) if node is not None else None
    text = found.text.strip() if found is not None and found.text else None
    return None if text in _EMPTY else text


def _amount(node: ET.Element | None, path: str) -> float | None:
    text = _text(node, path)
    if text is None or text.lower() == "indefinite":
        return None
    try:
        return float(text.replace(",", ""))
    except ValueError:
        raise MalformedPayloadError(f"form D: {path} = {text!r:.40} is not an amount",
                                    field=path) from None


def _issuer(node: ET.Element) -> dict[str, Any]:
    return {"cik": normalize_cik(_text(node, "cik") or "0"), "name": _text(node, "entityName"),
            "state": _text(node, "issuerAddress/stateOrCountry"),
            "city": _text(node, "issuerAddress/city"),
            "jurisdiction": _text(node, "jurisdictionOfInc"),
            "entity_type": _text(node, "entityType"),
            "year_of_inc": _text(node, "yearOfInc/value")}


def parse_form_d(xml_bytes: bytes | str, accession: str | None = None) -> FormD:
    """A Form D ``primary_doc.xml`` -> ``FormD``; MalformedPayloadError when it is not one.

    Leading whitespace is stripped first: some real files start with a newline before
    ``<?xml ...?>``, which a strict XML parser rejects.
    """
    raw = xml_bytes.encode("utf-8") if isinstance(xml_bytes, str) else bytes(xml_bytes)
    try:
        root = ET.fromstring(raw.lstrip())
    except ET.ParseError as exc:
        raise MalformedPayloadError(f"form D: not well-formed XML ({exc})", body=raw[:200]) from None
    for element in root.iter():  # some filers' software adds a default namespace
        element.tag = element.tag.rsplit("}", 1)[-1]
    primary, offering = root.find("primaryIssuer"), root.find("offeringData")
    if root.tag != "edgarSubmission" or primary is None or offering is None:
        raise MalformedPayloadError("form D: expected edgarSubmission with primaryIssuer and "
                                    f"offeringData, got <{root.tag}>", body=raw[:200])
    submission_type = _text(root, "submissionType") or ""
    sold = offering.find("offeringSalesAmounts")
    first_sale = offering.find("typeOfFiling/dateOfFirstSale")
    investors = _text(offering, "investors/totalNumberAlreadyInvested")
    return FormD(
        submission_type=submission_type,
        is_amendment=(_text(offering, "typeOfFiling/newOrAmendment/isAmendment") == "true"
                      or submission_type.endswith("/A")),
        issuers=[_issuer(primary)] + [_issuer(n) for n in root.findall("issuerList/issuer")],
        industry_group=_text(offering, "industryGroup/industryGroupType"),
        investment_fund_type=_text(offering, "industryGroup/investmentFundInfo/investmentFundType"),
        total_offering_amount=_amount(sold, "totalOfferingAmount"),
        total_amount_sold=_amount(sold, "totalAmountSold"),
        total_remaining=_amount(sold, "totalRemaining"),
        date_of_first_sale=_text(first_sale, "value"),
        yet_to_occur=_text(first_sale, "yetToOccur") == "true",
        exemptions=[i.text.strip() for i in offering.findall("federalExemptionsExclusions/item")
                    if i.text and i.text.strip()],
        num_investors=int(investors) if investors and investors.isdigit() else None,
        signature_date=_text(offering, "signatureBlock/signature/signatureDate"),
        accession=accession)


# -- bundled CSV tables (shared/data/PROVENANCE.md section 6) ---------------------------------
def _read_csv(path: str | Path) -> pd.DataFrame:
    # All text: CIKs, SIC codes and exemption items ("06") carry meaningful leading zeros.
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    return frame.astype(object).where(frame != "", None)


def parse_formd_filings_csv(path: str | Path) -> pd.DataFrame:
    """``listed_issuers_formd_filings_*.csv.gz`` (one row per D / D/A filing) -> EVENT_COLUMNS."""
    rows = _read_csv(path).rename(columns={"exemptions": "items"})
    if missing := {"cik", "entity_name", "form", "accession_number", "filing_date",
                   "acceptance_datetime"} - set(rows.columns):
        raise MalformedPayloadError(f"{path}: missing columns {sorted(missing)}")
    rows["cik"] = rows["cik"].map(normalize_cik)
    return _filing_events(rows)


def parse_companies_csv(path: str | Path) -> pd.DataFrame:
    """``listed_issuers_companies_snapshot_*.csv.gz`` -> one row per company, typed.

    ``coverage_start`` (UTC) is the oldest filing in the company's submissions window: before
    it, "no Form D" means "not looked at", not "none filed".
    """
    frame = _read_csv(path)
    frame["cik"] = frame["cik"].map(normalize_cik)
    for col in ("tickers", "exchanges"):
        frame[col] = frame[col].map(_split)
    for col in ("coverage_start", "first_formd_date", "last_formd_date"):
        frame[col] = pd.to_datetime(frame[col], format="%Y-%m-%d", utc=True)
    for col in ("n_recent_filings", "n_formd_new", "n_formd_amend"):
        frame[col] = pd.to_numeric(frame[col]).astype("int64")
    frame["history_truncated"] = frame["history_truncated"].eq("True")
    return frame.reset_index(drop=True)


class EdgarClient(HttpClient):
    """data.sec.gov / www.sec.gov client honouring SEC's fair-access rules."""

    def __init__(self, user_agent: str, *, requests_per_second: float = 8.0,
                 data_url: str = DATA_URL, archives_url: str = ARCHIVES_URL,
                 **http_kwargs: Any) -> None:
        if not isinstance(user_agent, str) or "@" not in user_agent or len(user_agent.split()) < 2:
            raise ValueError("SEC requires a descriptive User-Agent with a contact e-mail, e.g. "
                             "'Omniwatch research ops@example.org'")
        if not requests_per_second or requests_per_second >= SEC_MAX_REQUESTS_PER_SECOND:
            raise ValueError(f"SEC allows under 10 requests/s; got {requests_per_second!r}")
        headers = {**http_kwargs.pop("headers", {}), "User-Agent": user_agent}
        # One client and one rate budget for both hosts: SEC counts requests per user.
        http_kwargs.setdefault("rate_limit_key", "sec.gov")
        super().__init__("", requests_per_second=requests_per_second, headers=headers,
                         **http_kwargs)
        self.data_url = data_url.rstrip("/")
        self.archives_url = archives_url.rstrip("/")

    def fetch_submissions(self, cik: Any) -> tuple[CompanyInfo, pd.DataFrame]:
        """Company info and ``filings.recent`` events of one CIK."""
        payload, _ = self.get_json(f"{self.data_url}/submissions/CIK{normalize_cik(cik)}.json")
        return parse_submissions(payload)

    def fetch_form_d(self, cik: Any, accession: str,
                     primary_document: str = "primary_doc.xml") -> FormD:
        """One filing's Form D notice (``primary_document`` as listed in submissions, or bare)."""
        # Submissions list the XSL-rendered view ("xslFormDX01/primary_doc.xml", HTML); the raw
        # XML is the same file name at the top of the filing folder.
        name = primary_document.rsplit("/", 1)[-1]
        url = (f"{self.archives_url}/Archives/edgar/data/{int(normalize_cik(cik))}/"
               f"{accession.replace('-', '')}/{name}")
        return parse_form_d(self.get(url).content, accession=accession)
