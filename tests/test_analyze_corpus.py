"""The analyzer against a labelled corpus: precision and recall, risk flags, import and receiver tracking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shiftover.codebase.model import Finding
from shiftover.codebase.scan import analyze_files, analyze_source
from shiftover.codebase.sdks import KINDS, PREFILTER
from shiftover.codebase.sql import classify_sql
from shiftover.codebase.walk import list_sources

CORPUS = Path(__file__).parent / "corpus" / "analyze"


@pytest.fixture(scope="module")
def findings() -> list[Finding]:
    walked = list_sources(CORPUS)
    result = analyze_files(CORPUS, walked.files)
    assert result.issues == [] and walked.issues == []
    return result.findings


def _key(f: dict | Finding) -> tuple:
    if isinstance(f, Finding):
        return f.file, f.line, f.service, f.operation, f.collection
    return f["file"], f["line"], f["service"], f["operation"], f["collection"]


def test_precision_and_recall_on_the_labelled_corpus(findings: list[Finding]) -> None:
    expected = {_key(e) for e in json.loads((CORPUS / "expected.json").read_text())}
    got = {_key(f) for f in findings}
    assert len(got) == len(findings), "a call was reported twice"
    true_pos = expected & got
    precision, recall = len(true_pos) / len(got), len(true_pos) / len(expected)
    print(f"\ncorpus: {len(expected)} labelled calls, {len(got)} found, precision {precision:.3f}, recall {recall:.3f}")
    assert precision >= 0.95, sorted(got - expected)
    assert recall >= 0.95, sorted(expected - got)


def test_the_corpus_covers_every_sdk_and_style() -> None:
    labelled = {e["file"] for e in json.loads((CORPUS / "expected.json").read_text())}
    suffixes = {Path(f).suffix for f in labelled}
    assert {".ts", ".tsx", ".js", ".py"} <= suffixes
    assert len(labelled) >= 10


def test_look_alike_local_functions_are_not_calls(findings: list[Finding]) -> None:
    assert [f for f in findings if f.file.startswith("decoys/")] == []


def _at(findings: list[Finding], file: str, needle: str) -> Finding:
    lines = (CORPUS / file).read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if needle in text)
    matches = [f for f in findings if f.file == file and f.line == line]
    assert matches, f"no finding at {file}:{line} ({needle!r})"
    return matches[0]


@pytest.mark.parametrize(("file", "needle", "flag"), [
    ("web/src/lib/firebase.ts", "likes: increment(1)", "field_value"),
    ("legacy/firebase-v8.js", "FieldValue.increment(1)", "field_value"),
    ("server/firestore_admin.py", 'db.collection("users").document(uid).update({', "field_value"),
    ("web/src/lib/firebase.ts", "collection(db, 'posts', postId, 'comments')", "subcollection"),
    ("legacy/firebase-v8.js", "collection('lines')", "subcollection"),
    ("web/src/lib/firebase.ts", "await runTransaction(db", "transaction"),
    ("server/catalog_mongo.py", "session.with_transaction", "transaction"),
    ("api/routes/users.js", "session.withTransaction", "transaction"),
    ("functions/index.js", "const batch = db.batch()", "batch"),
    ("server/catalog_mongo.py", "products.bulk_write(ops)", "batch"),
    ("web/src/components/TodoList.tsx", "supabase.channel('todos-changes')", "realtime"),
    ("server/catalog_mongo.py", "db.orders.watch()", "realtime"),
    ("server/reports_sql.py", "cur.execute(TOP_CUSTOMERS)", "raw_sql"),
    ("web/src/lib/supabaseClient.ts", "supabase.from(table)", "dynamic_name"),
    ("server/reports_sql.py", "sql.SQL(\"DELETE FROM {}", "dynamic_name"),
    ("web/src/lib/firebase.ts", "getDoc(doc(db, name, id))", "dynamic_name"),
    ("web/src/lib/supabaseClient.ts", "supabase.rpc('monthly_stats'", "rpc"),
    ("web/src/components/TodoList.tsx", "await supabase.from('todos').insert(", "rls"),
])
def test_risk_flags(findings: list[Finding], file: str, needle: str, flag: str) -> None:
    assert flag in _at(findings, file, needle).flags


def test_service_role_client_is_not_rls_dependent_and_plain_calls_are_unflagged(findings: list[Finding]) -> None:
    assert "rls" not in _at(findings, "api/supabase_jobs.py", 'supabase.table("customers").insert').flags
    plain = _at(findings, "server/catalog_mongo.py", 'products.find_one({"sku": sku})')
    assert plain.flags == [] and not plain.needs_person
    assert _at(findings, "server/reports_sql.py", "cur.execute(TOP_CUSTOMERS)").needs_person


def test_import_tracking_decides_what_a_name_means() -> None:
    src = b"""
import { getDocs as fetchAll, collection } from 'firebase/firestore'
import { getDocs } from './localStore'
const db = {}
export async function a() { return fetchAll(collection(db, 'users')) }
export async function b() { return getDocs(collection(db, 'users')) }
"""
    result = analyze_source("x.ts", src)
    assert [(f.line, f.operation, f.collection) for f in result.findings] == [(5, "read", "users")]


def test_receiver_tracking_follows_assignments_through_this_and_self() -> None:
    js = b"""
const { MongoClient } = require('mongodb')
class Repo {
  constructor(uri) { this.client = new MongoClient(uri); this.orders = this.client.db('shop').collection('orders') }
  open() { return this.orders.find({ open: true }).toArray() }
}
"""
    py = b"""
from google.cloud import firestore
class Store:
    def __init__(self):
        self.db = firestore.Client()
    def get(self, key):
        return self.db.collection("kv").document(key).get()
"""
    assert [(f.line, f.collection) for f in analyze_source("r.js", js).findings] == [(5, "orders")]
    assert [(f.line, f.collection, f.sdk) for f in analyze_source("s.py", py).findings] == \
        [(7, "kv", "firebase-admin")]


def test_every_sdk_module_passes_the_prefilter() -> None:
    modules = [k[4:] for k in KINDS if k.startswith("mod:")]
    missing = [m for m in modules if not any(t in m.encode() for t in PREFILTER)]
    assert missing == []


@pytest.mark.parametrize(("sql", "expected"), [
    ("SELECT * FROM public.users WHERE id = 1", ("read", "users")),
    ("  -- note\n insert into \"Orders\" (a) values (1)", ("write", "Orders")),
    ("DELETE FROM sessions", ("delete", "sessions")),
    ("WITH x AS (SELECT 1) UPDATE accounts SET a = 1", ("write", "accounts")),
    ("CREATE TABLE IF NOT EXISTS audit (id int)", ("admin", "audit")),
    ("SELECT * FROM \0", ("read", None)),
])
def test_sql_classification(sql: str, expected: tuple) -> None:
    operation, table, _ = classify_sql(sql)
    assert (operation, table) == expected


def test_non_sql_strings_are_not_sql() -> None:
    assert classify_sql("hello world") is None
