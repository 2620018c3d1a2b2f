"""What a flush reports: counts per outcome and the records that were not stored.

A record that the store refused (a bad value, a conflict, an unknown interaction) is
*rejected*: sending it again would not help, so it is reported and never retried. A record
that could not be delivered at all (the server stayed down past the retry budget) is
*undelivered*: it is handed back whole so the caller can log it again later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import FeedbackloopError

__all__ = ["FlushResult", "QueueFull", "RejectedRecord"]


class QueueFull(FeedbackloopError):
    """The client's queue stayed full past ``queue_timeout``: the destination is slower than
    the caller, or down. Nothing was queued for the record that raised this."""

    code = "queue_full"
    status = 503


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """A record that was not stored, with the field at fault and why.

    ``kind`` is ``"interaction"`` or ``"feedback"``; ``record`` is the record as sent on
    the wire, so it can be corrected and logged again.
    """

    kind: str
    id: str | None
    field: str | None
    message: str
    record: dict[str, Any]

    def __str__(self) -> str:
        where = f" field {self.field!r}" if self.field else ""
        return f"{self.kind} {self.id!r}{where}: {self.message}"


@dataclass
class FlushResult:
    """Outcome of the records settled since the previous :meth:`Client.flush`.

    ``pending`` counts records still queued or in flight when ``flush(timeout=...)`` gave
    up waiting; they stay queued and are reported by a later flush.
    """

    accepted: int = 0
    duplicates: int = 0
    rejected_records: list[RejectedRecord] = field(default_factory=list)
    undelivered_records: list[RejectedRecord] = field(default_factory=list)
    pending: int = 0

    @property
    def rejected(self) -> int:
        return len(self.rejected_records)

    @property
    def undelivered(self) -> int:
        return len(self.undelivered_records)

    @property
    def ok(self) -> bool:
        """True when every record was stored (new or duplicate) and none is pending."""
        return not self.rejected_records and not self.undelivered_records and not self.pending

    def merge(self, other: FlushResult) -> None:
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejected_records.extend(other.rejected_records)
        self.undelivered_records.extend(other.undelivered_records)

    def summary(self) -> dict[str, int]:
        return {"accepted": self.accepted, "duplicates": self.duplicates,
                "rejected": self.rejected, "undelivered": self.undelivered,
                "pending": self.pending}
