"""The schema around the rows moves between PostgreSQL-family providers, and the gate proves the app can run.

A Supabase-style application schema (identity and serial keys, defaults, unique/check/foreign keys, a secondary and an
expression index, an enum, a view, a trigger function, RLS with a policy reading a setting, grants to Supabase's roles)
is moved with every strategy; afterwards the target's `pg_dump --schema-only` equals the source's, writes as
`authenticated` with defaults work and get keys past the source's, RLS still hides other users' rows, and the app's
trigger fires on the target (but did not fire for the load: the copied values are the source's).
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from shiftover.adapters.errors import BackendError
from shiftover.control.store import ControlStore
from shiftover.flows.migrate import migrate
from tests.helpers import config, write_config

pytestmark = pytest.mark.usefixtures("prefect_harness")

ROLES = ("anon", "authenticated", "service_role")
APP_SCHEMA = """
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE TYPE status AS ENUM ('new', 'paid', 'shipped');
CREATE TABLE customers (
    id bigserial PRIMARY KEY,
    email text NOT NULL UNIQUE,
    owner_id text NOT NULL DEFAULT current_setting('app.user', true),
    created_at timestamptz NOT NULL DEFAULT now(),
    active boolean DEFAULT true CHECK (active IS NOT NULL),
    touched int NOT NULL DEFAULT 0
);
CREATE TABLE orders (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers ON DELETE CASCADE,
    total numeric(12, 2) NOT NULL CHECK (total >= 0),
    state status NOT NULL DEFAULT 'new'
);
CREATE INDEX orders_customer ON orders (customer_id);
CREATE INDEX customers_email_lower ON customers (lower(email));
CREATE INDEX customers_email_trgm ON customers USING gin (email gin_trgm_ops);
CREATE VIEW big_orders AS SELECT o.id, c.email, o.total FROM orders o JOIN customers c ON c.id = o.customer_id
    WHERE o.total > 100;
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $f$
    BEGIN NEW.touched := OLD.touched + 1; RETURN NEW; END $f$;
CREATE TRIGGER customers_touch BEFORE UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION touch();
ALTER TABLE customers ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON customers FOR ALL TO authenticated
    USING (owner_id = current_setting('app.user', true)) WITH CHECK (owner_id = current_setting('app.user', true));
GRANT SELECT ON customers TO anon;
GRANT SELECT, INSERT, UPDATE, DELETE ON customers, orders TO authenticated;
GRANT ALL ON customers, orders TO service_role;
GRANT USAGE ON SEQUENCE customers_id_seq TO authenticated;
COMMENT ON TABLE customers IS 'who buys';
"""


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture(scope="session")
def supabase_roles(pg_server: str) -> tuple[str, ...]:
    """Supabase's API roles, created once on the shared server (never dropped: other sessions use them)."""
    with psycopg.connect(pg_server, autocommit=True) as conn:
        for role in ROLES:
            conn.execute(sql.SQL("DO $$ BEGIN CREATE ROLE {} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; "
                                 "END $$").format(sql.Identifier(role)))
    return ROLES


def _app(url: str, customers: int = 300) -> None:
    with psycopg.connect(_dsn(url), autocommit=True) as conn:
        conn.execute(APP_SCHEMA)
        conn.execute("INSERT INTO customers (email, owner_id) SELECT 'c' || g || '@example.com', 'user' || (g %% 3) "
                     "FROM generate_series(1, %s) g", (customers,))
        conn.execute("INSERT INTO orders (customer_id, total, state) SELECT 1 + g %% %s, g * 1.5, "
                     "(ARRAY['new','paid','shipped'])[1 + g %% 3]::status FROM generate_series(1, %s) g",
                     (customers, customers * 2))
        conn.execute("UPDATE customers SET active = true WHERE id % 7 = 0")  # the trigger counts these on the source


def _schema_dump(url: str) -> str:
    """The schema as pg_dump prints it, without its random \\restrict lines and without Shiftover's own objects
    (their absence after a run is the leftover tests' business: tests/test_app_roles.py)."""
    out = subprocess.run(["pg_dump", "--schema-only", "--no-owner", "--schema=public", _dsn(url)],
                         capture_output=True, text=True, check=True).stdout
    out = "\n".join(line for line in out.splitlines() if not re.match(r"\\(un)?restrict ", line))
    blocks = out.split("\n--\n-- Name: ")
    return "\n--\n-- Name: ".join(b for b in blocks if "_shiftover" not in b.split("\n", 1)[0])


