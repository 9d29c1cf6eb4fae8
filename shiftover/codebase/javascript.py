"""TypeScript, TSX and JavaScript: tree-sitter parse, import and receiver tracking, call chains -> findings."""

from __future__ import annotations

import threading
from typing import Any

import tree_sitter
import tree_sitter_javascript
import tree_sitter_typescript

from shiftover.codebase.findings import FindingSink
from shiftover.codebase.resolve import DYN, Segment, Source, State, plural_collection, run_chain, sdk_of
from shiftover.codebase.sdks import (
    DEFAULT_IMPORTS,
    KINDS,
    LOCAL_CLIENT_NAMES,
    LOCAL_FIREBASE_EXPORTS,
    LOCAL_MODEL_DIR,
    SENTINEL_MODULES,
    SENTINELS,
)

GRAMMARS = {".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "tsx",
            ".js": "javascript", ".jsx": "javascript", ".mjs": "javascript", ".cjs": "javascript"}

_QUERY = """
(import_statement) @n
(variable_declarator) @n
(assignment_expression) @n
(call_expression) @n
(new_expression) @n
"""
_WRAPPERS = frozenset({"await_expression", "parenthesized_expression", "as_expression", "satisfies_expression",
                       "non_null_expression", "type_assertion"})
_local = threading.local()


def _language(grammar: str) -> tree_sitter.Language:
    if grammar == "typescript":
        return tree_sitter.Language(tree_sitter_typescript.language_typescript())
    if grammar == "tsx":
        return tree_sitter.Language(tree_sitter_typescript.language_tsx())
    return tree_sitter.Language(tree_sitter_javascript.language())


def _tools(grammar: str) -> tuple[tree_sitter.Parser, tree_sitter.Query]:
    """One parser and compiled query per grammar and thread (parsers are not shared across threads)."""
    cache = getattr(_local, "tools", None)
    if cache is None:
        cache = _local.tools = {}
    if grammar not in cache:
        language = _language(grammar)
        cache[grammar] = (tree_sitter.Parser(language), tree_sitter.Query(language, _QUERY))
    return cache[grammar]


def _string_value(node: Any, src: bytes) -> str:
    return src[node.start_byte + 1:node.end_byte - 1].decode("utf-8", "replace")


def local_binding(name: str, module: str) -> State | None:
    """A client exported by the application's own module (`import { supabase } from './lib/supabase'`)."""
    low_name, low_module = name.lower(), module.lower()
    for key, kind in LOCAL_CLIENT_NAMES.items():
        if key in low_name:
            return State(kind=kind, sdk="supabase", flags=frozenset({"rls"}))
    if ("firebase" in low_module or "firestore" in low_module) and name in LOCAL_FIREBASE_EXPORTS:
        kind = LOCAL_FIREBASE_EXPORTS[name]
        return State(kind=kind, sdk="firebase", tree=kind.startswith("fs."))
    if LOCAL_MODEL_DIR in low_module and name[:1].isupper():
        return State(kind="mongoose.model", sdk="mongoose", path=(plural_collection(name),))
    return None


def module_binding(module: str, name: str | None) -> State | None:
    """What importing `name` (None: the default/namespace/require object) from `module` binds."""
    if name is None:
        if module in DEFAULT_IMPORTS:
            return State(kind=DEFAULT_IMPORTS[module], sdk=sdk_of(module))
        if "mod:" + module in KINDS:
            return State(kind="mod:" + module, sdk=sdk_of(module))
        return None
    if "mod:" + module in KINDS:
        return State(kind="mod:" + module, sdk=sdk_of(module), fname=name)
    return None


