"""Python: `ast` parse (never imported or executed), import and receiver tracking, call chains -> findings."""

from __future__ import annotations

import ast
from typing import Any

from shiftover.codebase.findings import FindingSink
from shiftover.codebase.resolve import DYN, Segment, Source, State, run_chain, sdk_of
from shiftover.codebase.sdks import KINDS, LOCAL_CLIENT_NAMES, SENTINEL_MODULES, SENTINELS

_PSYCOPG_SQL = ("SQL", "Composed")


class PyFile(Source):
    def __init__(self, text: str, sink: FindingSink) -> None:
        self.lines = text.splitlines()
        self.sink = sink
        self.bindings: dict[str, State] = {}
        self.strings: dict[str, str] = {}
        self.memo: dict[int, State | None] = {}

    # --- Source -------------------------------------------------------------------------------------------------
    def text(self, node: Any) -> str:
        start, end = node.lineno - 1, getattr(node, "end_lineno", node.lineno) - 1
        if start == end:
            return self.lines[start][node.col_offset:node.end_col_offset] if start < len(self.lines) else ""
        head = [self.lines[start][node.col_offset:]]
        return "\n".join(head + self.lines[start + 1:end] + [self.lines[end][:node.end_col_offset]])

    def literal(self, node: Any) -> str | None:
        if isinstance(node, ast.Constant):
            return node.value if isinstance(node.value, str) else None
        if isinstance(node, ast.JoinedStr):
            return "".join(v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else DYN
                           for v in node.values)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
            left, right = self.literal(node.left), self.literal(node.right)
            if left is None:
                return None
            if isinstance(node.op, ast.Mod):  # "... %s" % (x,)
                return left.replace("%s", DYN)
            return left + (right if right is not None else DYN)
        if isinstance(node, ast.Name):
            return self.strings.get(node.id)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
            inner = self.literal(node.func.value)
            return None if inner is None else _braces_dynamic(inner)
        return None

    def sql(self, node: Any) -> str | None:
        """SQL text from a string, `text("...")`, or psycopg's `sql.SQL("...").format(...)` composition."""
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in ("text",) + _PSYCOPG_SQL and node.args:
                inner = self.literal(node.args[0])
                return None if inner is None else _braces_dynamic(inner)
            if name == "format" and isinstance(func, ast.Attribute):
                return self.sql(func.value)
        return self.literal(node)

    def option(self, node: Any, key: str) -> str | None:
        if isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values, strict=True):
                if isinstance(k, ast.Constant) and k.value == key:
                    value = self.literal(v)
                    return DYN if value is None else value
        return None

    def evaluate(self, node: Any) -> State | None:
        while isinstance(node, ast.Await):
            node = node.value
        if isinstance(node, ast.Name):
            return self.bindings.get(node.id)
        if not isinstance(node, (ast.Call, ast.Attribute, ast.Subscript)):
            return None
        key = id(node)
        if key in self.memo:
            return self.memo[key]
        self.memo[key] = None
        state = self._chain(node)
        self.memo[key] = state
        if state is not None and state.service is not None:
            self.sink.record(state, self, self._sentinel)
        return state

    # --- chains -------------------------------------------------------------------------------------------------
    def _flatten(self, node: Any) -> tuple[Any, list[Segment]]:
        segs: list[Segment] = []
        while True:
            if isinstance(node, ast.Call):
                args = list(node.args) + [k.value for k in node.keywords]
                if isinstance(node.func, ast.Attribute):
                    segs.append(Segment("call", node.func.attr, args, node))
                    node = node.func.value
                else:
                    segs.append(Segment("call", None, args, node))
                    node = node.func
            elif isinstance(node, ast.Attribute):
                segs.append(Segment("attr", node.attr, [], node))
                node = node.value
            elif isinstance(node, ast.Subscript):
                segs.append(Segment("index", None, [node.slice], node))
                node = node.value
            elif isinstance(node, ast.Await):
                node = node.value
            else:
                break
        segs.reverse()
        return node, segs

    def _chain(self, node: Any) -> State | None:
        root, segs = self._flatten(node)
        if not isinstance(root, ast.Name) or not segs:
            return None
        state, start, dotted = self.bindings.get(root.id), 0, root.id
        for i, seg in enumerate(segs):
            if seg.kind != "attr":
                break
            dotted += f".{seg.name}"
            if dotted in self.bindings:
                state, start = self.bindings[dotted], i + 1
        if state is None:
            return None
        return run_chain(state, segs[start:], self)

    def _sentinel(self, seg: Segment) -> bool:
        for arg in seg.args:
            for node in ast.walk(arg):
                if isinstance(node, ast.Attribute) and node.attr in SENTINELS:
                    owner = self.bindings.get(node.value.id) if isinstance(node.value, ast.Name) else None
                    if (owner is not None and owner.kind in SENTINEL_MODULES) or self.text(node.value).endswith(
                            "FieldValue"):
                        return True
                elif isinstance(node, ast.Name) and node.id in self.bindings:
                    bound = self.bindings[node.id]
                    if bound.fname in SENTINELS and bound.kind in SENTINEL_MODULES:
                        return True
        return False

    # --- statements ---------------------------------------------------------------------------------------------
    def _import(self, node: ast.Import | ast.ImportFrom) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    self._bind_module(alias.asname, alias.name)
                else:
                    parts = alias.name.split(".")
                    for i in range(1, len(parts) + 1):
                        self._bind_module(".".join(parts[:i]), ".".join(parts[:i]))
            return
        module = node.module or ""
        for alias in node.names:
            local = alias.asname or alias.name
            full = f"{module}.{alias.name}" if module else alias.name
            if node.level == 0 and "mod:" + full in KINDS:
                self._bind_module(local, full)
            elif node.level == 0 and "mod:" + module in KINDS:
                self.bindings[local] = State(kind="mod:" + module, sdk=sdk_of(module), fname=alias.name)
            elif node.level > 0 or sdk_of(module) == "unknown":
                for key, kind in LOCAL_CLIENT_NAMES.items():
                    if key in local.lower():
                        self.bindings[local] = State(kind=kind, sdk="supabase", flags=frozenset({"rls"}))

    def _bind_module(self, local: str, module: str) -> None:
        if "mod:" + module in KINDS:
            self.bindings[local] = State(kind="mod:" + module, sdk=sdk_of(module))

    def _bind(self, target: Any, value: Any) -> None:
        name = _dotted(target)
        if name is None:
            self.evaluate(value)
            return
        lit = self.literal(value) if isinstance(value, (ast.Constant, ast.JoinedStr)) else None
        if lit is not None:
            self.strings[name] = lit
            return
        state = self.evaluate(value)
        if state is not None:
            self.bindings[name] = state

    def _annotate(self, arg: ast.arg) -> None:
        """`def f(db: Client)`: a parameter annotated with an SDK class is a receiver of that kind."""
        if arg.annotation is None:
            return
        ann = self.evaluate(arg.annotation) if not isinstance(arg.annotation, ast.Name) else \
            self.bindings.get(arg.annotation.id)
        if isinstance(arg.annotation, ast.Name) and ann is not None and ann.fname is not None:
            rule = KINDS.get(ann.kind, {}).get(ann.fname)
            if rule is not None and rule.to is not None and not rule.is_op:
                self.bindings[arg.arg] = State(kind=rule.to, sdk=ann.sdk, tree=rule.to.startswith("fs."))

    def run(self, tree: ast.AST) -> None:
        nodes = [n for n in ast.walk(tree) if isinstance(n, _VISITED)]
        nodes.sort(key=lambda n: (n.lineno, n.col_offset))
        for node in nodes:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                self._import(node)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    self._bind(target, node.value)
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                self._bind(node.target, node.value)
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                for item in node.items:
                    if item.optional_vars is not None:
                        self._bind(item.optional_vars, item.context_expr)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for arg in node.args.args + node.args.kwonlyargs:
                    self._annotate(arg)
            else:
                self.evaluate(node)


_VISITED = (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign, ast.With, ast.AsyncWith, ast.FunctionDef,
            ast.AsyncFunctionDef, ast.Call)


def _dotted(node: Any) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _braces_dynamic(text: str) -> str:
    out, depth = [], 0
    for ch in text:
        if ch == "{":
            if depth == 0:
                out.append("\0")
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def analyze_python(text: str, sink: FindingSink) -> None:
    """Record the findings of one Python source into `sink`; raises SyntaxError when it does not parse."""
    PyFile(text, sink).run(ast.parse(text))
