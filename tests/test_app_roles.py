"""Apps that write under their own roles: Shiftover's triggers work for them, and none of them can pass a freeze.

On the local PostgreSQL, as a Supabase project has it: `anon`, `authenticated` and `service_role` (created once,
idempotently, never dropped: other sessions share the server), reached by SET ROLE from a LOGIN role that is a member
of them (PostgREST's authenticator); default privileges that grant every new table, sequence and function in `public`
to them; and a plain LOGIN role with DML only. Shiftover itself connects as a role that owns the app's tables and is
not a superuser. Roles other than Supabase's have unique names and are dropped afterwards.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb

from shiftover.adapters.registry import open_adapter
from tests.conftest import PG_ADMIN, drop_database, make_database
from tests.helpers import assert_same_records, config, write_config
from tests.test_bluegreen import assert_model, seed_items

SUPABASE_ROLES = ("anon", "authenticated", "service_role")
FENCE = ["function _shiftover_write_freeze", "relation _shiftover_guard", "relation _shiftover_guard_pkey",
         "trigger _shiftover_freeze"]  # what a fence is made of (README: "What stays in your database")


@dataclass(frozen=True)
class Roles:
    admin: str  # Shiftover's role: owns the app's tables, no superuser
    dml: str  # a plain LOGIN role with SELECT/INSERT/UPDATE/DELETE on the app's tables
    gateway: str  # a LOGIN role that may SET ROLE to Supabase's roles, as PostgREST's authenticator does

    def writers(self) -> list[tuple[str, str | None]]:
        """(role, the LOGIN role that becomes it or None) for every role an app writes under."""
        return [(r, self.gateway) for r in SUPABASE_ROLES] + [(self.dml, None)]


def _admin_exec(statements: list[Any], db: str | None = None) -> None:
    info = conninfo_to_dict(PG_ADMIN)
    if db:
        info["dbname"] = db
    with psycopg.connect(make_conninfo(**info), autocommit=True) as conn:
        for stmt in statements:
            conn.execute(stmt)


def dsn(db: str, user: str, **extra: Any) -> str:
    info = conninfo_to_dict(PG_ADMIN)
    info.update(dbname=db, user=user, **extra)
    return make_conninfo(**info)


def connect_as(db: str, role: str, via: str | None, **extra: Any) -> psycopg.Connection:
    conn = psycopg.connect(dsn(db, via or role, **extra), autocommit=True)
    if via:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    return conn


@pytest.fixture(scope="module")
def supabase_roles(pg_server: str) -> None:
    for role in SUPABASE_ROLES:
        _admin_exec([sql.SQL("DO $$ BEGIN CREATE ROLE {} NOLOGIN; "
                             "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$")
                     .format(sql.Identifier(role))])


@pytest.fixture
def roles(supabase_roles: None) -> Iterator[Roles]:
    tag = uuid.uuid4().hex[:10]
    made = Roles(f"so_admin_{tag}", f"so_dml_{tag}", f"so_gateway_{tag}")
    _admin_exec([sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER").format(sql.Identifier(r))
                 for r in (made.admin, made.dml, made.gateway)]
                + [sql.SQL("GRANT {} TO {}").format(sql.Identifier(r), sql.Identifier(made.gateway))
                   for r in SUPABASE_ROLES])
    try:
        yield made
    finally:
        _admin_exec([sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(r))
                     for r in (made.gateway, made.dml, made.admin)])


def prepare(db: str, roles: Roles) -> None:
    """Schema rights and default privileges as a Supabase project has them for its owner role (here: admin)."""
    ident = sql.Identifier
    supa = sql.SQL(", ").join(ident(r) for r in SUPABASE_ROLES)
    adp = sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public ").format(ident(roles.admin))
    _admin_exec([
        sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(ident(db), ident(roles.admin)),
        sql.SQL("GRANT CREATE, USAGE ON SCHEMA public TO {}").format(ident(roles.admin)),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}, {}").format(supa, ident(roles.dml)),
        adp + sql.SQL("GRANT ALL ON TABLES TO {}").format(supa),
        adp + sql.SQL("GRANT ALL ON SEQUENCES TO {}").format(supa),
        adp + sql.SQL("GRANT ALL ON FUNCTIONS TO {}").format(supa),
        adp + sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {}").format(ident(roles.dml)),
    ], db)


@pytest.fixture
def dbs(roles: Roles) -> Iterator[tuple[str, str]]:
    """Two databases prepared for the roles; dropped before the roles are."""
    names = (make_database(), make_database())
    try:
        for db in names:
            prepare(db, roles)
        yield names
    finally:
        for db in names:
            drop_database(db)


def url(db: str, user: str) -> str:
    info = conninfo_to_dict(PG_ADMIN)
    return f"postgresql+psycopg://{user}@{info.get('host', '127.0.0.1')}:{info.get('port', '5432')}/{db}"


def leftovers(db: str) -> list[str]:
    """Every object in the database whose name starts with _shiftover (functions, relations, triggers)."""
    info = conninfo_to_dict(PG_ADMIN)
    info["dbname"] = db
    with psycopg.connect(make_conninfo(**info)) as conn:
        return [r[0] for r in conn.execute(
            r"SELECT 'function ' || proname FROM pg_proc WHERE proname LIKE '\_shiftover%' UNION ALL "
            r"SELECT 'relation ' || relname FROM pg_class WHERE relname LIKE '\_shiftover%' UNION ALL "
            r"SELECT 'trigger ' || tgname FROM pg_trigger WHERE tgname LIKE '\_shiftover%' ORDER BY 1").fetchall()]


def write(conn: psycopg.Connection, i: int, name: str) -> None:
    conn.execute("INSERT INTO items (id, name, qty, price, tags) VALUES (%s, %s, 1, 1.50, %s) ON CONFLICT (id) DO "
                 "UPDATE SET name = excluded.name, qty = items.qty + 1", (i, name, Jsonb({"by": name})))


def privileges(db: str, role: str, objects: list[tuple[str, str]]) -> list[str]:
    """The (kind, name) objects on which `role` holds any privilege."""
    checks = {"table": "has_table_privilege(%s, %s, 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER')",
              "sequence": "has_sequence_privilege(%s, %s, 'USAGE,SELECT,UPDATE')",
              "function": "has_function_privilege(%s, %s, 'EXECUTE')"}
    info = conninfo_to_dict(PG_ADMIN)
    info["dbname"] = db
    held = []
    with psycopg.connect(make_conninfo(**info)) as conn:
        for kind, name in objects:
            if conn.execute("SELECT " + checks[kind], (role, name)).fetchone()[0]:
                held.append(f"{kind} {name}")
    return held


def test_shiftover_role_is_not_a_superuser_and_app_roles_write_through_capture(tmp_path: Path, roles: Roles,
                                                                             dbs: tuple[str, str]) -> None:
    db = dbs[0]
    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": url(db, roles.admin), "role": "primary"}})
    seed_items(cfg_path, "src", 20)
    _admin_exec(["ALTER TABLE items ENABLE ROW LEVEL SECURITY",
                 "CREATE POLICY everyone ON items TO PUBLIC USING (true) WITH CHECK (true)"], db)
    with psycopg.connect(dsn(db, roles.admin)) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
    with open_adapter(config(cfg_path), "src") as a:
        a.capture_start(["items"])
        assert {(i.what, i.collection) for i in a.installed()} >= {("capture trigger", "items"), ("change log", None),
                                                                  ("capture function", None)}
        for n, (role, via) in enumerate(roles.writers()):
            with connect_as(db, role, via) as conn:
                write(conn, 100 + n, role)  # insert
                write(conn, 1 + n, role)  # update
                conn.execute("DELETE FROM items WHERE id = %s", (10 + n,))
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute("SELECT count(*) FROM public._shiftover_changes")
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute("INSERT INTO public._shiftover_changes (tbl, key, op) VALUES ('items', '[1]', "
                                 "'delete')")
        seen = [(c.key, c.op) for c in a.capture_read("items", 0, 100)]
        expected = []
        for n in range(len(roles.writers())):
            expected += [((100 + n,), "upsert"), ((1 + n,), "upsert"), ((10 + n,), "delete")]
        assert seen == expected
        objects = [("table", "public._shiftover_changes"), ("sequence", "public._shiftover_changes_seq_seq"),
                   ("function", "public._shiftover_capture()")]
        for role, _ in roles.writers():
            assert privileges(db, role, objects) == [], role  # default privileges granted them; Shiftover revoked
        a.capture_stop(["items"])
        assert a.installed() == []
    assert leftovers(db) == []
    assert [r for r in _rls(db)] == [(True,)]  # the app's RLS is as it was


def _rls(db: str) -> list[tuple[bool]]:
    info = conninfo_to_dict(PG_ADMIN)
    info["dbname"] = db
    with psycopg.connect(make_conninfo(**info)) as conn:
        return conn.execute("SELECT relrowsecurity FROM pg_class WHERE oid = 'public.items'::regclass").fetchall()


def _refused(conn: psycopg.Connection, i: int, *, local: bool = False) -> None:
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="BACKEND_010"):
        if local:
            with conn.transaction():
                conn.execute("SET LOCAL shiftover.bypass_freeze = on")
                write(conn, i, "local")
        else:
            write(conn, i, "bypass")


def test_freeze_refuses_every_role_and_every_bypass_but_shiftovers_own(tmp_path: Path, roles: Roles,
                                                                      dbs: tuple[str, str]) -> None:
    db = dbs[0]
    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": url(db, roles.admin), "role": "primary"}})
    seed_items(cfg_path, "src", 20)
    with open_adapter(config(cfg_path), "src") as a:
        a.freeze(["items"], reason="test freeze")
        assert {i.what for i in a.installed()} == {"freeze trigger", "freeze function", "freeze secret"}
        for role, via in roles.writers():
            with connect_as(db, role, via) as conn:
                _refused(conn, 1)
                conn.execute("SET shiftover.bypass_freeze = on")
                _refused(conn, 1)
                _refused(conn, 1, local=True)
                conn.execute("SELECT set_config('shiftover.bypass_freeze', 'on', false)")
                _refused(conn, 1)
                with pytest.raises(psycopg.errors.InsufficientPrivilege):  # the secret is out of reach ...
                    conn.execute("SELECT set_config('shiftover.bypass_freeze', (SELECT secret FROM "
                                 "public._shiftover_guard), false)")
                truncate_refusal = (psycopg.errors.InsufficientPrivilege if role == roles.dml  # no TRUNCATE right
                                    else psycopg.errors.ObjectNotInPrerequisiteState)  # Supabase's roles have ALL
                with pytest.raises(truncate_refusal):
                    conn.execute("TRUNCATE items")
            with connect_as(db, role, via, options="-c shiftover.bypass_freeze=on") as conn:
                assert conn.execute("SHOW shiftover.bypass_freeze").fetchone() == ("on",)
                _refused(conn, 2)
            objects = [("table", "public._shiftover_guard"), ("function", "public._shiftover_write_freeze()")]
            assert privileges(db, role, objects) == [], role  # ... and so is the function
        _admin_exec([sql.SQL("ALTER ROLE {} SET shiftover.bypass_freeze = 'on'").format(sql.Identifier(roles.dml))])
        with connect_as(db, roles.dml, None) as conn:
            assert conn.execute("SHOW shiftover.bypass_freeze").fetchone() == ("on",)
            _refused(conn, 3)
        with a.bypass_freeze():  # Shiftover's own session passes (rollback, final delta) ...
            a.delete("items", [(5,)])
            a.upsert("items", [{"id": 500, "name": "rollback", "qty": 1, "price": Decimal("1.00"), "tags": []}])
        with connect_as(db, roles.dml, None) as conn:  # ... and nobody else meanwhile
            _refused(conn, 4)
            assert conn.execute("SELECT count(*), count(*) FILTER (WHERE id = 500), count(*) FILTER (WHERE id = 5) "
                                "FROM items").fetchone() == (20, 1, 0)
        a.unfreeze(["items"])
        assert a.frozen() == [] and a.installed() == []
    assert leftovers(db) == []
    with connect_as(db, roles.dml, None) as conn:
        write(conn, 1, "after unfreeze")


class RoleWriter(threading.Thread):
    """Writes as an app does, under its own role, on its own connection: inserts, updates and deletes about 50 times
    a second, and keeps the model of what was acknowledged and every refusal."""

    def __init__(self, db: str, role: str, model: dict[int, dict[str, Any]]) -> None:
        super().__init__(daemon=True)
        self.db, self.role, self.model = db, role, model
        self.stop = threading.Event()
        self.acked = 0
        self.refusals: list[str] = []
        self.next_id = max(model) + 1

    def run(self) -> None:
        with connect_as(self.db, self.role, None) as conn:
            n = 0
            while not self.stop.is_set():
                n += 1
                try:
                    if n % 3 == 1:
                        i = self.next_id
                        rec = {"id": i, "name": f"app {i}", "qty": 1, "price": Decimal("1.50"), "tags": ["app"]}
                        conn.execute("INSERT INTO items (id, name, qty, price, tags) VALUES (%s, %s, %s, %s, %s)",
                                     (i, rec["name"], rec["qty"], rec["price"], Jsonb(rec["tags"])))
                        self.next_id += 1
                        self.model[i] = rec
                    elif n % 3 == 2:
                        i = min(self.model)
                        conn.execute("UPDATE items SET qty = qty + 1 WHERE id = %s", (i,))
                        self.model[i] = dict(self.model[i], qty=self.model[i]["qty"] + 1)
                    else:
                        seeded = [k for k in self.model if k <= 2000]  # the seed rows, then its own inserts
                        i = max(seeded) if len(seeded) > 1000 else max(self.model)
                        conn.execute("DELETE FROM items WHERE id = %s", (i,))
                        del self.model[i]
                    self.acked += 1
                except psycopg.Error as exc:
                    self.refusals.append(f"{exc.sqlstate}: {str(exc).splitlines()[0]}")
                time.sleep(0.02)


@pytest.mark.usefixtures("prefect_harness")
def test_blue_green_with_an_app_writing_under_a_dml_role(tmp_path: Path, roles: Roles, dbs: tuple[str, str]) -> None:
    from shiftover.flows.migrate import migrate
    from shiftover.flows.rollback import ReleaseParams, RollbackParams, release, rollback

    blue, green = dbs
    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": url(blue, roles.admin), "role": "primary"},
                                       "dst": {"kind": "postgresql", "url": url(green, roles.admin)}})
    model = seed_items(cfg_path, "src", 2000)
    writer = RoleWriter(blue, roles.dml, model)
    writer.start()
    time.sleep(0.5)
    report = migrate(source="src", target="dst", strategy="blue_green", config_path=str(cfg_path),
                     chunk_rows=300, batch_size=200, max_lag=20)
    time.sleep(0.3)
    writer.stop.set()
    writer.join(10)
    assert report.status == "switched", report.error
    assert writer.acked > 20, writer.refusals[:3]
    assert writer.refusals and all("BACKEND_010" in r for r in writer.refusals), writer.refusals[:3]  # freeze only
    cfg = config(cfg_path)
    with open_adapter(cfg, "src") as src, open_adapter(cfg, "dst") as dst:
        assert_model(src, model)
        assert_same_records(src, dst, "items")  # every write the app made before the freeze is on green
        assert dst.capturing() == ["items"]  # green captures for rollback ...
        pending = dst.capture_pending("items")
        with connect_as(green, roles.dml, None) as conn:  # ... and the app writes there under its own role
            write(conn, 90_001, "on green")
            conn.execute("UPDATE items SET qty = 7 WHERE id = 1")
            conn.execute("DELETE FROM items WHERE id = 2")
        assert dst.capture_pending("items") == pending + 3
        assert privileges(green, roles.dml, [("table", "public._shiftover_changes")]) == []
        assert {i.what for i in src.installed()} == {"freeze trigger", "freeze function", "freeze secret"}
    back = rollback(RollbackParams(config_path=str(cfg_path)))  # through blue's fence, as Shiftover's role
    assert back.status == "switched", back.error
    assert leftovers(blue) == []  # blue's fence is lifted: its function and secret went with it
    assert leftovers(green) == FENCE  # green is fenced now; its capture is gone
    with open_adapter(cfg, "src") as src, open_adapter(cfg, "dst") as dst:
        assert_same_records(src, dst, "items")  # the app's writes on green are back on blue
        assert src.get("items", (90_001,)) is not None and src.get("items", (2,)) is None
    with connect_as(blue, roles.dml, None) as conn:
        write(conn, 90_002, "blue again")
    release(ReleaseParams(provider="dst", config_path=str(cfg_path)))
    assert leftovers(blue) == [] and leftovers(green) == []


def test_status_lists_what_is_installed_and_the_command_that_removes_it(tmp_path: Path, roles: Roles,
                                                                         dbs: tuple[str, str]) -> None:
    import json

    from typer.testing import CliRunner

    from shiftover.cli.main import app

    src_url = url(dbs[0], roles.admin)
    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": src_url, "role": "primary"},
                                       "lite": {"kind": "sqlite", "url": "sqlite:///lite.db"},
                                       "mem": {"kind": "memory", "url": "memory://m"}})
    seed_items(cfg_path, "src", 5)
    seed_items(cfg_path, "lite", 5)
    cfg = config(cfg_path)
    with open_adapter(cfg, "src") as src, open_adapter(cfg, "lite") as lite:
        src.freeze(["items"], reason="status test")
        lite.capture_start(["items"])

    def status() -> list[dict[str, Any]]:
        result = CliRunner().invoke(app, ["status", "--config", str(cfg_path), "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)["installed"]

    got = {(r["provider"], r["what"], r["name"], r["collection"], r["remove"]) for r in status()}
    assert got == {
        ("src", "freeze trigger", "_shiftover_freeze", "items", "shiftover unfreeze src"),
        ("src", "freeze function", "public._shiftover_write_freeze()", None, "shiftover unfreeze src"),
        ("src", "freeze secret", "public._shiftover_guard", None, "shiftover unfreeze src"),
        ("lite", "capture trigger", "_shiftover_capture_items_delete", "items", "shiftover release lite"),
        ("lite", "capture trigger", "_shiftover_capture_items_insert", "items", "shiftover release lite"),
        ("lite", "capture trigger", "_shiftover_capture_items_update", "items", "shiftover release lite"),
        ("lite", "change log", "_shiftover_changes", None, "shiftover release lite"),
    }
    table = CliRunner().invoke(app, ["status", "--config", str(cfg_path)], env={"COLUMNS": "200"})
    assert "Installed by Shiftover" in table.output and "shiftover unfreeze src" in table.output
    lifted = CliRunner().invoke(app, ["unfreeze", "src", "--config", str(cfg_path)])
    assert lifted.exit_code == 0, lifted.output
    assert {r["provider"] for r in status()} == {"lite"}
    assert leftovers(dbs[0]) == []
    with open_adapter(cfg, "lite") as lite:
        lite.capture_stop(["items"])
    assert status() == []


@pytest.mark.usefixtures("prefect_harness")
def test_gradual_with_an_app_writing_under_a_dml_role(tmp_path: Path, roles: Roles, dbs: tuple[str, str]) -> None:
    from shiftover.flows.migrate import migrate

    source, target = dbs
    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": url(source, roles.admin),
                                               "role": "primary"},
                                       "dst": {"kind": "postgresql", "url": url(target, roles.admin)}})
    model = seed_items(cfg_path, "src", 2000)
    writer = RoleWriter(source, roles.dml, model)
    writer.start()
    time.sleep(0.5)
    report = migrate(source="src", target="dst", strategy="gradual", config_path=str(cfg_path),
                     chunk_rows=300, batch_size=200, max_lag=20)
    time.sleep(0.3)
    writer.stop.set()
    writer.join(10)
    assert report.status == "switched", report.error
    assert writer.acked > 20, writer.refusals[:3]
    assert all("BACKEND_010" in r for r in writer.refusals), writer.refusals[:3]  # refused by the freeze only
    cfg = config(cfg_path)
    with open_adapter(cfg, "src") as src, open_adapter(cfg, "dst") as dst:
        assert_model(src, model)
        assert_same_records(src, dst, "items")
    assert leftovers(source) == FENCE  # the moved collection stays fenced (README)
    assert leftovers(target) == []
