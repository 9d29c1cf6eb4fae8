"""Every PostgreSQL column type moves (adapters/postgres/types.py): a zoo of every built-in type pg_type lets a table
column have, arrays of them, an enum, a domain, a composite type, citext and hstore, moved value by value with
`shiftover migrate` (the flow, strategy immediate) PostgreSQL → PostgreSQL, PostgreSQL → SQLite → PostgreSQL, and
PostgreSQL → Firestore (emulator) / MongoDB (mongomock), then compared as `col::text` on both sides."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from shiftover.adapters.base import KeyRange
from shiftover.adapters.errors import UnsupportedValue
from shiftover.adapters.postgres import types as pg_types
from shiftover.adapters.registry import open_adapter
from shiftover.flows.migrate import migrate
from tests.conftest import PG_ADMIN, _pg_url, drop_database, make_database
from tests.helpers import config, write_config

pytestmark = pytest.mark.usefixtures("prefect_harness")

# One value per built-in type (as SQL text). The types without one accept no input at all (pg_types declares them
# lossy: only NULL can be copied), so their columns hold NULL.
SAMPLES = {
    "bool": "true", "int2": "-32768", "int4": "2147483647", "int8": "-9223372036854775808",
    "float4": "1.1", "float8": "-2.5e-300", "numeric": "12345678901234567890.123456789000",
    "money": "1234.56", "text": "naïve \"q\" \\ ✓", "varchar": "v,{x}", "bpchar": "ab", "name": "a name",
    "char": "c", "bytea": "\\x00ff10", "uuid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "date": "2024-02-29",
    "timestamptz": "2024-03-01 12:34:56.789012+02", "timestamp": "2024-03-01 12:34:56.000001",
    "time": "23:59:59.999999", "timetz": "04:05:06.5-08", "interval": "1 year 2 mons -3 days 04:05:06.789",
    "json": '{"b": 1,  "a": [1.5, "x"]}', "jsonb": '{"a": {"b": [true, null, 2.25]}}',
    "inet": "192.168.0.1/24", "cidr": "10.0.0.0/8", "macaddr": "08:00:2b:01:02:03",
    "macaddr8": "08:00:2b:01:02:03:04:05", "bit": "1", "varbit": "10110", "xml": "<a x=\"1\">t</a>",
    "tsvector": "'fat':2 'rat':3", "tsquery": "fat & (rat | cat)", "jsonpath": "$.a[*] ? (@ > 1)",
    "oid": "4294967295", "regclass": "pg_class", "regcollation": "\"C\"", "regconfig": "english",
    "regdictionary": "simple", "regnamespace": "pg_catalog", "regoper": "||/", "regoperator": "+(integer,integer)",
    "regproc": "now", "regprocedure": "abs(integer)", "regrole": "postgres", "regtype": "integer",
    "xid": "1234", "xid8": "12345678901", "cid": "7", "tid": "(1,2)", "pg_lsn": "16/B374D848",
    "txid_snapshot": "10:20:10,14,15", "pg_snapshot": "10:20:10,14,15", "aclitem": "postgres=arwdDxt/postgres",
    "refcursor": "cur", "int2vector": "1 2 3", "oidvector": "23 25",
    "int4range": "[1,5)", "int8range": "(,100]", "numrange": "[1.5,2.25]", "tsrange": "[2024-01-01 00:00,)",
    "tstzrange": "[2024-01-01 00:00+00,2024-02-01 00:00+00)", "daterange": "empty",
    "int4multirange": "{[1,3),[5,7)}", "int8multirange": "{}", "nummultirange": "{[1.5,2)}",
    "tsmultirange": "{[2024-01-01,2024-01-02)}", "tstzmultirange": "{[2024-01-01 00:00+00,)}",
    "datemultirange": "{[2024-01-01,2024-02-01)}",
    "point": "(1.5,-2)", "line": "{1,-1,0}", "lseg": "[(0,0),(1,1)]", "box": "(2,2),(0,0)",
    "path": "[(0,0),(1,1),(2,0)]", "polygon": "((0,0),(1,1),(1,0))", "circle": "<(1,1),2.5>",
}
NO_INPUT = {"gtsvector", "pg_brin_bloom_summary", "pg_brin_minmax_multi_summary", "pg_dependencies", "pg_mcv_list",
            "pg_ndistinct", "pg_node_tree"}
USER_TYPES = {"mood": "happy", "posint": "42", "pair": '(1,"x y",2.5)', "citext": "MiXeD",
              "hstore": 'a=>1, "b c"=>NULL'}
USER_DDL = ("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy'); CREATE DOMAIN posint AS integer CHECK (VALUE > 0); "
            "CREATE TYPE pair AS (a integer, b text, c numeric)")
EXTENSIONS = "CREATE EXTENSION IF NOT EXISTS citext; CREATE EXTENSION IF NOT EXISTS hstore"
_CATALOG_TYPES = ("SELECT t.typname FROM pg_type t WHERE t.typnamespace = 'pg_catalog'::regnamespace "
                  "AND t.typtype IN ('b', 'r', 'm') AND (t.typcategory <> 'A' OR t.typname IN ('int2vector', "
                  "'oidvector')) AND t.typisdefined ORDER BY 1")


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _type_sql(name: str) -> sql.Composable:
    return sql.SQL('"char"') if name == "char" else sql.Identifier(name)


@pytest.fixture(scope="session")
def zoo_template(pg_server: str) -> Iterator[tuple[str, list[str]]]:
    """A template database holding `zoo` (one column per type and one per array type; row 1 every sample, row 2 all
    NULL), built once per session; returns (database, catalog type names)."""
    name = make_database("shiftover_t_zootpl")
    try:
        with psycopg.connect(_plain(_pg_url(name)), autocommit=True) as conn:
            catalog = [r[0] for r in conn.execute(_CATALOG_TYPES)]
            conn.execute(EXTENSIONS)
            conn.execute(USER_DDL)
            scalars = catalog + list(USER_TYPES)
            arrays = [t for t in scalars if t not in NO_INPUT and t not in ("int2vector", "oidvector")]
            cols = [sql.SQL("{} {}").format(sql.Identifier("c_" + t), _type_sql(t)) for t in scalars]
            cols += [sql.SQL("{} {}[]").format(sql.Identifier("a_" + t), _type_sql(t)) for t in arrays]
            conn.execute(sql.SQL("CREATE TABLE zoo (id integer PRIMARY KEY, {})").format(sql.SQL(", ").join(cols)))
            values = {**SAMPLES, **USER_TYPES}
            names = [sql.Identifier("c_" + t) for t in values] + [sql.Identifier("a_" + t) for t in arrays]
            literals = [sql.Literal(v) for v in values.values()] + [
                sql.SQL("ARRAY[{}::{}" + ("]" if t == "posint" else ", NULL]")).format(sql.Literal(values[t]),
                                                                                      _type_sql(t)) for t in arrays]
            conn.execute(sql.SQL("INSERT INTO zoo (id, {}) VALUES (1, {})").format(
                sql.SQL(", ").join(names), sql.SQL(", ").join(literals)))
            conn.execute("INSERT INTO zoo (id) VALUES (2)")
        yield name, catalog
    finally:
        drop_database(name)


@pytest.fixture
def zoo_url(zoo_template: tuple[str, list[str]]) -> Iterator[str]:
    """A fresh copy of the zoo (CREATE DATABASE … TEMPLATE)."""
    name = f"shiftover_t_zoo_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name),
                                                                      sql.Identifier(zoo_template[0])))
    try:
        yield _pg_url(name)
    finally:
        drop_database(name)


def _texts(url: str, compare: dict[str, str] | None = None) -> tuple[dict[str, str], list[dict[str, str | None]]]:
    """The zoo's column types (format_type) and every value as `col::text` (or the declared comparison form)."""
    with psycopg.connect(_plain(url)) as conn:
        types = dict(conn.execute("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid "
                                  "= 'zoo'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum").fetchall())
        exprs = [sql.SQL((compare or {}).get(c, "{}::text")).format(sql.Identifier(c)) for c in types]
        rows = conn.execute(sql.SQL("SELECT {} FROM zoo ORDER BY id").format(sql.SQL(", ").join(exprs))).fetchall()
    return types, [dict(zip(types, r, strict=True)) for r in rows]


