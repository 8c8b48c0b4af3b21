"""Headline tone from VADER's bundled lexicon: offline, deterministic, no model download.

Scale: ``tone(text)`` is VADER's *compound* score, a float in ``[-1, 1]`` (-1 most negative, 0
neutral, +1 most positive): the pipeline's tone scale. RSS items are scored on title + summary,
CryptoPanic posts on the headline alone (the API sends no body); CryptoPanic's community votes stay
a separate figure in the payload (``cryptopanic.votes_tone``). GDELT rows map their ``AvgTone``
(-100..+100) onto it (``gdelt.pipeline_tone``, raw value kept in the payload), and clients writing
through ``ingest/events`` must use it too. Magnitudes still differ by source (GDELT's AvgTone is
usually within +-10, i.e. +-0.1 here), so a mixed mean leans towards the VADER-scored sources. The lexicon ships
inside the ``vaderSentiment`` wheel (``vader_lexicon.txt``, ``emoji_utf8_lexicon.txt``) and is
read from disk once per process; nothing touches the network.
"""

from __future__ import annotations

import html
import re
import threading

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

_analyzer: SentimentIntensityAnalyzer | None = None
_lock = threading.Lock()
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def _get_analyzer() -> SentimentIntensityAnalyzer:
    # Built lazily (reading the ~7,500-word lexicon costs tens of ms) and shared: the analyzer is
    # read-only after construction, so one instance serves every thread.
    global _analyzer
    with _lock:
        if _analyzer is None:
            _analyzer = SentimentIntensityAnalyzer()
        return _analyzer


def plain_text(text: str | None) -> str:
    """``text`` without HTML tags or entities, whitespace collapsed (feed summaries carry markup)."""
    if not text:
        return ""
    return _SPACE.sub(" ", html.unescape(_TAG.sub(" ", text))).strip()


def tone(text: str | None) -> float:
    """VADER compound score of ``text`` in ``[-1, 1]``; empty or missing text is neutral (0.0)."""
    cleaned = plain_text(text)
    if not cleaned:
        return 0.0
    score = float(_get_analyzer().polarity_scores(cleaned)["compound"])
    return max(-1.0, min(1.0, score))  # compound is normalised into [-1, 1]; clamp guards rounding
