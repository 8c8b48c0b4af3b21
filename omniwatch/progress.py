"""Progress of long loops (partitions, epochs, walk-forward folds) as Dagster sees it.

Steps report through the ``omniwatch.progress`` Python logger. ``dagster.yaml`` lists it under
``python_logs.managed_python_loggers``, so inside a run each report is a log event of the step:
the Dagster UI shows it in the run's log, and ``omniwatch demo`` (which launches its runs through
the code location and follows their event logs) draws a progress bar from it. Outside a run the
reports go wherever Python logging is configured (nowhere by default).

One message format, written and parsed here only: ``progress: <what> <done>/<total>``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

LOGGER_NAME = "omniwatch.progress"
log = logging.getLogger(LOGGER_NAME)
_MESSAGE = re.compile(r"^progress: (?P<what>.+) (?P<done>\d+)/(?P<total>\d+)$")


@dataclass(frozen=True)
class Progress:
    what: str
    done: int
    total: int


STEPS = 20  # at most this many reports per loop (plus the first): each is an event Dagster stores


def report(what: str, done: int, total: int) -> None:
    """Say that ``done`` of ``total`` units of ``what`` are finished (``done`` counts from 1):
    the first, the last, and each further 1/STEPS of the loop (a 528-day backfill says 21 things,
    not 528: Dagster stores each as an event, ~16 ms apiece on SQLite)."""
    if total <= 0 or not (done in (1, total) or STEPS * done // total != STEPS * (done - 1) // total):
        return
    log.info("progress: %s %d/%d", what, done, total)


def parse(message: str) -> Progress | None:
    """The report in a log message, or None when the message is not one."""
    found = _MESSAGE.match(message.strip())
    if found is None:
        return None
    return Progress(found["what"], int(found["done"]), int(found["total"]))
