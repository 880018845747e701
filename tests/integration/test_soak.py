"""A bounded kill -9 soak: no event published before a kill is ever lost."""

import random

import pytest

from labsky.testing.soak import soak_iteration

from ..conftest import REPO


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["session", "everything"])
@pytest.mark.parametrize("iteration", range(2))
def test_kill_minus_nine_loses_no_event(tmp_path, mode, iteration):
    result = soak_iteration(
        tmp_path, REPO / "devices" / "sim.yaml", mode, random.Random(iteration)
    )
    assert result.published > 0
    if mode == "session":  # the worker outlives its session and stores it all
        assert result.stored_without_recover == result.published
    assert result.stored_after_recover == result.published, result
