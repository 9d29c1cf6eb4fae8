"""PostgreSQL: the adapter (connection and CRUD) and its parts — native (binary COPY, pushdown digests), objects and
forms (schema objects, column forms), schema (pg_dump sections), types, capture (trigger and logical change capture),
guard (freeze and fence triggers).

The adapter class is `shiftover.adapters.postgres.adapter`; the registry (adapters/kinds.py) loads it by name.
"""
