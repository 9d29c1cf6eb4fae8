"""SQLite: the adapter, the native paths (file copy, attach) and the row encoders and readers.

The adapter class is `shiftover.adapters.sqlite.adapter`; the registry (adapters/kinds.py) loads it by name.
"""
