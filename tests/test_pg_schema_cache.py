"""PostgreSQL schemas are reflected once per process and table shape: a new adapter sees every change of shape."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from shiftover.adapters.errors import CollectionNotFound
from shiftover.adapters.postgres.adapter import PostgresAdapter


def _schema(url: str) -> tuple[tuple[tuple[str, str, bool, int | None, int | None], ...], tuple[str, ...]]:
    adapter = PostgresAdapter("pg", url, PostgresAdapter.Options())
    try:
        s = adapter.schema("things")
        return tuple((c.name, c.type, c.nullable, c.precision, c.scale) for c in s.columns), s.key
    finally:
        adapter.close()


def test_a_new_adapter_sees_each_change_of_shape(pg_url: str) -> None:
    engine = sa.create_engine(pg_url)

    def ddl(stmt: str) -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql(stmt)

    ddl("CREATE TABLE things (id bigint PRIMARY KEY, name text, price numeric(8,2))")
    first = _schema(pg_url)
    assert first == ((("id", "integer", False, None, None), ("name", "text", True, None, None),
                      ("price", "decimal", True, 8, 2)), ("id",))
    assert _schema(pg_url) == first  # the shared reflection
    ddl("ALTER TABLE things ADD COLUMN seen timestamptz")
    assert [c[0] for c in _schema(pg_url)[0]] == ["id", "name", "price", "seen"]
    ddl("ALTER TABLE things ALTER COLUMN price TYPE numeric(12,4)")
    assert _schema(pg_url)[0][2] == ("price", "decimal", True, 12, 4)
    ddl("ALTER TABLE things ALTER COLUMN name SET NOT NULL")
    assert _schema(pg_url)[0][1] == ("name", "text", False, None, None)
    ddl("ALTER TABLE things DROP CONSTRAINT things_pkey, ADD PRIMARY KEY (id, name)")
    assert _schema(pg_url)[1] == ("id", "name")
    ddl("ALTER TABLE things DROP COLUMN seen")
    assert [c[0] for c in _schema(pg_url)[0]] == ["id", "name", "price"]
    ddl("DROP TABLE things")
    with pytest.raises(CollectionNotFound):
        _schema(pg_url)
    ddl("CREATE TABLE things (id text PRIMARY KEY)")
    assert _schema(pg_url) == ((("id", "text", False, None, None),), ("id",))
    engine.dispose()
