"""Every PostgreSQL column type, and how it crosses to another engine. Pure code plus one catalog query, no Prefect.

`TYPES` is the one declared mapping: per PostgreSQL type (or family of types) the canonical type its values take
outside PostgreSQL, how another engine holds them, and how faithful that is per target engine (exact / normalized /
lossy, and what is lost). The README's fidelity matrix is generated from it (`matrix_markdown`), the dry-run lines come
from it (`fidelity_lines`), and `describe` resolves a column's type in the catalog to its entry.

Between two PostgreSQL databases nothing here applies to the values: binary COPY carries every type as it is, and the
column keeps its native type (`Column.native`, e.g. `postgresql:interval`). Towards another engine a column is read in
a *form*: a SQL expression that turns the value into something canonical (its text, its amount, its JSON) and the
Python function that finishes the job; the way back casts the canonical value into the native type again (both in
adapters/postgres/forms.py).

The PostgreSQL type is recorded with the column (`Column.native`, and `Column.native_def` for what a move back needs:
the form, an enum's labels, a domain's base type and checks, a composite's fields, the extension a type comes from).
Stores keep both in `_shiftover_schemas`, so a later move back to PostgreSQL creates the column with its native type and
creates a missing enum, domain or composite type from the record (`ensure_types`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import sqlalchemy as sa

from shiftover.adapters.base import CanonicalType, CollectionSchema, Column

Fidelity = Literal["exact", "normalized", "lossy"]
ENGINES = ("sqlite", "firestore", "mongodb", "postgresql")  # the matrix's columns
FAMILY = "postgresql"
POSTGRES_KINDS = frozenset({"postgresql", "supabase"})


@dataclass(frozen=True)
class TypeMapping:
    """How one PostgreSQL type (or family) crosses engines. `fidelity`/`lost` hold for every other engine unless
    `engines` says otherwise for one; towards PostgreSQL the native type is kept (`native_fidelity`)."""

    types: tuple[str, ...]  # pg_type names, or a family label in angle brackets
    canonical: CanonicalType
    form: str | None  # None: the value as the driver reads it; else the form pg_forms.py reads it in
    stored: str  # how another engine holds it
    fidelity: Fidelity = "exact"
    lost: str = ""
    engines: dict[str, tuple[Fidelity, str]] = field(default_factory=dict)
    native_fidelity: tuple[Fidelity, str] = ("exact", "")

    def on(self, engine: str) -> tuple[Fidelity, str]:
        if engine in POSTGRES_KINDS:
            return self.native_fidelity
        return self.engines.get(engine, (self.fidelity, self.lost))


_DECIMAL_TEXT: tuple[Fidelity, str] = (
    "normalized", "an unconstrained numeric loses trailing zeros (1.50 → 1.5); numeric(p,s) gets its scale back on "
    "PostgreSQL")
_JSON_NUMBERS = ("JSON numbers travel as doubles (as psycopg reads json): beyond ~15 significant digits they are "
                 "rounded, on both sides of the digest alike")
_NO_INPUT = "PostgreSQL accepts no input for these internal types: only NULL can be copied, to any engine"
_TIME_LIMITS = "finite values in years 1–9999 only: ±infinity and BC dates cannot be read outside PostgreSQL"

TYPES: tuple[TypeMapping, ...] = (
    TypeMapping(("bool",), "boolean", None, "boolean"),
    TypeMapping(("int2", "int4", "int8"), "integer", None, "integer"),
    TypeMapping(("float8",), "float", None, "double"),
    TypeMapping(("float4",), "float", None, "double (the shortest decimal of the real: 1.1 stays 1.1)"),
    TypeMapping(("numeric",), "decimal", None, "decimal (SQLite: exact text; Firestore: {\"@decimal\": text}; "
                "MongoDB: Decimal128)", *_DECIMAL_TEXT,
                engines={"mongodb": ("lossy", "Decimal128 holds 34 significant digits: longer values are refused")}),
    TypeMapping(("money",), "decimal", "money", "decimal amount", "normalized",
                "the amount only: symbol and fraction digits follow the target's lc_monetary on a move back"),
    TypeMapping(("text", "varchar", "bpchar", "name", "char"), "text", None, "text"),
    TypeMapping(("citext",), "text", "text", "text", "normalized",
                "case-insensitive comparison is the type's: plain text there, citext again on a move back"),
    TypeMapping(("bytea",), "bytes", None, "bytes (SQLite: BLOB)"),
    TypeMapping(("uuid",), "uuid", None, "text of the uuid"),
    TypeMapping(("date",), "date", None, "date (SQLite: ISO text; Firestore/MongoDB: {\"@date\": iso})", "exact",
                _TIME_LIMITS),
    TypeMapping(("timestamptz",), "timestamp", None, "UTC timestamp, microseconds", "exact", _TIME_LIMITS),
    TypeMapping(("timestamp",), "timestamp", None, "the UTC timestamp of its wall-clock digits", "exact",
                _TIME_LIMITS),
    TypeMapping(("time", "timetz"), "text", "text", "text (HH:MM:SS.ffffff, timetz with its offset)"),
    TypeMapping(("interval",), "text", "text", "ISO 8601 text (P1Y2M3DT4H5M6S)", "normalized",
                "written as ISO 8601; the same months, days and microseconds on a move back"),
    TypeMapping(("json",), "json", None, "JSON", "normalized",
                f"parsed JSON: whitespace, key order and duplicate keys of the text are not kept; {_JSON_NUMBERS}"),
    TypeMapping(("jsonb",), "json", None, "JSON", "normalized", _JSON_NUMBERS),
    TypeMapping(("inet", "cidr", "macaddr", "macaddr8"), "text", "text", "text"),
    TypeMapping(("bit", "varbit"), "text", "text", "text of 0 and 1"),
    TypeMapping(("xml", "tsvector", "tsquery", "jsonpath"), "text", "text", "text"),
    TypeMapping(("oid",), "integer", "oid", "integer", "exact", "an object id means something on its own server only"),
    TypeMapping(("regclass", "regcollation", "regconfig", "regdictionary", "regnamespace", "regoper", "regoperator",
                 "regproc", "regprocedure", "regrole", "regtype"), "text", "text", "the object's name as text",
                "normalized", "a name: written back it must name an existing object, whose oid may differ"),
    TypeMapping(("xid", "xid8", "cid", "tid", "pg_lsn", "txid_snapshot", "pg_snapshot", "aclitem", "refcursor",
                 "int2vector", "oidvector"), "text", "text", "text", "exact",
                "aclitem names roles: they must exist where it is written back"),
    TypeMapping(("<range>",), "json", "range", "JSON {lower, upper, bounds} or {empty: true}; numeric bounds as "
                "numbers, others as text", "normalized", "bounds of a discrete range as PostgreSQL canonicalised them"),
    TypeMapping(("<multirange>",), "text", "text", "text"),
    TypeMapping(("point", "line", "lseg", "box", "path", "polygon", "circle"), "json", "geometric",
                "JSON: point {x, y}, circle {x, y, r}, line {a, b, c}, lseg/box/polygon [{x, y}, …], "
                "path {closed, points}", "normalized", "coordinates as doubles (what PostgreSQL stores)"),
    TypeMapping(("<enum>",), "text", "text", "text; the allowed values are kept in the schema record"),
    TypeMapping(("<domain>",), "text", None, "as its base type; base, NOT NULL and CHECKs kept in the schema record",
                "normalized", "the domain's checks apply again only on a move back to PostgreSQL"),
    TypeMapping(("<composite>",), "json", "composite", "JSON object by field name; fields kept in the schema record",
                "normalized", f"fields without a JSON form as their text; {_JSON_NUMBERS}"),
    TypeMapping(("hstore",), "json", "hstore", "JSON object of text values"),
    TypeMapping(("<array>",), "json", "array", "JSON array (nested for several dimensions); elements as their JSON "
                "form, numeric elements as exact decimal text, others without a JSON form (interval, inet, ranges…) "
                "as their text", "normalized", f"lower bounds other than 1 are lost; {_JSON_NUMBERS}",
                engines={"firestore": ("lossy", f"lower bounds other than 1 are lost; {_JSON_NUMBERS}; it "
                                       "holds no array directly inside an array: a multidimensional value is refused "
                                       "(BACKEND_014)")}),
    TypeMapping(("pg_node_tree", "pg_ndistinct", "pg_dependencies", "pg_mcv_list", "pg_brin_bloom_summary",
                 "pg_brin_minmax_multi_summary", "gtsvector"), "text", "text", "text", "lossy", _NO_INPUT,
                native_fidelity=("lossy", _NO_INPUT)),
    TypeMapping(("<other>",), "text", "text", "its text form (PostGIS, pgvector, ltree… where the extension exists)"),
)

_BY_NAME = {name: m for m in TYPES for name in m.types}


# -- resolving a column's type in the catalog --------------------------------------------------------------------------
_DESCRIBE = sa.text(
    "SELECT t.typname, n.nspname, t.typtype, t.typcategory, t.typelem, t.typbasetype, t.typnotnull, "
    "format_type(t.typbasetype, t.typtypmod), "
    "(SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid), "
    "(SELECT array_agg(pg_get_constraintdef(c.oid) ORDER BY c.conname) FROM pg_constraint c "
    "   WHERE c.contypid = t.oid AND c.contype = 'c'), "
    "(SELECT json_agg(json_build_array(a.attname, format_type(a.atttypid, a.atttypmod)) ORDER BY a.attnum) "
    "   FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped), "
    "(SELECT s.typcategory FROM pg_range r JOIN pg_type s ON s.oid = r.rngsubtype WHERE r.rngtypid = t.oid), "
    "(SELECT x.extname FROM pg_depend d JOIN pg_extension x ON x.oid = d.refobjid WHERE d.classid = "
    "   'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e' LIMIT 1), "
    "t.typdelim, t.typsend = 0 OR t.typreceive = 0 "
    "FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.oid = :oid")
COLUMNS = sa.text(
    "SELECT a.attname, NOT a.attnotnull, a.atttypid, format_type(a.atttypid, a.atttypmod), "
    "information_schema._pg_numeric_precision(a.atttypid, a.atttypmod), "
    "information_schema._pg_numeric_scale(a.atttypid, a.atttypmod) "
    "FROM pg_attribute a WHERE a.attrelid = to_regclass(:table) AND a.attnum > 0 AND NOT a.attisdropped "
    "ORDER BY a.attnum")
_VECTORS = ("int2vector", "oidvector")  # category A, but not arrays of the usual kind


def describe(conn: sa.Connection, oid: int, cache: dict[int, tuple[TypeMapping, dict[str, Any]]]
             ) -> tuple[TypeMapping, dict[str, Any]]:
    """The mapping of type `oid` and its definition: {"form", "subtype"?, and for a move back "kind" (enum, domain,
    composite, extension), "schema", "name", labels/base/checks/fields/extension}."""
    if oid in cache:
        return cache[oid]
    row = conn.execute(_DESCRIBE, {"oid": oid}).one()
    typname, nsp, typtype, category, elem, base, notnull, base_fmt, labels, checks, fields, subcat, ext, delim, \
        textual = row
    named = {"schema": nsp, "name": typname}
    if typtype == "d":
        inner, inner_def = describe(conn, base, cache)
        declared = _BY_NAME["<domain>"]  # values travel as the base type's
        found = TypeMapping(declared.types, inner.canonical, inner.form, declared.stored, declared.fidelity,
                            declared.lost)
        definition = {**inner_def, "kind": "domain", **named, "base": base_fmt, "not_null": bool(notnull),
                      "checks": list(checks or []), "base_def": inner_def}
    elif category == "A" and typname not in _VECTORS and elem:
        elem_map, elem_def = describe(conn, elem, cache)
        found = _BY_NAME["<array>"]
        definition = {k: v for k, v in elem_def.items() if k not in ("form", "subtype")}
        plain = "json" if elem_map.canonical == "json" and elem_map.form is None else \
            "decimal" if elem_map.canonical == "decimal" and elem_map.form is None else "plain"
        definition.update(form="array", element=elem_def.get("form") or plain, delimiter=elem_def.get("delimiter",
                                                                                                          ","))
    elif typtype == "e":
        found, definition = _BY_NAME["<enum>"], {"kind": "enum", **named, "labels": list(labels or [])}
    elif typtype == "c":
        found, definition = _BY_NAME["<composite>"], {"kind": "composite", **named, "fields": fields or []}
    elif typtype == "r":
        found, definition = _BY_NAME["<range>"], {"subtype": "number" if subcat == "N" else "text"}
    elif typtype == "m":
        found, definition = _BY_NAME["<multirange>"], {"type": "<multirange>"}
    else:
        found, definition = _BY_NAME.get(typname) or _BY_NAME["<other>"], {"type": typname}
    if delim != "," and found.form:
        definition["delimiter"] = delim
    if textual:  # no binary send/receive (aclitem): COPY must use text
        definition["text_copy"] = True
    if ext and "kind" not in definition:
        definition.update(kind="extension", extension=ext, **named)
    if found.form and "form" not in definition:
        definition["form"] = found.form
    cache[oid] = (found, definition)
    return found, definition


def column(info: dict[str, Any], conn: sa.Connection, cache: dict[int, tuple[TypeMapping, dict[str, Any]]]) -> Column:
    """The canonical column of one row of `COLUMNS`; never refuses a type PostgreSQL can store."""
    found, definition = describe(conn, info["oid"], cache)
    precision = scale = None
    if found.canonical == "decimal" and definition.get("form") is None:
        precision, scale = info["precision"], info["scale"]
    native_def = json.dumps(definition, sort_keys=True) if definition else None
    return Column(info["name"], found.canonical, bool(info["nullable"]), precision, scale,
                  f"{FAMILY}:{info['format']}", native_def)


@functools.lru_cache(maxsize=4096)
def definition_of(native_def: str | None) -> dict[str, Any]:
    return json.loads(native_def) if native_def else {}


def text_copy(col: Column) -> bool:
    """Whether COPY must carry this column as text: its type (or its elements') has no binary input/output."""
    return bool(definition_of(col.native_def).get("text_copy"))


def form_of(col: Column) -> str | None:
    return definition_of(col.native_def).get("form") if col.native and col.native.startswith(FAMILY + ":") else None


def mapping_of(col: Column) -> TypeMapping | None:
    """The declared mapping of a column that carries a PostgreSQL type, else None."""
    if not col.native or not col.native.startswith(FAMILY + ":"):
        return None
    d = definition_of(col.native_def)
    if d.get("form") == "array":
        return _BY_NAME["<array>"]
    kind = d.get("kind")
    if kind in ("enum", "domain", "composite"):
        return _BY_NAME[f"<{kind}>"]
    if d.get("form") == "range":
        return _BY_NAME["<range>"]
    return _BY_NAME.get(d.get("type") or "") or _BY_NAME["<other>"]


# -- reports -----------------------------------------------------------------------------------------------------------
def fidelity_lines(schema: CollectionSchema, source_kind: str, target_kind: str) -> list[str]:
    """Per column whose PostgreSQL type does not arrive exactly: what happens to it (for --dry-run and the report).
    From PostgreSQL to another engine: the mapping; from another engine back to PostgreSQL: the type restored."""
    out = []
    for col in schema.columns:
        found = mapping_of(col)
        if found is None:
            continue
        native = col.native.split(":", 1)[1]  # type: ignore[union-attr]
        if target_kind in POSTGRES_KINDS and source_kind not in POSTGRES_KINDS:
            if found.on(source_kind)[0] != "exact" or form_of(col):
                out.append(f"{schema.name}.{col.name}: restored as PostgreSQL {native} (recorded in "
                           f"_shiftover_schemas)")
            continue
        level, lost = found.on(target_kind)
        if level != "exact":
            how = "kept as it is" if target_kind in POSTGRES_KINDS else f"→ {found.stored} on {target_kind}"
            out.append(f"{schema.name}.{col.name}: PostgreSQL {native} {how}: {level}" + (f" ({lost})" if lost else ""))
    return out


def matrix_markdown() -> str:
    """The README's fidelity matrix: one row per declared mapping, one column per target engine, then what is lost."""
    head = "| PostgreSQL type | held elsewhere as | " + " | ".join(_ENGINE_TITLES[e] for e in ENGINES) + \
        " | what is lost or changed |"
    lines = [head, "|" + "---|" * (3 + len(ENGINES))]
    for m in TYPES:
        names = ", ".join(f"{n.strip('<>')}s" if n.startswith("<") and n != "<other>" else "any other type"
                          if n == "<other>" else f"`{n}`" for n in m.types)
        levels = [m.on(e) for e in ENGINES]
        lost = [m.lost] if m.lost else []
        lost += [f"{_ENGINE_TITLES[e].split(' ')[0]}: {why.removeprefix(m.lost).strip('; ')}"
                 for e, (_, why) in zip(ENGINES, levels, strict=True) if why and why != m.lost]
        lines.append(f"| {names} | {m.stored} | " + " | ".join(level for level, _ in levels) +
                     f" | {'; '.join(lost) or '—'} |")
    return "\n".join(lines)


_ENGINE_TITLES = {"sqlite": "SQLite", "firestore": "Firestore", "mongodb": "MongoDB",
                  "postgresql": "PostgreSQL (binary COPY)"}


# -- a move back: the types the columns need ---------------------------------------------------------------------------
def ensure_types(cur: Any, columns: Sequence[Column]) -> None:
    """On a psycopg cursor, inside the transaction that creates the table: create each enum, domain and composite type
    the columns name and the database lacks, from the definition recorded with the column; refuse, naming it, a type
    whose extension is not installed. Idempotent: an existing type is left as it is."""
    for col in columns:
        if col.native and col.native.startswith(FAMILY + ":"):
            _ensure(cur, definition_of(col.native_def))


def _ensure(cur: Any, d: dict[str, Any]) -> None:
    from psycopg import sql

    from shiftover.adapters.errors import UnsupportedValue

    kind = d.get("kind")
    if kind not in ("enum", "domain", "composite", "extension"):
        return
    if kind == "domain" and d.get("base_def"):
        _ensure(cur, d["base_def"])
    ident = sql.Identifier(d["schema"], d["name"])
    cur.execute("SELECT to_regtype(%s)", (ident.as_string(cur),))
    if cur.fetchone()[0] is not None:
        return
    if kind == "extension":
        raise UnsupportedValue(f"type {d['name']} comes from the extension {d['extension']}, which is not installed "
                               f"on the target", hint=f"CREATE EXTENSION {d['extension']} on the target, then re-run")
    cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(d["schema"])))
    if kind == "enum":
        cur.execute(sql.SQL("CREATE TYPE {} AS ENUM ({})").format(
            ident, sql.SQL(", ").join(sql.Literal(v) for v in d["labels"])))
    elif kind == "composite":  # field types as the source's format_type printed them
        cur.execute(sql.SQL("CREATE TYPE {} AS ({})").format(ident, sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in d["fields"])))
    else:  # a domain: its base type and CHECKs as the source's catalog printed them
        checks = [sql.SQL(c) for c in d.get("checks") or []]
        cur.execute(sql.SQL("CREATE DOMAIN {} AS {}{}{}").format(
            ident, sql.SQL(d["base"]), sql.SQL(" NOT NULL") if d.get("not_null") else sql.SQL(""),
            sql.SQL("").join(sql.SQL(" ") + c for c in checks)))
