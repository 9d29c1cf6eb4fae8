"""Turns an evaluated chain into a `Finding`: line, collection, and the flags a reviewer needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shiftover.codebase.model import Finding
from shiftover.codebase.resolve import Segment, Source, State, collection_of

_CALL_TEXT_MAX = 120


class FindingSink:
    """The findings of one file, each recorded once (a chain reached from two places is the same call)."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.findings: list[Finding] = []
        self._seen: set[Any] = set()

    def record(self, state: State, src: Source, has_sentinel: Callable[[Segment], bool]) -> None:
        seg = state.op_segment
        assert seg is not None, "a finding is recorded at the operation's segment"
        key = _node_key(seg.node)
        if key in self._seen:
            return
        self._seen.add(key)
        collection, shape_flags = collection_of(state)
        flags = set(state.flags) | shape_flags
        if state.service == "realtime":
            flags.add("realtime")
        if state.service not in ("database", "storage"):
            flags.discard("rls")
        if state.service == "database" and has_sentinel(seg):
            flags.add("field_value")
        call = " ".join(src.text(seg.node).split())
        if len(call) > _CALL_TEXT_MAX:
            call = call[:_CALL_TEXT_MAX - 1] + "…"
        self.findings.append(Finding(
            file=self.file, line=_line(seg.node), sdk=state.sdk, service=state.service, operation=state.operation,
            collection=collection, call=call, flags=sorted(flags)))


def _node_key(node: Any) -> Any:
    if hasattr(node, "start_byte"):
        return node.start_byte, node.end_byte
    return node.lineno, node.col_offset, getattr(node, "end_lineno", 0), getattr(node, "end_col_offset", 0)


def _line(node: Any) -> int:
    if hasattr(node, "start_point"):
        return node.start_point[0] + 1
    return node.lineno