class JsFile(Source):
    def __init__(self, src: bytes, sink: FindingSink) -> None:
        self.src = src
        self.sink = sink
        self.bindings: dict[str, State] = {}
        self.strings: dict[str, str] = {}
        self.memo: dict[tuple[int, int], State | None] = {}

    # --- Source -------------------------------------------------------------------------------------------------
    def text(self, node: Any) -> str:
        return self.src[node.start_byte:node.end_byte].decode("utf-8", "replace")

    def literal(self, node: Any) -> str | None:
        t = node.type
        if t == "string":
            return _string_value(node, self.src)
        if t == "template_string":
            parts = []
            for child in node.named_children:
                parts.append(DYN if child.type == "template_substitution" else self.text(child))
            return "".join(parts)
        if t == "binary_expression" and self.text(node.child_by_field_name("operator")) == "+":
            left = self.literal(node.child_by_field_name("left"))
            right = self.literal(node.child_by_field_name("right"))
            if left is None and right is None:
                return None
            return (left if left is not None else DYN) + (right if right is not None else DYN)
        if t == "identifier":
            return self.strings.get(self.text(node))
        if t in _WRAPPERS and node.named_child_count:
            return self.literal(node.named_children[0])
        return None

    def option(self, node: Any, key: str) -> str | None:
        if node.type != "object":
            return None
        for child in node.named_children:
            if child.type == "pair":
                k = child.child_by_field_name("key")
                name = _string_value(k, self.src) if k.type == "string" else self.text(k)
                if name == key:
                    value = self.literal(child.child_by_field_name("value"))
                    return DYN if value is None else value
            elif child.type == "shorthand_property_identifier" and self.text(child) == key:
                return self.strings.get(key, DYN)
        return None

    def evaluate(self, node: Any) -> State | None:
        while node.type in _WRAPPERS and node.named_child_count:
            node = node.named_children[0]
        if node.type in ("identifier", "this"):
            return self.bindings.get(self.text(node))
        if node.type not in ("call_expression", "new_expression", "member_expression", "subscript_expression"):
            return None
        key = (node.start_byte, node.end_byte)
        if key in self.memo:
            return self.memo[key]
        self.memo[key] = None  # guards against pathological self-reference
        state = self._chain(node)
        self.memo[key] = state
        if state is not None and state.service is not None:
            self.sink.record(state, self, self._sentinel)
        return state

    # --- chains -------------------------------------------------------------------------------------------------
    def _flatten(self, node: Any) -> tuple[Any, list[Segment]]:
        segs: list[Segment] = []
        while True:
            t = node.type
            if t in ("call_expression", "new_expression"):
                fn = node.child_by_field_name("function" if t == "call_expression" else "constructor")
                args_node = node.child_by_field_name("arguments")
                args = [a for a in args_node.named_children if a.type != "comment"] \
                    if args_node is not None and args_node.type == "arguments" else []
                if fn is not None and fn.type == "member_expression":
                    segs.append(Segment("call", self.text(fn.child_by_field_name("property")), args, node))
                    node = fn.child_by_field_name("object")
                else:
                    segs.append(Segment("call", None, args, node))
                    node = fn
            elif t == "member_expression":
                segs.append(Segment("attr", self.text(node.child_by_field_name("property")), [], node))
                node = node.child_by_field_name("object")
            elif t == "subscript_expression":
                segs.append(Segment("index", None, [node.child_by_field_name("index")], node))
                node = node.child_by_field_name("object")
            elif t in _WRAPPERS and node.named_child_count:
                node = node.named_children[0]
            else:
                break
            if node is None:
                return None, []
        segs.reverse()
        return node, segs

    def _chain(self, node: Any) -> State | None:
        root, segs = self._flatten(node)
        if root is None or root.type not in ("identifier", "this") or not segs:
            return None
        name = self.text(root)
        state, start = self.bindings.get(name), 0
        dotted = name
        for i, seg in enumerate(segs):
            if seg.kind != "attr":
                break
            dotted += f".{seg.name}"
            if dotted in self.bindings:
                state, start = self.bindings[dotted], i + 1
        if state is None and name == "require" and segs[0].kind == "call" and segs[0].name is None and segs[0].args:
            module = self.literal(segs[0].args[0])
            state, start = (module_binding(module, None) if module else None), 1
        if state is None:
            return None
        return run_chain(state, segs[start:], self)

    def _sentinel(self, seg: Segment) -> bool:
        stack = list(seg.args)
        budget = 3000
        while stack and budget:
            budget -= 1
            node = stack.pop()
            if node.type == "call_expression":
                fn = node.child_by_field_name("function")
                if fn is not None and fn.type == "identifier":
                    bound = self.bindings.get(self.text(fn))
                    if bound is not None and bound.fname in SENTINELS and bound.kind in SENTINEL_MODULES:
                        return True
                elif fn is not None and fn.type == "member_expression":
                    prop = self.text(fn.child_by_field_name("property"))
                    if prop in SENTINELS and self.text(fn.child_by_field_name("object")).endswith("FieldValue"):
                        return True
            stack.extend(node.named_children)
        return False

    # --- statements ---------------------------------------------------------------------------------------------
    def _import(self, node: Any) -> None:
        source = node.child_by_field_name("source")
        if source is None:
            return
        module = _string_value(source, self.src)
        clause = next((c for c in node.named_children if c.type == "import_clause"), None)
        if clause is None:
            return
        for child in clause.named_children:
            if child.type == "identifier":
                self._bind_import(self.text(child), module, None)
            elif child.type == "namespace_import":
                ident = next((c for c in child.named_children if c.type == "identifier"), None)
                if ident is not None:
                    self._bind_import(self.text(ident), module, None)
            elif child.type == "named_imports":
                for spec in child.named_children:
                    if spec.type != "import_specifier":
                        continue
                    name = spec.child_by_field_name("name")
                    alias = spec.child_by_field_name("alias")
                    imported = self.text(name)
                    self._bind_import(self.text(alias) if alias is not None else imported, module, imported)

    def _bind_import(self, local: str, module: str, imported: str | None) -> None:
        state = module_binding(module, imported)
        if state is None and not _is_sdk_module(module):
            state = local_binding(local, module)
        if state is not None:
            self.bindings[local] = state

    def _require(self, value: Any) -> str | None:
        while value.type in _WRAPPERS and value.named_child_count:
            value = value.named_children[0]
        if value.type == "call_expression":
            fn = value.child_by_field_name("function")
            args = value.child_by_field_name("arguments")
            if fn is not None and self.text(fn) == "require" and args is not None and args.named_child_count:
                return self.literal(args.named_children[0])
        return None

    def _assign(self, target: Any, value: Any) -> None:
        if target is None or value is None:
            return
        module = self._require(value)
        if module is not None:
            if target.type == "identifier":
                self._bind_import(self.text(target), module, None)
            elif target.type == "object_pattern":
                for prop in target.named_children:
                    if prop.type == "shorthand_property_identifier_pattern":
                        self._bind_import(self.text(prop), module, self.text(prop))
                    elif prop.type == "pair_pattern":
                        key, val = prop.child_by_field_name("key"), prop.child_by_field_name("value")
                        if key is not None and val is not None and val.type == "identifier":
                            self._bind_import(self.text(val), module, self.text(key))
            return
        name = self.text(target) if target.type in ("identifier", "member_expression") else None
        if name is None:
            self.evaluate(value)
            return
        if value.type == "string":
            self.strings[name] = _string_value(value, self.src)
            return
        state = self.evaluate(value)
        if state is not None:
            self.bindings[name] = state

    def run(self, root: Any, query: tree_sitter.Query) -> None:
        captures = tree_sitter.QueryCursor(query).captures(root).get("n", [])
        captures.sort(key=lambda n: n.start_byte)
        for node in captures:
            t = node.type
            if t == "import_statement":
                self._import(node)
            elif t == "variable_declarator":
                self._assign(node.child_by_field_name("name"), node.child_by_field_name("value"))
            elif t == "assignment_expression":
                self._assign(node.child_by_field_name("left"), node.child_by_field_name("right"))
            else:
                parent = node.parent
                if parent is not None and parent.type == "member_expression" and parent.parent is not None \
                        and parent.parent.type == "call_expression":
                    continue  # an inner link of a longer chain; evaluated with it
                self.evaluate(node)


def _is_sdk_module(module: str) -> bool:
    return sdk_of(module) != "unknown"


def analyze_js(src: bytes, suffix: str, sink: FindingSink) -> bool:
    """Record the findings of one JS/TS source into `sink`; returns False when the file has syntax errors."""
    parser, query = _tools(GRAMMARS[suffix])
    tree = parser.parse(src)
    JsFile(src, sink).run(tree.root_node, query)
    return not tree.root_node.has_error