def _params(cfg_path: Path, source: str, target: str, **kw: Any) -> dict[str, Any]:
    return dict(source=source, target=target, config_path=str(cfg_path), **kw)


def test_every_catalog_type_has_a_declared_mapping_and_a_sample(tmp_path: Path, zoo_template: tuple[str, list[str]],
                                                                zoo_url: str) -> None:
    catalog = set(zoo_template[1])
    assert catalog - set(SAMPLES) == NO_INPUT, "a built-in type without a sample value"
    no_input = next(m for m in pg_types.TYPES if "pg_node_tree" in m.types)
    assert set(no_input.types) == NO_INPUT and no_input.on("postgresql")[0] == "lossy"
    other = next(m for m in pg_types.TYPES if m.types == ("<other>",))
    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": zoo_url}})
    with open_adapter(config(cfg_path), "src") as src:
        schema = src.schema("zoo")  # no type refused
    arrays = len(catalog) + len(USER_TYPES) - len(NO_INPUT) - 2  # no arrays of int2vector, oidvector
    assert len(schema.columns) == 1 + len(catalog) + len(USER_TYPES) + arrays
    undeclared = [c.name for c in schema.columns if pg_types.mapping_of(c) in (None, other)]
    assert undeclared == [], "built-in types that fall to <other>: declare them in pg_types.TYPES"
    kinds = {c.name: pg_types.definition_of(c.native_def).get("kind") for c in schema.columns}
    assert (kinds["c_mood"], kinds["c_posint"], kinds["c_pair"], kinds["c_citext"], kinds["a_mood"]) == \
        ("enum", "domain", "composite", "extension", "enum")
    assert pg_types.definition_of(schema.column("c_mood").native_def)["labels"] == ["sad", "ok", "happy"]


