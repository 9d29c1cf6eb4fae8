"""The demo dataset: a small shop (customers, orders, order_items) with the values that break naive migrations —
NULLs, non-ASCII text, exact decimals, timezone-aware timestamps and JSON documents. Deterministic for a given seed.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

from shiftover.adapters.base import Adapter, CollectionSchema, Column, Record

CUSTOMERS = CollectionSchema("customers", (
    Column("id", "integer", False), Column("name", "text", False), Column("email", "text"),
    Column("country", "text"), Column("balance", "decimal", True, 14, 2), Column("created_at", "timestamp", False),
    Column("preferences", "json"), Column("updated_at", "timestamp", False),
), ("id",))
ORDERS = CollectionSchema("orders", (
    Column("id", "integer", False), Column("customer_id", "integer", False), Column("status", "text", False),
    Column("total", "decimal", False, 14, 2), Column("placed_at", "timestamp", False),
    Column("shipped_at", "timestamp"),
    Column("note", "text"), Column("updated_at", "timestamp", False),
), ("id",))
ORDER_ITEMS = CollectionSchema("order_items", (
    Column("id", "integer", False), Column("order_id", "integer", False), Column("sku", "text", False),
    Column("quantity", "integer", False), Column("unit_price", "decimal", False, 12, 4), Column("attributes", "json"),
    Column("updated_at", "timestamp", False),
), ("id",))
SCHEMAS = (CUSTOMERS, ORDERS, ORDER_ITEMS)

_FIRST = ["Zoë", "José", "Ærin", "Łukasz", "Søren", "Mäx", "Chloé", "Nguyễn", "Ömer", "Aiko", "Émile", "Renée",
          "Björk", "Dmitrij", "李", "محمد", "Ana", "Noël", "Ingrid", "Çağla"]
_LAST = ["Müller", "García", "Ødegaard", "O'Brien", "Dvořák", "Šimić", "Nakamura", "Håkansson", "Fernández",
         "王", "Kowalczyk", "Ñúñez", "Smith", "Lefèvre", "Østergaard"]
_COUNTRIES = ["DE", "FR", "ES", "PL", "NO", "JP", "VN", "TR", "US", "BR", None]
_STATUS = ["pending", "paid", "shipped", "delivered", "refunded"]
_NOTES = [None, None, "Leave at the door — thanks!", "Geschenkverpackung bitte", "配達は午前中に", "Fragile: 🍷",
          "Rechnung an Firma, USt-IdNr. DE123456789"]


def _time(rng: random.Random, base: dt.datetime) -> dt.datetime:
    tz = dt.timezone(dt.timedelta(minutes=rng.choice([-480, -300, 0, 60, 330, 540])))
    return (base + dt.timedelta(seconds=rng.randrange(0, 3 * 365 * 86400), microseconds=rng.randrange(0, 10**6))
            ).astimezone(tz)


def generate(total_rows: int, seed: int = 7) -> dict[str, Iterator[Record]]:
    """About 1/6 customers, 2/6 orders, 3/6 order items of `total_rows`."""
    n_customers, n_orders = max(1, total_rows // 6), max(1, total_rows // 3)
    n_items = max(1, total_rows - n_customers - n_orders)
    base = dt.datetime(2022, 1, 1, tzinfo=dt.timezone.utc)

    def customers() -> Iterator[Record]:
        rng = random.Random(seed)
        for i in range(1, n_customers + 1):
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            created = _time(rng, base)
            yield {"id": i, "name": f"{first} {last}",
                   "email": None if rng.random() < 0.08 else f"{first.lower()}.{i}@example.com",
                   "country": rng.choice(_COUNTRIES),
                   "balance": None if rng.random() < 0.1 else Decimal(rng.randrange(-50_000, 5_000_000)) / 100,
                   "created_at": created,
                   "preferences": None if rng.random() < 0.2 else {
                       "newsletter": rng.random() < 0.5, "language": rng.choice(["de", "fr", "ja", "en"]),
                       "tags": rng.sample(["vip", "b2b", "früh", "test", "ünïcödé"], k=rng.randrange(0, 3)),
                       "score": round(rng.random() * 100, 3)},
                   "updated_at": created}

    def orders() -> Iterator[Record]:
        rng = random.Random(seed + 1)
        for i in range(1, n_orders + 1):
            placed = _time(rng, base)
            shipped = None if rng.random() < 0.3 else placed + dt.timedelta(hours=rng.randrange(1, 200))
            yield {"id": i, "customer_id": rng.randrange(1, n_customers + 1), "status": rng.choice(_STATUS),
                   "total": Decimal(rng.randrange(100, 10_000_00)) / 100, "placed_at": placed, "shipped_at": shipped,
                   "note": rng.choice(_NOTES), "updated_at": shipped or placed}

    def items() -> Iterator[Record]:
        rng = random.Random(seed + 2)
        for i in range(1, n_items + 1):
            yield {"id": i, "order_id": rng.randrange(1, n_orders + 1), "sku": f"SKU-{rng.randrange(1, 5000):05d}",
                   "quantity": rng.randrange(1, 12), "unit_price": Decimal(rng.randrange(1, 99_999_999)) / 10_000,
                   "attributes": None if rng.random() < 0.25 else {
                       "colour": rng.choice(["rot", "bleu", "緑", "black"]), "size": rng.choice(["S", "M", "L", None]),
                       "dims_cm": [rng.randrange(1, 100) for _ in range(3)]},
                   "updated_at": _time(rng, base)}

    return {"customers": customers(), "orders": orders(), "order_items": items()}


def seed(adapter: Adapter, total_rows: int, *, batch: int = 5000,
         on_batch: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Create the three tables (dropping old ones) and fill them; returns rows per table."""
    counts = {}
    for schema in SCHEMAS:
        adapter.drop_collection(schema.name)
        adapter.create_collection(schema)
    for name, rows in generate(total_rows).items():
        n, buf = 0, []
        for rec in rows:
            buf.append(rec)
            if len(buf) >= batch:
                n += adapter.upsert(name, buf)
                if on_batch:
                    on_batch(name, len(buf))
                buf = []
        if buf:
            n += adapter.upsert(name, buf)
            if on_batch:
                on_batch(name, len(buf))
        counts[name] = n
    return counts


def demo_config(directory: Path) -> str:
    return (
        "# Written by `shiftover demo`: two SQLite backends and a SQLite control store.\n"
        "providers:\n"
        "  shop:\n    kind: sqlite\n    url: \"sqlite:///source.db\"\n    role: primary\n    priority: 1\n"
        "  shop_next:\n    kind: sqlite\n    url: \"sqlite:///target.db\"\n    role: standby\n    priority: 2\n"
        "control:\n  url: \"sqlite:///control.db\"\n"
        "migration:\n  batch_size: 5000\n  chunk_rows: 20000\n  workers: 1\n"
    )
