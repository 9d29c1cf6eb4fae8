"""MongoDB: the adapter, value mapping (ObjectId, Decimal128) and key ranges.

The adapter class is `shiftover.adapters.mongo.adapter`; the registry (adapters/kinds.py) loads it by name.
"""
