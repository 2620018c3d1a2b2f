"""Reading and writing interaction and feedback files: JSONL, CSV and Parquet.

Readers stream: JSONL in blocks of bytes split into lines, CSV row by row with the csv
module, Parquet batch by batch. They hand out *raw* items (a line's bytes, a row's cells, a
Parquet row) numbered by the line or row where the record starts, so that turning an item
into a record (:meth:`Decoder.decode`) can run in a worker process beside the reader.
A malformed item becomes a :class:`Reject` naming its line; it never stops the import.
What does stop it, before anything is stored, is a file whose *shape* is wrong: a CSV or
Parquet column that is not a wire field, a missing required column, a duplicated column.

Writers produce the same field names, so an exported file imports again unchanged:

* JSONL: one wire object per line, typed as stored.
* CSV: one column per wire field, ``attr.NAME`` columns for the attributes (the set of
  keys is found by a first, light pass over the ``attributes`` column), ``context`` as
  text or JSON text, ``metadata`` as JSON text, booleans as ``true``/``false``; every
  value is text, so attribute values come back as strings.
* Parquet: the CSV layout with typed columns: ``timestamp`` a UTC timestamp, numbers and
  booleans typed, an ``attr.NAME`` column typed when all its values share one type (else
  text). A feedback ``value`` is text in CSV and Parquet, since one column cannot hold the
  mixed types of several signals; the signal's type check reads it back.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson

from ..errors import InvalidInput, NotFound
from .prepare import Reject
from .schema import FEEDBACK_FIELDS, INTERACTION_FIELDS

__all__ = [
    "FORMATS",
    "KINDS",
    "Decoder",
    "FileReader",
    "FileWriter",
    "detect_format",
    "open_reader",
    "open_writer",
]

FORMATS = ("jsonl", "csv", "parquet")
KINDS = ("interactions", "feedback")
ATTR_PREFIX = "attr."
REQUIRED = {"interactions": ("id", "input", "output"),
            "feedback": ("id", "interaction_id", "signal", "value")}
_BLOCK = 1 << 20
# A line longer than this is refused unread: it cannot hold a valid record at any sane
# field limit, and buffering it whole would let one bad line exhaust memory.
MAX_LINE_BYTES = 256 << 20
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv",
               ".parquet": "parquet", ".pq": "parquet"}


def wire_fields(kind: str) -> tuple[str, ...]:
    if kind == "interactions":
        return INTERACTION_FIELDS
    if kind == "feedback":
        return FEEDBACK_FIELDS
    raise InvalidInput(f"kind must be one of {', '.join(KINDS)}, not {kind!r}", field="kind")


def detect_format(path: str | Path, format: str | None = None) -> tuple[str, bool]:
    """(format, gzip-compressed) from ``format`` or the file name (``.gz`` allowed for
    JSONL and CSV)."""
    p = Path(path)
    gz = p.suffix.lower() == ".gz"
    if format is not None:
        if format not in FORMATS:
            raise InvalidInput(f"format must be one of {', '.join(FORMATS)}, not {format!r}",
                               field="format")
        fmt = format
    else:
        ext = Path(p.stem).suffix.lower() if gz else p.suffix.lower()
        found = _EXTENSIONS.get(ext)
        if found is None:
            raise InvalidInput(
                f"cannot tell the format of {p.name!r} from its extension; use one of "
                f"{', '.join(sorted(_EXTENSIONS))} (optionally .gz) or pass --format",
                field="format")
        fmt = found
    if gz and fmt == "parquet":
        raise InvalidInput("Parquet files are compressed inside; do not gzip them",
                           field="format")
    return fmt, gz


# -- decoding raw items into records -------------------------------------------------------
def _json_cell(text: str) -> Any:
    """``context``: text that parses to a JSON object or array is JSON, else it is text."""
    s = text.lstrip()
    if s[:1] in ("{", "["):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            return text
        if isinstance(value, dict | list):
            return value
    return text


class _CellError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _json_object_cell(name: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise _CellError(name, f"not valid JSON text: {exc}") from None


def _fold(items: Iterator[tuple[str, Any]]) -> dict[str, Any]:
    """A flat row (CSV cells, Parquet columns) as a wire record: empty and null values are
    absent, ``attr.NAME`` columns fold into ``attributes``, JSON text is parsed."""
    rec: dict[str, Any] = {}
    attrs: dict[str, Any] = {}
    for name, value in items:
        if value is None or value == "":
            continue
        if name.startswith(ATTR_PREFIX):
            attrs[name[len(ATTR_PREFIX):]] = value
        elif name == "context":
            rec[name] = _json_cell(value) if isinstance(value, str) else value
        elif name == "metadata":
            rec[name] = _json_object_cell(name, value)
        elif name == "attributes":
            value = _json_object_cell(name, value)
            if isinstance(value, list) and all(isinstance(x, tuple) for x in value):
                value = dict(value)  # a Parquet map column arrives as key-value pairs
            if isinstance(value, Mapping):
                attrs.update({k: v for k, v in value.items() if v is not None})
            else:
                rec[name] = value  # let validation name it
        else:
            rec[name] = value
    if attrs and "attributes" not in rec:
        rec["attributes"] = attrs
    return rec


def _has_bad_bytes(cells: list[str]) -> bool:
    # Undecodable bytes survive as lone surrogates U+DC80-U+DCFF (errors="surrogateescape").
    return any(any("\udc80" <= ch <= "\udcff" for ch in c) for c in cells if not c.isascii())


def _raw_text(data: bytes) -> str:
    return data.decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class Decoder:
    """Turns a raw item of one file into a wire record or a :class:`Reject`. Picklable, so
    worker processes get it once. ``columns`` is the CSV header (or Parquet columns)."""

    format: str
    columns: tuple[str, ...] = ()

    def decode(self, index: int, item: Any) -> tuple[Any, Any]:
        """(record or Reject, the original as it stands in the file for a rejects file)."""
        if self.format == "jsonl":
            return self._jsonl(index, item)
        if self.format == "csv":
            return self._csv(index, item)
        return self._parquet(index, item)

    def _jsonl(self, index: int, data: bytes) -> tuple[Any, Any]:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return (Reject(index, None, "(line)",
                           f"invalid UTF-8 (byte {exc.start + 1} of the line)"),
                    _raw_text(data))
        try:
            rec = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            return Reject(index, None, "(line)", f"malformed JSON: {exc}"), text
        return rec, rec

    def _csv(self, index: int, cells: list[str]) -> tuple[Any, Any]:
        if _has_bad_bytes(cells):
            raw = [c.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                   for c in cells]
            return Reject(index, None, "(line)", "invalid UTF-8"), raw
        if len(cells) != len(self.columns):
            return (Reject(index, None, "(line)",
                           f"expected {len(self.columns)} cells, found {len(cells)}"), cells)
        original = dict(zip(self.columns, cells, strict=True))
        return self._folded(index, original)

    def _parquet(self, index: int, row: dict[str, Any]) -> tuple[Any, Any]:
        return self._folded(index, row)

    def _folded(self, index: int, row: dict[str, Any]) -> tuple[Any, Any]:
        try:
            rec = _fold(iter(row.items()))
        except _CellError as bad:
            rid = row.get("id") if isinstance(row.get("id"), str) else None
            return Reject(index, rid, bad.field, bad.message), row
        return rec, row


def check_columns(kind: str, columns: list[str], path: Path) -> tuple[str, ...]:
    """Stop before importing when a column is not a wire field, repeats, or a required
    field has no column: every row would fail the same way."""
    known = wire_fields(kind)
    seen: set[str] = set()
    for name in columns:
        ok = name in known or (kind == "interactions" and name.startswith(ATTR_PREFIX)
                               and len(name) > len(ATTR_PREFIX))
        if not ok:
            hint = " or attr.NAME" if kind == "interactions" else ""
            raise InvalidInput(
                f"{path.name}: unknown column {name!r} for {kind}; columns are wire fields "
                f"({', '.join(known)}){hint}", field=name, file=str(path))
        if name in seen:
            raise InvalidInput(f"{path.name}: column {name!r} appears twice", field=name,
                               file=str(path))
        seen.add(name)
    missing = [n for n in REQUIRED[kind] if n not in seen]
    if missing:
        raise InvalidInput(f"{path.name}: missing required column(s) {', '.join(missing)}",
                           field=missing[0], file=str(path))
    return tuple(columns)


# -- reading ---------------------------------------------------------------------------------
class _CountingReader(io.RawIOBase):
    """A binary file that counts the bytes read from disk, for a progress bar that works
    the same under gzip and text decoding."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        self.count += n or 0
        return n or 0

    def close(self) -> None:
        self.raw.close()
        super().close()


