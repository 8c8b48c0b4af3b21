"""Progress reports: one message format, throttled to a bounded number per loop."""

from __future__ import annotations

import logging

from omniwatch.progress import LOGGER_NAME, STEPS, parse, report


def test_a_long_loop_reports_a_bounded_number_of_times_and_always_its_end(caplog):
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        for i in range(1, 529):
            report("market_bars days", i, 528)
    said = [parse(r.getMessage()) for r in caplog.records]
    assert all(p is not None and p.what == "market_bars days" and p.total == 528 for p in said)
    done = [p.done for p in said]
    assert done[0] == 1 and done[-1] == 528 and done == sorted(done)
    assert len(done) <= STEPS + 1


def test_a_short_loop_reports_every_step():
    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(parse(record.getMessage()))

    logger = logging.getLogger(LOGGER_NAME)
    handler, level = Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        for epoch in range(1, 7):
            report("TSMixer epochs", epoch, 6)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert [p.done for p in seen] == [1, 2, 3, 4, 5, 6]


def test_parse_reads_only_progress_messages():
    assert parse("progress: walk-forward folds 3/12").done == 3
    assert parse("walk-forward folds 3/12") is None and parse("progress: nothing") is None
