"""The schema around the rows, between two PostgreSQL-family providers (PostgreSQL, Supabase).

A move carries what the application runs on, split the way pg_dump/pg_restore (and pgcopydb) split it:

- *pre-data*, before the load: extensions, types, domains, functions, tables with their column defaults and CHECK
  constraints, sequences and identities, views, comments and grants;
- *post-data*, after the load: primary keys, unique and exclusion constraints, indexes, row level security and its
  policies (`keys` below), then foreign keys and triggers (`enforcement`), so the app's triggers never fire for
  Shiftover's own writes and a catch-up may apply changes in any order;
- sequences, set past every value the source handed out (`sync_sequences`).

The schema is read with the server's own `pg_dump --schema-only` in its custom format (one dump per run, reused by its
tasks) and replayed with `pg_restore --use-list`, filtered to the collections that move. pg_dump must be at least
the server's major version (it refuses otherwise); `tools()` checks it before anything changes. Owners are not
carried (`--no-owner`: the target's objects belong to the role in the target's URL); grants are carried, and the
target's tables end with exactly the source's grants. What the target cannot hold (an extension it does not offer, a
role that does not exist) is named by `requirements()` and refused before anything changes.

`describe()` lists the application-visible schema of tables (columns with types, defaults and identities,
constraints, indexes, triggers, policies, RLS flags, grants, sequences, views and enum/domain types) so the `schema`
suite compares both sides object by object; `smoke_insert()` tries the insert an application would make.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from shiftover.adapters.errors import DriverMissing, SchemaRefused, redact

if TYPE_CHECKING:
    from shiftover.adapters.postgres.adapter import PostgresAdapter

PRE = "pre-data"
KEYS = "keys"  # post-data that the copy and catch-up need or can live with: keys, unique, indexes, RLS, policies
ENFORCEMENT = "enforcement"  # post-data applied last: foreign keys and triggers
# pg_restore's TOC "desc" of the post-data entries, by group; anything else of post-data goes with `keys`.
_ENFORCEMENT_DESCS = {"FK CONSTRAINT", "TRIGGER", "EVENT TRIGGER"}
_POST_DESCS = {"CONSTRAINT", "FK CONSTRAINT", "INDEX", "INDEX ATTACH", "TRIGGER", "POLICY", "ROW SECURITY", "RULE",
               "STATISTICS", "EVENT TRIGGER", "PUBLICATION TABLE", "PUBLICATION TABLES IN SCHEMA"}
_TOC_LINE = re.compile(r"^(\d+); (\d+) (\d+) (.+)$")
_PG_CLASS, _PG_CONSTRAINT, _PG_ATTRDEF, _PG_TRIGGER, _PG_POLICY, _PG_REWRITE = 1259, 2606, 2604, 2620, 3256, 2618


@dataclass(frozen=True)
class TocEntry:
    """One line of `pg_restore -l`: what pg_restore can create, and the catalog object it came from."""

    line: str
    desc: str
    schema: str
    tag: str
    classid: int
    objid: int

    @property
    def post(self) -> bool:
        return self.desc in _POST_DESCS

    @property
    def group(self) -> str:
        if not self.post:
            return PRE
        return ENFORCEMENT if self.desc in _ENFORCEMENT_DESCS else KEYS


@dataclass(frozen=True)
class Requirements:
    """What the target must offer before the schema can move."""

    extensions: tuple[tuple[str, str], ...]  # (extension, schema) the moved objects use
    missing_extensions: tuple[str, ...]  # not offered by the target, or not creatable by its role
    missing_roles: tuple[str, ...]  # named by grants or policies, absent on the target

    def refusal(self) -> str | None:
        parts = []
        if self.missing_extensions:
            parts.append("extension(s) the target cannot create: " + ", ".join(self.missing_extensions))
        if self.missing_roles:
            parts.append("role(s) missing on the target: " + ", ".join(self.missing_roles))
        return "; ".join(parts) or None


# -- tools and connections ---------------------------------------------------------------------------------------------
def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        for bindir in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
            if (bindir / name).exists():
                return str(bindir / name)
        raise DriverMissing(f"{name} is not installed; Shiftover moves PostgreSQL schemas with it",
                            hint="install the PostgreSQL client tools (Debian: apt-get install postgresql-client)")
    return found


def tools(pg: PostgresAdapter) -> tuple[str, str]:
    """pg_dump and pg_restore, checked against the source server's major version (pg_dump refuses an older self)."""
    dump, restore = _tool("pg_dump"), _tool("pg_restore")
    out = subprocess.run([dump, "--version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"(\d+)(?:\.(\d+))?", out)
    mine = int(match.group(1)) if match else 0
    with pg._conn() as conn:
        server = int(conn.execute(sa.text("SHOW server_version_num")).scalar_one()) // 10000
    if mine < server:
        raise DriverMissing(f"pg_dump {mine} cannot read the schema of a PostgreSQL {server} server",
                            hint=f"install the PostgreSQL {server} client tools (postgresql-client-{server})",
                            provider=pg.name)
    return dump, restore


def libpq_env(url: str) -> dict[str, str]:
    """The connection as libpq environment variables: the password never appears on a command line."""
    u = sa.engine.make_url(url)
    env = {"PGHOST": u.host or "", "PGPORT": str(u.port or 5432), "PGUSER": u.username or "",
           "PGDATABASE": u.database or "", "PGAPPNAME": "shiftover", "PGCONNECT_TIMEOUT": "10"}
    if u.password is not None:
        env["PGPASSWORD"] = str(u.password)
    for key, var in (("sslmode", "PGSSLMODE"), ("sslrootcert", "PGSSLROOTCERT"), ("host", "PGHOST")):
        value = u.query.get(key)
        if value:
            env[var] = value if isinstance(value, str) else value[0]
    return {k: v for k, v in env.items() if v}


def _run(pg: PostgresAdapter, argv: list[str], what: str) -> str:
    env = {**os.environ, **libpq_env(pg.url or ""), "PGOPTIONS": "-c lock_timeout=10s"}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("pg_restore: warning")]
        detail = redact(" | ".join(lines[-3:]) or f"exit {proc.returncode}", pg._password())
        raise SchemaRefused(f"{what} failed: {detail}", provider=pg.name,
                            hint="fix the cause named above and re-run; objects already created are kept and skipped")
    return proc.stdout


# -- the dump and its table of contents --------------------------------------------------------------------------------
def dump_path(run_id: str, source: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{run_id}-{source}")
    return Path(tempfile.gettempdir()) / f"shiftover-schema-{safe}.dump"


def dump(pg: PostgresAdapter, path: Path) -> Path:
    """The source schema's `pg_dump --schema-only` in the custom format, written once per run (atomically)."""
    if path.exists():
        return path
    pg_dump, _ = tools(pg)
    partial = path.with_suffix(".partial")
    _run(pg, [pg_dump, "--schema-only", "--format=custom", "--no-subscriptions", "--no-publications",
              f"--schema={_quote_pattern(pg.schema_name)}", f"--file={partial}"], "pg_dump of the source schema")
    partial.replace(path)
    return path


def forget(path: Path) -> None:
    path.unlink(missing_ok=True)


def _quote_pattern(name: str) -> str:
    """A schema name as a pg_dump pattern matching exactly it."""
    return '"' + name.replace('"', '""') + '"'


def toc(path: Path) -> list[TocEntry]:
    pg_restore = _tool("pg_restore")
    out = subprocess.run([pg_restore, "--list", str(path)], capture_output=True, text=True, check=True).stdout
    entries = []
    for line in out.splitlines():
        m = _TOC_LINE.match(line)
        if not m:
            continue
        rest = m.group(4)
        desc = next((d for d in sorted(_ALL_DESCS, key=len, reverse=True) if rest.startswith(d + " ")), None)
        if desc is None:
            continue
        schema, _, tag = rest[len(desc) + 1:].partition(" ")
        tag = tag.rsplit(" ", 1)[0] if " " in tag else tag  # the owner comes last
        entries.append(TocEntry(line, desc, schema, tag, int(m.group(2)), int(m.group(3))))
    return entries


_ALL_DESCS = _POST_DESCS | {
    "SCHEMA", "COMMENT", "ACL", "TYPE", "DOMAIN", "FUNCTION", "PROCEDURE", "AGGREGATE", "TABLE", "VIEW",
    "MATERIALIZED VIEW", "SEQUENCE", "SEQUENCE OWNED BY", "DEFAULT", "DEFAULT ACL", "EXTENSION", "OPERATOR",
    "OPERATOR CLASS", "OPERATOR FAMILY", "COLLATION", "CONVERSION", "CAST", "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH DICTIONARY", "FOREIGN TABLE", "SHELL TYPE", "SECURITY LABEL"}


@dataclass(frozen=True)
class Selection:
    """The dump's entries that belong to a move of `tables`, by group, and the tables' own OIDs on the source."""

    entries: dict[str, list[TocEntry]]
    table_oids: dict[str, int]
    tables_of: dict[str, frozenset[str]]  # TOC line → the tables it needs (empty: none)

    def lines(self, group: str) -> list[str]:
        return [e.line for e in self.entries.get(group, [])]


def select(pg: PostgresAdapter, entries: Sequence[TocEntry], tables: Sequence[str]) -> Selection:
    """The entries a move of `tables` needs: everything of those tables (and the sequences and views that depend
    only on them), the schema's types, domains and functions, and nothing of the schema's other tables."""
    wanted = set(tables)
    with pg._conn() as conn:
        owner = _owning_tables(conn, pg.schema_name)
        rows = conn.execute(sa.text(
            "SELECT c.relname, c.oid FROM pg_class c WHERE c.relnamespace = to_regnamespace(:s) "
            "AND c.relkind IN ('r', 'p')"), {"s": ident(pg.schema_name)}).all()
    table_oids = {r[0]: int(r[1]) for r in rows if r[0] in wanted}
    chosen: dict[str, list[TocEntry]] = {PRE: [], KEYS: [], ENFORCEMENT: []}
    tables_of: dict[str, frozenset[str]] = {}
    names_of = {e.tag: e for e in entries if e.desc in ("TABLE", "VIEW", "SEQUENCE", "MATERIALIZED VIEW")}
    for e in entries:
        if e.desc == "SCHEMA" or (e.desc == "COMMENT" and e.tag.startswith("SCHEMA ")):
            continue  # the schema exists on the target or is created first (ensure_schema)
        if _shiftovers(e):
            continue  # Shiftover's own freeze, capture, change log and realtime trigger never move
        belongs = owner.get((e.classid, e.objid))
        if e.desc in ("COMMENT", "ACL", "SEQUENCE OWNED BY", "SECURITY LABEL") and belongs is None:
            parent = _parent_tag(e)
            target = names_of.get(parent) if parent else None
            belongs = owner.get((target.classid, target.objid)) if target is not None else None
        if belongs is not None and not (belongs <= wanted):
            continue
        if belongs is None and e.desc in ("TABLE", "VIEW", "MATERIALIZED VIEW", "SEQUENCE", "FOREIGN TABLE"):
            continue  # a relation the catalog cannot tie to the moved tables (a standalone object of another table)
        chosen[e.group].append(e)
        tables_of[e.line] = belongs or frozenset()
    return Selection(chosen, table_oids, tables_of)


def _shiftovers(e: TocEntry) -> bool:
    """Shiftover's own objects: `_shiftover*`, and backend.realtime's `shiftover_realtime_*` trigger and function."""
    name, own = _parent_tag(e) or e.tag, ("_shiftover", "shiftover_realtime_")
    return name.startswith(own) or e.tag.split(" ", 1)[-1].startswith(own)


def _parent_tag(e: TocEntry) -> str | None:
    kind, _, name = e.tag.partition(" ")
    if kind in ("TABLE", "VIEW", "SEQUENCE", "MATERIALIZED"):
        return name.removeprefix("VIEW ")
    if kind == "COLUMN":
        return name.rsplit(".", 1)[0]
    return None


def _owning_tables(conn: sa.Connection, schema: str) -> dict[tuple[int, int], frozenset[str]]:
    """(classid, objid) of each relation-bound object in the schema → the tables it needs: a table itself; its
    indexes, constraints, defaults, triggers, policies; sequences owned by or used as defaults of tables; views (every
    table they read); standalone sequences belong to no table and always move."""
    rows = conn.execute(sa.text("""
        WITH ns AS (SELECT to_regnamespace(:s) AS oid),
        tbl AS (SELECT c.oid, c.relname FROM pg_class c, ns WHERE c.relnamespace = ns.oid AND c.relkind IN ('r','p')),
        uses AS (SELECT d.objid AS seq, d.refobjid AS tab FROM pg_depend d  -- owned by, or the default of, a table
                  WHERE d.classid = 1259 AND d.refclassid = 1259 AND d.deptype IN ('a', 'i')
                 UNION SELECT d.refobjid, a.adrelid FROM pg_depend d JOIN pg_attrdef a ON a.oid = d.objid
                  WHERE d.classid = 2604 AND d.refclassid = 1259)
        SELECT 1259, t.oid, ARRAY[t.relname] FROM tbl t
        UNION ALL SELECT 1259, i.indexrelid, ARRAY[t.relname] FROM pg_index i JOIN tbl t ON t.oid = i.indrelid
        UNION ALL SELECT 2606, c.oid, array_remove(ARRAY[t.relname, (SELECT relname FROM pg_class
                                                                    WHERE oid = c.confrelid)], NULL)
            FROM pg_constraint c JOIN tbl t ON t.oid = c.conrelid
        UNION ALL SELECT 2604, d.oid, ARRAY[t.relname] FROM pg_attrdef d JOIN tbl t ON t.oid = d.adrelid
        UNION ALL SELECT 2620, g.oid, ARRAY[t.relname] FROM pg_trigger g JOIN tbl t ON t.oid = g.tgrelid
            WHERE NOT g.tgisinternal
        UNION ALL SELECT 3256, p.oid, ARRAY[t.relname] FROM pg_policy p JOIN tbl t ON t.oid = p.polrelid
        UNION ALL SELECT 0, t.oid, ARRAY[t.relname] FROM tbl t
        UNION ALL SELECT 1259, s.oid, array_agg(DISTINCT t.relname) FROM pg_class s JOIN ns ON s.relnamespace = ns.oid
            JOIN uses u ON u.seq = s.oid JOIN tbl t ON t.oid = u.tab WHERE s.relkind = 'S' GROUP BY s.oid
        UNION ALL SELECT 1259, v.oid, coalesce(array_agg(DISTINCT t.relname) FILTER (WHERE t.relname IS NOT NULL),
                                              ARRAY[]::name[])
            FROM pg_class v JOIN ns ON v.relnamespace = ns.oid
            JOIN pg_rewrite r ON r.ev_class = v.oid
            LEFT JOIN pg_depend d ON d.classid = 2618 AND d.objid = r.oid AND d.refclassid = 1259
            LEFT JOIN tbl t ON t.oid = d.refobjid
            WHERE v.relkind IN ('v', 'm') GROUP BY v.oid
    """), {"s": ident(schema)}).all()
    return {(int(c), int(o)): frozenset(t) for c, o, t in rows}


def ident(name: str) -> str:
    """A name as a quoted identifier, for catalog functions that take text (to_regclass, to_regnamespace)."""
    return '"' + name.replace('"', '""') + '"'


# -- what the target must offer ----------------------------------------------------------------------------------------
def requirements(src: PostgresAdapter, dst: PostgresAdapter, sel: Selection) -> Requirements:
    """Extensions the moved objects use, and roles their grants and policies name; which of them the target lacks."""
    objs = [(e.classid, e.objid) for group in sel.entries.values() for e in group if e.classid]
    with src._conn() as conn:
        exts = conn.execute(sa.text("""
            WITH o(classid, objid) AS (SELECT * FROM unnest(CAST(:c AS oid[]), CAST(:o AS oid[])))
            SELECT DISTINCT e.extname, n.nspname FROM o
            JOIN pg_depend d ON d.classid = o.classid AND d.objid = o.objid
            LEFT JOIN pg_type t ON d.refclassid = 1247 AND t.oid = d.refobjid
            JOIN pg_depend x ON x.classid = d.refclassid AND x.objid IN (d.refobjid, coalesce(t.typelem, 0),
                                                                          coalesce(t.typbasetype, 0))
                             AND x.deptype = 'e' AND x.refclassid = 'pg_extension'::regclass
            JOIN pg_extension e ON e.oid = x.refobjid JOIN pg_namespace n ON n.oid = e.extnamespace
            WHERE e.extname <> 'plpgsql'
            ORDER BY 1"""), {"c": [c for c, _ in objs], "o": [o for _, o in objs]}).all()
        roles = conn.execute(sa.text("""
            SELECT DISTINCT r.rolname FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
              JOIN pg_roles r ON r.oid = a.grantee
             WHERE c.oid = ANY(CAST(:rels AS oid[])) AND a.grantee <> c.relowner
            UNION SELECT r.rolname FROM pg_policy p CROSS JOIN LATERAL unnest(p.polroles) AS pr(oid)
              JOIN pg_roles r ON r.oid = pr.oid WHERE p.polrelid = ANY(CAST(:tables AS oid[]))
            ORDER BY 1"""), {"rels": [o for c, o in objs if c == _PG_CLASS],
                             "tables": list(sel.table_oids.values())}).all()
    with dst._conn() as conn:
        offered = {r[0]: (r[1], bool(r[2])) for r in conn.execute(sa.text(
            "SELECT a.name, a.installed_version IS NOT NULL, coalesce(v.trusted, false) "
            "FROM pg_available_extensions a LEFT JOIN pg_available_extension_versions v "
            "ON v.name = a.name AND v.version = a.default_version"))}
        superuser, may_create = conn.execute(sa.text(
            "SELECT rolsuper, has_database_privilege(current_database(), 'CREATE') FROM pg_roles "
            "WHERE rolname = current_user")).one()
        present = {r[0] for r in conn.execute(sa.text("SELECT rolname FROM pg_roles"))}
    # an extension not installed yet needs a superuser, or a trusted extension and CREATE on the database
    missing_ext = tuple(name for name, _ in exts if name not in offered or not (
        offered[name][0] or superuser or (offered[name][1] and may_create)))
    return Requirements(tuple((str(n), str(s)) for n, s in exts), missing_ext,
                        tuple(str(r[0]) for r in roles if r[0] not in present))


def refuse_unless_ready(src: PostgresAdapter, dst: PostgresAdapter, req: Requirements) -> None:
    why = req.refusal()
    if why:
        raise SchemaRefused(f"the target {dst.name!r} cannot hold the schema of {src.name!r}: {why}", provider=dst.name,
                            hint="create them on the target (CREATE EXTENSION / CREATE ROLE, as a superuser), or "
                                 "leave the tables that need them out with --collections; nothing was changed")


# -- applying the schema -----------------------------------------------------------------------------------------------
def existing_tables(dst: PostgresAdapter, tables: Iterable[str]) -> list[str]:
    with dst._conn() as conn:
        have = {r[0] for r in conn.execute(sa.text(
            "SELECT relname FROM pg_class WHERE relnamespace = to_regnamespace(:s) AND relkind IN ('r', 'p')"),
            {"s": ident(dst.schema_name)})}
    return sorted(set(tables) & have)


def apply_pre_data(src: PostgresAdapter, dst: PostgresAdapter, path: Path, sel: Selection,
                   req: Requirements) -> None:
    """Extensions, then the pre-data entries in one transaction (all or nothing), then the grants made exact."""
    from psycopg import sql

    raw = dst._raw()
    try:
        with dst._errors(), raw.driver_connection.cursor() as cur:
            for schema in sorted({dst.schema_name} | {s for _, s in req.extensions}):
                cur.execute("SELECT to_regnamespace(%s) IS NULL", (ident(schema),))
                if cur.fetchone()[0]:  # CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when it exists
                    cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            for name, schema in req.extensions:
                cur.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {}").format(
                    sql.Identifier(name), sql.Identifier(schema)))
            raw.driver_connection.commit()
    finally:
        raw.close()
    _restore(dst, path, sel.lines(PRE), "pre-data", single_transaction=True)
    _exact_grants(src, dst, list(sel.table_oids))
    dst._forget_all()


