"""The test categories as plain functions over opened adapters: no Prefect here, so each is callable on its own.

Every category works only in scratch collections named `_shiftover_ts_<run>_<label>` that it creates and drops again;
the user's collections are never read or written. A check that does not hold, a `BackendError` or an unexpected
exception becomes a failed test case with its (redacted) message; nothing here raises to the caller. The categories
that measure (performance, load) are in tasks/testsuite_performance.py.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from decimal import Decimal

from shiftover.adapters import canonical
from shiftover.adapters.base import Adapter, CollectionSchema, Column, Filter, KeyRange, Record, matches
from shiftover.adapters.errors import BackendError, redact
from shiftover.tasks.testsuite_model import (
    Category,
    CategoryOutcome,
    SuitePlan,
    TestCase,
    category_status,
)

UTC = dt.timezone.utc
_T0 = dt.datetime(2024, 1, 1, tzinfo=UTC)
BATCH = 100


def scratch_schema(name: str) -> CollectionSchema:
    return CollectionSchema(name, (
        Column("id", "text", False), Column("name", "text"), Column("qty", "integer"), Column("price", "decimal"),
        Column("active", "boolean"), Column("at", "timestamp"), Column("doc", "json"),
        Column("updated_at", "timestamp"),
    ), ("id",))


def scratch_record(i: int) -> Record:
    return {"id": f"r{i:07d}", "name": f"Zoë ♥ {i}", "qty": i % 10, "price": Decimal(i) / 4, "active": i % 2 == 0,
            "at": _T0 + dt.timedelta(seconds=i, microseconds=i), "doc": {"i": i, "tags": ["a", "ü"]},
            "updated_at": _T0}


def key(record: Record) -> tuple[str]:
    return (record["id"],)


class CheckFailed(Exception):
    pass


class Skip(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def same(a: Sequence[Record], b: Sequence[Record]) -> bool:
    return [canonical.encode(r) for r in a] == [canonical.encode(r) for r in b]


class Recorder:
    """Collects the test cases of one category on one provider; `case` turns whatever goes wrong into a failure."""

    def __init__(self, provider: str, category: Category, secrets: Sequence[str]) -> None:
        self.provider, self.category, self.secrets = provider, category, list(secrets)
        self.tests: list[TestCase] = []
        self.outcome = CategoryOutcome(provider=provider, category=category, status="skipped")

    def clean(self, text: str) -> str:
        return redact(text, self.secrets)

    @contextmanager
    def case(self, name: str) -> Iterator[list[str]]:
        detail: list[str] = []
        start = time.perf_counter()
        status, error = "passed", None
        try:
            yield detail
        except Skip as exc:
            status, detail = "skipped", [str(exc)]
        except CheckFailed as exc:
            status, error = "failed", str(exc)
        except BackendError as exc:
            status, error = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - an unexpected error is a failed test, reported with its type
            status, error = "failed", f"{type(exc).__name__}: {exc}"
        self.tests.append(TestCase(provider=self.provider, category=self.category, name=name, status=status,
                                   seconds=round(time.perf_counter() - start, 4),
                                   detail=self.clean("; ".join(detail)), error=self.clean(error) if error else None))

    def skip_all(self, reason: str) -> CategoryOutcome:
        self.tests.append(TestCase(provider=self.provider, category=self.category, name=f"{self.category} tests",
                                   status="skipped", detail=self.clean(reason)))
        return self.finish()

    def finish(self) -> CategoryOutcome:
        self.outcome.tests = self.tests
        self.outcome.status, reason = category_status(self.tests)
        self.outcome.reason = self.clean(reason)
        self.outcome.notes = [self.clean(n) for n in self.outcome.notes]
        return self.outcome


@contextmanager
def scratch(adapter: Adapter, name: str) -> Iterator[CollectionSchema]:
    """A scratch collection that is dropped afterwards, whatever happens."""
    schema = scratch_schema(name)
    adapter.create_collection(schema)
    try:
        yield schema
    finally:
        with suppress(BackendError):
            adapter.drop_collection(name)


def write_batches(adapter: Adapter, name: str, records: Sequence[Record], batch: int = BATCH) -> int:
    return sum(adapter.upsert(name, records[i:i + batch]) for i in range(0, len(records), batch))


# -- connection -------------------------------------------------------------------------------------------------------
def connection(adapter: Adapter, plan: SuitePlan, rec: Recorder) -> CategoryOutcome:
    with rec.case("connect and read") as d:
        probe = adapter.probe(canary=False)
        check(probe.ok, probe.error or "the probe failed")
        d.append(f"{probe.latency_ms:.1f} ms; checks: {', '.join(probe.checks)}")
    if rec.tests[-1].status == "failed":
        with rec.case("write, read back and delete"):
            raise Skip("not run: the provider did not answer")
        return rec.finish()
    with rec.case("write, read back and delete") as d:
        with scratch(adapter, plan.scratch("conn")) as schema:
            start = time.perf_counter()
            adapter.upsert(schema.name, [scratch_record(1)])
            check(same([adapter.get(schema.name, ("r0000001",)) or {}], [scratch_record(1)]),
                  "the record read back differs from the one written")
            check(adapter.delete(schema.name, [("r0000001",)]) == 1, "delete did not report the record")
            d.append(f"{(time.perf_counter() - start) * 1000:.1f} ms")
    with rec.case("capabilities") as d:
        caps = adapter.capabilities
        d.append(", ".join(f"{k}={v}" for k, v in vars(caps).items() if v))
    return rec.finish()


# -- CRUD -------------------------------------------------------------------------------------------------------------
def crud(adapter: Adapter, plan: SuitePlan, rec: Recorder) -> CategoryOutcome:
    records = [scratch_record(i) for i in range(1, 51)]
    with scratch(adapter, plan.scratch("crud")) as schema:
        name = schema.name
        with rec.case("create") as d:
            check(adapter.insert(name, records) == len(records), "insert did not report every record")
            check(adapter.count(name) == len(records), f"count is {adapter.count(name)}, expected {len(records)}")
            d.append(f"{len(records)} records")
        with rec.case("read by key"):
            check(same([adapter.get(name, ("r0000007",)) or {}], [records[6]]), "get returned a different record")
            check(adapter.get(name, ("missing",)) is None, "get of a missing key returned a record")
        with rec.case("read with filters, order and limit") as d:
            for where in ([Filter("qty", "eq", 3)], [Filter("qty", "gte", 8)],
                          [Filter("qty", "gt", 2), Filter("name", "ne", "Zoë ♥ 13")], [Filter("qty", "in", [1, 4])]):
                expect_found(adapter, name, records, where)
            top = adapter.find(name, [Filter("qty", "eq", 5)], order_by=[("id", "desc")], limit=3)
            want = sorted((r for r in records if r["qty"] == 5), key=key, reverse=True)[:3]
            check(same(top, want), "order by id desc with limit 3 returned other records")
            d.append("eq, gte, gt+ne, in, order+limit")
        with rec.case("read with a boolean filter"):
            expect_found(adapter, name, records, [Filter("active", "eq", True), Filter("qty", "lt", 4)])
        with rec.case("update"):
            adapter.update(name, ("r0000010",), {"name": "changed", "qty": 42})
            got = adapter.get(name, ("r0000010",)) or {}
            check(got.get("name") == "changed" and got.get("qty") == 42, "the update is not visible")
            check(same([adapter.get(name, ("r0000011",)) or {}], [records[10]]), "update changed another record")
        with rec.case("delete"):
            check(adapter.delete(name, [("r0000001",), ("r0000002",)]) == 2, "delete did not report 2 records")
            check(adapter.get(name, ("r0000001",)) is None, "a deleted record is still there")
            check(adapter.count(name) == len(records) - 2, "count after delete is wrong")
        with rec.case("batches") as d:
            batch = [scratch_record(i) for i in range(1000, 1000 + plan.records)]
            start = time.perf_counter()
            write_batches(adapter, name, batch, 500)
            check(adapter.count(name) == len(records) - 2 + len(batch), "a batch write lost records")
            adapter.delete(name, [key(r) for r in batch])
            check(adapter.count(name) == len(records) - 2, "a batch delete left records behind")
            d.append(f"{len(batch)} records written and deleted in {time.perf_counter() - start:.2f} s")
        transactions(adapter, name, rec)
    return rec.finish()


def expect_found(adapter: Adapter, name: str, records: Sequence[Record], where: Sequence[Filter]) -> None:
    want = sorted((r for r in records if matches(r, where)), key=key)
    got = sorted(adapter.find(name, where), key=key)
    check(same(got, want), f"find {list(where)} returned {len(got)} records, expected {len(want)}")


def transactions(adapter: Adapter, name: str, rec: Recorder) -> None:
    offered = adapter.capabilities.transactions
    with rec.case("transaction commit"):
        if not offered:
            raise Skip(f"{adapter.kind} does not offer transactions")
        with adapter.transaction() as tx:
            tx.upsert(name, [scratch_record(5001)])
            tx.upsert(name, [scratch_record(5002)])
        check(adapter.get(name, ("r0005001",)) is not None and adapter.get(name, ("r0005002",)) is not None,
              "records written in a committed transaction are missing")
    with rec.case("transaction rollback"):
        if not offered:
            raise Skip(f"{adapter.kind} does not offer transactions")
        before = adapter.count(name)
        with suppress(_Abort), adapter.transaction() as tx:
            tx.upsert(name, [scratch_record(6001)])
            tx.delete(name, [("r0000003",)])
            raise _Abort
        check(adapter.get(name, ("r0006001",)) is None, "a write in a rolled-back transaction persisted")
        check(adapter.get(name, ("r0000003",)) is not None, "a delete in a rolled-back transaction persisted")
        check(adapter.count(name) == before, "the rolled-back transaction changed the count")


class _Abort(Exception):
    pass


# -- auth and storage -------------------------------------------------------------------------------------------------
# Users and files are collections of the adapter contract (adapters/userfiles.py): `auth.users` keyed by uid and
# `storage/<bucket>` keyed by path. Only adapters that declare capabilities.auth / storage are asked for them.
def not_offered(adapter: Adapter, rec: Recorder, service: str) -> CategoryOutcome | None:
    if getattr(adapter.capabilities, service):
        return None
    return rec.skip_all(f"{adapter.kind} does not offer {service} (capabilities.{service} is false)")


def auth(adapter: Adapter, plan: SuitePlan, rec: Recorder) -> CategoryOutcome:
    if (skipped := not_offered(adapter, rec, "auth")) is not None:
        return skipped
    from shiftover.adapters.userfiles import USERS

    uid = plan.scratch("user")
    email = f"{uid}@shiftover.invalid"
    user = {"uid": uid, "email": email, "email_verified": False, "user_metadata": {"name": "Zoë"},
            "app_metadata": {"role": "tester"}}
    try:
        with rec.case("sign up (create a user)"):
            check(adapter.upsert(USERS, [user]) == 1, "the user was not created")
        with rec.case("read the user back"):
            got = adapter.get(USERS, (uid,)) or {}
            check(got.get("email") == email, f"email read back is {got.get('email')!r}")
            check(got.get("user_metadata") == user["user_metadata"], "user metadata differs")
        with rec.case("find users by email"):
            check([r["uid"] for r in adapter.find(USERS, [Filter("email", "eq", email)])] == [uid],
                  "a filter on email did not return exactly the user")
        with rec.case("update the user (admin)"):
            adapter.update(USERS, (uid,), {"user_metadata": {"name": "changed"}, "email_verified": True})
            got = adapter.get(USERS, (uid,)) or {}
            check(got.get("user_metadata") == {"name": "changed"} and got.get("email_verified") is True,
                  "the update is not visible")
        with rec.case("delete the user (admin)"):
            check(adapter.delete(USERS, [(uid,)]) == 1, "delete did not report the user")
            check(adapter.get(USERS, (uid,)) is None, "the deleted user is still listed")
        with rec.case("sign in and sessions"):
            raise Skip("the adapter contract covers user administration, not end-user sign-in or sessions")
    finally:
        with suppress(BackendError):
            adapter.delete(USERS, [(uid,)])
    return rec.finish()


def storage(adapter: Adapter, plan: SuitePlan, rec: Recorder) -> CategoryOutcome:
    if (skipped := not_offered(adapter, rec, "storage")) is not None:
        return skipped
    from shiftover.adapters.userfiles import STORAGE_PREFIX, file_record, files_schema

    name = STORAGE_PREFIX + plan.scratch("files").replace("_", "-").strip("-")
    small = file_record("docs/hello ü.txt", "hello, Zoë\n".encode(), "text/plain", {"owner": "suite"})
    large = file_record("big/blob.bin", random.Random(plan.run_id).randbytes(5 * 2**20), "application/octet-stream",
                        {})
    adapter.create_collection(files_schema(name))
    try:
        with rec.case("upload"):
            check(adapter.upsert(name, [small]) == 1, "the upload was not reported")
        with rec.case("download and metadata"):
            got = adapter.get(name, (small["path"],)) or {}
            check(got.get("content") == small["content"], "downloaded content differs")
            check(got.get("content_type") == "text/plain" and got.get("metadata") == {"owner": "suite"},
                  f"content type / metadata read back: {got.get('content_type')!r} / {got.get('metadata')!r}")
        with rec.case("large file (5 MiB)") as d:
            start = time.perf_counter()
            adapter.upsert(name, [large])
            got = adapter.get(name, (large["path"],)) or {}
            check(got.get("sha256") == large["sha256"] and got.get("size") == large["size"],
                  "the large file came back with another checksum or size")
            d.append(f"up and down in {time.perf_counter() - start:.2f} s")
        with rec.case("list"):
            check([r["path"] for r in adapter.scan(name)] == sorted([small["path"], large["path"]]),
                  "listing does not show exactly the uploaded files")
        with rec.case("delete"):
            check(adapter.delete(name, [(small["path"],), (large["path"],)]) == 2, "delete did not report 2 files")
            check(adapter.scan(name) == [], "deleted files are still listed")
    finally:
        with suppress(BackendError):
            adapter.drop_collection(name)
    return rec.finish()


# -- migration --------------------------------------------------------------------------------------------------------
def copy_collection(src: Adapter, dst: Adapter, name_from: str, name_to: str) -> int:
    rows = 0
    dst.create_collection(scratch_schema(name_to))
    for batch in src.scan_range(name_from, KeyRange(None, None), batch=500):
        rows += dst.upsert(name_to, batch)
    return rows


def digest(adapter: Adapter, name: str) -> tuple[int, str]:
    d = adapter.digests(name, [KeyRange(None, None)])[0]
    return d.count, d.digest


def migration(adapter: Adapter, partner: Adapter, plan: SuitePlan, rec: Recorder) -> CategoryOutcome:
    origin, there, back, rollback = (plan.scratch(x) for x in ("mig", "migto", "migback", "migrb"))
    seed = [scratch_record(i) for i in range(1, plan.records + 1)]
    try:
        adapter.create_collection(scratch_schema(origin))
        write_batches(adapter, origin, seed, 500)
        start_digest = digest(adapter, origin)
        with rec.case(f"copy to {partner.name}") as d:
            start = time.perf_counter()
            rows = copy_collection(adapter, partner, origin, there)
            secs = time.perf_counter() - start
            check(digest(partner, there) == start_digest, f"digests differ after the copy to {partner.name}")
            d.append(f"{rows:,} records in {secs:.2f} s ({rows / max(secs, 1e-9):,.0f} records/s); digests equal")
        with rec.case(f"copy back from {partner.name}") as d:
            start = time.perf_counter()
            rows = copy_collection(partner, adapter, there, back)
            secs = time.perf_counter() - start
            check(digest(adapter, back) == start_digest, "digests differ after the round trip")
            check(same(adapter.scan(back, limit=len(seed) + 1), seed), "the round trip changed record values")
            d.append(f"{rows:,} records in {secs:.2f} s; digest equal to the original")
        with rec.case("rollback of an interrupted migration") as d:
            partner.create_collection(scratch_schema(rollback))
            before = [scratch_record(i) for i in range(900_000, 900_010)]
            partner.upsert(rollback, before)
            snapshot = digest(partner, rollback)
            partner.upsert(rollback, seed[:BATCH])  # the first batch lands, then the migration is abandoned
            check(digest(partner, rollback) != snapshot, "the partial copy did not change the target")
            written = {key(r) for r in seed[:BATCH]} - {key(r) for r in before}
            partner.delete(rollback, sorted(written))
            partner.upsert(rollback, before)
            check(digest(partner, rollback) == snapshot, "the target differs from its state before the migration")
            check(digest(adapter, origin) == start_digest, "the source changed during the migration")
            d.append(f"target restored to its {len(before)} prior records; source unchanged")
    finally:
        for a, n in ((adapter, origin), (partner, there), (adapter, back), (partner, rollback)):
            with suppress(BackendError):
                a.drop_collection(n)
    return rec.finish()
