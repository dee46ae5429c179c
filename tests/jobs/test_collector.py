"""The garbage collector is paused for a map's burst of futures and always comes back."""

from __future__ import annotations

import gc

import pytest

from slurm_magics.jobs.collector import collector_paused


def test_paused_inside_back_afterwards_also_after_an_error() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ValueError, match="boom"), collector_paused():
        raise ValueError("boom")
    assert gc.isenabled()


def test_a_collector_switched_off_by_the_user_stays_off() -> None:
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_as_a_decorator_each_call_pauses() -> None:
    seen = []

    @collector_paused()
    def burst() -> None:
        seen.append(gc.isenabled())

    burst()
    burst()
    assert seen == [False, False] and gc.isenabled()
