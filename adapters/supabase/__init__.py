"""Supabase: the database (PostgreSQL) plus the users (GoTrue admin API) and files (Storage API) services.

The adapter class is `shiftover.adapters.supabase.adapter`; the registry (adapters/kinds.py) loads it by name.
"""
