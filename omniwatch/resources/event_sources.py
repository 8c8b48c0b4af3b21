"""Events-plane connector resources: news (GDELT + RSS + CryptoPanic) and SEC filings, live or replay.

Same shape as the market connectors (STYLE.md rule 4): assets annotate the abstract type; replay
reads ``OMNIWATCH_EVENTS_REPLAY_DIR`` (default the bundled ``omniwatch/sample/events``) and the
bundled CryptoPanic headline set (``omniwatch/sample/news``); live adds CryptoPanic's API only when
the user's token (``OMNIWATCH_CRYPTOPANIC_TOKEN``) is set.

News rows record when the connector saw them in ``payload['fetched_at']`` (live: the fetch clock;
replay: the recording's own time, an RSS capture's channel build time or a GDELT export's
``DATEADDED``), which the write path keeps, at its earliest, as ``events.first_seen_at``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import dagster as dg
import pandas as pd

from omniwatch import frames
from omniwatch.resources.market_sources import SourceBatch

# Every news parser already returns tone on the pipeline's [-1, 1] scale (GDELT: AvgTone / 100 in
# ``gdelt.pipeline_tone``; RSS and CryptoPanic: VADER's compound), so the resources pass it through.
OFFERING_COLUMNS = ["accession_number", "total_offering_amount", "total_amount_sold"]
LIQUID_SYMBOLS = ["BTC", "ETH", "SOL"]


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [f for f in parts if not f.empty]
    return pd.concat(parts, ignore_index=True) if parts else frames.empty_frame(frames.EVENT_COLUMNS)


class NewsResource(dg.ConfigurableResource, ABC):
    """News items (GDELT events export, RSS/Atom feeds) published in a window."""

    @abstractmethod
    def fetch_news(self, start: pd.Timestamp, end: pd.Timestamp) -> SourceBatch: ...


class FilingsResource(dg.ConfigurableResource, ABC):
    """SEC EDGAR filings accepted in a window, the tracked companies, Form D documents."""

    @abstractmethod
    def fetch_filings(self, start: pd.Timestamp, end: pd.Timestamp) -> SourceBatch: ...

    @abstractmethod
    def companies(self) -> pd.DataFrame: ...

    @abstractmethod
    def offering_amounts(self) -> pd.DataFrame:
        """accession_number, total_offering_amount, total_amount_sold (from primary_doc.xml)."""


class ReplayNewsResource(NewsResource):
    """Recorded GDELT exports and RSS captures from ``replay_dir``, and recorded CryptoPanic
    headlines (``cryptopanic_path``; None = the bundled set) unless ``include_cryptopanic`` is off."""

    replay_dir: str
    include_cryptopanic: bool = True
    cryptopanic_path: str | None = None
    symbols: list[str] = LIQUID_SYMBOLS  # CryptoPanic currency codes kept as payload['symbols']

    def fetch_news(self, start, end):
        from omniwatch.connectors.events_replay import EventsReplaySource

        src = EventsReplaySource(self.replay_dir)
        results = [src.gdelt(start, end), src.rss(start, end)]
        if self.include_cryptopanic:
            from omniwatch.connectors.cryptopanic import SAMPLE_FILE, CryptoPanicReplay

            replay = CryptoPanicReplay(self.cryptopanic_path or SAMPLE_FILE, symbols=self.symbols)
            results.append(replay.window(start, end))
        return SourceBatch(_concat([r.frame for r in results]), "replay", [n for r in results for n in r.notes])


class LiveNewsResource(NewsResource):
    """GDELT exports and RSS feeds; CryptoPanic's posts API too when ``cryptopanic_token`` is set
    (without it CryptoPanic is never called, and a note says so)."""

    gdelt_base_url: str = "http://data.gdeltproject.org/gdeltv2"
    gdelt_requests_per_second: float | None = 4.0
    rss_feeds: dict[str, str] | None = None  # name -> URL; None = the connector's DEFAULT_FEEDS
    rss_tracks: dict[str, str] | None = None  # name -> track for feeds outside DEFAULT_FEED_TRACKS
    timeout_s: float = 20.0
    # The user's CryptoPanic token: pass dg.EnvVar("OMNIWATCH_CRYPTOPANIC_TOKEN") so the UI and
    # run config show the variable's name, never the value.
    cryptopanic_token: str | None = None
    cryptopanic_base_url: str = "https://cryptopanic.com/api/developer/v2"
    cryptopanic_requests_per_second: float | None = 1.0
    cryptopanic_max_pages: int = 5  # newest first: bounds one call's share of the monthly quota
    cryptopanic_max_retries: int = 3
    symbols: list[str] = LIQUID_SYMBOLS

    def fetch_news(self, start, end):
        from omniwatch.connectors.gdelt import GdeltClient
        from omniwatch.connectors.rss import RssClient

        with GdeltClient(self.gdelt_base_url, timeout=self.timeout_s,
                         requests_per_second=self.gdelt_requests_per_second) as client:
            gdelt, rejects = client.fetch_window(start, end)
        with RssClient(self.rss_feeds, timeout=self.timeout_s, tracks=self.rss_tracks) as client:
            rss, statuses = client.fetch_all()
        if not rss.empty:
            rss = rss[(rss["available_time"] >= start) & (rss["available_time"] < end)]
        notes = [f"gdelt: {len(rejects)} rejected line(s) or slot(s)"] if rejects else []
        notes += [f"rss {s.feed}: {s.error}" for s in statuses if getattr(s, "error", None)]
        cryptopanic, cp_notes = self._cryptopanic(start, end)
        return SourceBatch(_concat([gdelt, rss, cryptopanic]), "live", notes + cp_notes)

    def _cryptopanic(self, start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.DataFrame, list[str]]:
        if not self.cryptopanic_token:
            return frames.empty_frame(frames.EVENT_COLUMNS), [
                "cryptopanic: no token (OMNIWATCH_CRYPTOPANIC_TOKEN unset); not called"]
        from omniwatch.connectors.cryptopanic import CryptoPanicClient
        from omniwatch.connectors.http import ConnectorError

        try:
            with CryptoPanicClient(self.cryptopanic_token, self.cryptopanic_base_url, symbols=self.symbols,
                                   currencies=self.symbols, max_pages=self.cryptopanic_max_pages,
                                   requests_per_second=self.cryptopanic_requests_per_second,
                                   timeout=self.timeout_s, max_retries=self.cryptopanic_max_retries) as client:
                frame, rejects = client.fetch_window(start, end)
        except ConnectorError as exc:  # one source failing (bad token, quota, outage) keeps the others
            return frames.empty_frame(frames.EVENT_COLUMNS), [f"cryptopanic: {type(exc).__name__}: {exc}"]
        notes = [f"cryptopanic: {len(rejects)} rejected post(s) or page(s), first: {rejects[0].reason}"] \
            if rejects else []
        return frame, notes


class ReplayFilingsResource(FilingsResource):
    replay_dir: str

    def _src(self):
        from omniwatch.connectors.events_replay import EventsReplaySource

        return EventsReplaySource(self.replay_dir)

    def fetch_filings(self, start, end):
        r = self._src().edgar_filings(start, end)
        return SourceBatch(r.frame, "replay", r.notes)

    def companies(self) -> pd.DataFrame:
        return self._src().companies().frame

    def offering_amounts(self) -> pd.DataFrame:
        docs = self._src().form_d_documents().documents
        return pd.DataFrame([{"accession_number": k, "total_offering_amount": d.total_offering_amount,
                              "total_amount_sold": d.total_amount_sold} for k, d in docs.items()],
                            columns=OFFERING_COLUMNS)


class EdgarFilingsResource(FilingsResource):
    """Live EDGAR: the submissions of each tracked CIK (SEC asks for a descriptive User-Agent and
    at most 10 requests per second; both are enforced by the client)."""

    user_agent: str
    ciks: list[str] = []
    requests_per_second: float = 8.0
    # SEC's budget is per client machine, not per process: share it through Redis when set.
    rate_limit_redis_url: str | None = None

    def _client(self):
        from omniwatch.connectors.edgar import EdgarClient

        return EdgarClient(self.user_agent, requests_per_second=self.requests_per_second,
                           rate_limit_redis_url=self.rate_limit_redis_url)

    def fetch_filings(self, start, end):
        parts, notes = [], []
        with self._client() as client:
            for cik in self.ciks:
                _, filings = client.fetch_submissions(cik)
                parts.append(filings[(filings["available_time"] >= start) & (filings["available_time"] < end)])
        if not self.ciks:
            notes.append("no CIKs configured (OMNIWATCH_SEC_CIKS): nothing to fetch")
        parts = [p for p in parts if not p.empty]
        frame = pd.concat(parts, ignore_index=True) if parts else frames.empty_frame(frames.EVENT_COLUMNS)
        return SourceBatch(frame, "live", notes)

    def companies(self) -> pd.DataFrame:
        rows = []
        with self._client() as client:
            for cik in self.ciks:
                info, _ = client.fetch_submissions(cik)
                rows.append({"cik": info.cik, "entity_name": info.name, "tickers": list(info.tickers),
                             "sic": info.sic, "business_state": info.business_state,
                             "coverage_start": None})
        return pd.DataFrame(rows)

    def offering_amounts(self) -> pd.DataFrame:
        """Amounts from each tracked company's Form D primary documents (one request per filing)."""
        rows = []
        with self._client() as client:
            for cik in self.ciks:
                _, filings = client.fetch_submissions(cik)
                for rec in filings[filings["event_type"].isin(["D", "D/A"])].to_dict("records"):
                    doc = rec["payload"].get("primaryDocument") or "primary_doc.xml"
                    form = client.fetch_form_d(cik, rec["source_id"], doc)
                    rows.append({"accession_number": rec["source_id"],
                                 "total_offering_amount": form.total_offering_amount,
                                 "total_amount_sold": form.total_amount_sold})
        return pd.DataFrame(rows, columns=OFFERING_COLUMNS)
