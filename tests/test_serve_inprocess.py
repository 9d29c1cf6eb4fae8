"""Scheduled deployments run inside the serve process (service/scheduled_runs.py): flow runs under their deployment,
run by a thread of this process, one at a time, an overlapping run skipped, a backlog never run."""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
import uuid

from prefect import flow

RAN: list[tuple[int, str, float, float]] = []  # (pid, thread, start, end) of every run of `slow_step`


@flow(name="shiftover_test_slow_step")
def slow_step(seconds: float = 2.0) -> None:
    start = time.monotonic()
    time.sleep(seconds)
    RAN.append((os.getpid(), threading.current_thread().name, start, time.monotonic()))


def test_scheduled_runs_run_in_this_process_one_at_a_time(running_prefect_api) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Scheduled

    from shiftover.service.scheduled_runs import SKIPPED_BUSY, SKIPPED_STALE, InProcessRunner

    api, _ = running_prefect_api
    name = f"slow-{uuid.uuid4().hex[:6]}"
    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        deployment = slow_step.to_deployment(name=name, parameters={"seconds": 4.0})
        runner = InProcessRunner([(slow_step, deployment)], poll_s=0.3, pause_on_shutdown=False).start()
        [deployment_id] = runner.served

        def state(run_id):  # noqa: ANN001, ANN202
            return client.read_flow_run(run_id).state

        def wait(run_id, done, timeout_s=60.0):  # noqa: ANN001, ANN202
            deadline = time.monotonic() + timeout_s
            while not done(s := state(run_id)):
                assert time.monotonic() < deadline, s
                time.sleep(0.1)
            return s

        try:
            first = client.create_flow_run_from_deployment(deployment_id).id  # as the scheduler or the UI does
            wait(first, lambda s: s.is_running())
            overlapping = client.create_flow_run_from_deployment(deployment_id).id
            skipped = wait(overlapping, lambda s: s.is_final())
            assert skipped.is_cancelled() and skipped.message == SKIPPED_BUSY
            assert wait(first, lambda s: s.is_final()).is_completed()
            runner.served[deployment_id].running.result(timeout=30)  # the engine's teardown after the final state
            # two runs due together (a poll between two creations must not split them): the older one is stale
            due = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5)  # both exist before it, even when busy
            backlog = [client.create_flow_run_from_deployment(
                deployment_id, state=Scheduled(scheduled_time=due + dt.timedelta(milliseconds=i))).id for i in range(2)]
            newest = wait(backlog[1], lambda s: s.is_final())
            stale = state(backlog[0])
        finally:
            runner.stop(wait_s=10)
    assert (runner.served[deployment_id].started, runner.served[deployment_id].skipped) == (2, 2)
    assert newest.is_completed()
    assert stale.is_cancelled() and stale.message == SKIPPED_STALE
    assert [r[0] for r in RAN] == [os.getpid()] * 2  # both runs ran here, on the deployment's own worker thread
    assert all(r[1].startswith(f"shiftover-{name}") for r in RAN)
    assert RAN[1][2] >= RAN[0][3]  # never two at once


def test_an_untested_prefect_version_is_named(monkeypatch, caplog) -> None:
    import prefect

    from shiftover.service.scheduled_runs import TESTED, check_prefect

    assert check_prefect().startswith(TESTED)  # the installed one was tested
    monkeypatch.setattr(prefect, "__version__", "9.1.0")
    with caplog.at_level(logging.WARNING, logger="shiftover.serve"):
        assert check_prefect() == "9.1.0"
    assert "Prefect 9.1.0" in caplog.text and "tested with Prefect 3.8" in caplog.text
