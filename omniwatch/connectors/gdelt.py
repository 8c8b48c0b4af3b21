"""GDELT 2.0 Events exports (``http://data.gdeltproject.org/gdeltv2``) as canonical events.

Wire format: every 15 minutes GDELT publishes ``{YYYYMMDDHHMMSS}.export.CSV.zip``, one zipped
tab-separated file, **no header**, 61 columns per line (``GDELT_EVENT_COLUMNS`` below, from the
GDELT 2.0 event codebook). There is no headline: the title is built from the actors and the CAMEO
event code. ``SQLDATE`` is the day the event happened (often weeks or a year before the article);
``DATEADDED`` is when GDELT published the row, so it is the point-in-time ``available_time``.
``payload['fetched_at']`` is when our connector read the export (the live client's clock; for a
recorded export, its ``DATEADDED``: a poller reads each 15-minute file as it appears). The write
path stores the earliest one seen as the event's ``first_seen_at``.

Parsers never drop a line silently: a line with the wrong column count or an unparseable date,
id or tone is skipped and returned as a ``Reject`` (line number and reason) next to the frame.
"""

from __future__ import annotations

import io
import logging
import math
import zipfile
from dataclasses import dataclass
from typing import Any

import pandas as pd

from omniwatch.frames import EVENT_COLUMNS, conform, empty_frame

from .http import ConnectorError, HttpClient, MalformedPayloadError, utc_timestamp

log = logging.getLogger(__name__)

BASE_URL = "http://data.gdeltproject.org/gdeltv2"
SLOT = pd.Timedelta(minutes=15)
MAX_SLOTS_PER_WINDOW = 4 * 24 * 7  # one week of exports; a larger window is almost surely a typo

GDELT_EVENT_COLUMNS = [
    "GLOBALEVENTID", "SQLDATE", "MonthYear", "Year", "FractionDate",
    "Actor1Code", "Actor1Name", "Actor1CountryCode", "Actor1KnownGroupCode", "Actor1EthnicCode",
    "Actor1Religion1Code", "Actor1Religion2Code", "Actor1Type1Code", "Actor1Type2Code",
    "Actor1Type3Code",
    "Actor2Code", "Actor2Name", "Actor2CountryCode", "Actor2KnownGroupCode", "Actor2EthnicCode",
    "Actor2Religion1Code", "Actor2Religion2Code", "Actor2Type1Code", "Actor2Type2Code",
    "Actor2Type3Code",
    "IsRootEvent", "EventCode", "EventBaseCode", "EventRootCode", "QuadClass", "GoldsteinScale",
    "NumMentions", "NumSources", "NumArticles", "AvgTone",
    "Actor1Geo_Type", "Actor1Geo_FullName", "Actor1Geo_CountryCode", "Actor1Geo_ADM1Code",
    "Actor1Geo_ADM2Code", "Actor1Geo_Lat", "Actor1Geo_Long", "Actor1Geo_FeatureID",
    "Actor2Geo_Type", "Actor2Geo_FullName", "Actor2Geo_CountryCode", "Actor2Geo_ADM1Code",
    "Actor2Geo_ADM2Code", "Actor2Geo_Lat", "Actor2Geo_Long", "Actor2Geo_FeatureID",
    "ActionGeo_Type", "ActionGeo_FullName", "ActionGeo_CountryCode", "ActionGeo_ADM1Code",
    "ActionGeo_ADM2Code", "ActionGeo_Lat", "ActionGeo_Long", "ActionGeo_FeatureID",
    "DATEADDED", "SOURCEURL",
]
N_COLUMNS = len(GDELT_EVENT_COLUMNS)  # 61
AVG_TONE_INDEX = GDELT_EVENT_COLUMNS.index("AvgTone")  # 34

# CAMEO root codes (the two-digit verb class) in words, for a readable title.
CAMEO_ROOTS = {
    "01": "make public statement", "02": "appeal", "03": "express intent to cooperate",
    "04": "consult", "05": "engage in diplomatic cooperation",
    "06": "engage in material cooperation", "07": "provide aid", "08": "yield",
    "09": "investigate", "10": "demand", "11": "disapprove", "12": "reject", "13": "threaten",
    "14": "protest", "15": "exhibit force posture", "16": "reduce relations", "17": "coerce",
    "18": "assault", "19": "fight", "20": "use unconventional mass violence",
}


@dataclass(frozen=True)
class Reject:
    """One input item that was skipped, and why (shared by the events parsers).

    ``where`` names the input (a file, slot URL or feed), ``line`` is 1-based where lines exist.
    """

    where: str
    reason: str
    line: int | None = None
    excerpt: str = ""


