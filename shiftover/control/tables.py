"""The control store's tables (control/store.py reads and writes them; ControlStore creates them on first use):
the pointer and its history, freezes, runs with their chunks and checkpoints, probes and health states, routes,
fences and sync watermarks. Leases and sync states keep tables of their own (shiftover/control/leases.py,
shiftover/control/syncstate.py)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()
_ts = sa.DateTime(timezone=True)

pointer_t = sa.Table(
    "pointer", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("epoch", sa.Integer, nullable=False),
    sa.Column("provider", sa.String(200), nullable=False),
    sa.Column("since", _ts, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)
history_t = sa.Table(
    "pointer_history", metadata,
    sa.Column("epoch", sa.Integer, primary_key=True),
    sa.Column("provider", sa.String(200), nullable=False),
    sa.Column("since", _ts, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)
freezes_t = sa.Table(
    "freezes", metadata,
    sa.Column("provider", sa.String(200), primary_key=True),
    sa.Column("collection", sa.String(300), primary_key=True),
    sa.Column("run_id", sa.String(64)),
    sa.Column("since", _ts, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)
runs_t = sa.Table(
    "runs", metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("source", sa.String(200)),
    sa.Column("target", sa.String(200)),
    sa.Column("strategy", sa.String(40)),
    sa.Column("fingerprint", sa.String(500), index=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("started", _ts, nullable=False),
    sa.Column("finished", _ts),
    sa.Column("summary", sa.Text),
)
chunks_t = sa.Table(
    "chunks", metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("collection", sa.String(300), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),
    sa.Column("lo", sa.Text),
    sa.Column("hi", sa.Text),
    sa.Column("rows", sa.BigInteger),
    sa.Column("done", sa.Boolean, nullable=False, default=False),
)
checkpoints_t = sa.Table(
    "checkpoints", metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("collection", sa.String(300), primary_key=True),
    sa.Column("last_key", sa.Text),
    sa.Column("watermark", sa.Text),
    sa.Column("rows_copied", sa.BigInteger, nullable=False, default=0),
    sa.Column("phase", sa.String(40)),
)
probes_t = sa.Table(
    "probes", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("provider", sa.String(200), nullable=False, index=True),
    sa.Column("at", _ts, nullable=False, index=True),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("error", sa.Text),
)
routes_t = sa.Table(
    "routes", metadata,
    sa.Column("collection", sa.String(300), primary_key=True),
    sa.Column("provider", sa.String(200), nullable=False),
    sa.Column("since", _ts, nullable=False),
)
fences_t = sa.Table(
    "fences", metadata,
    sa.Column("provider", sa.String(200), primary_key=True),
    sa.Column("epoch", sa.Integer, nullable=False),
    sa.Column("since", _ts, nullable=False),
    sa.Column("engine_fenced", sa.Boolean, nullable=False, default=False),
    sa.Column("reason", sa.Text, nullable=False),
)
watermarks_t = sa.Table(
    "watermarks", metadata,
    sa.Column("source", sa.String(200), primary_key=True),
    sa.Column("target", sa.String(200), primary_key=True),
    sa.Column("collection", sa.String(300), primary_key=True),
    sa.Column("watermark", _ts),
    sa.Column("synced_at", _ts, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False, default=0),
)
health_states_t = sa.Table(
    "health_states", metadata,
    sa.Column("provider", sa.String(200), primary_key=True),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("since", _ts, nullable=False),
)
health_pending_t = sa.Table(  # a state seen by the last `count` sweeps in a row that has not yet replaced the state
    "health_pending", metadata,
    sa.Column("provider", sa.String(200), primary_key=True),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
)
