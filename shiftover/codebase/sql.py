"""Classify a raw SQL string found in source: its operation and the table it is about.

This reads the SQL text the analyzer already extracted from a driver call (`cur.execute("...")`), so a light
tokenizer is enough; run-time parts of the string arrive as "\\0".
"""

from __future__ import annotations

import re

_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)
_WORD = re.compile(r"[A-Za-z_]+")
_NAME = r'((?:"[^"]+"|[\w\0$]+)(?:\.(?:"[^"]+"|[\w\0$]+))?)'
_TABLE_AFTER = {
    "read": re.compile(r"\bFROM\s+" + _NAME, re.I),
    "write": re.compile(r"\b(?:INTO|UPDATE|COPY)\s+(?:ONLY\s+)?" + _NAME, re.I),
    "delete": re.compile(r"\b(?:FROM|TRUNCATE(?:\s+TABLE)?)\s+(?:ONLY\s+)?" + _NAME, re.I),
    "admin": re.compile(r"\b(?:TABLE|INDEX\s+\S+\s+ON|VIEW)\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?" + _NAME, re.I),
    "subscribe": re.compile(r"\bLISTEN\s+" + _NAME, re.I),
}
_FIRST = {
    "SELECT": "read", "SHOW": "read", "EXPLAIN": "read", "VALUES": "read", "TABLE": "read",
    "INSERT": "write", "UPDATE": "write", "UPSERT": "write", "MERGE": "write", "COPY": "write", "CALL": "write",
    "DELETE": "delete", "TRUNCATE": "delete",
    "CREATE": "admin", "ALTER": "admin", "DROP": "admin", "GRANT": "admin", "REVOKE": "admin", "VACUUM": "admin",
    "ANALYZE": "admin", "REINDEX": "admin", "COMMENT": "admin",
    "LISTEN": "subscribe", "NOTIFY": "write",
    "BEGIN": "write", "COMMIT": "write", "ROLLBACK": "write", "SAVEPOINT": "write", "START": "write",
}
_TRANSACTION_WORDS = {"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "START"}


def classify_sql(sql: str) -> tuple[str, str | None, set[str]] | None:
    """(operation, table or None, flags) for a SQL statement; None when the text is not SQL."""
    text = _COMMENT.sub(" ", sql).strip()
    first = _WORD.match(text)
    if first is None:
        return None
    word = first.group(0).upper()
    flags: set[str] = set()
    if word == "WITH":
        upper = text.upper()
        operation = next((op for kw, op in (("DELETE", "delete"), ("INSERT", "write"), ("UPDATE", "write"))
                          if re.search(rf"\)\s*{kw}\b", upper)), "read")
    elif word in _FIRST:
        operation = _FIRST[word]
    else:
        return None
    if word in _TRANSACTION_WORDS:
        return operation, None, {"transaction"}
    pattern = _TABLE_AFTER[operation]
    if word == "WITH":  # the main statement follows the last CTE
        tail = text[text.rfind(")") + 1:]
        match = pattern.search(tail)
    else:
        match = pattern.search(text)
    if match is None:
        return operation, None, flags
    name = match.group(1).split(".")[-1].strip('"')
    return operation, (None if "\0" in name else name), flags
