"""RSS 2.0 / Atom news feeds (via feedparser) as canonical events.

``parse_feed`` is pure (bytes in, frame and rejects out) so the replay source can feed it recorded
files. ``RssClient.fetch_all`` fetches every configured feed concurrently; one feed that times out
or fails never sinks the batch: its ``FeedStatus`` says why and the other feeds' events are kept.
The same story syndicated in two feeds (same canonical link or guid) becomes one event whose
payload lists both feeds.
"""

from __future__ import annotations

import calendar
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import feedparser
import pandas as pd

from omniwatch.frames import EVENT_COLUMNS, conform, empty_frame

from .gdelt import Reject
from .http import ConnectorError, HttpClient, MalformedPayloadError, utc_timestamp
from .tone import plain_text, tone

log = logging.getLogger(__name__)

SOURCE = "rss"
# Crypto news (liquid track) from the recorded fixtures, plus venture news (vc track).
DEFAULT_FEEDS: dict[str, str] = {
    "coindesk": "https://www.coindesk.com/arc/outboundfeeds/rss",
    "cointelegraph": "https://cointelegraph.com/rss",
    "techcrunch_venture": "https://techcrunch.com/category/venture/feed/",
    "crunchbase_news": "https://news.crunchbase.com/feed/",
}
DEFAULT_FEED_TRACKS: dict[str, str] = {
    "coindesk": "liquid", "cointelegraph": "liquid",
    "techcrunch_venture": "vc", "crunchbase_news": "vc",
}
_ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
# Tracking parameters that differ between syndications of one story and say nothing about it.
_TRACKING_PREFIXES = ("utm_",)
_TRACKING_PARAMS = frozenset({"ref", "mod", "cmpid", "fbclid", "gclid"})
# An empty <dc:description/> after <description> (CoinDesk sends both) makes feedparser overwrite
# the real summary with "", so empty description elements are dropped before parsing.
_EMPTY_DESCRIPTION = re.compile(
    rb"<(?:[\w.-]+:)?description\s*/>|<((?:[\w.-]+:)?description)\s*>\s*</\1\s*>")


@dataclass
class FeedStatus:
    """How one feed fared in a batch: ``ok`` False means ``error`` says why (timeout, HTTP, XML)."""

    feed: str
    url: str
    ok: bool
    events: int = 0
    rejects: list[Reject] = field(default_factory=list)
    error: str | None = None


def canonical_link(link: str | None) -> str | None:
    """``link`` without tracking parameters, fragment or trailing slash; host lower-cased."""
    if not link:
        return None
    parts = urlsplit(link.strip())
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not k.lower().startswith(_TRACKING_PREFIXES) and k.lower() not in _TRACKING_PARAMS]
    path = parts.path.rstrip("/") or "/"
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, urlencode(query), ""))


def _entry_time(entry: Any) -> tuple[pd.Timestamp | None, str | None]:
    # feedparser normalises every date format it knows to a UTC struct_time.
    for key in ("published", "updated"):
        parsed = entry.get(f"{key}_parsed")
        if parsed:
            return pd.Timestamp(calendar.timegm(parsed), unit="s", tz="UTC"), key
    return None, None


def _feed_time(parsed: Any) -> pd.Timestamp | None:
    """The channel's own build time (``lastBuildDate`` / Atom ``updated``), if any."""
    stamp = parsed.feed.get("updated_parsed") or parsed.feed.get("published_parsed")
    return pd.Timestamp(calendar.timegm(stamp), unit="s", tz="UTC") if stamp else None


def _parse(content: bytes | str, where: str) -> Any:
    # Always hand feedparser bytes: given a str it may treat it as a URL or path and fetch it.
    raw = content.encode("utf-8") if isinstance(content, str) else bytes(content)
    parsed = feedparser.parse(_EMPTY_DESCRIPTION.sub(b"", raw))
    if not parsed.version and not parsed.entries:
        reason = parsed.get("bozo_exception") or "no RSS or Atom root element"
        raise MalformedPayloadError(f"{where}: not an RSS/Atom feed ({reason})", body=raw[:200])
    if parsed.bozo:
        log.warning("feed %s parsed leniently: %s", where, parsed.get("bozo_exception"))
    return parsed


def parse_feed(content: bytes | str, feed_name: str, fetched_at: Any, *, track: str = "liquid",
               source: str = SOURCE) -> tuple[pd.DataFrame, list[Reject]]:
    """One feed document -> ``(EVENT_COLUMNS frame, rejects)``.

    ``source_id`` is the entry guid/id (fallback: link). ``event_time`` = ``available_time`` = the
    entry's published (else updated) time, except that ``available_time`` is capped at
    ``fetched_at``: an item stamped in the future was still only seen when fetched.
    ``payload['fetched_at']`` records this fetch; the write path keeps the earliest one as the
    event's ``first_seen_at``, and features use the later of it and ``available_time``, because an
    item published at 09:00 that we first fetched at 17:00 could not be used before 17:00. Entries with
    an empty title, no parseable date, or neither id nor link are rejected. ``tone`` is VADER's
    compound score of title + summary, in [-1, 1].
    """
    fetched = utc_timestamp(fetched_at)
    parsed = _parse(content, feed_name)
    feed_title = plain_text(parsed.feed.get("title")) or None
    records, rejects, seen = [], [], set()
    for number, entry in enumerate(parsed.entries, start=1):
        title = plain_text(entry.get("title"))
        link = entry.get("link") or None
        guid = entry.get("id") or link
        published, time_field = _entry_time(entry)
        problem = ("empty title" if not title else "no parseable published/updated date"
                   if published is None else "neither guid/id nor link" if not guid else None)
        if problem:
            rejects.append(Reject(feed_name, problem, number, title or str(guid or "")[:120]))
            continue
        key = canonical_link(link) or guid
        if key in seen:  # a feed repeating an item adds nothing
            continue
        seen.add(key)
        summary = plain_text(entry.get("summary"))
        records.append({
            "source_id": guid, "event_type": "news", "title": title, "body": summary or None,
            "url": link, "event_time": published, "available_time": min(published, fetched),
            "tone": tone(f"{title}. {summary}" if summary else title),
            "payload": {
                "feed": feed_name, "feeds": [feed_name], "feed_title": feed_title, "guid": guid,
                "link": link, "dedup_key": key, "time_field": time_field,
                "authors": [a.get("name") for a in entry.get("authors", []) if a.get("name")],
                "categories": [t.get("term") for t in entry.get("tags", []) if t.get("term")],
                "fetched_at": fetched.isoformat(),
            },
        })
    if rejects:
        log.warning("feed %s: rejected %d entr(y/ies): %s", feed_name, len(rejects),
                    "; ".join(f"#{r.line} {r.reason}" for r in rejects))
    if not records:
        return empty_frame(EVENT_COLUMNS), rejects
    frame = pd.DataFrame.from_records(records).assign(source=source, track=track)
    return conform(frame, EVENT_COLUMNS), rejects


