"""MonitorPolicy: consecutive failures, cool-down and hysteresis, so a flapping provider never causes ping-pong."""

from __future__ import annotations

import datetime as dt

from shiftover.adapters.base import ProbeResult
from shiftover.adapters.config import parse_config
from shiftover.control.store import Pointer
from shiftover.tasks.failover import MonitorPolicy

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def config(**failover):
    return parse_config({"providers": {"a": {"kind": "memory", "role": "primary", "priority": 1},
                                       "b": {"kind": "memory", "role": "standby", "priority": 2}},
                         "failover": failover}, base=__import__("pathlib").Path("."))


def probe(provider: str, ok: bool, second: float) -> ProbeResult:
    return ProbeResult(provider, ok, 5.0, None if ok else "down", (), T0 + dt.timedelta(seconds=second))


def test_a_flapping_primary_never_triggers_a_failover():
    policy = MonitorPolicy(config(consecutive_failures=3))
    pointer = Pointer(1, "a", T0, "initial")
    decisions = [policy.observe(probe("a", i % 2 == 0, i), pointer) for i in range(200)]
    assert not any(decisions)
    ok_ok_fail_fail = [policy.observe(probe("a", i % 4 < 2, 200 + i), pointer) for i in range(200)]
    assert not any(ok_ok_fail_fail)


def test_consecutive_failures_trigger_once_and_the_count_restarts_on_a_new_epoch():
    policy = MonitorPolicy(config(consecutive_failures=3, cooldown_s=0))
    pointer = Pointer(1, "a", T0, "initial")
    assert [policy.observe(probe("a", False, i), pointer) for i in range(3)] == [False, False, True]
    assert policy.first_failed_at == T0
    after = Pointer(2, "b", T0 + dt.timedelta(seconds=3), "failover")
    assert policy.observe(probe("b", False, 4), after) is False and policy.failures == 1


def test_no_second_automatic_switch_within_the_cooldown():
    policy = MonitorPolicy(config(consecutive_failures=2, cooldown_s=60))
    switched = Pointer(2, "b", T0, "failover")
    assert not any(policy.observe(probe("b", False, s), switched) for s in range(1, 30))
    assert policy.observe(probe("b", False, 61), switched) is True


def test_failback_needs_automatic_mode_and_an_unbroken_stable_period():
    pointer = Pointer(2, "b", T0, "failover")
    manual = MonitorPolicy(config(failback="manual", cooldown_s=0))
    for s in range(0, 1000, 10):
        manual.observe_preferred(probe("a", True, s))
    assert manual.failback_due(pointer, T0 + dt.timedelta(seconds=1000)) is None

    auto = MonitorPolicy(config(failback="automatic", failback_stable_s=300, cooldown_s=0))
    for s in range(0, 600, 10):  # flapping: every fifth probe fails, so it is never stable for 300 s
        auto.observe_preferred(probe("a", s % 50 != 0, s))
        assert auto.failback_due(pointer, T0 + dt.timedelta(seconds=s)) is None
    for s in range(600, 1000, 10):
        auto.observe_preferred(probe("a", True, s))
    assert auto.failback_due(pointer, T0 + dt.timedelta(seconds=999)) == "a"