def test_readme_fidelity_matrix_is_the_declared_one() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- fidelity-matrix:start -->\n(.*?)\n<!-- fidelity-matrix:end -->", readme, re.S)
    assert found is not None, "README lacks the fidelity matrix markers"
    assert found.group(1) == pg_types.matrix_markdown(), "README matrix differs: paste pg_types.matrix_markdown()"


def test_pg_to_pg_every_type_every_value(tmp_path: Path, zoo_url: str, pg_url2: str) -> None:
    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": zoo_url, "role": "primary"},
                                       "dst": {"kind": "postgresql", "url": pg_url2}})
    report = migrate(**_params(cfg_path, "src", "dst"))
    assert report.status == "switched"
    (zoo,) = report.collections
    assert zoo.path == "binary COPY" and zoo.digests_equal
    assert zoo.digest_method == "in-engine (postgresql, column hashes)"  # every type digested in the engine
    src_types, src_rows = _texts(zoo_url)
    dst_types, dst_rows = _texts(pg_url2)
    assert dst_types == src_types  # enum, domain and composite created on the target from the source's catalog
    assert dst_rows == src_rows and src_rows[0]["c_interval"] == "1 year 2 mons -3 days +04:05:06.789"
    assert not [n for n in report.notes if "PostgreSQL interval" in n]  # nothing to declare between PostgreSQLs

    # The in-engine digest sees every type: a value changed in any one column changes it.
    cfg = config(cfg_path)
    with open_adapter(cfg, "dst") as dst, psycopg.connect(_plain(pg_url2), autocommit=True) as conn:
        columns = sorted(dst.schema("zoo").names)
        whole = [KeyRange(None, None)]
        before = dst.pushdown_digests("zoo", whole, columns)
        blind = []
        for column in columns:
            if column == "id" or column.removeprefix("c_") in NO_INPUT:
                continue
            ident = sql.Identifier(column)
            conn.execute(sql.SQL("UPDATE zoo SET {} = (SELECT {} FROM zoo WHERE id = 1) WHERE id = 2").format(
                ident, ident))
            if dst.pushdown_digests("zoo", whole, columns) == before:
                blind.append(column)
            conn.execute(sql.SQL("UPDATE zoo SET {} = NULL WHERE id = 2").format(ident))
        assert blind == []
        assert dst.pushdown_digests("zoo", whole, columns) == before


# The round trip through SQLite gives back every value as text, except where the matrix declares a normalization:
# these columns are compared in the form that normalization keeps.
ROUND_TRIP_COMPARE = {
    "c_numeric": "trim_scale({})::text",  # numeric: trailing zeros of an unconstrained numeric
    "c_json": "{}::jsonb::text",  # json: whitespace and key order of the text
    "a_json": "{}::jsonb[]::text",
}


def test_pg_to_sqlite_to_pg_restores_every_type(tmp_path: Path, zoo_url: str, pg_url2: str) -> None:
    with psycopg.connect(_plain(pg_url2), autocommit=True) as conn:
        conn.execute(EXTENSIONS)  # the extensions a move back needs; enum, domain and composite come from the record
    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": zoo_url, "role": "primary"},
                                       "lite": {"kind": "sqlite", "url": "sqlite:///lite.db"},
                                       "back": {"kind": "postgresql", "url": pg_url2}})
    plan = migrate(**_params(cfg_path, "src", "lite", dry_run=True))
    declared = [n for n in plan.notes if n.startswith("zoo.")]
    assert "zoo.c_interval: PostgreSQL interval → ISO 8601 text (P1Y2M3DT4H5M6S) on sqlite: normalized (written as " \
           "ISO 8601; the same months, days and microseconds on a move back)" in declared
    for column in ("c_numeric", "c_money", "c_int4range", "c_point", "c_pair", "a_mood", "c_pg_node_tree"):
        assert any(n.startswith(f"zoo.{column}: ") for n in declared), column
    assert not any(n.startswith(("zoo.c_int4: ", "zoo.c_text: ", "zoo.c_mood: ")) for n in declared)  # exact ones

    there = migrate(**_params(cfg_path, "src", "lite"))
    assert there.status == "switched" and there.collections[0].digests_equal
    assert any(n.startswith("zoo.c_interval: ") for n in there.notes)  # the report says it too
    back = migrate(**_params(cfg_path, "lite", "back"))
    assert back.status == "switched" and back.collections[0].digests_equal
    assert "zoo.c_mood: restored as PostgreSQL mood (recorded in _shiftover_schemas)" in back.notes

    src_types, src_rows = _texts(zoo_url, ROUND_TRIP_COMPARE)
    dst_types, dst_rows = _texts(pg_url2, ROUND_TRIP_COMPARE)
    assert dst_types == src_types  # every native type restored, enum/domain/composite created from the record
    for column in src_types:
        assert [r[column] for r in dst_rows] == [r[column] for r in src_rows], column
    with psycopg.connect(_plain(pg_url2)) as conn:
        labels = [r[0] for r in conn.execute("SELECT unnest(enum_range(NULL::mood))::text")]
        assert labels == ["sad", "ok", "happy"]  # the enum's allowed values, in order, from the record
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("SELECT (-1)::posint")  # the domain's CHECK came back too


