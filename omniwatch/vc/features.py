"""Point-in-time features and the "raises again within 180 days" label on SEC Form D filings.

Inputs (see shared/data/PROVENANCE.md section 6):

* filings: one row per Form D / D/A filing -- ``cik`` (10-digit str), ``accession_number``,
  ``is_amendment``, ``available_time`` (SEC acceptance time, UTC), ``exemptions`` (SEC item codes,
  comma-separated). :func:`filings_from_csv` / :func:`filings_from_events` build it.
* companies: the EDGAR company snapshot -- ``cik`` and ``coverage_start`` (before it "no filing"
  means unknown). Other snapshot columns (``sic``, ``business_state``, ``tickers``) are ignored.
* offerings (optional): ``accession_number, total_offering_amount`` parsed from primary_doc.xml.
* news (optional): ``entity_id, available_time, tone`` of news events linked to entities, where
  ``available_time`` is when the item became usable (:func:`linked_news`).

One row per (entity, as_of) on a month-start grid, from the entity's coverage start (and not before
electronic Form D became mandatory) to the end of the data. Every feature uses only rows with
``available_time <= as_of``; the label looks at ``(as_of, as_of + horizon]`` and is NaN when that
window is not fully inside the data.

No feature comes from company attributes. The data knows SIC code, business state and tickers only
as of the 2025-08-02 snapshot (the Form D table's ``sic``/``business_state`` were joined from that
same snapshot, not read from each filing), and the population is "listed in 2025", so a ticker
flag says "will be listed", an industry or state says what the company became. Used in earlier
months they leak the future; without an as-of-known value (a filing-time source) they are left out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from omniwatch.entities.resolution import make_entity_id, normalize_cik
from omniwatch.features.news_time import as_usable

# Electronic Form D became mandatory on 2009-03-16 (paper REGDEX rows were dropped from the data),
# so the first month start at which "no filing" can mean "no raise" is 2009-04-01.
GRID_START = pd.Timestamp("2009-04-01", tz="UTC")
# The snapshot was taken on 2025-08-02: every filing accepted before this instant is in the file.
DATA_END = pd.Timestamp("2025-08-02", tz="UTC")
HORIZON_DAYS = 180
FORMD_DIR = Path(__file__).resolve().parents[1] / "sample" / "events" / "edgar" / "formd"  # bundled copy

FEATURES = [
    "n_raises_total", "n_amendments_total", "n_raises_365d", "days_since_last_raise",
    "raise_cadence_days", "share_506b", "share_506c", "share_other_exemption", "news_mentions_30d",
    "news_mentions_90d", "news_tone_30d",
    "news_tone_90d", "last_offering_amount", "log_last_offering_amount",
]
CATEGORICAL: list[str] = []  # none since the snapshot-only attributes were dropped (see above)
FILING_COLUMNS = ["cik", "accession_number", "is_amendment", "available_time", "exemptions"]
# Rule 506 before the 2013 JOBS Act split (item "06") is what is now 506(b): no general solicitation.
_506B, _506C = {"06", "06b"}, {"06c"}
_DAY = 86_400


def filings_from_csv(raw: pd.DataFrame) -> pd.DataFrame:
    """Filings frame from the section-6a CSV (read with ``dtype={"cik": str}``).

    ``acceptance_datetime`` is the point-in-time stamp; a row without one falls back to the end of
    its filing day (later than any acceptance that day, so never early).
    """
    accepted = pd.to_datetime(raw["acceptance_datetime"], utc=True, format="ISO8601")
    day_end = pd.to_datetime(raw["filing_date"], utc=True) + pd.Timedelta(days=1)
    return pd.DataFrame({
        "cik": raw["cik"].map(normalize_cik), "accession_number": raw["accession_number"].astype(str),
        "is_amendment": raw["form"].eq("D/A") | raw.get("is_amendment", False),
        "available_time": accepted.fillna(day_end), "exemptions": raw["exemptions"],
    }).reset_index(drop=True)


def filings_from_events(events: pd.DataFrame) -> pd.DataFrame:
    """Filings frame from an events frame (``EVENT_COLUMNS``) whose payload carries the EDGAR
    fields (``cik``, ``form``, ``accession_number``, ``exemptions``/``items``); non-Form-D rows
    are skipped."""
    rows = []
    for rec in events.to_dict("records"):
        p = rec["payload"] if isinstance(rec.get("payload"), dict) else {}
        form = str(p.get("form", rec.get("event_type", "")))
        if form not in ("D", "D/A") or not normalize_cik(p.get("cik")):
            continue
        rows.append({"cik": normalize_cik(p["cik"]),
                     "accession_number": str(p.get("accession_number") or rec["source_id"]),
                     "is_amendment": form == "D/A", "available_time": rec["available_time"],
                     "exemptions": p.get("exemptions", p.get("items"))})
    out = pd.DataFrame(rows, columns=FILING_COLUMNS)
    out["available_time"] = pd.to_datetime(out["available_time"], utc=True)
    return out


def load_formd(directory: Path = FORMD_DIR) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(filings, companies) from the bundled listed-issuer files (sections 6a and 6b)."""
    raw = pd.read_csv(directory / "listed_issuers_formd_filings_2008-10_2025-08.csv.gz",
                      dtype={"cik": str, "sic": str})
    companies = pd.read_csv(directory / "listed_issuers_companies_snapshot_2025-08-02.csv.gz",
                            dtype={"cik": str, "sic": str})
    return filings_from_csv(raw), companies


