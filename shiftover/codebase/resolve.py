"""Language-neutral evaluation of a call chain against the recognition tables in sdks.py.

A parser (javascript.py, python.py) flattens `root.a(x).b.c(y)` into a root and a list of `Segment`s and
implements `Source` for reading literals out of its own syntax tree; `run_chain` walks the segments through
`KINDS` and returns the receiver `State` at the end, carrying the operation if the chain performed one.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field, replace
from typing import Any

from shiftover.codebase.sdks import KINDS, Rule
from shiftover.codebase.sql import classify_sql

_FIRESTORE_MODULES = frozenset({"mod:firebase/firestore", "mod:firebase/firestore/lite"})
DYN = "\0"  # marks a run-time (non-literal) part of a name

_SDK_BY_MODULE_PREFIX = (
    ("@supabase/", "supabase"), ("supabase", "supabase"), ("firebase-admin", "firebase-admin"),
    ("firebase_admin", "firebase-admin"), ("google.cloud", "firebase-admin"), ("firebase", "firebase"),
    ("mongoose", "mongoose"), ("mongodb", "mongodb"), ("pymongo", "mongodb"), ("motor", "mongodb"),
    ("psycopg", "sql"), ("sqlalchemy", "sql"),
)


def sdk_of(module: str) -> str:
    for prefix, sdk in _SDK_BY_MODULE_PREFIX:
        if module.startswith(prefix):
            return sdk
    return "unknown"


@dataclass(frozen=True, slots=True)
class State:
    """What an expression holds: a receiver kind, the name path built so far, flags, and the operation if any."""

    kind: str
    sdk: str
    fname: str | None = None  # a function imported from module kind `kind`
    path: tuple[str, ...] = ()
    flags: frozenset[str] = frozenset()
    service: str | None = None
    operation: str | None = None
    op_segment: Segment | None = None
    tree: bool = False  # Firestore path semantics: collection ids at even positions


@dataclass(slots=True)
class Segment:
    kind: str  # "call" | "attr" | "index"
    name: str | None  # method or property name; None for a direct call `f(...)` or a subscript
    args: list[Any] = field(default_factory=list)
    node: Any = None  # the parser's node spanning the chain from its root to this segment


class Source(abc.ABC):
    """What the chain runner needs from a parsed file."""

    @abc.abstractmethod
    def literal(self, node: Any) -> str | None:
        """The string value of a string-like expression, run-time parts replaced by DYN; None if not string-like."""

    @abc.abstractmethod
    def evaluate(self, node: Any) -> State | None:
        """The state an argument expression holds (a bound variable, a builder call), or None."""

    @abc.abstractmethod
    def option(self, node: Any, key: str) -> str | None:
        """The literal value of `key` in an object/dict literal argument."""

    @abc.abstractmethod
    def text(self, node: Any) -> str:
        """The source text of a node."""

    def sql(self, node: Any) -> str | None:
        return self.literal(node)


def lookup(state: State, seg: Segment) -> Rule | None:
    table = KINDS.get(state.kind)
    if table is None:
        return None
    if state.fname is not None:
        return table.get(state.fname) if seg.kind == "call" and seg.name is None else None
    if seg.kind == "call":
        return table.get(seg.name) or table.get("*") if seg.name is not None else table.get("()")
    if seg.kind == "attr":
        return table.get(f".{seg.name}") or table.get(".*")
    return table.get("[]")


def plural_collection(model: str) -> str:
    low = model.lower()
    if low.endswith("s"):
        return low
    if low.endswith("y") and low[-2:-1] not in "aeiou":
        return low[:-1] + "ies"
    return low + "s"


def _arg(seg: Segment, i: int) -> Any:
    return seg.args[i] if len(seg.args) > i else None


def _names(src: Source, nodes: list[Any]) -> tuple[str, ...]:
    out = []
    for n in nodes:
        lit = src.literal(n)
        out.append(DYN if lit is None else lit)
    return tuple(out)


def apply(state: State, rule: Rule, seg: Segment, src: Source) -> State | None:
    """The state after applying `rule` to `state` through `seg`; None when the rule refuses (not SQL after all)."""
    path, flags = state.path, set(state.flags) | set(rule.flags)
    tree = state.tree or state.kind in _FIRESTORE_MODULES or (rule.to or "").startswith("fs.")
    service, operation = rule.service, rule.operation
    mode = rule.name
    if mode in ("arg0", "arg1", "index0"):
        arg = _arg(seg, 1 if mode == "arg1" else 0)
        if arg is not None:
            path = path + _names(src, [arg])
        elif rule.to == "fs.ref":  # `.doc()` without an id: an auto-id document
            path = path + (DYN,)
    elif mode == "attr":
        path = path + (seg.name or DYN,)
    elif mode in ("ref0", "ref0+args1"):
        base = src.evaluate(seg.args[0]) if seg.args else None
        path = _ref_path(base, seg, src, mode)
        if base is not None:
            flags |= base.flags
            tree = tree or base.tree
    elif mode == "args1":
        path = _names(src, seg.args[1:])
    elif mode == "option:table":
        tables = [v for v in (src.option(arg, "table") for arg in seg.args) if v is not None]
        path = (tables[0],) if tables else path
    elif mode == "model0":
        arg = _arg(seg, 0)
        lit = src.literal(arg) if arg is not None else None
        path = (plural_collection(lit) if lit and DYN not in lit else DYN,)
    elif mode == "rls1":
        key = _arg(seg, 1)
        if key is None or "service" not in src.text(key).lower():
            flags.add("rls")
    elif mode in ("sql0", "sql0?"):
        read = _sql_rule(seg, src, optional=mode == "sql0?")
        if read is None:
            return None
        path, operation, sql_flags = read
        service = "realtime" if operation == "subscribe" else service
        flags |= sql_flags
    kind = rule.to or ("done" if rule.is_op else state.kind)
    new = State(kind=kind, sdk=state.sdk, path=path, flags=frozenset(flags), service=state.service,
                operation=state.operation, op_segment=state.op_segment, tree=tree)
    if rule.is_op and state.service is None:
        new = replace(new, service=service, operation=operation, op_segment=seg)
    return new


def _ref_path(base: State | None, seg: Segment, src: Source, mode: str) -> tuple[str, ...]:
    """The path of a reference passed as the first argument (`ref0`), extended by the names after it (`+args1`)."""
    path = base.path if base is not None else ((DYN,) if mode == "ref0" else ())
    return path + _names(src, seg.args[1:]) if mode == "ref0+args1" else path


def _sql_rule(seg: Segment, src: Source, *, optional: bool) -> tuple[tuple[str, ...], str, set[str]] | None:
    """(path, operation, flags) read from the SQL text in the first argument. Text that is not SQL (or not a literal)
    is a dynamic write, or None for an optional rule: the call is not SQL after all."""
    arg = _arg(seg, 0)
    sql = src.sql(arg) if arg is not None else None
    classified = classify_sql(sql) if sql is not None else None
    if sql is None or classified is None:
        return None if optional else ((DYN,), "write", set())
    operation, table, sql_flags = classified
    return ((table,) if table else ((DYN,) if DYN in sql else ())), operation, set(sql_flags)


def run_chain(state: State, segments: list[Segment], src: Source) -> State | None:
    """Walk `segments` from `state`; the result carries the first operation met, or None if the chain is unknown."""
    for seg in segments:
        rule = lookup(state, seg)
        if rule is None:
            return state if state.service is not None else None
        nxt = apply(state, rule, seg, src)
        if nxt is None:
            return state if state.service is not None else None
        state = nxt
        if rule.is_op and rule.to is None:
            return state
    return state


def collection_of(state: State) -> tuple[str | None, set[str]]:
    """The collection name a finding is about, and the flags its shape implies (dynamic, subcollection)."""
    if not state.path:
        return None, set()
    joined = "/".join(state.path)
    flags: set[str] = set()
    if state.tree:
        ids = [p for p in joined.split("/")[0::2]]
        if any(DYN in p or not p for p in ids):
            return None, {"dynamic_name"}
        if len(ids) > 1:
            flags.add("subcollection")
        return "/".join(ids), flags
    first = joined.split("/")[0] if state.service not in ("functions",) else joined
    if DYN in first or not first:
        return None, {"dynamic_name"}
    return first, flags
