"""CryptoPanic (cryptopanic.com) news posts as canonical events: the live API and a bundled replay.

Wire format (``GET {base}/posts/?auth_token=...&public=true&currencies=BTC,ETH,SOL&kind=news``):
``{"count", "next", "previous", "results": [post, ...]}``, newest first, ``next`` the absolute URL of
the next (older) page or null. A post carries ``kind, domain, source {title, region, domain, path},
title, published_at, slug, id, url, created_at, votes {positive, negative, important, liked, ...},
currencies [{code, title, slug, url}]``. The token is the user's (``OMNIWATCH_CRYPTOPANIC_TOKEN``);
it travels only as the ``auth_token`` query parameter and every URL we log or raise is redacted.

Rows: ``source_id`` is the post id; ``event_time`` is ``published_at``; ``available_time`` is
``published_at`` capped at the fetch time (as for RSS); ``tone`` is VADER's compound score of the
headline (:func:`omniwatch.connectors.tone.tone`, [-1, 1]). CryptoPanic's community votes are a
second figure in the payload: ``votes_tone = (positive - negative) / (positive + negative)`` in
[-1, 1], None without votes. ``payload['symbols']`` are the post's currency codes that are liquid
track symbols (CryptoPanic's codes are the tickers: ``BTC`` is BTC); every code stays in
``payload['currencies']``.

Replay reads the bundled CC0 headline set (``omniwatch/sample/news``, see its PROVENANCE) by turning
each row into the post the API would have sent, then through the same parser. The set has no fetch
time of its own, so first sight is the publication time (the collector's times were checked as
publication times; a poller sees a post within minutes).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pandas as pd

from omniwatch.frames import EVENT_COLUMNS, conform, empty_frame

from .gdelt import Reject
from .http import HttpClient, MalformedPayloadError, load_payload, redact_url, utc_timestamp
from .replay import ReplayResult
from .tone import plain_text, tone

log = logging.getLogger(__name__)

SOURCE = "cryptopanic"
BASE_URL = "https://cryptopanic.com/api/developer/v2"
POSTS_PATH = "/posts/"
DEFAULT_CURRENCIES: tuple[str, ...] = ("BTC", "ETH", "SOL")
SAMPLE_FILE = (Path(__file__).resolve().parents[1] / "sample" / "news"
               / "cryptopanic_btc_eth_sol_2024-04-16_2025-09-26.csv.gz")
# ``https://cryptopanic.com/news/{id}/{slug}``, sometimes with a currency slug before the id.
_ITEM_URL = re.compile(r"^https?://cryptopanic\.com/news/(?:[a-z][a-z0-9-]*/)?(\d+)(?:/([^/?#]*))?(?:[?#].*)?$")
_SECRET = "auth_token"


def votes_tone(votes: Mapping[str, Any] | None) -> float | None:
    """``(positive - negative) / (positive + negative)`` of CryptoPanic's community votes, in
    [-1, 1]; None without votes (no votes dict, or no positive or negative vote cast)."""
    if not votes:
        return None
    positive, negative = float(votes.get("positive") or 0), float(votes.get("negative") or 0)
    total = positive + negative
    return (positive - negative) / total if total > 0 else None


def _codes(post: Mapping[str, Any]) -> list[str]:
    currencies = post.get("currencies") or []
    if not isinstance(currencies, list):
        raise ValueError(f"currencies is not a list: {currencies!r:.40}")
    codes = [str(c.get("code", "")).upper() if isinstance(c, Mapping) else str(c).upper()
             for c in currencies]
    return [c for c in dict.fromkeys(codes) if c]


def _parse_post(post: Any, fetched: pd.Timestamp | None, symbols: Sequence[str]) -> dict[str, Any]:
    """One API post -> an event record; ValueError (with a reason) when it is unusable."""
    if not isinstance(post, Mapping):
        raise ValueError(f"post is not an object: {post!r:.40}")
    post_id = post.get("id")
    if isinstance(post_id, bool) or not str(post_id).isdigit():
        raise ValueError(f"id {post_id!r:.30} is not a number")
    title = plain_text(post.get("title"))
    if not title:
        raise ValueError("empty title")
    try:
        published = utc_timestamp(post.get("published_at"))
    except (TypeError, ValueError):
        raise ValueError(f"published_at {post.get('published_at')!r:.40} is not a timestamp") from None
    if pd.isna(published):
        raise ValueError("published_at is missing")
    codes = _codes(post)
    raw_source, raw_votes = post.get("source"), post.get("votes")
    source: Mapping[str, Any] = raw_source if isinstance(raw_source, Mapping) else {}
    votes: Mapping[str, Any] | None = raw_votes if isinstance(raw_votes, Mapping) else None
    seen = published if fetched is None else fetched
    return {
        "source_id": str(post_id), "event_type": "news", "title": title, "body": None,
        "url": post.get("url") or post.get("original_url") or None,
        "event_time": published, "available_time": min(published, seen), "tone": tone(title),
        "payload": {
            "cryptopanic_id": int(str(post_id)), "kind": post.get("kind"), "domain": post.get("domain"),
            "source_title": source.get("title") or None, "source_domain": source.get("domain"),
            "slug": post.get("slug"), "created_at": post.get("created_at"),
            "currencies": codes, "symbols": [c for c in codes if c in symbols],
            "votes": dict(votes) if votes is not None else None, "votes_tone": votes_tone(votes),
            "tone_basis": "vader_compound_title", "fetched_at": seen.isoformat(),
        },
    }


def parse_posts(payload: Any, *, fetched_at: Any = None, symbols: Sequence[str] = DEFAULT_CURRENCIES,
                track: str = "liquid", where: str = "posts") -> tuple[pd.DataFrame, list[Reject]]:
    """A posts response (decoded JSON or its text) -> ``(EVENT_COLUMNS frame, rejects)``.

    A post without a numeric id, a title or a parseable ``published_at`` is skipped and returned
    as a ``Reject`` (``line`` = its 1-based place in ``results``); a repeated id keeps the first.
    ``fetched_at`` None (a recording) makes each post's first sight its publication time.
    MalformedPayloadError when the document has no ``results`` list.
    """
    data = load_payload(payload)
    results = data.get("results") if isinstance(data, Mapping) else None
    if not isinstance(results, list):
        raise MalformedPayloadError(f"{where}: expected an object with a 'results' list",
                                    field="results", body=str(data)[:200])
    fetched = None if fetched_at is None else utc_timestamp(fetched_at)
    records, rejects, seen = [], [], set()
    for number, post in enumerate(results, start=1):
        try:
            record = _parse_post(post, fetched, symbols)
            if record["source_id"] in seen:
                raise ValueError(f"duplicate id {record['source_id']}")
        except ValueError as exc:
            excerpt = str(post.get("title", "") if isinstance(post, Mapping) else post)[:120]
            rejects.append(Reject(where, str(exc), number, excerpt))
            continue
        seen.add(record["source_id"])
        records.append(record)
    if rejects:
        log.warning("cryptopanic %s: skipped %d post(s), first: #%s %s", where, len(rejects),
                    rejects[0].line, rejects[0].reason)
    if not records:
        return empty_frame(EVENT_COLUMNS), rejects
    frame = pd.DataFrame.from_records(records).assign(source=SOURCE, track=track)
    frame["tone"] = frame["tone"].astype("float64")
    return conform(frame, EVENT_COLUMNS), rejects


def redact_token(url: str) -> str:
    """``url`` with ``auth_token`` (and every other secret-looking parameter) replaced by ``***``."""
    parts = urlsplit(redact_url(url))
    if not parts.query:
        return urlunsplit(parts)
    query = [(k, "***" if k.lower() == _SECRET else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(query, safe=",:*")))


class CryptoPanicClient(HttpClient):
    """Reads the posts endpoint page by page (newest first) with the user's token.

    The house client's retries (429 honouring ``Retry-After``, 5xx, timeouts) and rate limit
    apply; the default pace of one request per second stays inside CryptoPanic's per-second
    limits on every plan (the monthly quota is the binding one: ``max_pages`` bounds a call).
    """

    def __init__(self, auth_token: str, base_url: str = BASE_URL, *,
                 currencies: Iterable[str] = DEFAULT_CURRENCIES, symbols: Sequence[str] | None = None,
                 kind: str | None = "news", max_pages: int = 5, requests_per_second: float | None = 1.0,
                 track: str = "liquid", **http_kwargs: Any) -> None:
        if not auth_token:
            raise ValueError("CryptoPanic needs an auth token (OMNIWATCH_CRYPTOPANIC_TOKEN)")
        super().__init__(base_url, requests_per_second=requests_per_second, **http_kwargs)
        self._token = auth_token
        self.currencies = [c.upper() for c in currencies]
        self.symbols = list(symbols) if symbols is not None else list(self.currencies)
        self.kind = kind
        self.max_pages = max_pages
        self.track = track

    def __enter__(self) -> CryptoPanicClient:
        return self

    def __repr__(self) -> str:  # never the token
        return f"CryptoPanicClient(base_url={self.base_url!r}, currencies={self.currencies!r})"

    def _display_url(self, path: str, params: Mapping[str, Any] | None) -> str:
        return redact_token(super()._display_url(path, params))

    def _params(self) -> dict[str, Any]:
        params = {"auth_token": self._token, "public": "true", "currencies": ",".join(self.currencies)}
        return params | ({"kind": self.kind} if self.kind else {})

    def fetch_page(self, url: str | None = None) -> tuple[pd.DataFrame, list[Reject], str | None]:
        """One page (the first without ``url``; else a ``next`` URL): rows, rejects, next URL."""
        if url is None:
            payload, _ = self.get_json(POSTS_PATH, self._params())
        else:
            # ``next`` already carries every parameter (the token included); never log it raw.
            payload, _ = self.get_json(url)
        where = redact_token(url or f"{self.base_url}{POSTS_PATH}")
        frame, rejects = parse_posts(payload, fetched_at=self.now(), symbols=self.symbols,
                                     track=self.track, where=where)
        next_url = payload.get("next") if isinstance(payload, Mapping) else None
        return frame, rejects, next_url if isinstance(next_url, str) and next_url else None

    def fetch_window(self, start: Any, end: Any) -> tuple[pd.DataFrame, list[Reject]]:
        """Posts published in ``[start, end)``: pages until one reaches before ``start``, the
        API has no older page, or ``max_pages`` were read (a Reject then says the window may be
        incomplete)."""
        start, end = utc_timestamp(start), utc_timestamp(end)
        frames, rejects, url = [], [], None
        for page in range(1, self.max_pages + 1):
            frame, page_rejects, url = self.fetch_page(url)
            frames.append(frame)
            rejects.extend(page_rejects)
            if url is None or frame.empty or frame["event_time"].min() < start:
                break
            if page == self.max_pages:
                rejects.append(Reject(redact_token(url), f"stopped after {self.max_pages} pages; "
                                      f"posts before {frame['event_time'].min().isoformat()} not read"))
        frames = [f for f in frames if not f.empty]
        if not frames:
            return empty_frame(EVENT_COLUMNS), rejects
        frame = pd.concat(frames, ignore_index=True).drop_duplicates("source_id")
        frame = frame[(frame["available_time"] >= start) & (frame["available_time"] < end)]
        return conform(frame.sort_values(["available_time", "source_id"]), EVENT_COLUMNS), rejects


# ----------------------------------------------------------------------------- replay
def _optional_count(value: str) -> int | None:
    if value is None or str(value).strip() == "":
        return None
    number = float(value)
    if not math.isfinite(number) or number < 0 or number != int(number):
        raise ValueError(f"vote count {value!r} is not a whole number")
    return int(number)


def recorded_post(row: Mapping[str, str]) -> dict[str, Any]:
    """One row of the bundled headline set as the API post it records (ValueError if unusable).

    Only what the set holds is filled: id and slug from the item URL, ``source.title``, coin codes,
    and ``votes`` only where votes were recorded (absent, not zero, elsewhere).
    """
    match = _ITEM_URL.match(str(row.get("url") or ""))
    if not match:
        raise ValueError(f"url {row.get('url')!r:.60} is not a cryptopanic.com item URL")
    post: dict[str, Any] = {
        "kind": "news", "source": {"title": row.get("source") or None}, "title": row.get("title"),
        "published_at": row.get("published_utc"), "slug": match.group(2) or None,
        "id": int(match.group(1)), "url": row.get("url"),
        "currencies": [{"code": c} for c in str(row.get("coins") or "").split(";") if c],
    }
    positive, negative = _optional_count(row.get("votes_positive", "")), _optional_count(row.get("votes_negative", ""))
    if positive is not None or negative is not None:
        post["votes"] = {"positive": positive or 0, "negative": negative or 0}
    return post


def load_recorded(path: Path | str, *, symbols: Sequence[str] = DEFAULT_CURRENCIES,
                  track: str = "liquid") -> tuple[pd.DataFrame, list[str]]:
    """The whole recorded headline file (csv or csv.gz) as events, plus notes on what was skipped."""
    path = Path(path)
    rows = pd.read_csv(path, dtype=str, keep_default_na=False).to_dict("records")
    posts, notes, bad = [], [], []
    selected: dict[str, str | None] = {}  # post id -> ``match`` (how the set selected the row)
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        try:
            post = recorded_post(row)
        except ValueError as exc:
            bad.append(f"line {number}: {exc}")
            continue
        posts.append(post)
        selected.setdefault(str(post["id"]), row.get("match") or None)
    frame, rejects = parse_posts({"results": posts}, symbols=symbols, track=track, where=path.name)
    if len(frame):
        frame["payload"] = [{**p, "match": selected.get(sid)}
                            for p, sid in zip(frame["payload"], frame["source_id"], strict=True)]
    if bad:
        notes.append(f"CryptoPanic {path.name}: {len(bad)} row(s) skipped, first {bad[0]}")
    duplicates = [r for r in rejects if r.reason.startswith("duplicate id")]
    if duplicates:
        notes.append(f"CryptoPanic {path.name}: {len(duplicates)} row(s) repeat an earlier row's post id "
                     f"(whitespace variants, or ids the upstream conversion reused); the first kept")
    others = [r for r in rejects if not r.reason.startswith("duplicate id")]
    notes += [f"CryptoPanic {path.name}: row {r.line} rejected: {r.reason}" for r in others[:5]]
    if len(frame):
        notes.append(f"CryptoPanic {path.name}: {len(frame)} headlines "
                     f"{frame['available_time'].min():%Y-%m-%d} .. {frame['available_time'].max():%Y-%m-%d}, "
                     f"a popularity-biased sample of BTC/ETH/SOL items, not every post")
    return frame, notes


_LOADED: dict[tuple[str, int, int, tuple[str, ...], str], tuple[pd.DataFrame, list[str]]] = {}


class CryptoPanicReplay:
    """The recorded headline file, parsed once per process, filtered per window."""

    def __init__(self, path: Path | str = SAMPLE_FILE, *, symbols: Sequence[str] = DEFAULT_CURRENCIES,
                 track: str = "liquid") -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"CryptoPanic replay file {self.path} does not exist")
        self.symbols, self.track = tuple(symbols), track

    def _all(self) -> tuple[pd.DataFrame, list[str]]:
        stat = self.path.stat()
        key = (str(self.path.resolve()), stat.st_size, stat.st_mtime_ns, self.symbols, self.track)
        if key not in _LOADED:
            _LOADED.clear()  # one recording at a time: the bundled one is ~25,000 rows
            _LOADED[key] = load_recorded(self.path, symbols=self.symbols, track=self.track)
        return _LOADED[key]

    def window(self, start: Any, end: Any) -> ReplayResult:
        """Posts with ``available_time`` in ``[start, end)`` (payload dicts shared: read-only)."""
        frame, notes = self._all()
        start, end = utc_timestamp(start), utc_timestamp(end)
        keep = (frame["available_time"] >= start) & (frame["available_time"] < end)
        return ReplayResult(conform(frame[keep], EVENT_COLUMNS), list(notes))
