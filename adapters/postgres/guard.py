"""The PostgreSQL write freeze (also an old primary's fence), its bypass for Shiftover's own session, and the list of
what Shiftover has installed; mixed into PostgresAdapter.

A freeze is a statement-level trigger `_shiftover_freeze` on each frozen table, calling `_shiftover_write_freeze()`,
which raises BACKEND_010 for INSERT, UPDATE, DELETE and TRUNCATE. The function is SECURITY DEFINER with search_path
`pg_catalog, pg_temp` and refers to its own table by schema: it runs with the rights of the role that installed it,
whatever role writes. It lets a statement through only when the transaction's `shiftover.bypass_freeze` equals the
secret in `_shiftover_guard`, a one-row table made with the function: 244 random bits from the server's strong
generator (gen_random_uuid, PostgreSQL 13+), never sent to or from the client. `bypass_freeze` copies the secret into
the transaction-local setting inside the server. The installing role owns both objects and every other grant on them
is revoked (PUBLIC, and any role that default privileges granted to, as Supabase's anon/authenticated/service_role):
app roles can neither read the secret nor call the function. The function and the guard are dropped with the last
freeze trigger that uses them.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from shiftover.adapters.base import Installed
from shiftover.adapters.errors import InvalidRequest

FREEZE_FUNCTION = "_shiftover_write_freeze"
GUARD = "_shiftover_guard"
BYPASS_SETTING = "shiftover.bypass_freeze"
_PREFIX_LIKE = r"\_shiftover%"
_REALTIME_LIKE = r"shiftover\_realtime\_%"  # backend.realtime's trigger and function (adapters/realtime/postgres.py)


def lock_down(cur: Any, kind: str, ident: Any) -> None:
    """Revoke every privilege on a Shiftover object from every role but its owner: PUBLIC (functions are executable
    by PUBLIC by default) and whoever a default privilege (ALTER DEFAULT PRIVILEGES) granted it to. `kind` is TABLE,
    SEQUENCE or FUNCTION; `ident` a psycopg.sql object naming it (a function with its argument list)."""
    from psycopg import sql

    text = ident.as_string(cur)
    cur.execute(sql.SQL("REVOKE ALL ON {} {} FROM PUBLIC").format(sql.SQL(kind), ident))
    if kind == "FUNCTION":
        cur.execute("SELECT DISTINCT r.rolname FROM pg_proc p CROSS JOIN LATERAL aclexplode(p.proacl) a "
                    "JOIN pg_roles r ON r.oid = a.grantee WHERE p.oid = to_regprocedure(%s) AND a.grantee <> "
                    "p.proowner", (text,))
    else:
        cur.execute("SELECT DISTINCT r.rolname FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a "
                    "JOIN pg_roles r ON r.oid = a.grantee WHERE c.oid = to_regclass(%s) AND a.grantee <> "
                    "c.relowner", (text,))
    for (role,) in cur.fetchall():
        cur.execute(sql.SQL("REVOKE ALL ON {} {} FROM {}").format(sql.SQL(kind), ident, sql.Identifier(role)))


def unused_function(cur: Any, func: Any) -> bool:
    """True when the function exists and no trigger calls it."""
    cur.execute("SELECT to_regprocedure(%s) IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_trigger "
                "WHERE tgfoid = to_regprocedure(%s))", (func.as_string(cur) + "()",) * 2)
    return bool(cur.fetchone()[0])


class FreezeGuard:
    """Freeze, fence, bypass and `installed` for PostgresAdapter (which provides _raw, _errors, _conn, schema_name)."""

    def _set_lock_timeout(self, cur: Any) -> None:
        from psycopg import sql

        cur.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(
            sql.Literal(f"{int(self.options.lock_timeout_s * 1000)}ms")))  # type: ignore[attr-defined]

    def freeze(self, names: Sequence[str], *, reason: str) -> None:
        from psycopg import sql

        schema = self.schema_name  # type: ignore[attr-defined]
        func, guard = sql.Identifier(schema, FREEZE_FUNCTION), sql.Identifier(schema, GUARD)
        body = sql.SQL(
            "CREATE OR REPLACE FUNCTION {func}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER "
            "SET search_path = pg_catalog, pg_temp AS $f$ BEGIN "
            "IF current_setting({setting}, true) = (SELECT g.secret FROM {guard} g WHERE g.id = 1) THEN RETURN NULL; "
            "END IF; "
            "RAISE EXCEPTION USING ERRCODE = '55000', MESSAGE = 'BACKEND_010: writes to ' || TG_TABLE_NAME || "
            "' are frozen by Shiftover (' || TG_ARGV[0] || ')', HINT = 'retry after the cutover; the active backend "
            "is published by shiftover serve'; END $f$"
        ).format(func=func, guard=guard, setting=sql.Literal(BYPASS_SETTING))
        raw = self._raw()  # type: ignore[attr-defined]
        try:
            with self._errors(), raw.driver_connection.cursor() as cur:  # type: ignore[attr-defined]
                self._set_lock_timeout(cur)
                cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (id int PRIMARY KEY CHECK (id = 1), "
                                    "secret text NOT NULL)").format(guard))
                lock_down(cur, "TABLE", guard)
                cur.execute(sql.SQL("INSERT INTO {} (id, secret) SELECT 1, replace(gen_random_uuid()::text || "
                                    "gen_random_uuid()::text, '-', '') ON CONFLICT (id) DO NOTHING").format(guard))
                cur.execute(body)
                lock_down(cur, "FUNCTION", sql.SQL("{}()").format(func))
                for name in names:
                    table = sql.Identifier(schema, name)
                    cur.execute(sql.SQL("DROP TRIGGER IF EXISTS _shiftover_freeze ON {}").format(table))
                    cur.execute(sql.SQL(
                        "CREATE TRIGGER _shiftover_freeze BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {} "
                        "FOR EACH STATEMENT EXECUTE FUNCTION {}({})").format(table, func, sql.Literal(reason)))
                raw.driver_connection.commit()
        finally:
            raw.close()

    def unfreeze(self, names: Sequence[str]) -> None:
        """Drop the freeze triggers; with the last one, the function and the guard go too."""
        from psycopg import sql

        schema = self.schema_name  # type: ignore[attr-defined]
        func, guard = sql.Identifier(schema, FREEZE_FUNCTION), sql.Identifier(schema, GUARD)
        raw = self._raw()  # type: ignore[attr-defined]
        try:
            with self._errors(), raw.driver_connection.cursor() as cur:  # type: ignore[attr-defined]
                for name in names:
                    cur.execute(sql.SQL("DROP TRIGGER IF EXISTS _shiftover_freeze ON {}").format(
                        sql.Identifier(schema, name)))
                if unused_function(cur, func):
                    cur.execute(sql.SQL("DROP FUNCTION {}()").format(func))
                cur.execute("SELECT to_regprocedure(%s) IS NULL", (func.as_string(cur) + "()",))
                if cur.fetchone()[0]:
                    cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(guard))
                raw.driver_connection.commit()
        finally:
            raw.close()

    def frozen(self) -> list[str]:
        stmt = sa.text(
            "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE t.tgname = '_shiftover_freeze' AND n.nspname = :s"
        )
        with self._conn() as conn:  # type: ignore[attr-defined]
            return sorted(r[0] for r in conn.execute(stmt, {"s": self.schema_name}))  # type: ignore[attr-defined]

    @contextmanager
    def bypass_freeze(self):  # type: ignore[no-untyped-def]
        """Writes in this block pass this schema's freeze triggers: the transaction-local `shiftover.bypass_freeze`
        is set to the guard's secret, read inside the server. Only a role that can read `_shiftover_guard` can do
        that: the role that installed the freeze, its members, and superusers. Every other session stays refused,
        whatever it sets."""
        guard = self._qualified_text(GUARD)  # type: ignore[attr-defined]
        with self.transaction():  # type: ignore[attr-defined]
            with self._conn() as conn:  # type: ignore[attr-defined]
                exists, readable = conn.execute(sa.text(
                    "SELECT to_regclass(:g) IS NOT NULL, to_regclass(:g) IS NOT NULL AND "
                    "has_table_privilege(to_regclass(:g), 'SELECT')"), {"g": guard}).one()
                if exists and not readable:
                    raise InvalidRequest(
                        "this role cannot pass the write freeze: another role installed it",
                        hint="connect as the role that froze the tables (the owner of _shiftover_guard)",
                        provider=self.name)  # type: ignore[attr-defined]
                if exists:
                    conn.execute(sa.text(f"SELECT set_config(:s, (SELECT secret FROM {guard} WHERE id = 1), true)"),
                                 {"s": BYPASS_SETTING})
            yield self

    def installed(self) -> list[Installed]:
        """Shiftover's triggers, tables and functions in this schema, and its replication slot in this database."""
        schema = self.schema_name  # type: ignore[attr-defined]
        found: list[Installed] = []
        with self._conn() as conn:  # type: ignore[attr-defined]
            triggers = conn.execute(sa.text(
                "SELECT t.tgname, c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace "
                "n ON n.oid = c.relnamespace WHERE n.nspname = :s AND (t.tgname LIKE :p OR t.tgname LIKE :r) "
                "ORDER BY 2, 1"), {"s": schema, "p": _PREFIX_LIKE, "r": _REALTIME_LIKE}).all()
            tables = conn.execute(sa.text(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :s "
                "AND c.relkind IN ('r', 'p') AND c.relname LIKE :p ORDER BY 1"), {"s": schema, "p": _PREFIX_LIKE}).all()
            functions = conn.execute(sa.text(
                "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = :s "
                "AND (p.proname LIKE :p OR p.proname LIKE :r) ORDER BY 1"),
                {"s": schema, "p": _PREFIX_LIKE, "r": _REALTIME_LIKE}).all()
            slots = conn.execute(sa.text("SELECT slot_name FROM pg_replication_slots WHERE slot_name = :n"),
                                 {"n": self._slot()}).all()  # type: ignore[attr-defined]
        for tg, table in triggers:
            group = "freeze" if tg == "_shiftover_freeze" else "realtime" if tg.startswith("shiftover") else "capture"
            found.append(Installed(group, f"{group} trigger", tg, table))  # type: ignore[arg-type]
        for (table,) in tables:
            group, what = {"_shiftover_guard": ("freeze", "freeze secret"), "_shiftover_changes": ("capture",
                           "change log"), "_shiftover_captured": ("capture", "capture registry"),
                           "_shiftover_canary": ("canary", "canary table")}.get(table, ("capture", "table"))
            found.append(Installed(group, what, f"{schema}.{table}"))  # type: ignore[arg-type]
        for (func,) in functions:
            group = "freeze" if func == FREEZE_FUNCTION else "realtime" if func.startswith("shiftover") else "capture"
            found.append(Installed(group, f"{group} function", f"{schema}.{func}()"))  # type: ignore[arg-type]
        for (slot,) in slots:
            found.append(Installed("capture", "replication slot", slot))
        return found