def _optional_float(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _optional_int(value: str) -> int | None:
    return int(value) if value.strip().lstrip("-").isdigit() else None


def _title(row: dict[str, str]) -> str:
    actor1 = row["Actor1Name"] or row["Actor1Code"] or "unknown actor"
    actor2 = row["Actor2Name"] or row["Actor2Code"]
    verb = CAMEO_ROOTS.get(row["EventRootCode"], "event")
    parts = [actor1, verb] + ([actor2] if actor2 else [])
    return f"{' → '.join(parts)} [CAMEO {row['EventCode']}]"


def _payload(row: dict[str, str]) -> dict[str, Any]:
    return {
        "global_event_id": row["GLOBALEVENTID"],
        "actor1_code": row["Actor1Code"] or None, "actor1_name": row["Actor1Name"] or None,
        "actor1_country": row["Actor1CountryCode"] or None,
        "actor2_code": row["Actor2Code"] or None, "actor2_name": row["Actor2Name"] or None,
        "actor2_country": row["Actor2CountryCode"] or None,
        "event_code": row["EventCode"], "event_base_code": row["EventBaseCode"],
        "event_root_code": row["EventRootCode"],
        "event_label": CAMEO_ROOTS.get(row["EventRootCode"]),
        "is_root_event": row["IsRootEvent"] == "1",
        "quad_class": _optional_int(row["QuadClass"]),
        "goldstein_scale": _optional_float(row["GoldsteinScale"]),
        "num_mentions": _optional_int(row["NumMentions"]),
        "num_sources": _optional_int(row["NumSources"]),
        "num_articles": _optional_int(row["NumArticles"]),
        "action_geo": row["ActionGeo_FullName"] or None,
        "action_country": row["ActionGeo_CountryCode"] or None,
        "date_added": row["DATEADDED"],
    }


def _parse_line(fields: list[str], fetched_at: pd.Timestamp | None = None) -> dict[str, Any]:
    """One 61-field line -> an event record; ValueError (with a reason) when it is unusable."""
    row = dict(zip(GDELT_EVENT_COLUMNS, fields, strict=False))
    if not row["GLOBALEVENTID"].isdigit():
        raise ValueError(f"GLOBALEVENTID {row['GLOBALEVENTID']!r:.30} is not a number")
    try:
        event_time = pd.to_datetime(row["SQLDATE"], format="%Y%m%d", utc=True)
    except (ValueError, TypeError):
        raise ValueError(f"SQLDATE {row['SQLDATE']!r:.30} is not YYYYMMDD") from None
    try:
        available_time = pd.to_datetime(row["DATEADDED"], format="%Y%m%d%H%M%S", utc=True)
    except (ValueError, TypeError):
        raise ValueError(f"DATEADDED {row['DATEADDED']!r:.30} is not YYYYMMDDHHMMSS") from None
    avg_tone = _optional_float(row["AvgTone"])
    if avg_tone is None:
        raise ValueError(f"AvgTone {row['AvgTone']!r:.30} is not a number")
    fetched = available_time if fetched_at is None else fetched_at
    return {
        "source_id": row["GLOBALEVENTID"], "event_type": "news", "title": _title(row),
        "body": None, "url": row["SOURCEURL"] or None, "event_time": event_time,
        "available_time": available_time, "tone": pipeline_tone(avg_tone),
        "payload": {**_payload(row), "avg_tone": avg_tone, "fetched_at": fetched.isoformat()},
    }


def pipeline_tone(avg_tone: float) -> float:
    """GDELT's AvgTone (documented range -100..+100) on the pipeline's tone scale [-1, 1], the
    scale of VADER's compound score for RSS, so one ``tone`` column means one thing."""
    return max(-1.0, min(1.0, avg_tone / 100.0))


def parse_events_export(text: str | bytes, source: str = "gdelt", *, track: str = "liquid",
                        where: str = "export", fetched_at: Any = None) -> tuple[pd.DataFrame, list[Reject]]:
    """A GDELT 2.0 events export (unzipped text) -> ``(EVENT_COLUMNS frame, rejects)``.

    ``tone`` is GDELT's ``AvgTone`` (column 34, -100..+100) on the pipeline's [-1, 1] scale
    (:func:`pipeline_tone`); the raw value stays in ``payload['avg_tone']``. Blank
    lines are ignored; a repeated GLOBALEVENTID keeps its first line and rejects the others.
    ``fetched_at`` (when the export was downloaded) goes to every row's ``payload['fetched_at']``;
    None (a recorded export) stamps each row with its own ``DATEADDED``.
    """
    fetched = None if fetched_at is None else utc_timestamp(fetched_at)
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", errors="replace")
    records: list[dict[str, Any]] = []
    rejects: list[Reject] = []
    seen: set[str] = set()
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        fields = line.split("\t")
        try:
            if len(fields) != N_COLUMNS:
                raise ValueError(f"expected {N_COLUMNS} tab-separated columns, got {len(fields)}")
            record = _parse_line(fields, fetched)
            if record["source_id"] in seen:
                raise ValueError(f"duplicate GLOBALEVENTID {record['source_id']}")
        except ValueError as exc:
            rejects.append(Reject(where, str(exc), number, line[:120]))
            continue
        seen.add(record["source_id"])
        records.append(record)
    if rejects:
        log.warning("gdelt %s: skipped %d malformed line(s), first: line %s: %s", where,
                    len(rejects), rejects[0].line, rejects[0].reason)
    if not records:
        return empty_frame(EVENT_COLUMNS), rejects
    frame = pd.DataFrame.from_records(records).assign(source=source, track=track)
    frame["tone"] = frame["tone"].astype("float64")
    return conform(frame, EVENT_COLUMNS), rejects


def unzip_export(content: bytes, *, where: str = "export") -> str:
    """The text of the one CSV inside a GDELT ``.export.CSV.zip``; MalformedPayloadError if not."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            members = [n for n in archive.namelist() if n.lower().endswith(".csv")]
            if len(members) != 1:
                raise MalformedPayloadError(f"{where}: expected one .CSV in the zip, got "
                                            f"{archive.namelist()}")
            return archive.read(members[0]).decode("utf-8", errors="replace")
    except zipfile.BadZipFile as exc:
        raise MalformedPayloadError(f"{where}: not a zip archive ({exc})", url=where,
                                    body=content[:200]) from None


def slot_stamp(slot: Any) -> str:
    """``YYYYMMDDHHMMSS`` of a 15-minute slot; ValueError when the time is not on a slot boundary."""
    ts = utc_timestamp(slot)
    if ts != ts.floor(SLOT):
        raise ValueError(f"{ts} is not on a 15-minute GDELT slot boundary")
    return ts.strftime("%Y%m%d%H%M%S")


class GdeltClient(HttpClient):
    """Downloads GDELT 2.0 15-minute events exports (zip) and parses them in memory."""

    def __init__(self, base_url: str = BASE_URL, *, source: str = "gdelt", track: str = "liquid",
                 requests_per_second: float | None = 4.0, **http_kwargs: Any) -> None:
        headers = {"Accept": "application/zip, */*", **http_kwargs.pop("headers", {})}
        super().__init__(base_url, requests_per_second=requests_per_second, headers=headers,
                         **http_kwargs)
        self.source = source
        self.track = track

    def fetch_slot(self, slot: Any) -> tuple[pd.DataFrame, list[Reject]]:
        """Events of one export (``slot`` on a 15-minute boundary, UTC)."""
        path = f"/{slot_stamp(slot)}.export.CSV.zip"
        response = self.get(path)
        text = unzip_export(response.content, where=path)
        # First sight is when this fetch happened, also for an export of the past: a live backfill
        # of last month makes its news usable from today (serving did not have it then). History
        # meant to look as a running poller would have seen it comes from the replay source
        # (recorded exports, first sight = DATEADDED).
        return parse_events_export(text, self.source, track=self.track, where=path, fetched_at=self.now())

    def fetch_window(self, start: Any, end: Any) -> tuple[pd.DataFrame, list[Reject]]:
        """Events of every export whose slot lies in ``[start, end)``.

        A slot that fails (GDELT skips a file now and then, answering 404) is reported as a
        ``Reject`` without a line number and the other slots are still returned.
        """
        start, end = utc_timestamp(start), utc_timestamp(end)
        slots = list(pd.date_range(start.ceil(SLOT), end, freq=SLOT, inclusive="left"))
        if len(slots) > MAX_SLOTS_PER_WINDOW:
            raise ValueError(f"{len(slots)} GDELT slots requested; at most {MAX_SLOTS_PER_WINDOW}")
        frames, rejects = [], []
        for slot in slots:
            try:
                frame, slot_rejects = self.fetch_slot(slot)
            except ConnectorError as exc:
                log.warning("gdelt slot %s failed: %s", slot, exc)
                rejects.append(Reject(f"{slot_stamp(slot)}.export.CSV.zip", str(exc)))
                continue
            frames.append(frame)
            rejects.extend(slot_rejects)
        frames = [f for f in frames if not f.empty]
        if not frames:
            return empty_frame(EVENT_COLUMNS), rejects
        frame = pd.concat(frames, ignore_index=True).drop_duplicates("source_id")
        return conform(frame.sort_values(["available_time", "source_id"]), EVENT_COLUMNS), rejects
