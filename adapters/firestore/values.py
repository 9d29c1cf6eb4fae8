"""Firestore's values, mixed into FirestoreDocuments: canonical values ↔ what google-cloud-firestore writes and
reads, as the mapping in the adapter module's docstring describes (references, geopoints, decimals and dates as
marker maps, timestamps in UTC). The raw protobuf forms of the same values are in adapters/firestore/wire.py."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from shiftover.adapters import canonical


class DocumentValues:
    """_enc (canonical → Firestore) and _dec (Firestore → canonical) for FirestoreDocuments (which provides the
    client)."""

    if TYPE_CHECKING:  # what the host class provides
        name: str
        @property
        def client(self) -> Any: ...

    def _enc(self, value: Any) -> Any:
        from google.cloud.firestore import GeoPoint

        if value is None or isinstance(value, (bool, str, float)):
            return value
        if isinstance(value, int):
            return canonical.int64(value, self.name)
        if isinstance(value, Decimal):
            return {"@decimal": canonical.number_text(value)}
        if isinstance(value, dt.datetime):
            return canonical.utc(value)
        if isinstance(value, dt.date):
            return {"@date": value.isoformat()}
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value)
        if isinstance(value, dict):
            if set(value) == {"__ref__"}:
                return self.client.document(value["__ref__"])
            if set(value) == {"__geopoint__"}:
                return GeoPoint(value["__geopoint__"]["latitude"], value["__geopoint__"]["longitude"])
            return {str(k): self._enc(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._enc(v) for v in value]
        return str(value)

    def _dec(self, value: Any) -> Any:
        from google.cloud.firestore import DocumentReference, GeoPoint

        if value is None or isinstance(value, (bool, str, int, float)):
            return value
        if isinstance(value, dt.datetime):
            v = canonical.utc(value)
            return dt.datetime(v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond, dt.timezone.utc)
        if isinstance(value, DocumentReference):
            return {"__ref__": value.path}
        if isinstance(value, GeoPoint):
            return {"__geopoint__": {"latitude": value.latitude, "longitude": value.longitude}}
        if isinstance(value, bytes):
            return bytes(value)
        if isinstance(value, dict):
            if set(value) == {"@decimal"}:
                return Decimal(value["@decimal"])
            if set(value) == {"@date"}:
                return dt.date.fromisoformat(value["@date"])
            return {k: self._dec(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._dec(v) for v in value]
        return str(value)
