"""The weekly human review of the pipeline's event links (or events), through the API.

Draw a random sample and write the review sheet (a CSV with empty ``verdict`` and ``note``
columns), fill it in (correct | incorrect | unsure; empty rows are skipped), post it back:

    OMNIWATCH_API_KEY=name:secret-or-secret \\
    python scripts/data_quality_weekly_audit.py --api-base http://127.0.0.1:8000 --limit 200 --days 7
    python scripts/data_quality_weekly_audit.py --api-base http://127.0.0.1:8000 --verdicts review.csv

The reviewer recorded is the API key's name. Posting the same sheet twice writes nothing new (the
API keeps a verdict once per reviewer and row, and a changed one as a new revision). The second
call prints the precision (correct / judged) per table and source of the sample.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

COLUMNS = ["sample_id", "table", "row_key", "source", "event_time", "event_type", "title", "url", "tone",
           "entity_id", "entity_name", "ticker", "cik", "link_confidence", "link_method", "excerpt",
           "verdict", "note"]
QUESTION = {"event_links": "Does the link name the right company?",
            "events": "Is it a real event, correctly dated and toned?"}
CHUNK = 500  # the most verdicts one POST /data-quality/audit takes


class AuditError(Exception):
    """The API refused a request; the message is its code and detail."""


def api_root(base: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith("/api/v2") else f"{base}/api/v2"


def _answer(r: httpx.Response) -> dict[str, Any]:
    if r.is_success:
        return r.json()
    try:
        body = r.json()
        message = f"{body.get('code')}: {body.get('detail')}"
    except ValueError:
        message = r.text[:500]
    raise AuditError(f"{r.request.method} {r.request.url.path} answered {r.status_code}: {message}")


def sheet_rows(sample: dict[str, Any]) -> list[dict[str, Any]]:
    """One sheet line per sampled row: what the reviewer judges, and empty verdict and note."""
    out = []
    for row in sample["rows"]:
        event, link = row["event"], row["link"] or {}
        out.append({"sample_id": sample["sample_id"], "table": sample["table"], "row_key": row["row_key"],
                    "source": row["source"], "event_time": event["event_time"], "event_type": event["event_type"],
                    "title": event["title"] or "", "url": event["url"] or "",
                    "tone": "" if event["tone"] is None else event["tone"], "entity_id": link.get("entity_id", ""),
                    "entity_name": link.get("entity_name", ""), "ticker": link.get("ticker") or "",
                    "cik": link.get("cik") or "", "link_confidence": link.get("confidence", ""),
                    "link_method": link.get("method", ""), "excerpt": (event["excerpt"] or "").replace("\n", " "),
                    "verdict": "", "note": ""})
    return out


def draw(http: httpx.Client, args: argparse.Namespace) -> Path:
    body: dict[str, Any] = {"table": args.table, "limit": args.limit}
    if args.seed is not None:
        body["seed"] = args.seed
    if args.source:
        body["source"] = args.source
    start, end = args.start, args.end
    if args.days is not None:
        end = end or datetime.now(UTC).isoformat()
        start = (datetime.fromisoformat(end) - timedelta(days=args.days)).isoformat()
    body |= {k: v for k, v in (("start", start), ("end", end)) if v}
    sample = _answer(http.post("/data-quality/sample", json=body))
    out = args.out or Path(f"dq_review_{sample['table']}_{sample['sample_id']}.csv")
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(sheet_rows(sample))
    print(f"sample {sample['sample_id']} of {sample['table']}: {sample['count']} of {sample['population']} rows "
          f"(seed {sample['seed']}, drawn by {sample['drawn_by']} at {sample['drawn_at']})")
    print(f"{QUESTION[sample['table']]} Fill 'verdict' (correct | incorrect | unsure) and 'note' in {out}, then:")
    print(f"  {Path(sys.argv[0]).name} --api-base {args.api_base} --verdicts {out}")
    for line in sheet_rows(sample)[:20]:
        what = f"{line['entity_name']} ({line['entity_id']})  <- " if sample["table"] == "event_links" else ""
        print(f"  {line['row_key']:>8}  {line['source']:<8} {line['event_time'][:10]}  {what}{line['title'][:80]}")
    if sample["count"] > 20:
        print(f"  ... {sample['count'] - 20} more in {out}")
    return out


def read_verdicts(path: Path) -> dict[int, list[dict[str, Any]]]:
    """Filled lines per sample id (lines with no verdict are not judged yet and are skipped)."""
    per_sample: dict[int, list[dict[str, Any]]] = defaultdict(list)
    with path.open(newline="") as fh:
        for line in csv.DictReader(fh):
            verdict = (line.get("verdict") or "").strip().lower()
            if verdict:
                note = (line.get("note") or "").strip() or None
                per_sample[int(line["sample_id"])].append(
                    {"row_key": int(line["row_key"]), "verdict": verdict, "note": note})
    return dict(per_sample)


def post_verdicts(http: httpx.Client, path: Path) -> list[dict[str, Any]]:
    per_sample = read_verdicts(path)
    if not per_sample:
        raise AuditError(f"{path}: no line has a verdict yet")
    answers = []
    for sample_id, verdicts in sorted(per_sample.items()):
        for i in range(0, len(verdicts), CHUNK):
            answer = _answer(http.post("/data-quality/audit",
                                       json={"sample_id": sample_id, "verdicts": verdicts[i:i + CHUNK]}))
            answers.append(answer)
            print(f"sample {sample_id}: {answer['written']} verdicts written, {answer['unchanged']} unchanged "
                  f"(reviewer {answer['reviewer']})")
        print_precision(answers[-1]["precision"], f"precision of sample {sample_id}")
    return answers


def print_precision(precision: dict[str, Any], title: str) -> None:
    print(f"{title} (correct / judged; unsure is not a judgement):")
    for table in precision["tables"]:
        for group, name in [(table, "all sources"), *((s, s["source"]) for s in table["sources"])]:
            value = "n/a" if group["precision"] is None else f"{group['precision']:.3f}"
            print(f"  {table['table']:<12} {name:<12} {value:>6}  ({group['correct']}/{group['judged']} judged, "
                  f"{group['unsure']} unsure)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-base", required=True, help="The API's address (with or without /api/v2).")
    parser.add_argument("--api-key", default=os.environ.get("OMNIWATCH_API_KEY"),
                        help="X-API-Key (default: $OMNIWATCH_API_KEY); its name is the reviewer.")
    parser.add_argument("--table", choices=sorted(QUESTION), default="event_links")
    parser.add_argument("--limit", type=int, default=200, help="Rows to draw (at most 500).")
    parser.add_argument("--seed", type=int, help="Random seed: the same seed over the same rows draws the same sample.")
    parser.add_argument("--source", help="Only events (or links of events) of this source, e.g. gdelt.")
    parser.add_argument("--start", help="Only events with event_time >= START (ISO 8601 with a zone).")
    parser.add_argument("--end", help="Only events with event_time < END (ISO 8601 with a zone).")
    parser.add_argument("--days", type=int, help="The window is the DAYS days before --end (default: now).")
    parser.add_argument("--out", type=Path, help="The review sheet (default: dq_review_<table>_<sample>.csv).")
    parser.add_argument("--verdicts", type=Path, help="Post the filled sheet back and print precision.")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    if not args.api_key:
        parser.error("an API key is needed: --api-key or OMNIWATCH_API_KEY")
    headers = {"X-API-Key": args.api_key}
    try:
        with httpx.Client(base_url=api_root(args.api_base), headers=headers, timeout=args.timeout) as http:
            if args.verdicts:
                post_verdicts(http, args.verdicts)
            else:
                draw(http, args)
    except (AuditError, httpx.HTTPError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
