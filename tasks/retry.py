"""The retry policy of Shiftover's tasks: retry only what a retry can fix.

A task retries when what it raised is transient (`adapters.errors.is_transient`: a lost connection, a timeout, a
serialization failure); a permanent error (bad input, a refused cutover) fails at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

from prefect.cache_policies import NO_CACHE, CachePolicy
from prefect.client.schemas.objects import TaskRun
from prefect.states import State
from prefect.tasks import Task, exponential_backoff

from shiftover.adapters.errors import is_transient


def retry_if_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - the state holds whatever the task raised
        return is_transient(exc)
    return False


class RetryPolicy(TypedDict):
    retries: int
    retry_delay_seconds: Callable[[int], list[float]]
    retry_condition_fn: Callable[[Task[..., Any], TaskRun, State[Any]], bool]
    cache_policy: CachePolicy


# `@task(**RETRYABLE)`: four retries, 1 s, 2 s, 4 s, 8 s apart; nothing cached (every run reads its providers anew).
RETRYABLE: RetryPolicy = {
    "retries": 4,
    "retry_delay_seconds": exponential_backoff(backoff_factor=1),
    "retry_condition_fn": retry_if_transient,
    "cache_policy": NO_CACHE,
}