def linked_news(events: pd.DataFrame, links: pd.DataFrame, min_confidence: float = 0.9) -> pd.DataFrame:
    """``entity_id, available_time, tone`` of news events linked with at least ``min_confidence``
    (fuzzy and ambiguous-name links stay out of the features). ``available_time`` here is when the
    item became usable: the later of its publication and our first sight of it (``news_time``)."""
    strong = links[links["confidence"] >= min_confidence]
    ev = as_usable(events)[["source", "source_id", "available_time", "tone"]].astype({"source_id": str})
    return strong.merge(ev, on=["source", "source_id"])[["entity_id", "available_time", "tone"]]


def _seconds(times: pd.Series, ceil: bool) -> np.ndarray:
    """Whole seconds since the epoch. Event times are rounded *up*: the grid is whole seconds, so
    ``ceil(t) <= as_of`` holds exactly when ``t <= as_of`` (no sub-second look-ahead)."""
    ns = pd.DatetimeIndex(pd.to_datetime(times, utc=True)).as_unit("ns").asi8
    return (ns + (10**9 - 1 if ceil else 0)) // 10**9


class _Stream:
    """Events of many entities in one sorted array of keys ``entity_code << 32 | seconds``, so a
    single ``searchsorted`` answers "how many events of entity e at or before t" for every row."""

    def __init__(self, codes: np.ndarray, seconds: np.ndarray, **values: np.ndarray) -> None:
        if len(seconds) and (seconds.min() < 0 or seconds.max() >= 2**32):
            raise ValueError("event times must fall between 1970 and 2106 to pack into a 64-bit key")
        order = np.lexsort((seconds, codes))
        self.keys = (codes[order].astype(np.int64) << 32) | seconds[order].astype(np.int64)
        self.sec = seconds[order].astype(np.int64)
        self.values = {k: np.asarray(v, dtype=float)[order] for k, v in values.items()}

    def upto(self, codes: np.ndarray, sec: np.ndarray) -> np.ndarray:
        """Position after the last event of each row's entity with time <= sec."""
        return np.searchsorted(self.keys, (codes.astype(np.int64) << 32) | sec.astype(np.int64), "right")

    def first(self, codes: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.keys, codes.astype(np.int64) << 32, "left")

    def window_sum(self, name: str, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        cum = np.concatenate([[0.0], np.cumsum(np.nan_to_num(self.values[name]))])
        return cum[hi] - cum[lo]


def _take(values: np.ndarray, pos: np.ndarray, mask: np.ndarray, fill: float) -> np.ndarray:
    """``values[pos]`` where ``mask``, else ``fill`` (positions under the mask are valid)."""
    out = np.full(len(pos), fill, dtype=float)
    out[mask] = values[pos[mask]]
    return out


def _exemption_flags(exemptions: pd.Series) -> dict[str, np.ndarray]:
    codes = exemptions.fillna("").astype(str).str.split(",").map(lambda c: {x.strip() for x in c} - {""})
    return {"b": codes.map(lambda c: bool(c & _506B)).to_numpy(float),
            "c": codes.map(lambda c: bool(c & _506C)).to_numpy(float),
            "o": codes.map(lambda c: bool(c - _506B - _506C)).to_numpy(float)}


def _grid(companies: pd.DataFrame, grid_start: pd.Timestamp, data_end: pd.Timestamp) -> pd.DataFrame:
    """Month starts from each entity's first covered month start to the last one before data_end."""
    months = pd.date_range(grid_start.ceil("D"), data_end - pd.Timedelta(seconds=1), freq="MS", tz="UTC")
    cover = companies.get("coverage_start", pd.Series(pd.NaT, index=companies.index))
    start = pd.to_datetime(cover, utc=True).fillna(grid_start).clip(lower=grid_start)
    first = months.searchsorted(pd.DatetimeIndex(start), "left")
    n = len(months) - first
    code = np.repeat(np.arange(len(companies)), n)
    pos = np.concatenate([np.arange(f, len(months)) for f in first]) if len(first) else np.array([], int)
    return pd.DataFrame({"code": code, "as_of": months[pos]})


def build_vc_frame(filings: pd.DataFrame, companies: pd.DataFrame, *, offerings: pd.DataFrame | None = None,
                   news: pd.DataFrame | None = None, horizon_days: int = HORIZON_DAYS,
                   grid_start: pd.Timestamp = GRID_START, data_end: pd.Timestamp = DATA_END) -> pd.DataFrame:
    """``entity_id, cik, as_of, *FEATURES, label`` -- one row per entity and month start.

    ``label`` is 1.0 if the entity files a new (non-amendment) Form D with available_time in
    ``(as_of, as_of + horizon_days]``, 0.0 if not, NaN when that window reaches ``data_end``.
    Companies without a CIK are skipped (every Form D filer has one); a company without a
    ``coverage_start`` is taken as covered from ``grid_start``.
    """
    comp = companies.assign(cik=companies["cik"].map(normalize_cik)).dropna(subset=["cik"])
    comp = comp.drop_duplicates("cik").sort_values("cik", kind="mergesort").reset_index(drop=True)
    code_of = pd.Series(np.arange(len(comp)), index=comp["cik"])
    f = filings.assign(cik=filings["cik"].map(normalize_cik))
    f = f[f["cik"].isin(code_of.index)].reset_index(drop=True)
    g = _grid(comp, grid_start, data_end)
    codes, t = g["code"].to_numpy(), _seconds(g["as_of"], ceil=False)

    f_codes, f_sec = code_of.loc[f["cik"]].to_numpy(), _seconds(f["available_time"], ceil=True)
    amend = f["is_amendment"].astype(bool).to_numpy()
    amounts = np.full(len(f), np.nan)
    if offerings is not None:
        amt = pd.to_numeric(offerings.set_index("accession_number")["total_offering_amount"], errors="coerce")
        amounts = f["accession_number"].map(amt[~amt.index.duplicated()]).to_numpy(float)
        amounts = np.where(amounts > 0, amounts, np.nan)  # "Indefinite", 0, no document: unknown, never 0
    new = _Stream(f_codes[~amend], f_sec[~amend], amount=amounts[~amend])
    allf = _Stream(f_codes, f_sec, amend=amend, **_exemption_flags(f["exemptions"]))

    lo, le = new.first(codes), new.upto(codes, t)
    n_new = le - lo
    has = n_new > 0
    last, first = _take(new.sec, le - 1, has, 0), _take(new.sec, lo, has, 0)
    a_lo, a_le = allf.first(codes), allf.upto(codes, t)
    n_all = (a_le - a_lo).astype(float)
    share = {k: np.where(n_all > 0, allf.window_sum(k, a_lo, a_le) / np.maximum(n_all, 1), np.nan)
             for k in "bco"}
    last_amount = _take(new.values["amount"], le - 1, has, np.nan)

    out = pd.DataFrame({
        "entity_id": comp["cik"].map(make_entity_id).to_numpy()[codes],
        "cik": comp["cik"].to_numpy()[codes], "as_of": g["as_of"].to_numpy(),
        "n_raises_total": n_new, "n_amendments_total": allf.window_sum("amend", a_lo, a_le).astype(int),
        "n_raises_365d": le - new.upto(codes, t - 365 * _DAY),
        "days_since_last_raise": np.where(has, (t - last) / _DAY, np.nan),
        "raise_cadence_days": np.where(n_new >= 2, (last - first) / _DAY / np.maximum(n_new - 1, 1), np.nan),
        "share_506b": share["b"], "share_506c": share["c"], "share_other_exemption": share["o"],
    })
    out = out.assign(**_news_features(news, code_of, comp, codes, t))
    out["last_offering_amount"] = last_amount
    out["log_last_offering_amount"] = np.log(last_amount)
    horizon = horizon_days * _DAY
    raised = new.upto(codes, t + horizon) - le > 0
    known = t + horizon < _seconds(pd.Series([data_end]), ceil=False)[0]
    out["label"] = np.where(known, raised.astype(float), np.nan)
    return out[["entity_id", "cik", "as_of", *FEATURES, "label"]]


def _news_features(news: pd.DataFrame | None, code_of: pd.Series, comp: pd.DataFrame,
                   codes: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
    """Mention counts and mean tone over 30/90 days. All NaN without a news feed, and where the
    window starts before the feed's first item (no coverage is not "no news"); the tone is also
    NaN where the window holds no toned mention."""
    cols = {f"news_{k}_{w}d": np.full(len(codes), np.nan) for k in ("mentions", "tone") for w in (30, 90)}
    if news is None or len(news) == 0:
        return cols
    eid_code = pd.Series(code_of.to_numpy(), index=comp["cik"].map(make_entity_id).to_numpy())
    nw = news[news["entity_id"].isin(eid_code.index)]
    tone = pd.to_numeric(nw["tone"], errors="coerce").to_numpy(float)
    s = _Stream(eid_code.loc[nw["entity_id"]].to_numpy(), _seconds(nw["available_time"], ceil=True),
                one=np.ones(len(nw)), tone=tone, toned=np.isfinite(tone).astype(float))
    feed_start = _seconds(news["available_time"], ceil=True).min()
    hi = s.upto(codes, t)
    for w in (30, 90):
        lo = s.upto(codes, t - w * _DAY)
        covered, n_toned = t - w * _DAY >= feed_start, s.window_sum("toned", lo, hi)
        cols[f"news_mentions_{w}d"] = np.where(covered, s.window_sum("one", lo, hi), np.nan)
        mean_tone = s.window_sum("tone", lo, hi) / np.maximum(n_toned, 1)
        cols[f"news_tone_{w}d"] = np.where(covered & (n_toned > 0), mean_tone, np.nan)
    return cols
