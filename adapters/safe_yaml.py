"""YAML for backends.yaml that a hostile file cannot turn into a hang, a memory blow-up or a traceback.

PyYAML's SafeLoader shares an aliased node instead of copying it, so a "billion laughs" file loads quickly into a
small object graph, and then explodes in whatever walks it (interpolation, validation). Here the composed node graph
is measured before anything is constructed: the number of nodes it stands for once every alias is expanded, and its
depth. Past the budget the file is refused with ConfigInvalid (BACKEND_002), as is every other malformed input:
bytes that are not UTF-8, values the constructors cannot build (a 5,000-digit integer, a 13th month), nesting deeper
than any configuration needs.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from shiftover.adapters.errors import ConfigInvalid, redact

MAX_BYTES = 4 * 1024 * 1024  # a configuration file is a few kilobytes
MAX_NODES = 100_000  # nodes after alias expansion (a billion laughs stands for ~10^9)
MAX_DEPTH = 64  # levels of nesting; the deepest real configuration has about 6


class _Refused(yaml.YAMLError):
    def __init__(self, problem: str, mark: yaml.Mark | None, hint: str) -> None:
        super().__init__(problem)
        self.problem, self.problem_mark, self.hint = problem, mark, hint


class _BudgetLoader(yaml.SafeLoader):
    """SafeLoader that bounds nesting while composing and expansion before constructing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:  # noqa: N803 - PyYAML's naming
        # the scanner's simple-key bookkeeping is quadratic in flow depth: refuse before it matters
        if self.flow_level >= MAX_DEPTH:
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels", self.get_mark(),
                           "a configuration nests a few levels; remove the extra brackets")
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark,
                              "a configuration nests a few levels; remove the extra brackets")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: Node) -> Any:
        size = _expanded_size(node, {}, set())
        if size > MAX_NODES:
            raise _Refused(f"it holds more than {MAX_NODES:,} values once its aliases are expanded", node.start_mark,
                           "write the values out, or use fewer nested aliases")
        return super().construct_document(node)

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, OverflowError, ArithmeticError) as exc:
            # int() past sys.get_int_max_str_digits, date(2020, 13, 45), unhashable keys in odd places
            raise _Refused(f"cannot read the value ({str(exc).splitlines()[0][:120]})", node.start_mark,
                           "quote it to make it a string, or write a smaller value") from None


def _expanded_size(node: Node, memo: dict[int, int], path: set[int]) -> int:
    """Nodes `node` stands for with every alias expanded; linear in distinct nodes thanks to the memo."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in path:  # a recursive alias (&a [*a]) is infinite
        return MAX_NODES + 1
    total = 1
    if isinstance(node, (SequenceNode, MappingNode)):
        path.add(key)
        children = node.value if isinstance(node, SequenceNode) else [n for pair in node.value for n in pair]
        for child in children:
            total += _expanded_size(child, memo, path)
            if total > MAX_NODES:
                break
        path.discard(key)
    memo[key] = total
    return total


def decode(raw: bytes, source: str) -> str:
    """UTF-8 text (a UTF-8 byte-order mark is allowed); anything else is refused with what to do."""
    if len(raw) > MAX_BYTES:
        raise ConfigInvalid(f"{source}: the file is {len(raw):,} bytes; a configuration is at most {MAX_BYTES:,}",
                            hint="point --config at backends.yaml")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(raw) > 1 and (raw[0] == 0 or raw[1] == 0)):
        raise ConfigInvalid(f"{source}: the file is UTF-16 or UTF-32, not UTF-8",
                            hint="save it as UTF-8 (e.g. iconv -f UTF-16 -t UTF-8)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigInvalid(f"{source}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at line {line})",
                            hint="save the file as UTF-8") from None


def load(text: str, source: str) -> Any:
    """Parse one YAML document within the budget; every failure is ConfigInvalid naming the line."""
    loader = None
    try:
        loader = _BudgetLoader(text)
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        if isinstance(exc, _Refused):
            raise ConfigInvalid(f"{source}: refused{where}: {exc.problem}", hint=exc.hint) from None
        problem = redact(str(getattr(exc, "problem", "") or getattr(exc, "reason", "") or ""))[:200]
        raise ConfigInvalid(f"{source}: not valid YAML{where}" + (f" ({problem})" if problem else ""),
                            hint="check indentation and quoting") from None
    except RecursionError:
        raise ConfigInvalid(f"{source}: refused: nested too deeply", hint="remove the extra nesting") from None
    finally:
        if loader is not None:
            loader.dispose()
