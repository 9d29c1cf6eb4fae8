"""Passwords never show, whatever characters they hold (hypothesis generates them): not in `redact`'s output for URLs
(raw or URL-encoded), key=value DSNs, query strings and JSON; not in `shiftover status`, error messages, log
records, a migrate --dry-run's artifacts, flow-run parameters, Prefect's stored logs or the control store."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from shiftover.adapters.errors import BackendError, redact, url_secrets
from shiftover.adapters.registry import open_adapter
from shiftover.cli.main import app
from tests.helpers import config, newest_artifact, write_config

# any printable character, spaces and URL delimiters included; no control characters (a URL or YAML line cannot hold
# them) and at least a few distinct characters, so the password cannot occur in the output by chance
passwords = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=8, max_size=40).filter(
    lambda p: len(set(p)) >= 4 and p == p.strip())


def _forms(password: str) -> set[str]:
    return {f for f in (password, quote(password, safe=""), quote_plus(password)) if len(f) >= 3}


def _assert_hidden(password: str, *texts: str) -> None:
    for text in texts:
        for form in _forms(password):
            assert form not in text, f"{form!r} leaked in {text[:300]!r}"


def _libpq(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@settings(max_examples=400, deadline=None)
@given(password=passwords, user=st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True))
@example(password="ab/Slash_Leak_9", user="app")
@example(password="p@ss w:rd#?%2F&x=1", user="app")
@example(password="secret1@secret2", user="app")
def test_redact_hides_any_password(password: str, user: str) -> None:
    raw = f"postgresql+psycopg://{user}:{password}@db.example.com:5432/app"
    encoded = f"postgresql+psycopg://{user}:{quote(password, safe='')}@db.example.com:5432/app"
    for url in (raw, encoded):  # what adapters and display_url do: they know the URL
        secrets = url_secrets(url)
        _assert_hidden(password, redact(url, secrets), redact(f"could not connect to {url}: refused", secrets),
                       redact(f"password authentication failed: {password!r}", secrets), redact(repr(url), secrets))
    # no known secret: the patterns alone
    texts = [f"could not connect to {encoded}", f"host=db port=5432 user={user} password={_libpq(password)} dbname=x",
             f"GET https://x.supabase.co/rest/v1/t?select=*&apikey={quote(password, safe='')}&id=eq.1",
             f"mongodb://{user}:{quote(password, safe='')}@h1,h2/db?authSource=admin",
             json.dumps({"password": password, "user": user}, ensure_ascii=False),
             f"sslpassword={quote(password, safe='')} access_token={quote(password, safe='')}"]
    if "://" not in password and "\n" not in password:
        texts.append(f"could not connect to {raw} (refused)")
    _assert_hidden(password, *(redact(t) for t in texts))


@pytest.fixture(scope="module")
def seeded_db(tmp_path_factory) -> str:
    """One PostgreSQL database for every example (a dry run writes nothing to it)."""
    from tests.conftest import _pg_url, drop_database, make_database

    name = make_database()
    url = _pg_url(name)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE accounts (id int PRIMARY KEY, email text)")
        conn.exec_driver_sql("INSERT INTO accounts SELECT g, 'u' || g || '@example.com' FROM generate_series(1, 50) g")
    engine.dispose()
    yield url
    drop_database(name)


def _control_dump(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")]
        return "\n".join(repr(row) for t in tables for row in conn.execute(f'select * from "{t}"'))


async def _runs_and_logs() -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    async with get_client() as client:
        runs = await client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["migrate"])),
                                           limit=5, sort="START_TIME_DESC")
        logs = await client.read_logs(limit=200)
    return json.dumps([r.parameters for r in runs], default=str) + "\n".join(log.message for log in logs)


@pytest.mark.usefixtures("prefect_harness")
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(password=passwords, encoded=st.booleans())
@example(password="ab/Slash_Leak_9", encoded=False)
@example(password="sp ace:c#lon?q=1", encoded=False)
@example(password="p@ss/w0rd@x", encoded=True)
def test_password_never_reaches_status_errors_logs_artifacts_runs_or_control_store(
        tmp_path_factory, seeded_db: str, caplog, password: str, encoded: bool) -> None:
    from shiftover.flows.migrate import migrate

    assume(encoded or "@" not in password)  # a raw @ makes the URL mean another host: no dry run to look at
    tmp = tmp_path_factory.mktemp("secret")
    written = quote(password, safe="") if encoded else password
    with_pw = seeded_db.replace("postgres@", f"postgres:{written}@", 1)  # trust auth accepts any password
    down = with_pw.replace("127.0.0.1:5432", "127.0.0.1:1")
    cfg_path = write_config(tmp, {"src": {"kind": "postgresql", "url": with_pw, "role": "primary"},
                                  "dst": {"kind": "sqlite", "url": "sqlite:///dst.db"},
                                  "down": {"kind": "postgresql", "url": down, "options": {"connect_timeout_s": 1}}})
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []

    runner = CliRunner()
    for args in (["status", "--config", str(cfg_path)], ["status", "--json", "--config", str(cfg_path)]):
        result = runner.invoke(app, args, env={"COLUMNS": "500"})  # no cell cut short: all of the URL shows
        assert result.exit_code == 0, result.output
        texts.append(result.output)
    assert "src" in texts[0] and "***" in texts[0]

    cfg = config(cfg_path)
    with pytest.raises(BackendError) as refused, open_adapter(cfg, "down") as adapter:
        adapter.count("accounts")
    texts += [str(refused.value), repr(refused.value), refused.value.hint, cfg.providers["down"].display_url(),
              repr(cfg), str(cfg.model_dump())]

    report = migrate(source="src", target="dst", config_path=str(cfg_path), dry_run=True)
    assert report.status == "dry-run" and report.collections[0].source_rows == 50
    texts += [report.model_dump_json(), asyncio.run(newest_artifact("migrate-src-to-dst")),
              asyncio.run(newest_artifact("migrate-src-to-dst-table")), asyncio.run(_runs_and_logs())]
    texts += [caplog.text, "\n".join(str(r.exc_info) for r in caplog.records if r.exc_info)]
    texts.append(_control_dump(tmp / "control.db"))
    _assert_hidden(password, *texts)
