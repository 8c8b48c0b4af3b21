"""GDELT 2.0 events export: the recorded real export, parsed directly and served zipped over HTTP."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from omniwatch.connectors.events_replay import EventsReplaySource
from omniwatch.connectors.gdelt import AVG_TONE_INDEX, GdeltClient, parse_events_export, slot_stamp
from omniwatch.connectors.http import MalformedPayloadError
from omniwatch.frames import EVENT_COLUMNS

from .fake_events import GDELT_FILE, zipped

LIBRA_ID = "881991205"
SLOT = pd.Timestamp("2019-10-24 14:30", tz="UTC")


@pytest.fixture(scope="module")
def raw() -> bytes:
    return GDELT_FILE.read_bytes()


@pytest.fixture(scope="module")
def lines(raw) -> list[str]:
    return raw.decode("utf-8").splitlines()


def test_real_export_parses_every_row(raw, lines):
    frame, rejects = parse_events_export(raw)
    assert rejects == []
    assert len(frame) == len(lines) == 201
    assert list(frame.columns) == EVENT_COLUMNS
    assert frame["source_id"].is_unique
    assert set(frame["source"]) == {"gdelt"} and set(frame["event_type"]) == {"news"}
    assert set(frame["track"]) == {"liquid"}
    assert str(frame["available_time"].dt.tz) == "UTC" and str(frame["event_time"].dt.tz) == "UTC"
    # DATEADDED (publication) is the point-in-time stamp; SQLDATE (the event's day) precedes it.
    assert (frame["available_time"] == SLOT).all()
    assert (frame["event_time"] <= frame["available_time"]).all()
    assert frame["event_time"].min() == pd.Timestamp("2018-10-24", tz="UTC")
    json.dumps(list(frame["payload"]), allow_nan=False)  # payloads are JSON-able
    assert frame["title"].str.len().gt(0).all()


def test_tone_is_gdelt_avgtone_column_on_the_pipeline_scale(raw, lines):
    frame, _ = parse_events_export(raw)
    expected = {line.split("\t")[0]: float(line.split("\t")[AVG_TONE_INDEX]) for line in lines}
    assert AVG_TONE_INDEX == 34
    assert dict(zip(frame["source_id"], frame["payload"].map(lambda p: p["avg_tone"]), strict=True)) == expected
    assert dict(zip(frame["source_id"], frame["tone"], strict=True)) == pytest.approx(
        {k: v / 100 for k, v in expected.items()})
    assert frame["tone"].between(-1, 1).all()


def test_crypto_libra_row(raw):
    frame, _ = parse_events_export(raw)
    row = frame.set_index("source_id").loc[LIBRA_ID]
    assert row["url"] == ("https://www.inc.com/larry-kim/mark-zuckerberg-testifies-in-front-of-"
                          "congress-in-defense-of-planned-cryptocurrency.html")
    assert row["tone"] == pytest.approx(-0.0438311688311688)
    assert row["payload"]["avg_tone"] == pytest.approx(-4.38311688311688)
    assert row["event_time"] == pd.Timestamp("2019-10-24", tz="UTC")
    assert row["title"] == "CORPORATION → reduce relations [CAMEO 160]"
    payload = row["payload"]
    assert (payload["actor1_name"], payload["actor1_code"], payload["event_code"]) == (
        "CORPORATION", "BUS", "160")
    assert payload["num_mentions"] == 10 and payload["action_country"] == "US"


def test_malformed_lines_are_rejected_with_reasons_and_the_rest_kept(lines):
    good = lines[5].split("\t")
    bad_day = "\t".join([good[0] + "1", "2019XX24"] + good[2:])
    bad_added = "\t".join([good[0] + "2"] + good[1:59] + ["2019-10-24 14:30"] + good[60:])
    short = "\t".join(good[:60])
    text = "\n".join(lines[:3] + [short] + lines[3:100] + [bad_day, bad_added] + lines[100:])
    frame, rejects = parse_events_export(text)
    assert len(frame) == 201
    assert [(r.line, r.reason.split(" ")[0]) for r in rejects] == [
        (4, "expected"), (102, "SQLDATE"), (103, "DATEADDED")]
    assert "got 60" in rejects[0].reason
    assert rejects[1].excerpt.startswith(good[0] + "1\t2019XX24")


def test_zipped_export_over_http(events_server):
    path = "/gdeltv2/20191024143000.export.CSV.zip"
    events_server.serve(path, zipped("20191024143000.export.CSV", GDELT_FILE.read_bytes()),
                        "application/zip")
    with GdeltClient(events_server.url + "/gdeltv2", max_retries=0) as client:
        frame, rejects = client.fetch_slot(SLOT)
    assert len(frame) == 201 and rejects == []
    assert [r.path for r in events_server.seen()] == [path]
    assert LIBRA_ID in set(frame["source_id"])


def test_window_walks_slots_and_reports_missing_ones(events_server):
    events_server.serve("/gdeltv2/20191024143000.export.CSV.zip",
                        zipped("20191024143000.export.CSV", GDELT_FILE.read_bytes()))
    with GdeltClient(events_server.url + "/gdeltv2", max_retries=0,
                     requests_per_second=None) as client:
        frame, rejects = client.fetch_window("2019-10-24 14:10", "2019-10-24 15:00")
    assert [r.path for r in events_server.seen()] == [
        f"/gdeltv2/2019102414{m}00.export.CSV.zip" for m in ("15", "30", "45")]
    assert len(frame) == 201
    assert [r.where for r in rejects] == ["20191024141500.export.CSV.zip",
                                          "20191024144500.export.CSV.zip"]
    assert all("404" in r.reason for r in rejects)


def test_a_body_that_is_not_a_zip_is_malformed(events_server):
    events_server.serve("/20191024143000.export.CSV.zip", b"<html>maintenance</html>")
    with GdeltClient(events_server.url, max_retries=0) as client:
        with pytest.raises(MalformedPayloadError, match="not a zip"):
            client.fetch_slot(SLOT)


def test_slots_must_be_on_15_minute_boundaries():
    assert slot_stamp("2019-10-24T14:45:00Z") == "20191024144500"
    with pytest.raises(ValueError, match="15-minute"):
        slot_stamp("2019-10-24T14:40:00Z")


def test_replay_filters_on_publication_time():
    source = EventsReplaySource()
    inside = source.gdelt(SLOT, SLOT + pd.Timedelta(minutes=15))
    assert len(inside.frame) == 201 and list(inside.frame.columns) == EVENT_COLUMNS
    before = source.gdelt(SLOT - pd.Timedelta(days=400), SLOT)  # SQLDATEs fall here; not known yet
    assert before.frame.empty
    assert any("2019-10-24 14:30" in note for note in before.notes)


def test_replay_rereads_a_changed_folder_and_notes_rejects(tmp_path, lines):
    (tmp_path / "gdelt").mkdir()
    export = tmp_path / "gdelt" / "20191024143000.export.CSV"
    export.write_text("\n".join(lines) + "\n")
    assert len(EventsReplaySource(tmp_path).gdelt(SLOT, SLOT + pd.Timedelta(hours=1)).frame) == 201
    extra = "\t".join(["999999999"] + lines[0].split("\t")[1:])
    export.write_text("\n".join(lines + [extra, "truncated\tline"]) + "\n")
    result = EventsReplaySource(tmp_path).gdelt(SLOT, SLOT + pd.Timedelta(hours=1))
    assert len(result.frame) == 202 and "999999999" in set(result.frame["source_id"])
    assert any("1 malformed line(s)" in n and "line 203" in n for n in result.notes)
    missing = EventsReplaySource(tmp_path).rss(SLOT, SLOT + pd.Timedelta(hours=1))
    assert missing.frame.empty and any("no recorded feed" in n for n in missing.notes)


def test_live_fetch_records_when_it_saw_the_export_and_replay_the_export_time(events_server, monkeypatch):
    events_server.serve("/gdeltv2/20191024143000.export.CSV.zip",
                        zipped("20191024143000.export.CSV", GDELT_FILE.read_bytes()), "application/zip")
    seen = pd.Timestamp("2019-10-24 16:05", tz="UTC")  # fetched 1.5 h after the export appeared
    monkeypatch.setattr(GdeltClient, "now", staticmethod(lambda: seen))
    with GdeltClient(events_server.url + "/gdeltv2", max_retries=0) as client:
        live, _ = client.fetch_slot(SLOT)
    assert set(live["payload"].map(lambda p: p["fetched_at"])) == {seen.isoformat()}
    assert (live["available_time"] < seen).all()  # publication time is untouched
    replayed = EventsReplaySource().gdelt(SLOT, SLOT + pd.Timedelta(minutes=15)).frame
    assert (replayed["payload"].map(lambda p: pd.Timestamp(p["fetched_at"])) == replayed["available_time"]).all()
