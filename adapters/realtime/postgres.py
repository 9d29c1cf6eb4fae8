"""PostgreSQL (and Supabase's database) realtime: a row trigger that NOTIFYs keys, and a LISTENing connection.

Installed on first subscribe, idempotently, in the collection's schema: the function `shiftover_realtime_notify()` and
per table the trigger `shiftover_realtime_<table>` (AFTER INSERT OR UPDATE OR DELETE, FOR EACH ROW, the key columns as
its arguments). The payload is JSON `{"schema", "table", "op", "key": [values], "at"}` on the channel
`shiftover_realtime`; NOTIFY delivers it when the writing transaction commits, and never for a rolled-back one. An
update that changes the key is sent as a delete of the old key and an insert of the new one. A payload longer than
7,900 bytes (a huge key) is replaced by one without the key, which the subscriber logs and drops: the app's write
never fails because of it. `uninstall` drops the trigger, and the function with the last trigger.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import TYPE_CHECKING, Any

from shiftover.adapters import canonical
from shiftover.adapters.errors import ProviderUnavailable, redact
from shiftover.adapters.postgres.capture import _capture_key_value
from shiftover.adapters.realtime.change import Change

if TYPE_CHECKING:
    from shiftover.adapters.postgres.adapter import PostgresAdapter

CHANNEL = "shiftover_realtime"
FUNCTION = "shiftover_realtime_notify"
_LOG = logging.getLogger("shiftover.realtime")

_BODY = """
DECLARE
  old_row jsonb := CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE to_jsonb(OLD) END;
  new_row jsonb := CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE to_jsonb(NEW) END;
  old_key jsonb := '[]'; new_key jsonb := '[]'; ops text[]; keys jsonb[]; p text; i int;
BEGIN
  FOR i IN 0 .. TG_NARGS - 1 LOOP
    old_key := old_key || jsonb_build_array(old_row -> TG_ARGV[i]);
    new_key := new_key || jsonb_build_array(new_row -> TG_ARGV[i]);
  END LOOP;
  IF TG_OP = 'UPDATE' AND old_key IS DISTINCT FROM new_key THEN
    ops := ARRAY['delete', 'insert']; keys := ARRAY[old_key, new_key];
  ELSIF TG_OP = 'DELETE' THEN
    ops := ARRAY['delete']; keys := ARRAY[old_key];
  ELSE
    ops := ARRAY[lower(TG_OP)]; keys := ARRAY[new_key];
  END IF;
  FOR i IN 1 .. array_length(ops, 1) LOOP
    p := json_build_object('schema', TG_TABLE_SCHEMA, 'table', TG_TABLE_NAME, 'op', ops[i], 'key', keys[i],
                           'at', clock_timestamp())::text;
    IF octet_length(p) > 7900 THEN
      p := json_build_object('schema', TG_TABLE_SCHEMA, 'table', TG_TABLE_NAME, 'op', ops[i], 'key', NULL,
                             'at', clock_timestamp())::text;
    END IF;
    PERFORM pg_notify('shiftover_realtime', p);
  END LOOP;
  RETURN NULL;
END
"""


def trigger_name(table: str) -> str:
    return f"shiftover_realtime_{table}"[:63]


def _install(adapter: PostgresAdapter, table: str) -> None:
    from psycopg import sql

    schema = adapter.schema_name
    func = sql.Identifier(schema, FUNCTION)
    func_def = sql.SQL("CREATE OR REPLACE FUNCTION {func}() RETURNS trigger LANGUAGE plpgsql "
                       "SET search_path = pg_catalog, pg_temp AS {body}").format(func=func, body=sql.Literal(_BODY))
    args = sql.SQL(", ").join(sql.Literal(k) for k in adapter.key_of(table))
    trig_def = sql.SQL("CREATE OR REPLACE TRIGGER {trigger} AFTER INSERT OR UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION {func}({args})").format(
        trigger=sql.Identifier(trigger_name(table)), table=sql.Identifier(schema, table), func=func, args=args)
    raw = adapter._raw()
    try:
        with adapter._errors(), raw.driver_connection.cursor() as cur:
            if cur.execute("SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND tgname = %s",
                           [adapter._qualified_text(table), trigger_name(table)]).fetchone() is None:
                _lock(adapter, cur)
                cur.execute(func_def)
                cur.execute(trig_def)  # takes a brief table lock, once: later subscribes find the trigger there
            raw.driver_connection.commit()
    finally:
        raw.close()


def _lock(adapter: PostgresAdapter, cur: Any) -> None:
    """Serialise installs and removals; wait for the table's writers at most options.lock_timeout_s."""
    cur.execute(f"SET LOCAL lock_timeout = '{int(adapter.options.lock_timeout_s * 1000)}ms'")
    cur.execute("SELECT pg_advisory_xact_lock(hashtext('shiftover_realtime'))")