@dataclass
class RawChunk:
    """Raw items ``[(line, item), ...]`` and how far into the file (bytes) they reach."""

    items: list[tuple[int, Any]] = field(default_factory=list)
    position: int = 0


class FileReader:
    """A streaming reader of one file. Use as a context manager; :meth:`chunks` yields
    :class:`RawChunk` objects of at most ``size`` records."""

    def __init__(self, path: str | Path, kind: str, format: str | None = None) -> None:
        self.path = Path(path)
        wire_fields(kind)
        if not self.path.is_file():
            raise NotFound(f"no file {str(self.path)!r}", field="file")
        self.kind = kind
        self.format, self.gzip = detect_format(self.path, format)
        self.size = self.path.stat().st_size
        self._counter: _CountingReader | None = None
        self._text: IO[str] | None = None
        self._csv: Any = None
        self._parquet: Any = None
        self.decoder = self._open()

    def _binary(self) -> IO[bytes]:
        self._counter = _CountingReader(open(self.path, "rb"))  # noqa: SIM115
        buffered = io.BufferedReader(self._counter, _BLOCK)
        if self.gzip:
            return gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[return-value]
        return buffered

    def _open(self) -> Decoder:
        if self.format == "jsonl":
            self._stream = self._binary()
            return Decoder("jsonl")
        if self.format == "csv":
            self._stream = self._binary()
            self._text = io.TextIOWrapper(self._stream, encoding="utf-8-sig",
                                          errors="surrogateescape", newline="")
            self._csv = csv.reader(self._text, strict=True)
            try:
                header = next(self._csv)
            except StopIteration:
                raise InvalidInput(f"{self.path.name}: empty CSV file, no header line",
                                   field="(header)", file=str(self.path)) from None
            except csv.Error as exc:
                raise InvalidInput(f"{self.path.name}: unreadable CSV header: {exc}",
                                   field="(header)", file=str(self.path)) from None
            if _has_bad_bytes(header):
                raise InvalidInput(f"{self.path.name}: the header line is not valid UTF-8",
                                   field="(header)", file=str(self.path))
            columns = [c.strip() for c in header]
            return Decoder("csv", check_columns(self.kind, columns, self.path))
        import pyarrow.parquet as pq

        try:
            self._parquet = pq.ParquetFile(self.path)
        except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
            raise InvalidInput(f"{self.path.name}: not a readable Parquet file: {exc}",
                               field="file", file=str(self.path)) from None
        columns = list(self._parquet.schema_arrow.names)
        return Decoder("parquet", check_columns(self.kind, columns, self.path))

    @property
    def position(self) -> int:
        return self._counter.count if self._counter is not None else 0

    def chunks(self, size: int) -> Iterator[RawChunk]:
        if self.format == "jsonl":
            yield from self._jsonl_chunks(size)
        elif self.format == "csv":
            yield from self._csv_chunks(size)
        else:
            yield from self._parquet_chunks(size)

    def _jsonl_lines(self) -> Iterator[tuple[int, bytes | None]]:
        """(line number, bytes) of each non-blank line; ``None`` for a line too long."""
        line_no = 0
        rest = b""
        skipping = False  # inside a line longer than MAX_LINE_BYTES
        first = True
        while True:
            block = self._stream.read(_BLOCK)
            if not block:
                break
            if first:
                block = block.removeprefix(b"\xef\xbb\xbf")
                first = False
            parts = block.split(b"\n")
            parts[0] = rest + parts[0]
            rest = parts.pop()
            for part in parts:
                line_no += 1
                if skipping:
                    skipping = False
                    yield line_no, None
                elif part.strip():
                    yield line_no, part
            if len(rest) > MAX_LINE_BYTES:
                rest = b""
                skipping = True
        if skipping:
            yield line_no + 1, None
        elif rest.strip():
            yield line_no + 1, rest

    def _chunked(self, items: Iterator[tuple[int, Any]], size: int) -> Iterator[RawChunk]:
        """Numbered records in chunks of ``size``, each marked with the read position."""
        chunk = RawChunk()
        for item in items:
            chunk.items.append(item)
            if len(chunk.items) >= size:
                chunk.position = self.position
                yield chunk
                chunk = RawChunk()
        if chunk.items:
            chunk.position = self.position
            yield chunk

    def _jsonl_chunks(self, size: int) -> Iterator[RawChunk]:
        # An over-long line travels as None and is rejected where it is decoded.
        return self._chunked(((n, d if d is not None else _TOO_LONG)
                              for n, d in self._jsonl_lines()), size)

    def _csv_chunks(self, size: int) -> Iterator[RawChunk]:
        return self._chunked(self._csv_rows(), size)

    def _csv_rows(self) -> Iterator[tuple[int, Any]]:
        """CSV rows numbered by the line where each starts."""
        reader = self._csv
        last = reader.line_num
        while True:
            start = last + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                # The csv module cannot resume inside a broken quoted field: the rest of
                # the file is reported as one rejected record at the line where it broke.
                yield start, _CsvBroken(str(exc))
                return
            last = reader.line_num
            if row:
                yield start, row

    def _parquet_chunks(self, size: int) -> Iterator[RawChunk]:
        total = max(self._parquet.metadata.num_rows, 1)
        row_no = 0
        for batch in self._parquet.iter_batches(batch_size=size):
            chunk = RawChunk()
            for row in batch.to_pylist():
                row_no += 1
                chunk.items.append((row_no, row))
            chunk.position = int(self.size * row_no / total)
            yield chunk

    def close(self) -> None:
        for obj in (self._text, getattr(self, "_stream", None), self._counter):
            if obj is not None:
                obj.close()
        if self._parquet is not None:
            self._parquet.close()

    def __enter__(self) -> FileReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _TooLong:
    """Marker for a JSONL line over :data:`MAX_LINE_BYTES` (its bytes were not kept)."""


