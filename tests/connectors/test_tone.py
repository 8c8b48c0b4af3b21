"""VADER tone: scale, HTML handling, and that it needs no network at run time."""

from __future__ import annotations

import socket

import pytest

from omniwatch.connectors import tone as tone_module
from omniwatch.connectors.tone import plain_text, tone


def test_tone_is_a_signed_score_in_minus_one_to_one():
    positive = tone("Bitcoin rallies to a record high as investors celebrate strong gains")
    negative = tone("Exchange hacked: users suffer terrible losses, panic and fraud fears")
    assert 0.5 < positive <= 1.0
    assert -1.0 <= negative < -0.5
    assert tone("The committee meets on Tuesday") == 0.0  # no lexicon words: neutral
    assert tone("") == 0.0 and tone(None) == 0.0


def test_real_headlines_get_the_expected_sign():
    # Headlines from the recorded Cointelegraph feed (tests/fixtures/events/rss).
    assert tone("Could THORChain face prosecution over stolen Bitget funds?") < -0.5
    assert tone("Crypto industry gave $8 million to Clarity Act lobbyists") > 0


def test_markup_is_removed_before_scoring():
    html = '<p style="x"><img src="a.png" alt="great"></p><p>Fraud &amp; theft alleged</p>'
    assert plain_text(html) == "Fraud & theft alleged"
    assert tone(html) == tone("Fraud & theft alleged") < 0  # the alt text "great" is not scored


def test_tone_works_with_network_blocked(monkeypatch):
    """The lexicon ships in the wheel: with sockets blocked and hubs offline, tone still works."""
    def no_network(*args, **kwargs):
        raise OSError("network access attempted during tone()")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(tone_module, "_analyzer", None)  # force the lexicon to load now
    with pytest.raises(OSError):  # the block is real
        socket.create_connection(("example.org", 80))
    score = tone("Regulators approve the fund, a huge win for investors")
    assert score > 0.5
    assert tone_module._analyzer is not None