def apply_post_data(dst: PostgresAdapter, path: Path, sel: Selection, group: str, tables: Sequence[str],
                    jobs: int = 2) -> int:
    """The post-data entries of `group` for `tables` that the target does not have yet (a resumed run skips what an
    earlier attempt built); indexes and keys are built `jobs` at a time. Returns how many were applied."""
    wanted = set(tables)
    entries = [e for e in sel.entries.get(group, []) if sel.tables_of.get(e.line) and sel.tables_of[e.line] <= wanted]
    have = _existing(dst) if entries else set()
    todo = [e for e in entries if not _exists(have, e)]
    if todo:
        _restore(dst, path, [e.line for e in todo], f"post-data ({group})", jobs=jobs if len(todo) > 1 else 1)
    dst._forget_all()
    return len(todo)


_EXISTING = sa.text("""
    WITH t AS (SELECT oid, relname, relrowsecurity FROM pg_class
               WHERE relnamespace = to_regnamespace(:s) AND relkind IN ('r', 'p'))
    SELECT 'CONSTRAINT', t.relname, c.conname FROM pg_constraint c JOIN t ON t.oid = c.conrelid
    UNION ALL SELECT 'TRIGGER', t.relname, g.tgname FROM pg_trigger g JOIN t ON t.oid = g.tgrelid
        WHERE NOT g.tgisinternal
    UNION ALL SELECT 'POLICY', t.relname, p.polname FROM pg_policy p JOIN t ON t.oid = p.polrelid
    UNION ALL SELECT 'RULE', t.relname, r.rulename FROM pg_rewrite r JOIN t ON t.oid = r.ev_class
    UNION ALL SELECT 'ROW SECURITY', t.relname, '' FROM t WHERE t.relrowsecurity
    UNION ALL SELECT 'INDEX', c.relname, '' FROM pg_class c
        WHERE c.relnamespace = to_regnamespace(:s) AND c.relkind IN ('i', 'I')""")


