"""How records change shape between two kinds of backend: keys, nested fields and JSON columns. Pure code, no I/O.

A `CollectionMapping` turns a source record into the record the target stores, and turns a target key back into the
source's key space, so that copying and the integrity digests agree on what "the same record" means:

- Keys. Firestore document ids are strings, so every key value written to Firestore becomes a string (42 → "42",
  Decimal("1.50") → "1.5", a timestamp → its ISO-8601 UTC text). The column keeps its type in `_shiftover_schemas`,
  and a record read from such a collection gets its key converted back to that type when it is copied to an engine
  with typed keys ("42" → 42), so PostgreSQL → Firestore → PostgreSQL gives back integer keys. Because "10" < "9",
  a key range of the source does not select the same records on the target when the key changes type
  (`reorders_keys`): the copy then upserts instead of replacing ranges, and the target side's digests are bucketed
  into the source's ranges by converting each target key back (`source_key`).
- A Firestore root collection is keyed by `id`: a single key column of another name (a MongoDB `_id`, a table's
  `customer_no`) is renamed to `id` when the target is Firestore.
- Nested values stay whole in JSON columns by default. `flatten` moves chosen nested fields into columns of their
  own: `address.city` becomes the column `address_city` (or the name given in `columns`) and leaves the `address`
  JSON column; a flattened field that is absent, or whose parent is not a map, becomes NULL.
- JSON columns on SQL engines hold plain JSON: inside them timestamps become ISO-8601 text, decimals numbers and
  bytes base64 (`canonical.jsonable`). The mapping applies that on the way, so the digests compare what is stored.

`build()` makes the mapping from the source's schema, the two adapter kinds, the configured options and a sample of
source records (to infer the types of flattened fields). Errors are ConfigInvalid (BACKEND_002) naming the field.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from shiftover.adapters import canonical
from shiftover.adapters.base import CanonicalType, CollectionSchema, Column, Key, Record
from shiftover.adapters.errors import ConfigInvalid, UnsupportedValue
from shiftover.adapters.postgres import types as pg_types

STRING_KEY_KINDS = frozenset({"firestore"})  # engines whose record keys are always strings
ID_KEY_KINDS = frozenset({"firestore"})  # engines whose root collections are keyed by a column named `id`
PLAIN_JSON_KINDS = frozenset({"postgresql", "sqlite", "supabase"})  # JSON columns hold plain JSON only


@dataclass(frozen=True)
class Flattened:
    path: tuple[str, ...]
    column: str
    type: CanonicalType

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True)
class CollectionMapping:
    name: str
    source: CollectionSchema
    target: CollectionSchema
    source_string_keys: bool = False
    target_string_keys: bool = False
    renames: tuple[tuple[str, str], ...] = ()  # (source column, target column)
    flatten: tuple[Flattened, ...] = ()
    plain_json: tuple[str, ...] = ()  # target columns whose values are made plain JSON
    _key_types: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # per key column: (source, target) type

    # -- what the mapping does -----------------------------------------------------------------------------------------
    @property
    def key_changes(self) -> bool:
        return any(s != t for s, t in self._key_types)

    @property
    def reorders_keys(self) -> bool:
        """True when target keys sort differently from the source's: key ranges do not carry over."""
        return self.key_changes

    @property
    def identity(self) -> bool:
        return not (self.key_changes or self.renames or self.flatten or self.plain_json)

    def describe(self) -> list[str]:
        """One line per rule, for the dry-run report."""
        out = []
        for (s, t), col in zip(self._key_types, self.target.key, strict=True):
            if s != t:
                out.append(f"{self.name}: key {col} is stored as {t} (typed {self.target.column(col).type} in the "
                           f"schema; read back as {s} keys on the source side)")
        out += [f"{self.name}: column {a} → {b}" for a, b in self.renames]
        out += [f"{self.name}: nested field {f.dotted} → column {f.column} ({f.type})" for f in self.flatten]
        if self.plain_json:
            out.append(f"{self.name}: JSON column(s) {', '.join(self.plain_json)} hold plain JSON (nested timestamps "
                       f"as ISO text, decimals as numbers)")
        if not out:
            out.append(f"{self.name}: records copied as they are")
        return out

    def table(self) -> list[tuple[str, str, str]]:
        """(source field, target column, target type) for every target column."""
        origin = {f.column: f.dotted for f in self.flatten}
        back = {b: a for a, b in self.renames}
        return [(origin.get(c.name, back.get(c.name, c.name)), c.name, c.type) for c in self.target.columns]

    # -- records and keys ----------------------------------------------------------------------------------------------
    def record(self, rec: Record) -> Record:
        if self.identity:
            return rec
        out = dict(rec)
        for a, b in self.renames:
            out[b] = out.pop(a, None)
        if self.key_changes:
            for (s, t), col in zip(self._key_types, self.target.key, strict=True):
                out[col] = convert_key(out[col], s, t)
        for f in self.flatten:
            out[f.column] = _take(out, f.path)
        for c in self.plain_json:
            if out.get(c) is not None:
                out[c] = canonical.jsonable(out[c])
        return out

    def records(self, recs: Iterable[Record]) -> list[Record]:
        return [self.record(r) for r in recs]

    def target_key(self, key: Key) -> Key:
        return tuple(convert_key(v, s, t) for v, (s, t) in zip(key, self._key_types, strict=True))

    def source_key(self, key: Key) -> Key:
        """A target key converted back to the source's key space; UnsupportedValue when it has no such form."""
        return tuple(convert_key(v, t, s) for v, (s, t) in zip(key, self._key_types, strict=True))