@dataclass(frozen=True)
class _CsvBroken:
    message: str


_TOO_LONG = _TooLong()


def decode_item(decoder: Decoder, index: int, item: Any) -> tuple[Any, Any]:
    """:meth:`Decoder.decode` plus the reader's markers for items it could not split."""
    if isinstance(item, _TooLong):
        return (Reject(index, None, "(line)",
                       f"line longer than {MAX_LINE_BYTES} bytes; not read"), None)
    if isinstance(item, _CsvBroken):
        return Reject(index, None, "(line)", f"malformed CSV: {item.message}"), None
    return decoder.decode(index, item)


def open_reader(path: str | Path, kind: str, format: str | None = None) -> FileReader:
    return FileReader(path, kind, format)


# -- writing ---------------------------------------------------------------------------------
def _text_value(value: Any) -> str:
    """A value as one CSV cell (or Parquet text): JSON for structures, ``true``/``false``
    for booleans, empty for absent."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, int | float):
        return repr(value)
    return orjson.dumps(value).decode()


def _flat_columns(kind: str, attr_keys: list[str]) -> list[str]:
    cols: list[str] = []
    for name in wire_fields(kind):
        if name == "attributes":
            cols.extend(ATTR_PREFIX + k for k in attr_keys)
        else:
            cols.append(name)
    return cols


def _flatten(rec: Mapping[str, Any]) -> dict[str, Any]:
    flat = {k: v for k, v in rec.items() if k != "attributes"}
    for k, v in (rec.get("attributes") or {}).items():
        flat[ATTR_PREFIX + k] = v
    ctx = flat.get("context")
    if ctx is not None and not isinstance(ctx, str):
        flat["context"] = orjson.dumps(ctx).decode()
    if flat.get("metadata") is not None:
        flat["metadata"] = orjson.dumps(flat["metadata"]).decode()
    return flat


def attr_type(values: set[type]) -> str:
    """Parquet type of an ``attr.NAME`` column from the Python types of its values."""
    if values == {bool}:
        return "bool"
    if values == {int}:
        return "int64"
    if values and values <= {int, float}:
        return "float64"
    return "string"


class FileWriter:
    """Writes wire records to a file in one format; ``attr_types`` (key → Parquet type
    name) fixes the CSV/Parquet columns up front."""

    def __init__(self, path: str | Path, kind: str, format: str | None = None, *,
                 attr_types: dict[str, str] | None = None) -> None:
        self.path = Path(path)
        self.kind = kind
        self.format, self.gzip = detect_format(self.path, format)
        self.attr_types = dict(attr_types or {})
        self.columns = _flat_columns(kind, sorted(self.attr_types))
        self.count = 0
        self._buffer: list[dict[str, Any]] = []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".part")
        self._tmp = tmp
        self._pq: Any = None
        if self.format == "parquet":
            import pyarrow.parquet as pq

            self._schema = self._arrow_schema()
            self._pq = pq.ParquetWriter(tmp, self._schema, compression="zstd")
            self._fh: IO[Any] | None = None
        else:
            self._file: IO[bytes] = open(tmp, "wb")  # noqa: SIM115
            self._gz = gzip.GzipFile(fileobj=self._file, mode="wb") if self.gzip else None
            raw: IO[bytes] = self._gz if self._gz is not None else self._file  # type: ignore[assignment]
            self._fh = raw
            if self.format == "csv":
                self._text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
                self._csv = csv.writer(self._text)
                self._csv.writerow(self.columns)

    def _arrow_schema(self) -> Any:
        import pyarrow as pa

        typed = {"timestamp": pa.timestamp("us", tz="UTC"), "latency_ms": pa.float64(),
                 "propensity": pa.float64(), "consent": pa.bool_()}
        kinds = {"bool": pa.bool_(), "int64": pa.int64(), "float64": pa.float64(),
                 "string": pa.string()}
        fields = []
        for col in self.columns:
            if col.startswith(ATTR_PREFIX):
                t = kinds[self.attr_types[col[len(ATTR_PREFIX):]]]
            elif col in typed and (self.kind == "interactions" or col == "timestamp"):
                t = typed[col]
            else:
                t = pa.string()
            fields.append(pa.field(col, t))
        return pa.schema(fields)

    def write(self, rec: Mapping[str, Any]) -> None:
        self.count += 1
        if self.format == "jsonl":
            assert self._fh is not None
            self._fh.write(orjson.dumps(rec) + b"\n")
            return
        flat = _flatten(rec)
        if self.format == "csv":
            self._csv.writerow([_text_value(flat.get(c)) for c in self.columns])
            return
        if "value" in flat:
            flat["value"] = _text_value(flat["value"])
        self._buffer.append(flat)
        if len(self._buffer) >= 10_000:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if not self._buffer:
            return
        data = {}
        for f in self._schema:
            col = [r.get(f.name) for r in self._buffer]
            if f.type == pa.string():
                col = [None if v is None else _text_value(v) for v in col]
            elif f.name == "timestamp":
                col = [datetime.fromisoformat(v) if isinstance(v, str) else v for v in col]
            data[f.name] = col
        self._pq.write_table(pa.table(data, schema=self._schema))
        self._buffer.clear()

    def close(self, *, keep: bool = True) -> None:
        """Finish the file and move it into place (or drop it when ``keep`` is false), so
        that a failed export never leaves half a file under the asked-for name."""
        if self._pq is not None:
            if keep:
                self._flush()
            self._pq.close()
        else:
            if self.format == "csv":
                self._text.flush()
                self._text.detach()
            if self._gz is not None:
                self._gz.close()
            self._file.close()
        if keep:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)


def open_writer(path: str | Path, kind: str, format: str | None = None, *,
                attr_types: dict[str, str] | None = None) -> FileWriter:
    return FileWriter(path, kind, format, attr_types=attr_types)