def _as_authenticated(url: str, user: str, statement: str, *args: object) -> list[tuple]:
    with psycopg.connect(_dsn(url)) as conn:
        conn.execute("SET ROLE authenticated")
        conn.execute("SELECT set_config('app.user', %s, false)", (user,))
        cur = conn.execute(statement, args)
        rows = cur.fetchall() if cur.description else []
        conn.commit()
        return rows


def _providers(src: str, dst: str, kind: str = "postgresql") -> dict:
    return {"src": {"kind": "postgresql", "url": src, "role": "primary"},
            "dst": {"kind": kind, "url": dst, "options": {"app_role": "authenticated"}}}


def _assert_app_runs(src: str, dst: str) -> None:
    """What the application does on its first minute on the target."""
    assert _schema_dump(dst) == _schema_dump(src)
    with psycopg.connect(_dsn(src)) as conn:
        top_customer = conn.execute("SELECT max(id) FROM customers").fetchone()[0]
        top_order = conn.execute("SELECT max(id) FROM orders").fetchone()[0]
        source_touched = conn.execute("SELECT sum(touched) FROM customers").fetchone()[0]
    with psycopg.connect(_dsn(dst)) as conn:  # the trigger did not fire for the load: the values are the source's
        assert conn.execute("SELECT sum(touched) FROM customers").fetchone()[0] == source_touched > 0
    (new_id,), = _as_authenticated(dst, "user1", "INSERT INTO customers (email) VALUES (%s) RETURNING id",
                                   "new@example.com")
    assert new_id > top_customer
    (order_id,), = _as_authenticated(dst, "user1", "INSERT INTO orders (customer_id, total) VALUES (%s, 5) "
                                     "RETURNING id", new_id)
    assert order_id > top_order
    visible = _as_authenticated(dst, "user1", "SELECT DISTINCT owner_id FROM customers")
    assert visible == [("user1",)]  # RLS still hides the other users' rows
    _as_authenticated(dst, "user1", "UPDATE customers SET active = false WHERE id = %s", new_id)
    with psycopg.connect(_dsn(dst)) as conn:  # the app's trigger fires on the target after the cutover
        assert conn.execute("SELECT touched FROM customers WHERE id = %s", (new_id,)).fetchone()[0] == 1
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute("INSERT INTO orders (customer_id, total) VALUES (-1, 1)")


def test_immediate_moves_the_schema_and_the_app_runs_on_the_target(tmp_path: Path, pg_url: str, pg_url2: str,
                                                                     supabase_roles: tuple[str, ...]) -> None:
    _app(pg_url)
    cfg_path = write_config(tmp_path, _providers(pg_url, pg_url2))
    dry = migrate(source="src", target="dst", config_path=str(cfg_path), dry_run=True)
    assert any(n.startswith("schema: ") and "before the load" in n for n in dry.notes)
    assert any("pg_trgm" in n for n in dry.notes)
    report = migrate(source="src", target="dst", config_path=str(cfg_path), chunk_rows=200)
    assert report.status == "switched"
    assert list(report.phase_seconds) == ["plan", "freeze", "schema", "copy", "index", "validate", "switch"]
    schema_checks = [e for e in report.expectations if e.suite == "schema"]
    assert schema_checks and all(e.success for e in schema_checks)
    _assert_app_runs(pg_url, pg_url2)
    with psycopg.connect(_dsn(pg_url)) as conn:  # nothing of Shiftover's left in the source
        assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE '\\_shiftover%'").fetchone()[0] == 0


def test_gate_names_what_the_target_lacks(tmp_path: Path, pg_url: str, pg_url2: str,
                                          supabase_roles: tuple[str, ...]) -> None:
    """A target whose tables exist but miss objects (an index, a policy, a default) is not altered, and the cutover
    is blocked naming each missing object."""
    _app(pg_url, customers=50)
    with psycopg.connect(_dsn(pg_url2), autocommit=True) as conn:
        conn.execute(APP_SCHEMA)
        conn.execute("DROP INDEX customers_email_lower")
        conn.execute("DROP POLICY own_rows ON customers")
        conn.execute("ALTER TABLE customers ALTER COLUMN created_at DROP DEFAULT")
    cfg_path = write_config(tmp_path, _providers(pg_url, pg_url2))
    with pytest.raises(BackendError) as err:
        migrate(source="src", target="dst", config_path=str(cfg_path))
    text = str(err.value)
    assert "BACKEND_003" in text
    for missing in ("index customers_email_lower", "policy own_rows", "column created_at"):
        assert missing in text
    pointer = ControlStore(config(cfg_path).control.url.get_secret_value()).pointer()
    assert pointer.provider == "src"
    with psycopg.connect(_dsn(pg_url2)) as conn:  # the target's own tables were not changed
        assert conn.execute("SELECT count(*) FROM pg_policy").fetchone()[0] == 0


