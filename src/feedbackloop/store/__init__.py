"""Tables, migrations and the Store that opens transactions."""

from .store import Store, as_utc, utcnow

__all__ = ["Store", "as_utc", "utcnow"]