def uninstall(adapter: PostgresAdapter, table: str) -> None:
    """Drop the table's realtime trigger; with the last one, the functions too. Idempotent."""
    from psycopg import sql

    schema = adapter.schema_name
    trigger = sql.Identifier(trigger_name(table))
    raw = adapter._raw()
    try:
        with adapter._errors(), raw.driver_connection.cursor() as cur:
            _lock(adapter, cur)
            if cur.execute("SELECT to_regclass(%s)", [adapter._qualified_text(table)]).fetchone()[0] is not None:
                cur.execute(sql.SQL("DROP TRIGGER IF EXISTS {t} ON {table}").format(
                    t=trigger, table=sql.Identifier(schema, table)))
            left = cur.execute("SELECT count(*) FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid "
                               "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.proname = %s AND n.nspname = %s",
                               [FUNCTION, schema]).fetchone()[0]
            if not left:
                cur.execute(sql.SQL("DROP FUNCTION IF EXISTS {f}()").format(f=sql.Identifier(schema, FUNCTION)))
            raw.driver_connection.commit()
    finally:
        raw.close()


class NotifySource:
    """LISTEN on a connection of its own (autocommit); rows read by key through the subscription's adapter."""

    def __init__(self, adapter: PostgresAdapter, collection: str) -> None:
        import psycopg

        self._adapter, self._collection = adapter, collection
        schema = adapter.schema(collection)
        self._key_cols = [schema.column(k) for k in schema.key]
        _install(adapter, collection)
        url = adapter.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            self._conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
            self._conn.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(CHANNEL)))
        except psycopg.Error as exc:
            adapter.close()
            raise ProviderUnavailable(f"cannot LISTEN on {adapter.name!r}: "
                                      f"{redact(str(exc).splitlines()[0], adapter._password())}",
                                      hint="retry", provider=adapter.name) from None

    def poll(self, timeout: float) -> list[Change]:
        import psycopg

        try:
            payloads = [n.payload for n in self._conn.notifies(timeout=timeout, stop_after=1)]
            payloads += [n.payload for n in self._conn.notifies(timeout=0.001)]  # what arrived with it
        except psycopg.Error as exc:
            raise ProviderUnavailable(f"the LISTEN connection to {self._adapter.name!r} broke: "
                                      f"{redact(str(exc).splitlines()[0], self._adapter._password())}",
                                      hint="subscribe again", provider=self._adapter.name) from None
        return [c for c in map(self._change, payloads) if c is not None]

    def _change(self, payload: str) -> Change | None:
        msg: dict[str, Any] = json.loads(payload)
        if msg.get("table") != self._collection or msg.get("schema") != self._adapter.schema_name:
            return None
        if msg.get("key") is None:
            _LOG.warning("a change to %r was dropped: its key does not fit a NOTIFY payload", self._collection)
            return None
        key = tuple(_capture_key_value(c, v) for c, v in zip(self._key_cols, msg["key"], strict=True))
        record = None if msg["op"] == "delete" else self._adapter.get(self._collection, key)
        at = canonical.utc(dt.datetime.fromisoformat(msg["at"]))
        return Change(self._collection, msg["op"], key, record, at, self._adapter.name)

    def close(self) -> None:
        try:
            self._conn.close()
        finally:
            self._adapter.close()
