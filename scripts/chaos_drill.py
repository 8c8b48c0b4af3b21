"""Chaos drills on the local services: cut or kill a dependency during real work, prove recovery.

    python scripts/chaos_drill.py db_interrupt|mlflow_interrupt|api_kill|redis_interrupt
                                  [--hold S] [--json] [--mlflow-cut kill|proxy] [--mlflow-server URL]
    python scripts/chaos_drill.py all [--hold S] [--json]
    python scripts/chaos_drill.py recover

A scenario prints its report (timed steps, row counts per stage, measured facts, verdict) and exits
0 when recovery was proven, 1 when not. ``recover`` undoes what an interrupted drill left behind:
connections re-allowed on cut drill databases, drill servers stopped by their pid files, drill
databases dropped. State lives in $OMNIWATCH_CHAOS_DIR (default: <tmp>/omniwatch-chaos); drill
databases are created through $OMNIWATCH_CHAOS_PG_ADMIN_URL
(default postgresql://postgres@127.0.0.1:5432/postgres). See omniwatch/chaos/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import warnings

from omniwatch.chaos import SCENARIOS, ChaosConfig, recover, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=[*SCENARIOS, "all", "recover"])
    parser.add_argument("--hold", type=float, default=1.0, help="seconds a cut is held (default 1)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--mlflow-cut", choices=["kill", "proxy"], default="kill",
                        help="mlflow_interrupt: SIGKILL and restart the server, or cut a proxy in front of it")
    parser.add_argument("--mlflow-server", metavar="URL",
                        help="mlflow_interrupt: drill this running server through the proxy instead of starting one")
    args = parser.parse_args(argv)
    if args.hold < 0:
        parser.error("--hold must be >= 0")
    warnings.simplefilter("ignore")  # library deprecation noise would bury the report
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    config = ChaosConfig.from_env(args.hold, "proxy" if args.mlflow_server else args.mlflow_cut, args.mlflow_server)

    if args.scenario == "recover":
        done = recover(config)
        print(json.dumps({"recovered": done}, indent=2) if args.json else "\n".join(done) or "nothing to recover")
        return 0
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    with contextlib.redirect_stdout(sys.stderr):  # MLflow prints run links to stdout: keep it the report's
        reports = [run(name, config) for name in names]
    if args.json:
        payload = [r.to_dict() for r in reports]
        print(json.dumps(payload[0] if len(payload) == 1 else payload, indent=2, sort_keys=True, default=str))
    else:
        print("\n\n".join(r.to_text() for r in reports))
    return 0 if all(r.recovered for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