def feed_build_time(content: bytes | str) -> pd.Timestamp | None:
    """A recorded feed's channel build time: the best stand-in for "fetched at" when replaying."""
    return _feed_time(_parse(content, "feed"))


def dedupe_events(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per story across feeds (by ``payload['dedup_key']``), first feed's row kept.

    The kept row's payload lists every feed that carried the story, and its ``available_time``
    and ``payload['fetched_at']`` are the earliest of the copies (the story was knowable, and
    seen, once any feed had it).
    """
    if frame.empty:
        return frame
    feeds: dict[str, list[str]] = {}
    earliest: dict[str, pd.Timestamp] = {}
    fetched: dict[str, str | None] = {}
    keep: list[int] = []
    for i, (payload, sid, available) in enumerate(
            zip(frame["payload"], frame["source_id"], frame["available_time"], strict=True)):
        key = payload.get("dedup_key") or sid
        seen = payload.get("fetched_at")
        if key not in feeds:
            feeds[key], earliest[key], fetched[key] = [], available, seen
            keep.append(i)
        feeds[key].extend(f for f in payload.get("feeds", [payload.get("feed")])
                          if f not in feeds[key])
        earliest[key] = min(earliest[key], available)
        if seen is not None and (fetched[key] is None or utc_timestamp(seen) < utc_timestamp(fetched[key])):
            fetched[key] = seen
    first = frame.iloc[keep].copy()
    keys = [p.get("dedup_key") or sid for p, sid in zip(first["payload"], first["source_id"], strict=True)]
    first["payload"] = [{**p, "feeds": feeds[k], "fetched_at": fetched[k]}
                        for p, k in zip(first["payload"], keys, strict=True)]
    first["available_time"] = [earliest[k] for k in keys]
    first = first.drop_duplicates("source_id")  # two stories may still share a guid
    return conform(first.sort_values(["available_time", "source_id"]), EVENT_COLUMNS)


class RssClient(HttpClient):
    """Fetches a set of named feeds; ``fetch_all`` returns events plus one status per feed."""

    def __init__(self, feeds: dict[str, str] | None = None, timeout: float = 10.0, *,
                 tracks: dict[str, str] | None = None, source: str = SOURCE,
                 max_retries: int = 1, max_workers: int = 8, **http_kwargs: Any) -> None:
        headers = {"Accept": _ACCEPT, **http_kwargs.pop("headers", {})}
        # Feeds live on different hosts, so there is no base URL: every GET is absolute.
        super().__init__("", timeout=timeout, max_retries=max_retries, headers=headers,
                         **http_kwargs)
        self.feeds = dict(DEFAULT_FEEDS if feeds is None else feeds)
        self.tracks = {**DEFAULT_FEED_TRACKS, **(tracks or {})}
        self.source = source
        self.max_workers = max_workers

    def fetch_feed(self, name: str) -> tuple[pd.DataFrame, list[Reject]]:
        """One configured feed's events (raises ConnectorError / MalformedPayloadError)."""
        response = self.get(self.feeds[name])
        return parse_feed(response.content, name, self.now(), track=self.tracks.get(name, "liquid"),
                          source=self.source)

    def _fetch_status(self, name: str) -> tuple[pd.DataFrame | None, FeedStatus]:
        url = self.feeds[name]
        try:
            frame, rejects = self.fetch_feed(name)
        except ConnectorError as exc:  # timeouts, HTTP errors, unparseable documents
            log.warning("feed %s failed: %s", name, exc)
            return None, FeedStatus(name, url, False, error=f"{type(exc).__name__}: {exc}")
        return frame, FeedStatus(name, url, True, events=len(frame), rejects=rejects)

    def fetch_all(self) -> tuple[pd.DataFrame, list[FeedStatus]]:
        """Every configured feed, concurrently; ``(deduplicated events, statuses in config order)``."""
        names = list(self.feeds)
        if not names:
            return empty_frame(EVENT_COLUMNS), []
        with ThreadPoolExecutor(max_workers=min(self.max_workers, len(names))) as pool:
            results = list(pool.map(self._fetch_status, names))  # map keeps config order
        frames = [f for f, _ in results if f is not None and not f.empty]
        statuses = [s for _, s in results]
        if not frames:
            return empty_frame(EVENT_COLUMNS), statuses
        return dedupe_events(pd.concat(frames, ignore_index=True)), statuses