def _take(rec: Record, path: tuple[str, ...]) -> Any:
    """Remove the nested field at `path` from the record (copying the maps on the way) and return its value."""
    parent = rec.get(path[0])
    if not isinstance(parent, dict):
        return None
    top = dict(parent)
    rec[path[0]] = top
    node = top
    for part in path[1:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            return None
        node[part] = child = dict(child)
        node = child
    return node.pop(path[-1], None)


def convert_key(value: Any, frm: str, to: str) -> Any:
    """A key value of record type `frm` as record type `to` ("text" for string-keyed engines)."""
    if frm == to or value is None:
        return value
    if to == "text":
        return _key_text(value)
    if not isinstance(value, str):
        return value
    parse = _KEY_PARSERS.get(to)
    try:
        if parse is not None:
            return parse(value)
        if to == "boolean" and value in ("true", "false"):
            return value == "true"
    except (ValueError, InvalidOperation):
        pass
    else:
        if to in ("text", "uuid", "json", "bytes"):
            return value
    raise UnsupportedValue(f"key {value!r} cannot be read as {to}",
                           hint="the key column's type in _shiftover_schemas (or options.schemas) does not fit the "
                                "document ids; declare it as text")


def _key_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        return canonical.number_text(value)
    if isinstance(value, dt.datetime):
        return canonical.timestamp_text(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


_KEY_PARSERS: dict[str, Callable[[str], Any]] = {
    "integer": int,
    "decimal": Decimal,
    "float": float,
    "timestamp": lambda v: canonical.utc(dt.datetime.fromisoformat(v.replace("Z", "+00:00"))),
    "date": dt.date.fromisoformat,
}


# -- building ----------------------------------------------------------------------------------------------------------
def infer_type(values: Iterable[Any]) -> CanonicalType:
    return canonical.merge_types({canonical.type_of(v) for v in values})



def _nested(rec: Record, path: tuple[str, ...]) -> Any:
    node: Any = rec
    for part in path:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _flattened(dotted: str, name: str, cols: list[Column], names: set[str], columns: Mapping[str, str],
               types: Mapping[str, CanonicalType], sample: Sequence[Record]) -> Flattened:
    """The column `dotted` (a path into a JSON field) becomes; its name is added to `names`."""
    where = f"migration.mappings.{name}"
    path = tuple(dotted.split("."))
    if path[0] not in names:
        raise ConfigInvalid(f"{where}.flatten: {name!r} has no field {path[0]!r} (in {dotted!r})",
                            hint=f"fields of {name}: {', '.join(sorted(names))}")
    parent = next(c for c in cols if c.name == path[0])
    if parent.type != "json":
        raise ConfigInvalid(f"{where}.flatten: {path[0]!r} is {parent.type}, not a nested map (in {dotted!r})",
                            hint="flatten only fields inside JSON/map fields")
    column = columns.get(dotted, "_".join(path))
    if column in names:
        raise ConfigInvalid(f"{where}.flatten: column {column!r} for {dotted!r} already exists",
                            hint=f"name another column under {where}.columns")
    names.add(column)
    return Flattened(path, column, types.get(column) or infer_type(_nested(r, path) for r in sample))


def build(
    name: str,
    source: CollectionSchema,
    *,
    source_kind: str,
    target_kind: str,
    flatten: Sequence[str] = (),
    columns: Mapping[str, str] | None = None,
    types: Mapping[str, CanonicalType] | None = None,
    sample: Sequence[Record] = (),
) -> CollectionMapping:
    """The mapping of one collection; `flatten`, `columns` and `types` come from migration.mappings in the config."""
    columns, types = dict(columns or {}), dict(types or {})
    where = f"migration.mappings.{name}"
    cols = list(source.columns)
    renames: list[tuple[str, str]] = []
    key = list(source.key)
    if target_kind in ID_KEY_KINDS and len(key) == 1 and key[0] != "id" and "/" not in name:
        if "id" in source.names:
            raise ConfigInvalid(f"{where}: Firestore keys documents by `id`, but {name!r} has a non-key column `id` "
                                f"beside its key {key[0]!r}", hint="rename the column on the source first")
        renames.append((key[0], "id"))
        cols = [Column("id", c.type, c.nullable, c.precision, c.scale, c.native, c.native_def) if c.name == key[0]
                else c for c in cols]
        key = ["id"]
    names = {c.name for c in cols}
    flat = [_flattened(dotted, name, cols, names, columns, types, sample) for dotted in flatten]
    unknown = set(columns) - set(flatten)
    if unknown:
        raise ConfigInvalid(f"{where}.columns names {', '.join(sorted(unknown))}, which is not under flatten",
                            hint="add the path to flatten or remove it from columns")
    bad_types = set(types) - names
    if bad_types:
        raise ConfigInvalid(f"{where}.types names {', '.join(sorted(bad_types))}, which is not a column of {name}",
                            hint=f"columns of {name}: {', '.join(sorted(names))}")
    cols = [Column(c.name, types.get(c.name, c.type), c.nullable, c.precision, c.scale,
                   *((c.native, c.native_def) if c.name not in types else (None, None))) for c in cols]
    for f in flat:  # each flattened column right after the field it came from
        at = max(i for i, c in enumerate(cols) if c.name == f.path[0] or c.name.startswith(f.path[0] + "_"))
        cols.insert(at + 1, Column(f.column, f.type, True))
    target = CollectionSchema(name, tuple(cols), tuple(key))
    src_key_types = ["text" if source_kind in STRING_KEY_KINDS else source.column(k).type for k in source.key]
    tgt_key_types = ["text" if target_kind in STRING_KEY_KINDS else target.column(k).type for k in target.key]
    plain = tuple(c.name for c in cols if c.type == "json") if target_kind in PLAIN_JSON_KINDS and \
        source_kind not in PLAIN_JSON_KINDS else ()
    return CollectionMapping(name, source, target, source_kind in STRING_KEY_KINDS, target_kind in STRING_KEY_KINDS,
                             tuple(renames), tuple(flat), plain,
                             tuple(zip(src_key_types, tgt_key_types, strict=True)))


def type_fidelity(schema: CollectionSchema, *, source_kind: str, target_kind: str) -> list[str]:
    """One line per column whose PostgreSQL type does not cross exactly, or is restored on a move back, as declared in
    `shiftover.adapters.postgres.types.TYPES`: for --dry-run and the migration report."""
    return pg_types.fidelity_lines(schema, source_kind, target_kind)
