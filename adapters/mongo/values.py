"""MongoDB's values, mixed into MongoAdapter: canonical values ↔ BSON, as the mapping in adapters/mongo/adapter.py's
docstring describes (ObjectId, Decimal128, sub-millisecond timestamps and dates as marker maps, bytes as binary)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from shiftover.adapters import canonical
from shiftover.adapters.base import Column
from shiftover.adapters.errors import UnsupportedValue

OBJECT_ID = "mongodb:objectId"


class BsonValues:
    """_enc (canonical → BSON) and _dec (BSON → canonical) for MongoAdapter (which provides its name)."""

    if TYPE_CHECKING:  # what the host class provides
        name: str

    def _enc(self, value: Any, col: Column | None = None) -> Any:
        t = type(value)  # the common types first, without the isinstance chain below
        if t is str and (col is None or col.native != OBJECT_ID) or value is None or t is float or t is bool:
            return value
        if t is int and -(2**63) <= value < 2**63:
            return value
        from bson import ObjectId
        from bson.decimal128 import Decimal128

        if col is not None and col.native == OBJECT_ID and isinstance(value, str):
            return ObjectId(value)
        if isinstance(value, bool) or value is None or isinstance(value, (str, float)):
            return value
        if isinstance(value, int):
            return canonical.int64(value, self.name)
        if isinstance(value, Decimal):
            try:
                return Decimal128(value)
            except (InvalidOperation, ValueError, TypeError) as exc:
                raise UnsupportedValue(f"decimal {value} does not fit Decimal128 (34 digits): {exc}",
                                       provider=self.name) from None
        if isinstance(value, dt.datetime):
            value = canonical.utc(value)
            if value.microsecond % 1000:
                return {"@datetime": value.replace(microsecond=value.microsecond // 1000 * 1000),
                        "@us": value.microsecond % 1000}
            return value
        if isinstance(value, dt.date):
            return {"@date": value.isoformat()}
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value)
        if isinstance(value, dict):
            return {str(k): self._enc(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._enc(v) for v in value]
        return str(value)

    def _dec(self, value: Any) -> Any:
        t = type(value)
        if t is str or t is int or value is None or t is float or t is bool:
            return value
        from bson import ObjectId
        from bson.decimal128 import Decimal128

        if value is None or isinstance(value, (bool, str, float)):
            return value
        if isinstance(value, int):
            return int(value)
        if isinstance(value, ObjectId):
            return str(value)
        if isinstance(value, Decimal128):
            return value.to_decimal()
        if isinstance(value, dt.datetime):
            return canonical.utc(value).replace(tzinfo=dt.timezone.utc)
        if isinstance(value, bytes):
            return bytes(value)
        if isinstance(value, dict):
            if set(value) == {"@datetime", "@us"}:
                return self._dec(value["@datetime"]) + dt.timedelta(microseconds=value["@us"])
            if set(value) == {"@date"}:
                return dt.date.fromisoformat(value["@date"])
            return {k: self._dec(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._dec(v) for v in value]
        return str(value)