@pytest.mark.parametrize("kind", ["firestore", "mongodb"])
def test_pg_to_document_store_and_back(tmp_path: Path, zoo_url: str, pg_url2: str, kind: str,
                                      request: pytest.FixtureRequest) -> None:
    if kind == "firestore":
        fs = request.getfixturevalue("firestore_emulator")
        target = {"kind": "firestore", "url": f"firestore://{fs.project}", "options": {"emulator_host": fs.host}}
    else:
        mongo = request.getfixturevalue("mongo_target")
        target = {"kind": "mongodb", "url": mongo.url, **({"options": {"database": mongo.database}} if mongo.real
                                                          else {})}
    with psycopg.connect(_plain(pg_url2), autocommit=True) as conn:
        conn.execute(EXTENSIONS)  # the extensions a move back needs
    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": zoo_url, "role": "primary"},
                                       "docs": target, "back": {"kind": "postgresql", "url": pg_url2}})
    report = migrate(**_params(cfg_path, "src", "docs"))
    assert report.status == "switched" and report.collections[0].digests_equal
    cfg = config(cfg_path)
    with open_adapter(cfg, "src") as src, open_adapter(cfg, "docs") as dst:
        source, stored = src.schema("zoo"), dst.schema("zoo")
        rows = {str(r["id"]): r for r in dst.scan("zoo")}
    for col in source.columns:  # every column's PostgreSQL type kept in the schema record, its fidelity reported
        target_col = stored.column(col.name)
        assert (target_col.native, target_col.native_def) == (col.native, col.native_def), col.name
        found = pg_types.mapping_of(col)
        assert found is not None, col.name
        level, _ = found.on(kind)
        reported = any(n.startswith(f"zoo.{col.name}: ") for n in report.notes)
        assert reported == (level != "exact"), col.name
    assert rows["1"]["c_interval"] == "P1Y2M-3DT4H5M6.789S"
    assert rows["1"]["c_int4range"] == {"lower": 1, "upper": 5, "bounds": "[)"}
    assert rows["1"]["c_point"] == {"x": 1.5, "y": -2.0}
    assert rows["1"]["c_hstore"] == {"a": "1", "b c": None}
    assert rows["1"]["a_mood"] == ["happy", None] and rows["2"]["c_mood"] is None

    back = migrate(**_params(cfg_path, "docs", "back"))  # and back: every type restored, every value as it was
    assert back.status == "switched" and back.collections[0].digests_equal
    src_types, src_rows = _texts(zoo_url, ROUND_TRIP_COMPARE)
    dst_types, dst_rows = _texts(pg_url2, ROUND_TRIP_COMPARE)
    assert dst_types == src_types
    for column in src_types:
        assert [r[column] for r in dst_rows] == [r[column] for r in src_rows], column


def test_move_back_refuses_a_missing_extension_and_changes_nothing(tmp_path: Path, zoo_url: str, pg_url2: str) -> None:
    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": zoo_url},
                                       "dst": {"kind": "postgresql", "url": pg_url2}})
    cfg = config(cfg_path)
    with open_adapter(cfg, "src") as src, open_adapter(cfg, "dst") as dst:
        schema = src.schema("zoo")
        with pytest.raises(UnsupportedValue, match="extension citext.*CREATE EXTENSION citext") as refused:
            dst.create_collection(schema)
        assert refused.value.code == "BACKEND_009"
        assert dst.collections() == []
    with psycopg.connect(_plain(pg_url2)) as conn:  # the enum made before the refusal was rolled back with it
        assert conn.execute("SELECT to_regtype('mood')").fetchone() == (None,)
