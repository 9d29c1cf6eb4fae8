"""Firestore and Firebase: the adapter over documents, the wire codec (the one place private google-cloud-firestore
internals are used), values, the catalogue, and the users (Firebase Auth) and files (Firebase Storage) services mixed
into the adapter.

The adapter class is `shiftover.adapters.firestore.adapter`; the registry (adapters/kinds.py) loads it by name.
"""
