"""Records as DataFrames: pandas by default, polars on request. Both are optional."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

__all__ = ["to_frame"]

_EXTRA = {"pandas": "pip install 'feedbackloop[pandas]'", "polars": "pip install polars"}


def to_frame(records: Sequence[Any], record_type: type, backend: str = "pandas") -> Any:
    """One row per record, one column per field of ``record_type`` (in its order), with
    timezone-aware UTC timestamps; JSON fields (attributes, context, metadata) stay
    Python objects in their cells."""
    if backend not in _EXTRA:
        raise ValueError(f"backend must be 'pandas' or 'polars', not {backend!r}")
    columns = [f.name for f in dataclasses.fields(record_type)]
    rows = [[getattr(r, c) for c in columns] for r in records]
    try:
        if backend == "pandas":
            import pandas as pd
        else:
            import polars as pl
    except ImportError:
        raise ImportError(f"DataFrames with {backend} need {backend}, which is not "
                          f"installed: {_EXTRA[backend]}") from None
    if backend == "pandas":
        frame = pd.DataFrame(rows, columns=columns)
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        return frame
    # Object columns keep nested JSON as-is instead of inferring a struct schema that the
    # next record's attributes would break.
    schema = {c: (pl.Object if c in ("context", "attributes", "metadata", "value") else None)
              for c in columns}
    data = {c: [row[i] for row in rows] for i, c in enumerate(columns)}
    return pl.DataFrame({c: pl.Series(c, v, dtype=schema[c]) if schema[c] else v
                         for c, v in data.items()})
