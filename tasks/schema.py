"""Tasks that move the schema around the rows between PostgreSQL-family providers (adapters.postgres.schema), and read
back what the application sees on both sides for the `schema` suite.

A run records, before it restores anything, which tables its pre-data creates (checkpoint "(schema)" of the run):
a re-run after a kill then knows those tables are its own and finishes their post-data; tables that existed on the
target before the run are never altered (the gate compares them and names what differs).
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from prefect import task

from shiftover.adapters.base import Adapter
from shiftover.adapters.config import load_config
from shiftover.adapters.errors import SchemaRefused
from shiftover.adapters.postgres import objects as pg_objects
from shiftover.adapters.postgres import schema as pg_schema
from shiftover.adapters.postgres.adapter import PostgresAdapter
from shiftover.adapters.registry import open_adapter
from shiftover.adapters.userfiles import is_users_or_files
from shiftover.expectations.suites import CollectionEvidence
from shiftover.tasks.migration import control_store
from shiftover.tasks.retry import RETRYABLE

_CHECKPOINT = "(schema)"


@dataclass(frozen=True)
class SchemaPlan:
    """What the schema move will do, for the plan, the dry-run and the report."""

    moves: bool  # both sides PostgreSQL-family in the same schema: the schema moves with the rows
    creates: tuple[str, ...]  # tables whose schema this run creates (absent on the target)
    before_load: int = 0  # pre-data objects
    after_load: int = 0  # post-data objects
    extensions: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def tables(names: Sequence[str]) -> list[str]:
    """The collections that are tables (users and files are collections of their own APIs, not tables)."""
    return [n for n in names if not is_users_or_files(n)]


def pg_pair(src: Adapter, dst: Adapter) -> bool:
    """Both sides speak PostgreSQL (PostgreSQL, Supabase): the schema can move with pg_dump and pg_restore."""
    return src.capabilities.bulk_copy == dst.capabilities.bulk_copy == "postgresql"


def _movable(src: Adapter, dst: Adapter) -> bool:
    return pg_pair(src, dst) and src.schema_name == dst.schema_name  # type: ignore[attr-defined]


def _selected(src: PostgresAdapter, run_id: str, names: Sequence[str]) -> pg_schema.Selection:
    path = pg_schema.dump(src, pg_schema.dump_path(run_id, src.name))
    return pg_schema.select(src, pg_schema.toc(path), names)


def _selection(src: PostgresAdapter, dst: PostgresAdapter, run_id: str,
               names: Sequence[str]) -> tuple[pg_schema.Selection, pg_schema.Requirements]:
    sel = _selected(src, run_id, names)
    return sel, pg_schema.requirements(src, dst, sel)


def _recorded(config_path: str, run_id: str) -> list[str] | None:
    with control_store(load_config(config_path)) as control:
        mark = control.checkpoints(run_id).get(_CHECKPOINT)
    return json.loads(mark["last_key"]) if mark and mark.get("last_key") else None


@task(**RETRYABLE)
def plan_schema(config_path: str, run_id: str | None, source: str, target: str,
                names: Sequence[str]) -> SchemaPlan:
    """What moves, checked against what the target offers: a missing extension or role, or a target that holds some
    of the tables but not all, is refused here — at the dry-run and before a run changes anything."""
    names = tables(names)
    config = load_config(config_path)
    with open_adapter(config, source) as src, open_adapter(config, target) as dst:
        if not pg_pair(src, dst) or not names:
            return SchemaPlan(False, ())
        src, dst = cast(PostgresAdapter, src), cast(PostgresAdapter, dst)
        if not _movable(src, dst):
            return SchemaPlan(False, (), notes=(
                f"schema: not moved — {src.name!r} uses schema {src.schema_name!r} and {dst.name!r} uses "
                f"{dst.schema_name!r}; only columns and keys are created, and the schema suite names what differs",))
        label = run_id or f"plan-{uuid.uuid4().hex[:8]}"
        try:
            sel, req = _selection(src, dst, label, names)
        finally:
            if run_id is None:
                pg_schema.forget(pg_schema.dump_path(label, src.name))
        pg_schema.refuse_unless_ready(src, dst, req)
        existing = pg_schema.existing_tables(dst, names)
        recorded = _recorded(config_path, run_id) if run_id else None
        if recorded is not None:
            creates = tuple(recorded)
        elif existing and sorted(existing) != sorted(names):
            raise SchemaRefused(
                f"the target {dst.name!r} already holds some of the tables ({', '.join(existing)}) but not the others "
                f"({', '.join(sorted(set(names) - set(existing)))})", provider=dst.name,
                hint="drop those tables on the target so the whole schema moves, or move only them with --collections")
        else:
            creates = () if existing else tuple(names)
        pre = [e for e in sel.entries[pg_schema.PRE]]
        post = [e for g in (pg_schema.KEYS, pg_schema.ENFORCEMENT) for e in sel.entries[g]]
        notes = []
        if creates:
            kinds = sorted({e.desc.lower() for e in pre if e.desc not in ("ACL", "COMMENT")})
            notes.append(f"schema: {len(pre)} object(s) before the load ({', '.join(kinds)}), {len(post)} after it "
                         "(keys, indexes, constraints, foreign keys, triggers, policies); sequences set past the "
                         "source's values")
        else:
            notes.append(f"schema: the target's tables exist and are used as they are ({', '.join(existing)}); the "
                         "schema suite compares them with the source object by object")
        if req.extensions:
            notes.append("schema: extensions " + ", ".join(f"{n} (in {s})" for n, s in req.extensions) +
                         " are created on the target if missing")
        return SchemaPlan(True, creates, len(pre), len(post), tuple(n for n, _ in req.extensions), tuple(notes))


@task(**RETRYABLE)
def apply_pre_data(config_path: str, run_id: str, source: str, target: str, names: Sequence[str]) -> list[str]:
    """Create the tables' pre-data on the target (extensions, types, tables, sequences, views, grants) in one
    transaction; returns the tables this run created. Tables already on the target are left as they are."""
    names = tables(names)
    config = load_config(config_path)
    recorded = _recorded(config_path, run_id)
    with open_adapter(config, source) as src, open_adapter(config, target) as dst:
        if not _movable(src, dst) or not names:
            return []
        src, dst = cast(PostgresAdapter, src), cast(PostgresAdapter, dst)
        existing = pg_schema.existing_tables(dst, names)
        if existing:
            return recorded or []  # ours from an earlier attempt (recorded), or the target's own tables
        sel, req = _selection(src, dst, run_id, names)
        pg_schema.refuse_unless_ready(src, dst, req)
        with control_store(config) as control:  # recorded first: a kill after the restore still knows them as ours
            control.set_checkpoint(run_id, _CHECKPOINT, last_key=json.dumps(list(names)), phase="pre-data")
        pg_schema.apply_pre_data(src, dst, pg_schema.dump_path(run_id, source), sel, req)
        return list(names)


@task(**RETRYABLE)
def apply_post_data(config_path: str, run_id: str, source: str, target: str, groups: Sequence[str],
                    names: Sequence[str] | None = None) -> int:
    """The post-data `groups` (pg_schema.KEYS, pg_schema.ENFORCEMENT) of the tables this run created (or of `names`
    among them); what an earlier attempt built is skipped. Returns how many objects were built."""
    config = load_config(config_path)
    with open_adapter(config, source) as src, open_adapter(config, target) as dst:
        return post_data(config_path, run_id, src, dst, groups, names)[0]


def post_data(config_path: str, run_id: str, src: Adapter, dst: Adapter, groups: Sequence[str],
              names: Sequence[str] | None = None) -> tuple[int, list[str]]:
    """`apply_post_data` with open adapters. An object that needs a table not in `names` (a foreign key to a table a
    gradual move has not moved yet) waits; returns (objects built, labels of the objects that wait)."""
    created = _recorded(config_path, run_id)
    if not created or not pg_pair(src, dst):
        return 0, []
    src, dst = cast(PostgresAdapter, src), cast(PostgresAdapter, dst)
    tables = [t for t in created if names is None or t in names]
    sel = _selected(src, run_id, created)
    path = pg_schema.dump_path(run_id, src.name)
    built = sum(pg_schema.apply_post_data(dst, path, sel, g, tables) for g in groups)
    waiting = [f"{'constraint' if e.desc.endswith('CONSTRAINT') else e.desc.lower()} {e.tag.split(' ', 1)[-1]}"
               for g in groups for e in sel.entries.get(g, [])
               if sel.tables_of.get(e.line) and set(sel.tables_of[e.line]) & set(tables)
               and not sel.tables_of[e.line] <= set(tables)]
    return built, waiting


@task(**RETRYABLE)
def sync_sequences(config_path: str, source: str, target: str, names: Sequence[str]) -> dict[str, int]:
    """Every target sequence of these tables set past the source's values (and past the target's keys)."""
    names = tables(names)
    config = load_config(config_path)
    with open_adapter(config, source) as src, open_adapter(config, target) as dst:
        if not pg_pair(src, dst):
            return {}
        return pg_objects.sync_sequences(cast(PostgresAdapter, src), cast(PostgresAdapter, dst), names)


Objects = dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]]


@task(**RETRYABLE)
def describe_schemas(config_path: str, source: str, target: str, names: Sequence[str]) -> Objects:
    """Per table, the application-visible objects of both sides as (label, definition), including the outcome of
    the app's next insert tried on each side in a rolled-back transaction (as the provider's `app_role` where one is
    configured). Empty unless both sides are PostgreSQL-family."""
    config = load_config(config_path)
    with open_adapter(config, source) as src, open_adapter(config, target) as dst:
        return objects(src, dst, names)


def objects(src: Adapter, dst: Adapter, names: Sequence[str], waiting: Sequence[str] = ()) -> Objects:
    """`describe_schemas` with open adapters; the `waiting` objects (labels) are left out of both sides."""
    names = tables(names)
    if not pg_pair(src, dst) or not names:
        return {}
    src, dst = cast(PostgresAdapter, src), cast(PostgresAdapter, dst)
    sides = []
    role = dst.options.app_role or src.options.app_role  # the same insert, as the same role, on both sides
    for pg, bypass in ((src, True), (dst, False)):
        found = pg_objects.describe(pg, names)
        for name in names:
            outcome = pg_objects.smoke_insert(pg, name, role=role, bypass=bypass)
            found[name].append(pg_objects.SchemaObject(
                "smoke", f"insert with defaults{f' as {role}' if role else ''}", outcome))
        sides.append(found)
    for name in names:  # what the target must show is what the app needs, even where the source falls short of it
        sides[0][name] = [_required(o, sides[0][name]) for o in sides[0][name]]
    skip = set(waiting)
    return {n: ([(o.label, o.definition) for o in sides[0][n] if o.label not in skip],
                [(o.label, o.definition) for o in sides[1][n] if o.label not in skip]) for n in names}


def _required(obj: pg_objects.SchemaObject, siblings: Sequence[pg_objects.SchemaObject]) -> pg_objects.SchemaObject:
    """The source's object as the target must show it. A sequence must end past every key, whatever the source's
    sequence says (an app that inserted explicit keys leaves it behind; the move sets the target's past them); so the
    app's next insert, refused on the source by a duplicate key only because such a sequence lags, must go in."""
    if obj.kind == "sequence" and "; behind: " in obj.definition:
        return dataclasses.replace(obj, definition=obj.definition.split("; behind: ")[0] + "; past every key")
    lagging = any(o.kind == "sequence" and "; behind: " in o.definition for o in siblings)
    if obj.kind == "smoke" and lagging and obj.definition.startswith("refused: duplicate key"):
        return dataclasses.replace(obj, definition="inserted")
    return obj


def finish_in_freeze(config_path: str, run_id: str, src: Adapter, dst: Adapter, names: Sequence[str],
                     moved: Sequence[str]) -> tuple[Objects, list[str]]:
    """Inside a live strategy's freeze, after the final delta: foreign keys and triggers of the tables now on the
    target (`moved`: these and those moved before), sequences past the source's, and the objects the gate compares.
    Returns the objects and the labels of what waits for a table still to move."""
    names = tables(names)
    _, waiting = post_data(config_path, run_id, src, dst, [pg_schema.ENFORCEMENT], list(moved))
    if pg_pair(src, dst):
        pg_objects.sync_sequences(cast(PostgresAdapter, src), cast(PostgresAdapter, dst), names)
    return objects(src, dst, names, waiting), waiting


def with_objects(evidence: Sequence[CollectionEvidence], found: Objects) -> list[CollectionEvidence]:
    """The evidence with each collection's schema objects, for the `schema` suite."""
    return [dataclasses.replace(e, source_objects=tuple(found[e.collection][0]),
                                target_objects=tuple(found[e.collection][1])) if e.collection in found else e
            for e in evidence]


def forget_dump(run_id: str | None, source: str) -> None:
    """Remove the run's schema dump (a temporary file of the machine that ran the flow)."""
    if run_id:
        pg_schema.forget(pg_schema.dump_path(run_id, source))
