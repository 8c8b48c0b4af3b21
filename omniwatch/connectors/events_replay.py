"""The events replay source: news and filing events from a folder of recorded payloads.

Layout (the bundled ``omniwatch/sample/events`` is one; any folder with the same layout and
file formats replaces it):

* ``gdelt/{YYYYMMDDHHMMSS}.export*.CSV`` or ``.export.CSV.zip``: GDELT 2.0 events exports;
* ``rss/{feed}_rss_*.xml``: recorded RSS/Atom documents (the feed name is the part before ``_rss``);
* ``edgar/submissions/*.json``: ``data.sec.gov/submissions`` responses;
* ``edgar/primary_doc/*.xml``: Form D ``primary_doc.xml`` files (named with the accession
  number, ``D_0001140361-10-001434_*.xml``, where known);
* ``edgar/formd/listed_issuers_formd_filings_*.csv.gz`` and
  ``edgar/formd/listed_issuers_companies_snapshot_*.csv.gz``: the Form D filing and company tables.

Every window method filters on ``available_time`` in ``[start, end)`` and returns notes that say
what the folder lacks; nothing is invented to fill a gap.

First sight of a replayed news item (``payload['fetched_at']``, stored as ``first_seen_at``) is the
recording's own time, never the wall clock of the replay: an RSS capture's channel build time (its
items could not have been seen before the capture) and a GDELT export's ``DATEADDED`` (a poller
reads each 15-minute file when it appears). Replaying the same folder twice writes the same rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from omniwatch.frames import EVENT_COLUMNS, conform, empty_frame

from .edgar import FormD, parse_companies_csv, parse_form_d, parse_formd_filings_csv, parse_submissions
from .gdelt import parse_events_export, unzip_export
from .http import MalformedPayloadError, utc_timestamp
from .replay import ReplayResult
from .rss import DEFAULT_FEEDS, dedupe_events, feed_build_time, parse_feed

SAMPLE_EVENTS_DIR = Path(__file__).resolve().parents[1] / "sample" / "events"
_ACCESSION = re.compile(r"\d{10}-\d{2}-\d{6}")
# Parsed sources shared across instances (callers build one source per partition): keyed by the
# folder, the source and every file's name, size and mtime, so an edited folder is re-read.
_SHARED: dict[tuple, tuple[Any, list[str]]] = {}
_SHARED_MAX = 16


@dataclass
class FormDDocuments:
    """Parsed Form D documents keyed by accession number (file stem when the name has none)."""

    documents: dict[str, FormD]
    notes: list[str] = field(default_factory=list)


def _window(frame: pd.DataFrame, start: Any, end: Any) -> pd.DataFrame:
    start, end = utc_timestamp(start), utc_timestamp(end)
    keep = (frame["available_time"] >= start) & (frame["available_time"] < end)
    return conform(frame[keep], EVENT_COLUMNS)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else empty_frame(EVENT_COLUMNS)


class EventsReplaySource:
    """Reads a recorded events folder; parses each source once per process, then filters."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else SAMPLE_EVENTS_DIR
        if not self.root.is_dir():
            raise FileNotFoundError(f"events replay folder {self.root} does not exist")
        self._signature = tuple(sorted((str(p.relative_to(self.root)), p.stat().st_size,
                                        p.stat().st_mtime_ns)
                                       for p in self.root.rglob("*") if p.is_file()))

    def _cached(self, key: str, build: Callable[[], tuple[Any, list[str]]]) -> tuple[Any, list[str]]:
        # Window methods return filtered copies; payload dicts are shared: treat them as read-only.
        cache_key = (str(self.root.resolve()), key, self._signature)
        if cache_key not in _SHARED:
            if len(_SHARED) >= _SHARED_MAX:
                _SHARED.pop(next(iter(_SHARED)))  # drop the oldest entry
            _SHARED[cache_key] = build()
        return _SHARED[cache_key]

    def _files(self, folder: str, pattern: str) -> list[Path]:
        return sorted((self.root / folder).glob(pattern)) if (self.root / folder).is_dir() else []

    # -- GDELT -------------------------------------------------------------------------------
    def _load_gdelt(self) -> tuple[pd.DataFrame, list[str]]:
        files = self._files("gdelt", "*.export*.CSV") + self._files("gdelt", "*.export.CSV.zip")
        if not files:
            return empty_frame(EVENT_COLUMNS), [f"no GDELT export in {self.root / 'gdelt'}"]
        frames, notes = [], []
        for path in files:
            raw = path.read_bytes()
            text = unzip_export(raw, where=path.name) if path.suffix == ".zip" else raw
            frame, rejects = parse_events_export(text, where=path.name)
            frames.append(frame)
            if rejects:
                notes.append(f"GDELT {path.name}: {len(rejects)} malformed line(s) skipped, "
                             f"first line {rejects[0].line}: {rejects[0].reason}")
        frame = _concat(frames).drop_duplicates("source_id")
        slots = sorted({t.strftime("%Y-%m-%d %H:%M") for t in frame["available_time"]})
        notes.append(f"GDELT covers only the export slot(s) {', '.join(slots)} UTC "
                     f"({len(frame)} events); every other 15-minute slot is absent")
        return frame, notes

    def gdelt(self, start: Any, end: Any) -> ReplayResult:
        frame, notes = self._cached("gdelt", self._load_gdelt)
        return ReplayResult(_window(frame, start, end), list(notes))

    # -- RSS ---------------------------------------------------------------------------------
    def _load_rss(self) -> tuple[pd.DataFrame, list[str]]:
        files = self._files("rss", "*.xml")
        if not files:
            return empty_frame(EVENT_COLUMNS), [f"no recorded feed in {self.root / 'rss'}"]
        frames, notes, names = [], [], []
        for path in files:
            name = path.stem.split("_rss")[0]
            content = path.read_bytes()
            # A recording has no fetch time of its own; the channel's build time is the closest.
            fetched = feed_build_time(content)
            if fetched is None:
                notes.append(f"RSS {path.name}: no channel build time; skipped")
                continue
            frame, rejects = parse_feed(content, name, fetched)
            frames.append(frame)
            names.append(name)
            notes.append(f"RSS {name}: one capture at {fetched:%Y-%m-%d %H:%M} UTC, "
                         f"{len(frame)} item(s); no earlier or later items")
            notes += [f"RSS {name}: entry {r.line} rejected: {r.reason}" for r in rejects]
        missing = [n for n in DEFAULT_FEEDS if n not in names]
        if missing:
            notes.append(f"RSS: no recording of configured feed(s) {', '.join(missing)}")
        return dedupe_events(_concat(frames)), notes

    def rss(self, start: Any, end: Any) -> ReplayResult:
        frame, notes = self._cached("rss", self._load_rss)
        return ReplayResult(_window(frame, start, end), list(notes))

    # -- EDGAR -------------------------------------------------------------------------------
    def _table(self, prefix: str) -> Path | None:
        found = self._files("edgar/formd", f"{prefix}*.csv*")
        return found[-1] if found else None

    def _load_companies(self) -> tuple[pd.DataFrame, list[str]]:
        path = self._table("listed_issuers_companies_snapshot_")
        if path is None:
            return pd.DataFrame(), [f"no company snapshot in {self.root / 'edgar/formd'}"]
        frame = parse_companies_csv(path)
        return frame, [f"companies: {len(frame)} issuers listed in 2025 ({path.name}); before a "
                       f"company's coverage_start its Form D history was not read, so absence of "
                       f"filings there is unknown, not zero "
                       f"({int(frame['history_truncated'].sum())} have truncated history)"]

    def companies(self) -> ReplayResult:
        frame, notes = self._cached("companies", self._load_companies)
        return ReplayResult(frame.copy(), list(notes))

    def _load_filings(self) -> tuple[pd.DataFrame, list[str]]:
        frames, notes = [], []
        for path in self._files("edgar/submissions", "*.json"):
            company, frame = parse_submissions(path.read_bytes())
            frames.append(frame)
            truncated = "; older filings (filings.files pages) are not in the folder" \
                if company.history_truncated else ""
            notes.append(f"submissions {company.name} (CIK {company.cik}): {len(frame)} filings "
                         f"from {path.name}{truncated}")
        table = self._table("listed_issuers_formd_filings_")
        if table is None:
            notes.append(f"no Form D filing table in {self.root / 'edgar/formd'}")
        else:
            formd = parse_formd_filings_csv(table)
            companies, _ = self._cached("companies", self._load_companies)
            if not companies.empty:  # the table has no tickers; entity resolution wants them
                tickers = dict(zip(companies["cik"], companies["tickers"], strict=False))
                formd["payload"] = [{**p, "tickers": tickers.get(p["cik"], [])}
                                    for p in formd["payload"]]
            frames.append(formd)
            notes.append(f"Form D table {table.name}: {len(formd)} D and D/A filings of companies "
                         f"listed in 2025 only (no private-company population), 2008-10 to 2025-08")
        # Submissions come first: for the same accession they also carry primaryDocument.
        frame = _concat(frames)
        duplicates = int(frame["source_id"].duplicated().sum())
        frame = frame.drop_duplicates("source_id").sort_values(["available_time", "source_id"])
        if duplicates:
            notes.append(f"{duplicates} filing(s) present in both submissions and the Form D "
                         f"table were kept once")
        return conform(frame, EVENT_COLUMNS), notes

    def edgar_filings(self, start: Any, end: Any) -> ReplayResult:
        frame, notes = self._cached("filings", self._load_filings)
        return ReplayResult(_window(frame, start, end), list(notes))

    def form_d_documents(self) -> FormDDocuments:
        documents: dict[str, FormD] = {}
        notes: list[str] = []
        for path in self._files("edgar/primary_doc", "*.xml"):
            match = _ACCESSION.search(path.stem)
            key = match.group(0) if match else path.stem
            try:
                documents[key] = parse_form_d(path.read_bytes(), accession=match and match.group(0))
            except MalformedPayloadError as exc:
                notes.append(f"Form D {path.name}: not parsed ({exc})")
                continue
            if not match:
                notes.append(f"Form D {path.name}: accession number unknown; keyed by file name")
        if not documents:
            notes.append(f"no Form D primary_doc.xml in {self.root / 'edgar/primary_doc'}")
        return FormDDocuments(documents, notes)
