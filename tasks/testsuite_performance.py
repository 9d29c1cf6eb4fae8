"""The test categories that measure, as plain functions over opened adapters (no Prefect): performance (latency
per operation, batch efficiency, the process's memory) and load (concurrent clients, each with its own adapter). Like
the other categories (tasks/testsuite_categories.py) they work only in scratch collections they create and drop."""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial

import psutil

from shiftover.adapters.base import Adapter, Filter, Record
from shiftover.adapters.errors import BackendError
from shiftover.tasks.testsuite_categories import BATCH, Recorder, check, key, scratch, scratch_record, write_batches
from shiftover.tasks.testsuite_model import CategoryOutcome, LoadStats, OperationStats, SuitePlan


# -- performance ------------------------------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def stats(provider: str, operation: str, latencies_s: Sequence[float], per_call: int = 1) -> OperationStats:
    ms = [x * 1000 for x in latencies_s]
    total = sum(latencies_s) or 1e-9
    return OperationStats(provider=provider, operation=operation, samples=len(ms), records_per_call=per_call,
                          p50_ms=round(percentile(ms, 0.5), 3), p95_ms=round(percentile(ms, 0.95), 3),
                          p99_ms=round(percentile(ms, 0.99), 3), mean_ms=round(statistics.fmean(ms), 3),
                          ops_per_s=round(len(ms) / total, 1), records_per_s=round(len(ms) * per_call / total, 1))


def timed(calls: Sequence[Callable[[], object]]) -> list[float]:
    out = []
    for call in calls:
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def performance(adapter: Adapter, plan: SuitePlan, rec: Recorder) -> CategoryOutcome:
    proc = psutil.Process()
    rss_before = proc.memory_info().rss
    n = plan.samples
    ops: dict[str, OperationStats] = {}
    with scratch(adapter, plan.scratch("perf")) as schema:
        name = schema.name
        rows = [scratch_record(i) for i in range(1, n + 1)]
        steps: list[tuple[str, list[Callable[[], object]], int]] = [
            ("insert", [partial(adapter.insert, name, [r]) for r in rows], 1),
            ("get", [partial(adapter.get, name, key(r)) for r in rows], 1),
            ("find", [partial(adapter.find, name, [Filter("qty", "eq", i % 10)], limit=10) for i in range(n)], 1),
            ("update", [partial(adapter.update, name, key(r), {"qty": 99}) for r in rows], 1),
            ("delete", [partial(adapter.delete, name, [key(r)]) for r in rows], 1),
        ]
        batches = [[scratch_record(i) for i in range(j, j + BATCH)] for j in range(100_000, 100_000 + plan.records,
                                                                                  BATCH)]
        steps.append((f"batch upsert ×{BATCH}", [partial(adapter.upsert, name, b) for b in batches], BATCH))
        for op, calls, per_call in steps:
            with rec.case(f"latency {op}") as d:
                ops[op] = stats(adapter.name, op, timed(calls), per_call)
                s = ops[op]
                d.append(f"p50 {s.p50_ms:.2f} ms, p95 {s.p95_ms:.2f} ms, p99 {s.p99_ms:.2f} ms, "
                         f"{s.records_per_s:,.0f} records/s over {s.samples} calls")
        with rec.case("batch efficiency") as d:
            single, batch = ops.get("insert"), ops.get(f"batch upsert ×{BATCH}")
            check(single is not None and batch is not None, "insert or batch upsert did not complete")
            assert single is not None and batch is not None
            rec.outcome.batch_efficiency = round(batch.records_per_s / max(single.records_per_s, 1e-9), 2)
            d.append(f"batches of {BATCH} write {rec.outcome.batch_efficiency}× the records/s of single inserts")
            check(adapter.count(name) == plan.records, f"count after the batches is {adapter.count(name)}, "
                                                       f"expected {plan.records}")
    rss_after = proc.memory_info().rss
    rec.outcome.operations = list(ops.values())
    rec.outcome.memory_rss_mb = round(rss_after / 2**20, 1)
    rec.outcome.memory_delta_mb = round((rss_after - rss_before) / 2**20, 1)
    with rec.case("process memory") as d:
        d.append(f"RSS {rec.outcome.memory_rss_mb} MB ({rec.outcome.memory_delta_mb:+} MB during the category)")
    if rec.outcome.batch_efficiency is not None and rec.outcome.batch_efficiency < 2:
        rec.outcome.notes.append(f"{adapter.name}: batches of {BATCH} reach only {rec.outcome.batch_efficiency}× "
                                 "the records/s of single inserts")
    return rec.finish()


