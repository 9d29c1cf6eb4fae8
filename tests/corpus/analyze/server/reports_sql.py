"""Reporting queries straight against PostgreSQL."""

import psycopg
from psycopg import sql
from sqlalchemy import create_engine, text
from sqlalchemy.orm import sessionmaker

DSN = "postgresql://app@localhost/app"
TOP_CUSTOMERS = """
    SELECT c.id, c.name, sum(o.total) AS spent
    FROM customers c JOIN orders o ON o.customer_id = c.id
    GROUP BY c.id ORDER BY spent DESC LIMIT 10
"""

engine = create_engine("postgresql+psycopg://app@localhost/app")
SessionLocal = sessionmaker(bind=engine)


def top_customers():
    with psycopg.connect(DSN) as conn:
        with conn.cursor() as cur:
            cur.execute(TOP_CUSTOMERS)
            return cur.fetchall()


def record_payment(order_id: int, amount: float) -> None:
    with psycopg.connect(DSN) as conn:
        conn.execute("INSERT INTO payments (order_id, amount) VALUES (%s, %s)", (order_id, amount))
        conn.execute("UPDATE orders SET paid = true WHERE id = %s", (order_id,))


def purge_table(table: str) -> None:
    with psycopg.connect(DSN) as conn:
        conn.execute(sql.SQL("DELETE FROM {} WHERE created < now() - interval '1 year'").format(sql.Identifier(table)))


def load_events(rows: list[tuple]) -> None:
    conn = psycopg.connect(DSN)
    cur = conn.cursor()
    cur.executemany("INSERT INTO events (kind, payload) VALUES (%s, %s)", rows)
    conn.commit()


def monthly_revenue(month: str):
    with engine.connect() as conn:
        return conn.execute(text("SELECT sum(total) FROM orders WHERE month = :m"), {"m": month}).scalar()


def migrate_schema() -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS audit_log (id serial primary key, entry jsonb)"))


def orm_style(customer_id: int):
    from sqlalchemy import select
    with SessionLocal() as session:
        session.execute(text("DELETE FROM carts WHERE customer_id = :c"), {"c": customer_id})
        return session.execute(select(1)).all()
