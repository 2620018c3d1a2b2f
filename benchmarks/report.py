"""Benchmark results: one :class:`Result` per figure, kept in ``results.json`` so that a run
of one group keeps the others' last figures, and rendered into ``README.md``."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
RESULTS = HERE / "results.json"
README = HERE / "README.md"


@dataclass
class Result:
    """One measured figure beside its baseline. ``higher_is_better`` says how to read the
    ratio (ours / baseline); ``passed`` is None when the row has no target."""

    group: str
    name: str
    database: str
    ours: float
    baseline: float | None
    unit: str
    target: str = ""
    passed: bool | None = None
    note: str = ""
    ours_p95: float | None = None
    baseline_p95: float | None = None
    higher_is_better: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.group}/{self.name}/{self.database}"

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.ours / self.baseline  # type: ignore[operator]

    def line(self) -> str:
        """One line for the console."""
        verdict = {True: "PASS", False: "FAIL", None: "-"}[self.passed]
        ratio = f"{self.ratio:.2f}x" if self.ratio is not None else "-"
        return (f"  {self.name:<44} {self.database:<9} ours {_fmt(self.ours, self.unit)}"
                f"{_p95(self.ours_p95, self.unit)}  baseline "
                f"{_fmt(self.baseline, self.unit)}{_p95(self.baseline_p95, self.unit)}"
                f"  ratio {ratio}  {self.target} {verdict}")


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value:.2f} ms"
    return f"{value:,.0f} {unit}"


def _p95(value: float | None, unit: str) -> str:
    return f" (p95 {value:.2f})" if value is not None else ""


def load() -> dict[str, dict[str, Any]]:
    if RESULTS.exists():
        return json.loads(RESULTS.read_text())["results"]
    return {}


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.0f} GB"
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else ""
    return {"cpu": f"{cpu}, {os.cpu_count()} cores", "memory": mem,
            "load average at start (1, 5, 15 min; other work on the machine skews "
            "absolute figures, less so the ratios)": load,
            "os": platform.platform(), "python": sys.version.split()[0],
            "sqlite": sqlite3.sqlite_version}


def save(results: list[Result], info: dict[str, str]) -> None:
    """Merge ``results`` into results.json and rewrite README.md from all of them."""
    stored = load()
    for r in results:
        stored[r.key] = asdict(r)
    RESULTS.write_text(json.dumps({"machine": info, "results": stored}, indent=1) + "\n")
    README.write_text(render([Result(**v) for v in stored.values()], info))


_ORDER = {"ingest": 0, "list": 1}


def render(results: list[Result], info: dict[str, str]) -> str:
    results = sorted(results, key=lambda r: (_ORDER.get(r.group, 9), r.group,
                                             r.extra.get("order", 0), r.database))
    out = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python scripts/with_postgres.py -- python -m benchmarks`);",
        "do not edit by hand. Every figure is measured beside its baseline in the same run on",
        "the same machine; the ratio is ours / baseline. Ingest figures are interactions per",
        "second (higher is better); listing figures are milliseconds (lower is better).",
        "",
        "| benchmark | database | ours | baseline | ratio | target | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "-"
        verdict = {True: "PASS", False: "**FAIL**", None: "-"}[r.passed]
        out.append(f"| {r.name} | {r.database} | {_fmt(r.ours, r.unit)}"
                   f"{_p95(r.ours_p95, r.unit)} | {_fmt(r.baseline, r.unit)}"
                   f"{_p95(r.baseline_p95, r.unit)} | {ratio} | {r.target or '-'} | "
                   f"{verdict} |")
    notes = sorted({(r.name, r.note) for r in results if r.note})
    if notes:
        out += ["", "## Notes", ""]
        out += [f"- **{name}**: {note}" for name, note in notes]
    out += ["", "## What is measured", "", _METHOD.strip(), "", "## Machine", ""]
    out += [f"- {k}: {v}" for k, v in info.items()]
    out.append(f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}")
    return "\n".join(out) + "\n"


_METHOD = """
**Ingest** (group `ingest`): 100,000 sample interactions from
`feedbackloop.capture.sample.generate_interactions(seed=0)` (support-assistant traffic,
about 1.2 kB each, 3 % with PII), stored with redaction on (policy `redact`) into a fresh,
migrated database per measurement. Baselines write the same rows into the same
`interactions` table (same primary key, unique `(project_id, client_id)` and indexes) with
the driver's own bulk path, converting the same dicts to rows inside the timed section:
`sqlite3` `executemany` (WAL, `synchronous=NORMAL`, as our store opens SQLite) and psycopg
`COPY ... FROM STDIN`, committing every 10,000 rows.
- *file import (CLI)*: `feedbackloop ingest FILE.jsonl --project P --kind interactions
  --json` in a subprocess, timed from spawn to exit (start-up included).
- *embedded SDK*: `Client.local(url, project=...)`, `log_interaction(**record)` for every
  record, then `flush()`, with the client's default batching.
- *Ingestor direct*: `Ingestor.interactions` in batches of 5,000 (the engine under the SDK,
  the API and the importer).
- *HTTP batch API*: the app from `create_app` served by uvicorn in a subprocess on
  loopback; two client threads post batches of 5,000 (`{"records": [...]}`) with an
  ingest token; timed from the first request to the last response.

**Listing** (group `list`): projects of 10,000, 100,000 and 1,000,000 interactions (sample
texts, filled straight into our schema with the driver's bulk path; fixtures, not
measured). Ours: `browse.list_interactions(conn, project_id, limit=100)` on an open
connection, and the second page through the returned cursor; baseline: the raw driver
`SELECT * FROM interactions WHERE project_id = ? ORDER BY timestamp DESC, id DESC LIMIT 100`
fetched on an open driver connection. Median and p95 over 50 repetitions after 5 warm-ups.
"""
