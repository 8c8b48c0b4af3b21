"""Headline tone from VADER's bundled lexicon: offline, deterministic, no model download.

Scale: ``tone(text)`` is VADER's *compound* score, a float in ``[-1, 1]`` (-1 most negative, 0
neutral, +1 most positive). It is NOT rescaled to GDELT's ``AvgTone`` convention (roughly -100..+100,
usually -10..+10): GDELT rows keep GDELT's own number in the ``tone`` column, RSS rows carry this
score, so compare tones within one source only. The lexicon ships inside the ``vaderSentiment``
wheel (``vader_lexicon.txt``, ``emoji_utf8_lexicon.txt``) and is read from disk once per process;
nothing touches the network.
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