def test_extension_the_target_cannot_create_is_refused_before_anything_changes(
        tmp_path: Path, pg_url: str, pg_url2: str, supabase_roles: tuple[str, ...]) -> None:
    _app(pg_url, customers=20)
    role = f"shiftover_t_{uuid.uuid4().hex[:8]}"
    admin = _dsn(pg_url2)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("REVOKE CREATE ON DATABASE {} FROM PUBLIC").format(
            sql.Identifier(admin.rsplit("/", 1)[1])))
    try:
        target = pg_url2.replace("postgres@", f"{role}@", 1)
        cfg_path = write_config(tmp_path, _providers(pg_url, target))
        for dry_run in (True, False):
            with pytest.raises(BackendError) as err:
                migrate(source="src", target="dst", config_path=str(cfg_path), dry_run=dry_run)
            assert "BACKEND_016" in str(err.value) and "pg_trgm" in str(err.value)
        with psycopg.connect(admin) as conn:  # nothing was changed on the target
            assert conn.execute("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
                                ).fetchone()[0] == 0
        with psycopg.connect(_dsn(pg_url)) as conn:  # nor on the source (no freeze left)
            assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE '\\_shiftover%'").fetchone()[0] == 0
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_round_trip_through_supabase_ends_with_the_same_schema(tmp_path: Path, pg_url: str, pg_url2: str,
                                                                supabase_roles: tuple[str, ...]) -> None:
    from tests.conftest import _pg_url, drop_database, make_database

    _app(pg_url, customers=80)
    back = make_database()
    try:
        back_url = _pg_url(back)
        cfg_path = write_config(tmp_path, {
            "pg": {"kind": "postgresql", "url": pg_url, "role": "primary"},
            "supa": {"kind": "supabase", "url": pg_url2},
            "back": {"kind": "postgresql", "url": back_url}})
        assert migrate(source="pg", target="supa", config_path=str(cfg_path)).status == "switched"
        assert migrate(source="supa", target="back", config_path=str(cfg_path)).status == "switched"
        assert _schema_dump(back_url) == _schema_dump(pg_url)
        _assert_app_runs(pg_url, back_url)
    finally:
        drop_database(back)


def test_blue_green_carries_sequences_advanced_by_live_writes(tmp_path: Path, pg_url: str, pg_url2: str,
                                                              supabase_roles: tuple[str, ...]) -> None:
    _app(pg_url, customers=2000)
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:
        with psycopg.connect(_dsn(pg_url), autocommit=True) as conn:
            while not stop.is_set():
                try:  # a serial key and an identity (GENERATED ALWAYS) key, both advanced by the app during the move
                    new = conn.execute("INSERT INTO customers (email, owner_id) VALUES (%s, 'w') RETURNING id",
                                       (f"w{uuid.uuid4().hex}@x",)).fetchone()[0]
                    conn.execute("INSERT INTO orders (customer_id, total) VALUES (%s, 7)", (new,))
                    written.append(new)
                except psycopg.Error:
                    pass  # refused inside the freeze window, or by the old primary's fence afterwards
                time.sleep(0.02)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        cfg_path = write_config(tmp_path, _providers(pg_url, pg_url2))
        report = migrate(source="src", target="dst", config_path=str(cfg_path), strategy="blue_green",
                         chunk_rows=500)  # blue stays fenced: the app's later writes go nowhere
    finally:
        stop.set()
        thread.join()
    assert report.status == "switched" and written
    _assert_app_runs(pg_url, pg_url2)


def test_gradual_moves_each_table_with_its_schema_and_foreign_keys_last(tmp_path: Path, pg_url: str, pg_url2: str,
                                                                        supabase_roles: tuple[str, ...]) -> None:
    """Collection by collection: each table's keys, indexes and policies come with it; the foreign key from orders to
    customers is created once both have moved; the app runs on the target at the end."""
    _app(pg_url, customers=120)
    cfg_path = write_config(tmp_path, _providers(pg_url, pg_url2))
    report = migrate(source="src", target="dst", config_path=str(cfg_path), strategy="gradual",
                     chunk_rows=100)
    assert report.status == "switched"
    _assert_app_runs(pg_url, pg_url2)
