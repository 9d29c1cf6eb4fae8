"""In-engine PostgreSQL digests ("column hashes") against real PostgreSQL: equal for equal data whatever the database's
print settings, different for any changed, nulled or swapped value of any common type."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from shiftover.adapters.base import KeyRange
from shiftover.adapters.postgres.adapter import PostgresAdapter

DDL = [
    "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')",
    "CREATE TABLE kinds (id bigint PRIMARY KEY, b boolean, v varchar(20), e mood, d date, "
    "f double precision, r real, by bytea, u uuid, ts timestamptz, t timestamp, j json, jb jsonb, n numeric(12,3), "
    "arr integer[], txt text)",
    "INSERT INTO kinds SELECT g, g % 2 = 0, 'v' || g, (ARRAY['sad','ok','happy']::mood[])[1 + g % 3], "
    "date '2024-02-29' + g, g / 3.0, g / 7.0, "
    "convert_to('Zoë ' || g, 'UTF8'), md5(g::text)::uuid, timestamptz '2024-01-01 12:00+00' + g * interval '1 hour', "
    "timestamp '2024-01-01 12:00' + g * interval '1 second', json_build_object('n', g, 'é', 'ü'), "
    "jsonb_build_object('n', g, 'tags', jsonb_build_array('a', g)), g * 1.125, ARRAY[g, g + 1], 'txt' || g "
    "FROM generate_series(1, 300) AS g",
]
# One change per column, made on row 150 of the target: each must change the digest of the middle range.
CHANGES = {
    "b": "NOT b", "v": "v || 'x'", "e": "'happy'", "d": "d + 1",
    "f": "f + 1e-12", "r": "r * 2", "by": "'\\x00'::bytea", "u": "gen_random_uuid()",
    "ts": "ts + interval '1 microsecond'",
    "t": "t - interval '1 microsecond'", "j": "'{\"n\": 0}'", "jb": "jb || '{\"x\": 1}'", "n": "n + 0.001",
    "arr": "arr || 0", "txt": "upper(txt)",
}
RANGES = [KeyRange(None, (100,)), KeyRange((100,), (200,)), KeyRange((200,), None)]


def _digests(url: str) -> list[tuple[int, str]]:
    adapter = PostgresAdapter("side", url, PostgresAdapter.Options())
    try:
        columns = sorted(adapter.schema("kinds").names)
        assert adapter.pushdown_methods("kinds", columns) == ("column hashes",)
        return [(d.count, d.digest) for d in adapter.pushdown_digests("kinds", RANGES, columns, "column hashes")]
    finally:
        adapter.close()


@pytest.fixture
def two_sides(pg_url: str, pg_url2: str) -> tuple[str, sa.Engine]:
    for url in (pg_url, pg_url2):
        with sa.create_engine(url).begin() as conn:
            for stmt in DDL:
                conn.exec_driver_sql(stmt.replace("%", "%%"))
    dst = sa.create_engine(pg_url2)
    with dst.begin() as conn:  # the target database prints values differently by default: the digests must not care
        name = conn.exec_driver_sql("SELECT current_database()").scalar_one()
        for setting, value in (("DateStyle", "SQL, DMY"),
                               ("extra_float_digits", "0"), ("bytea_output", "escape")):
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" SET {setting} = \'{value}\'')
    dst.dispose()
    return pg_url, sa.create_engine(pg_url2)


def test_equal_data_gives_equal_digests_whatever_the_print_settings(two_sides: tuple[str, sa.Engine],
                                                                     pg_url2: str) -> None:
    src_url, dst = two_sides
    with dst.connect() as conn:
        assert conn.exec_driver_sql("SHOW DateStyle").scalar_one() == "SQL, DMY"
    dst.dispose()
    expected = _digests(src_url)
    assert [count for count, _ in expected] == [100, 100, 100]  # ranges are (lo, hi]
    assert _digests(pg_url2) == expected
    with dst.begin() as conn:  # NOT NULL on one side only: that side skips the NULL case, the values hash alike
        conn.exec_driver_sql("ALTER TABLE kinds ALTER COLUMN txt SET NOT NULL, ALTER COLUMN b SET NOT NULL")
    dst.dispose()
    assert _digests(pg_url2) == expected


@pytest.mark.parametrize("column", sorted(CHANGES))
def test_one_changed_value_changes_its_range_digest_only(two_sides: tuple[str, sa.Engine], pg_url2: str,
                                                         column: str) -> None:
    src_url, dst = two_sides
    expected = _digests(src_url)
    with dst.begin() as conn:
        conn.exec_driver_sql(f'UPDATE kinds SET "{column}" = {CHANGES[column]} WHERE id = 150')
    changed = _digests(pg_url2)
    assert changed[0] == expected[0] and changed[2] == expected[2]
    assert changed[1][0] == expected[1][0] and changed[1][1] != expected[1][1], f"{column} change not seen"
    with dst.begin() as conn:
        conn.exec_driver_sql(f'UPDATE kinds SET "{column}" = NULL WHERE id = 150')
    nulled = _digests(pg_url2)
    assert nulled[1][1] not in (expected[1][1], changed[1][1]), f"{column} NULL not seen"
    dst.dispose()


def test_values_swapped_between_columns_change_the_digest(two_sides: tuple[str, sa.Engine], pg_url2: str) -> None:
    src_url, dst = two_sides
    expected = _digests(src_url)
    with dst.begin() as conn:  # varchar hashes its text, text hashes itself: the field's position seeds each hash
        conn.exec_driver_sql("UPDATE kinds SET txt = v, v = txt WHERE id = 250")
    assert _digests(pg_url2)[2] != expected[2]
    dst.dispose()
