"""The supervisor's restart accounting (pure logic): backoff doubles to its cap, resets
after a stable run, and consecutive quick exits make it give up."""

from __future__ import annotations

import subprocess
import sys

from ansim.supervisor import BACKOFF_START_S, Child, on_exit
from core.settings import Settings


def _exited(child: Child, code: int, started_at: float) -> None:
    child.proc = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({code})"])
    child.proc.wait()
    child.started_at = started_at
    child.next_start = 0.0


def test_quick_exits_give_up_after_the_configured_count() -> None:
    settings = Settings(supervisor_fail_count=3, supervisor_fail_window_s=5)
    child = Child("bridge", [])
    now = 1000.0
    _exited(child, 2, now - 1)
    assert on_exit(child, now, settings) and child.next_start == now + BACKOFF_START_S
    _exited(child, 2, now - 1)
    assert on_exit(child, now, settings) and child.next_start == now + 2 * BACKOFF_START_S
    _exited(child, 2, now - 1)
    assert not on_exit(child, now, settings)
    assert child.quick_exits == 3 and child.last_code == 2


def test_a_late_exit_resets_the_count_and_a_stable_run_the_backoff() -> None:
    settings = Settings(
        supervisor_fail_count=2, supervisor_fail_window_s=5, supervisor_backoff_max_s=2
    )
    child = Child("notifier", [])
    now = 1000.0
    _exited(child, 1, now - 1)
    assert on_exit(child, now, settings)
    _exited(child, 1, now - 30)  # ran 30 s: not a start failure
    assert on_exit(child, now, settings) and child.quick_exits == 0
    for _ in range(5):
        child.quick_exits = 0
        _exited(child, 1, now - 30)
        on_exit(child, now, settings)
    assert child.backoff_s == 2  # capped
    _exited(child, 1, now - 120)  # a stable run starts afresh
    assert on_exit(child, now, settings) and child.next_start == now + BACKOFF_START_S