def _existing(dst: PostgresAdapter) -> set[tuple[str, str, str]]:
    """(kind, table or index, name) of the post-data objects the target has: one catalog read for any number."""
    with dst._conn() as conn:
        return {(str(k), str(t), str(n)) for k, t, n in conn.execute(_EXISTING, {"s": ident(dst.schema_name)})}


def _exists(have: set[tuple[str, str, str]], e: TocEntry) -> bool:
    table, _, name = e.tag.partition(" ")
    if e.desc in ("CONSTRAINT", "FK CONSTRAINT"):
        return ("CONSTRAINT", table, name) in have
    if e.desc in ("TRIGGER", "POLICY", "RULE"):
        return (e.desc, table, name) in have
    if e.desc in ("ROW SECURITY", "INDEX"):  # a ROW SECURITY tag is its table, an INDEX tag its own name
        return (e.desc, e.tag, "") in have
    return False


def _restore(dst: PostgresAdapter, path: Path, lines: Sequence[str], what: str, *, single_transaction: bool = False,
             jobs: int = 1) -> None:
    if not lines:
        return
    _, pg_restore = tools(dst)
    with tempfile.NamedTemporaryFile("w", suffix=".list", delete=False, encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
        listing = f.name
    try:
        argv = [pg_restore, "--no-owner", "--exit-on-error", f"--use-list={listing}",
                f"--dbname={libpq_env(dst.url or '').get('PGDATABASE', '')}"]
        argv += ["--single-transaction"] if single_transaction else [f"--jobs={jobs}"]
        _run(dst, argv + [str(path)], f"{what} on {dst.name!r}")
    finally:
        os.unlink(listing)


def _exact_grants(src: PostgresAdapter, dst: PostgresAdapter, tables: Sequence[str]) -> None:
    """Revoke on the target what its default privileges granted beyond the source's grants (a Supabase project
    grants anon and authenticated everything on new tables): the moved tables end with exactly the source's ACL."""
    from psycopg import sql

    src_acl = _grantees(src, tables)
    dst_acl = _grantees(dst, tables)
    raw = dst._raw()
    try:
        with dst._errors(), raw.driver_connection.cursor() as cur:
            for (table, grantee), privileges in sorted(dst_acl.items()):
                extra = privileges - src_acl.get((table, grantee), set())
                if extra:
                    who = sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee)
                    cur.execute(sql.SQL("REVOKE {} ON TABLE {} FROM {}").format(
                        sql.SQL(", ").join(sql.SQL(p) for p in sorted(extra) if p in _PRIVILEGES),
                        sql.Identifier(dst.schema_name, table), who))
            raw.driver_connection.commit()
    finally:
        raw.close()


_PRIVILEGES = {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"}


def _grantees(pg: PostgresAdapter, tables: Sequence[str]) -> dict[tuple[str, str], set[str]]:
    with pg._conn() as conn:
        rows = conn.execute(sa.text(
            "SELECT c.relname, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END, "
            "a.privilege_type FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a "
            "WHERE c.relnamespace = to_regnamespace(:s) AND c.relname = ANY(:t) AND a.grantee <> c.relowner"),
            {"s": ident(pg.schema_name), "t": list(tables)}).all()
    out: dict[tuple[str, str], set[str]] = {}
    for table, grantee, privilege in rows:
        out.setdefault((table, grantee), set()).add(privilege)
    return out
