"""Training's torch threads: MICROSTRAIN_TORCH_THREADS fixes them, OMP_NUM_THREADS (set by the
rank that started this one) is kept, and ``auto`` follows the free-cores rule serving uses."""

from __future__ import annotations

import pytest

from microstrain.errors import MicrostrainError
from microstrain.hardware import threads_the_others_leave, usable_cores
from training.fit import THREADS_ENV_VAR, torch_threads


def test_a_number_fixes_the_threads_and_a_bad_value_is_one_error(monkeypatch):
    monkeypatch.setenv(THREADS_ENV_VAR, "3")
    assert torch_threads(processes=1) == 3
    for raw, message in (("0", "at least 1"), ("many", "neither 'auto' nor a whole number")):
        monkeypatch.setenv(THREADS_ENV_VAR, raw)
        with pytest.raises(MicrostrainError, match=message):
            torch_threads(processes=1)


def test_auto_keeps_the_launchers_choice(monkeypatch):
    monkeypatch.delenv(THREADS_ENV_VAR, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert torch_threads(processes=2) == 1


def test_auto_measures_within_this_process_share_of_the_cores(monkeypatch):
    monkeypatch.delenv(THREADS_ENV_VAR, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert 1 <= torch_threads(processes=1) <= usable_cores()
    assert torch_threads(processes=usable_cores()) == 1  # one core each: nothing to choose


def test_the_rule_gives_a_thread_per_core_the_others_leave_idle():
    assert threads_the_others_leave(range(1, 3), cores=2, others_busy=0.2) == 2
    assert threads_the_others_leave(range(1, 3), cores=2, others_busy=1.0) == 1  # one core busy
    assert threads_the_others_leave(range(1, 5), cores=4, others_busy=1.3) == 3
    assert threads_the_others_leave(range(1, 3), cores=2, others_busy=2.0) == 1  # never zero
