"""Entity resolution for the vc track: company names, tickers and SEC CIKs -> one ``entity_id``.

Entities come from the EDGAR company snapshot (one row per CIK); events are linked to them by:

* CIK (1.0, "cik"): the SEC's own identifier, authoritative whenever an event carries it;
* ticker (0.95, "ticker"): exact, case-insensitive;
* normalized name or alias (0.9, "name"; split evenly when several entities share the name);
* fuzzy name (similarity * 0.8, "fuzzy"): only above a high threshold and only when every token
  lines up, so "Apple" never becomes "Apple Hospitality REIT".
Deterministic: same input, same output, ties ordered by ``entity_id``.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable
from typing import Any, NamedTuple

import pandas as pd
from rapidfuzz import fuzz, process

# Trailing tokens that name a legal form (or a listing wrapper such as ADR), not the business:
# "Femasys Inc" and "FEMASYS INCORPORATED" are one company. "holdings"/"holding" and "labs" are
# dropped too (requested). Kept, because they carry meaning (measured on the 7,876-name snapshot,
# where the list below leaves 10 shared names): "group" (+6 shared names: "Target", "Star", "NN"),
# "bancorp" (+1: "First"), "international" (+1), "technologies" (+0 shared, but 268 names would
# shrink to words such as "Tat", "Greenway" or "Forum Energy" that match unrelated news text).
LEGAL_SUFFIXES = frozenset(
    "inc incorporated corp corporation co cos company ltd limited llc llp lllp lp plc ag sa nv bv gmbh "
    "se spa sarl srl ab as asa oyj kk pte pty bhd tbk ltda sab cv adr ads holdings holding labs".split())
# Dangling words left behind once a suffix goes ("Goldman Sachs & Co" -> "goldman sachs and").
_DANGLING = frozenset(("and", "de", "the"))
# EDGAR conformed names carry state/listing markers: "CORNING INC /NY", "FNB CORP/PA/", "X LTD/ADR".
_EDGAR_MARKER = re.compile(r"\s*[/\\]\s*[a-z]{2,4}\s*[/\\]?\s*$", re.IGNORECASE)
_FKA = re.compile(r"\((?:fka|f/k/a|formerly)\b[^)]*\)", re.IGNORECASE)
_A_S = re.compile(r"\b[aA]/[sS]\b")  # Danish/Norwegian "A/S" is one legal form, not two words
_INNER_DOT = re.compile(r"(?<=\w)\.(?=\w)")
_WORD = re.compile(r"[^\W_]+")
# Uppercase words that are tickers of some listed company but far more often plain acronyms in news
# ("AI" is C3.ai): they link only as "$AI" or "NYSE: AI".
COMMON_ACRONYMS = frozenset(
    "AI US USA UK EU UN CEO CFO CTO COO IPO ETF SEC FDA GDP NFT DAO API IT AM PM TV PR HR ESG FED "
    "CPI OK ON AT BE GO NOW ALL ARE CAN FOR NEW ONE OUT SO WELL BIG".split())
_TICKER_IN_TEXT = re.compile(r"(?<![\w.$-])(\$?)([A-Z][A-Z0-9]*(?:[.-][A-Z0-9]+)*)(?![\w-])")
_EXCHANGE = r"(?:NYSE(?: American)?|NASDAQ|Nasdaq|AMEX|OTC\w*|TSXV?|CBOE)\s*:\s*"
_EXCHANGE_PREFIX = re.compile(_EXCHANGE + "$")
_EXCHANGE_TAG = re.compile(r"\b" + _EXCHANGE)
_TICKER_SHAPE = re.compile(r"^[A-Z0-9][A-Z0-9.\-]{0,11}$")


ENTITY_COLUMNS = ["entity_id", "track", "name", "normalized_name", "cik", "ticker", "aliases",
                  "entity_type", "sic", "state", "coverage_start"]
LINK_COLUMNS = ["source", "source_id", "entity_id", "confidence", "method"]


class Link(NamedTuple):
    """One candidate entity for a mention, with how sure we are and which key matched."""
    entity_id: str
    confidence: float
    method: str


def _opt(value: Any) -> str | None:
    """``str(value)``, or None for None/NaN/NA (the frames mix all three for a missing value)."""
    missing = value is None or (not isinstance(value, (list, tuple, dict)) and pd.isna(value))
    return None if missing else str(value)


def _words(text: str, fold: bool = True) -> list[str]:
    """Word tokens shared by names and free text, so both sides normalise identically: accents
    stripped, "&" -> "and", "L.L.C." -> "llc", "Shepherd's" -> "shepherds"."""
    text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    text = _A_S.sub(" as ", text.replace("&", " and ").replace("'", "").replace("\u2019", ""))
    text = _INNER_DOT.sub("", text)
    return [w.casefold() if fold else w for w in _WORD.findall(text)]


def normalize_name(name: Any) -> str:
    """Casefolded company name without punctuation, legal-form suffixes or EDGAR markers.

    Suffixes are stripped only at the end (the "Co" of "Co-Diagnostics" stays) and never down to
    nothing ("Holdings Inc" keeps "holdings"); a leading "the" goes.
    """
    text = _FKA.sub(" ", _opt(name) or "")
    while (stripped := _EDGAR_MARKER.sub("", text)) != text:
        text = stripped
    tokens = _words(text)
    if len(tokens) > 1 and tokens[0] == "the":
        tokens = tokens[1:]
    while len(tokens) > 1 and (tokens[-1] in LEGAL_SUFFIXES or tokens[-1] in _DANGLING):
        tokens = tokens[:-1]
    return " ".join(tokens)


def normalize_cik(cik: Any) -> str | None:
    """10-digit zero-padded CIK string, or None for a missing/blank value."""
    digits = re.sub(r"\D", "", (_opt(cik) or "").split(".")[0])
    return digits.zfill(10) if digits else None


def make_entity_id(cik: Any = None, normalized_name: str = "") -> str:
    """"cik:0001339005" when a CIK is known, else "name:<normalized>" (hashed tail beyond 64 chars,
    the warehouse key width)."""
    if padded := normalize_cik(cik):
        return f"cik:{padded}"
    if not normalized_name:
        raise ValueError("an entity needs a CIK or a non-empty name")
    if len(eid := f"name:{normalized_name}") <= 64:
        return eid
    return f"name:{normalized_name[:45]}~{hashlib.sha1(normalized_name.encode()).hexdigest()[:12]}"


def _split_list(value: Any, sep: str) -> list[str]:
    items = value if isinstance(value, (list, tuple)) else (_opt(value) or "").split(sep)
    return [str(v).strip() for v in items if str(v).strip()]


def build_entities(companies: pd.DataFrame) -> pd.DataFrame:
    """Rows of the warehouse ``entities`` table from the EDGAR company snapshot.

    ``companies`` has ``cik, entity_name`` and optionally ``tickers`` (comma-separated), ``sic``,
    ``business_state``, ``entity_type``, ``coverage_start`` and ``former_names`` (list or
    ";"-separated). ``aliases`` = [raw name, tickers..., normalized former names...]; ``state`` is
    the business address state (where the company operates, not where it is incorporated).
    """
    rows = []
    for rec in companies.to_dict("records"):
        norm = normalize_name(rec.get("entity_name"))
        cik = normalize_cik(rec.get("cik"))
        tickers = _split_list(rec.get("tickers"), ",")
        former = [normalize_name(n) for n in _split_list(rec.get("former_names"), ";")]
        aliases = list(dict.fromkeys([str(rec.get("entity_name")), *tickers, *[f for f in former if f]]))
        rows.append({
            "entity_id": make_entity_id(cik, norm), "track": "vc", "name": str(rec.get("entity_name")),
            "normalized_name": norm, "cik": cik, "ticker": tickers[0] if tickers else None,
            "aliases": aliases, "entity_type": _opt(rec.get("entity_type")), "sic": _opt(rec.get("sic")),
            "state": _opt(rec.get("business_state", rec.get("state"))),
            "coverage_start": pd.to_datetime(rec.get("coverage_start"), utc=True),  # NaT if absent
        })
    out = pd.DataFrame(rows, columns=ENTITY_COLUMNS).astype({"coverage_start": "datetime64[ns, UTC]"})
    # A CIK listed twice keeps its first row in CIK/name order, so reruns agree.
    out = out.sort_values(["entity_id", "name"], kind="mergesort").drop_duplicates("entity_id")
    return out.reset_index(drop=True)


def _tokens_line_up(a: list[str], b: list[str], min_token_ratio: float) -> bool:
    """Same number of tokens and each pair equal or a near-spelling of a long word; numbers, roman
    numerals and short tokens must be equal ("Fund II" is not "Fund III")."""
    return len(a) == len(b) and all(
        x == y or (min(len(x), len(y)) >= 5 and not any(c.isdigit() for c in x + y)
                   and fuzz.ratio(x, y, score_cutoff=100 * min_token_ratio) > 0)
        for x, y in zip(a, b, strict=True))


class EntityIndex:
    """Lookup structures over an ``entities`` frame (as built by :func:`build_entities`)."""

    def __init__(self, entities: pd.DataFrame, fuzzy_threshold: float = 0.92,
                 fuzzy_token_ratio: float = 0.8) -> None:
        self.fuzzy_threshold, self.fuzzy_token_ratio = fuzzy_threshold, fuzzy_token_ratio
        self._by_cik: dict[str, str] = {}
        self._by_ticker: defaultdict[str, set[str]] = defaultdict(set)
        self._by_name: defaultdict[str, set[str]] = defaultdict(set)
        for rec in entities.to_dict("records"):
            eid, raw = rec["entity_id"], str(rec.get("name"))
            if cik := normalize_cik(rec.get("cik")):
                self._by_cik[cik] = eid
            names = {_opt(rec.get("normalized_name")) or normalize_name(raw)}
            tickers = {rec["ticker"]} if _opt(rec.get("ticker")) else set()
            aliases = rec.get("aliases")  # a list, or an array when read back from storage
            aliases = [] if isinstance(aliases, str) or not hasattr(aliases, "__iter__") else aliases
            for alias in map(str, aliases):
                # Tickers sit in the alias list as upper-case codes; names are the raw name or
                # lower-case normalized former names.
                if alias != raw and _TICKER_SHAPE.match(alias):
                    tickers.add(alias)
                else:
                    names.add(normalize_name(alias))
            for t in tickers:
                self._by_ticker[t.casefold()].add(eid)
            for n in names - {""}:
                self._by_name[n].add(eid)
        self._has_cik = set(self._by_cik.values())
        self._phrases = {tuple(n.split()): ids for n, ids in self._by_name.items()}
        self._prefixes = {p[:i] for p in self._phrases for i in range(1, len(p) + 1)}
        self._token_names: defaultdict[str, list[str]] = defaultdict(list)
        for n in sorted(self._by_name):
            for tok in set(n.split()):
                self._token_names[tok].append(n)

    def resolve(self, name: str | None = None, cik: Any = None, ticker: str | None = None) -> list[Link]:
        """Candidate entities, best first (confidence desc, then ``entity_id``).

        A known CIK answers alone. A CIK that is given but unknown rules out every entity with a
        (different) CIK. Fuzzy candidates are searched only when no exact name matched.
        """
        if (padded := normalize_cik(cik)) in self._by_cik:
            return [Link(self._by_cik[padded], 1.0, "cik")]
        allowed = (lambda e: e not in self._has_cik) if padded else (lambda e: True)
        best: dict[str, Link] = {}

        def offer(eids: set[str], conf: float, method: str) -> None:
            for eid in eids:
                if allowed(eid) and (eid not in best or conf > best[eid].confidence):
                    best[eid] = Link(eid, conf, method)

        if ticker:
            offer(self._by_ticker.get(str(ticker).strip().casefold(), set()), 0.95, "ticker")
        norm = normalize_name(name)
        if norm:
            exact = {e for e in self._by_name.get(norm, set()) if allowed(e)}
            if exact:
                offer(exact, 0.9 / len(exact), "name")
            else:
                for cand, sim in self._fuzzy(norm, allowed):
                    offer(self._by_name[cand], round(sim * 0.8, 6), "fuzzy")
        return sorted(best.values(), key=lambda lk: (-lk.confidence, lk.entity_id))

    def _fuzzy(self, norm: str, allowed: Callable[[str], bool]) -> list[tuple[str, float]]:
        tokens = norm.split()
        pool = sorted({c for t in tokens for c in self._token_names.get(t, [])})
        if not pool:  # a misspelt single word shares no token: compare against every name
            pool = sorted(self._by_name)
        candidates = [c for c in pool if any(allowed(e) for e in self._by_name[c])]
        out = [(c, 1.0) for c in candidates if c.replace(" ", "") == norm.replace(" ", "")]
        joined = {c for c, _ in out}  # "meta planet" vs "metaplanet": equal once spaces go
        # Indel similarity (rapidfuzz's ``fuzz.ratio``, 0-100), the one difflib's ratio
        # approximates; the cutoff lets rapidfuzz skip hopeless candidates early.
        for cand, score, _ in process.extract(norm, candidates, scorer=fuzz.ratio, limit=None,
                                              score_cutoff=100 * self.fuzzy_threshold):
            if cand not in joined and _tokens_line_up(tokens, cand.split(), self.fuzzy_token_ratio):
                out.append((cand, score / 100))
        return sorted(out)

    def find_in_text(self, text: str) -> list[Link]:
        """Entities mentioned in free text: known names/aliases as whole words (longest match wins,
        so "Apple Hospitality REIT" is not "Apple"), and tickers written in upper case.

        A one-word name must start with a capital letter in the text ("Block" the company, not "a
        block of shares"). Bare tickers need >= 2 characters, are skipped in ALL-CAPS text (every
        word there looks like a ticker) and for :data:`COMMON_ACRONYMS`, which count only as
        "$AI" or "NYSE: AI".
        """
        text, i = text if isinstance(text, str) else "", 0
        best: dict[str, Link] = {}
        # "(NASDAQ: FEMY)" names an exchange, not Nasdaq, Inc.
        raw = _words(_EXCHANGE_TAG.sub(" ", text), fold=False)
        folded = [w.casefold() for w in raw]
        while i < len(folded):
            match_len = 0
            for j in range(i + 1, len(folded) + 1):
                key = tuple(folded[i:j])
                if key not in self._prefixes:
                    break
                if key in self._phrases and (j - i > 1 or (raw[i][:1].isupper() and len(key[0]) >= 3)):
                    match_len = j - i
            eids = self._phrases[tuple(folded[i:i + match_len])] if match_len else set()
            for eid in eids:
                best.setdefault(eid, Link(eid, 0.9 / len(eids), "name"))
            i += max(match_len, 1)
        letters = [c for c in text if c.isalpha()]
        shouting = len(letters) > 12 and sum(c.isupper() for c in letters) / len(letters) > 0.6
        for m in _TICKER_IN_TEXT.finditer(text):
            sym = m.group(2)
            tagged = bool(m.group(1)) or bool(_EXCHANGE_PREFIX.search(text[max(0, m.start() - 16):m.start()]))
            if len(sym) < 2 or (not tagged and (shouting or sym in COMMON_ACRONYMS)):
                continue
            for eid in self._by_ticker.get(sym.casefold(), set()):
                best[eid] = Link(eid, 0.95, "ticker")
        return sorted(best.values(), key=lambda lk: (-lk.confidence, lk.entity_id))


def link_events(events: pd.DataFrame, index: EntityIndex) -> pd.DataFrame:
    """``event_links`` rows (source, source_id, entity_id, confidence, method) for events frames.

    An event whose payload carries a ``cik`` (EDGAR filings) is linked by CIK (falling back to
    its payload name among CIK-less entities); any other event (news) by scanning title + body.
    """
    rows = []
    for rec in events.to_dict("records"):
        payload = rec.get("payload")
        payload = json.loads(payload) if isinstance(payload, str) and payload.strip() else payload
        payload = payload if isinstance(payload, dict) else {}
        if normalize_cik(payload.get("cik")):
            name = payload.get("entity_name") or payload.get("name")
            links = index.resolve(name=name, cik=payload["cik"], ticker=payload.get("ticker"))
        else:
            text = " \n ".join(str(rec[c]) for c in ("title", "body") if isinstance(rec.get(c), str))
            links = index.find_in_text(text)
        rows += [(rec["source"], str(rec["source_id"]), *lk) for lk in links]
    out = pd.DataFrame(rows, columns=LINK_COLUMNS)
    # One link per (event, entity): the most confident one.
    out = out.sort_values(LINK_COLUMNS[:4], ascending=[True, True, True, False], kind="mergesort")
    out = out.drop_duplicates(LINK_COLUMNS[:3])
    return out.reset_index(drop=True)