# -- load -------------------------------------------------------------------------------------------------------------
class _Clients:
    """The load category's client threads and what they tally: each thread opens its own adapter and runs the mix
    until the deadline."""

    def __init__(self, open_client: Callable[[], Adapter], name: str, seed: Sequence[Record], deadline: float) -> None:
        self.open_client, self.name, self.seed, self.deadline = open_client, name, seed, deadline
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.ops = 0

    def client(self, n: int) -> None:
        name, seed = self.name, self.seed
        rng = random.Random(n)
        try:
            adapter = self.open_client()
        except BackendError as exc:
            with self.lock:
                self.errors.append(str(exc))
            return
        with adapter:
            while time.monotonic() < self.deadline:
                roll, rec_ = rng.random(), seed[rng.randrange(len(seed))]
                start = time.perf_counter()
                try:
                    if roll < 0.6:
                        adapter.get(name, key(rec_))
                    elif roll < 0.8:
                        adapter.find(name, [Filter("qty", "eq", rng.randrange(10))], limit=10)
                    else:
                        adapter.upsert(name, [{**rec_, "name": f"load {n}"}])
                    elapsed = time.perf_counter() - start
                    with self.lock:
                        self.ops += 1
                        self.latencies.append(elapsed)
                except BackendError as exc:
                    with self.lock:
                        self.ops += 1
                        self.errors.append(str(exc))


def load(open_client: Callable[[], Adapter], plan: SuitePlan, rec: Recorder) -> CategoryOutcome:
    """`concurrent_users` threads, each with its own adapter (adapters are never shared between threads), run a
    mix of reads, filtered reads and writes for `duration_s`."""
    name = plan.scratch("load")
    seed = [scratch_record(i) for i in range(1, plan.records + 1)]
    with open_client() as admin, scratch(admin, name):
        write_batches(admin, name, seed, 500)
        clients = _Clients(open_client, name, seed, time.monotonic() + plan.duration_s)
        with rec.case(f"{plan.concurrent_users} concurrent clients for {plan.duration_s:g} s") as d:
            threads = [threading.Thread(target=clients.client, args=(i,), daemon=True)
                       for i in range(plan.concurrent_users)]
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join(plan.duration_s + 120)
            seconds = time.perf_counter() - start
            latencies, errors = clients.latencies, clients.errors
            total = max(clients.ops, len(errors))
            rate = len(errors) / total if total else 1.0
            rec.outcome.load = LoadStats(
                provider=rec.provider, users=plan.concurrent_users, seconds=round(seconds, 2), operations=total,
                errors=len(errors), ops_per_s=round(len(latencies) / seconds, 1), error_rate=round(rate, 4),
                p95_ms=round(percentile([x * 1000 for x in latencies], 0.95), 2) if latencies else 0.0)
            d.append(f"{total:,} operations, {rec.outcome.load.ops_per_s:,.0f} ops/s, error rate {rate:.2%}, "
                     f"p95 {rec.outcome.load.p95_ms} ms")
            check(total > 0, "no operation completed")
            check(rate <= plan.max_error_rate, f"error rate {rate:.2%} is above the allowed {plan.max_error_rate:.2%}"
                  + (f"; first error: {errors[0]}" if errors else ""))
        with rec.case("data intact after load"):
            check(admin.count(name) == len(seed), f"count is {admin.count(name)} after the load, "
                                                  f"expected {len(seed)}")
    return rec.finish()
