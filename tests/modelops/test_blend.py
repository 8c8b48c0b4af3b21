from __future__ import annotations

import pytest

from omniwatch.modelops.blend import blend, blend_positions


def test_blend_is_the_candidate_share():
    assert blend(10.0, 20.0, 10) == pytest.approx(11.0)
    assert blend(10.0, 20.0, 30) == pytest.approx(13.0)
    assert blend(10.0, 20.0, 100) == pytest.approx(20.0)


def test_blend_without_candidate_or_at_stage_zero_is_champion():
    assert blend(10.0, None, 30) == 10.0
    assert blend(10.0, 20.0, 0) == 10.0
    assert blend_positions(1.0, -1.0, 30) == pytest.approx(0.4)


def test_blend_rejects_bad_stage():
    with pytest.raises(ValueError):
        blend(1.0, 2.0, 130)
