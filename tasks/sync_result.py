"""What one sync pass did for one standby (both methods: change capture and the updated-at column)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SyncResult:
    source: str
    target: str
    rows: int = 0
    collections: dict[str, int] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    lag_s: float | None = None  # after this pass
    seconds: float = 0.0
    method: str = "updated_at"
    copied: dict[str, int] = field(default_factory=dict)  # initial (or repeated) full copies, records per collection
    deleted: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # collections left out of sync, and why
    notes: list[str] = field(default_factory=list)

    def row(self) -> dict[str, object]:
        return {"source": self.source, "target": self.target, "method": self.method, "rows copied": self.rows,
                "deleted": self.deleted,
                "collections": ", ".join(f"{k}: {v}" for k, v in self.collections.items()) or "-",
                "full copy": ", ".join(f"{k}: {v}" for k, v in self.copied.items()) or "-",
                "created": ", ".join(self.created) or "-",
                "not synced": "; ".join(f"{k}: {v}" for k, v in self.skipped.items()) or "-",
                "lag_s": "-" if self.lag_s is None else round(self.lag_s, 2), "seconds": round(self.seconds, 2)}
