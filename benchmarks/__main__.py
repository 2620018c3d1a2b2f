"""``python -m benchmarks [GROUP ...]``: run the benchmark groups (all by default), print
each figure beside its baseline, and rewrite benchmarks/README.md."""

from __future__ import annotations

import sys
import time

from . import aggregation, embeddings, evaluation, ingest, listing, scoring
from .databases import kinds, server_version
from .report import README, machine, save

GROUPS = {"ingest": ingest.run, "list": listing.run, "embeddings": embeddings.run,
          "evaluation": evaluation.run, "scoring": scoring.run,
          "aggregation": aggregation.run}
from . import models; GROUPS["models"] = models.run  # noqa: E402, E702, I001
from . import annotation; GROUPS["annotation"] = annotation.run  # noqa: E402, E702, I001
from . import datasets; GROUPS["datasets"] = datasets.run  # noqa: E402, E702, I001
from . import experiments; GROUPS["experiments"] = experiments.run  # noqa: E402, E702, I001
from . import bandits; GROUPS["bandits"] = bandits.run  # noqa: E402, E702, I001


def main(argv: list[str]) -> int:
    wanted = argv or list(GROUPS)
    unknown = [g for g in wanted if g not in GROUPS]
    if unknown:
        print(f"unknown benchmark group {', '.join(unknown)}; groups: {', '.join(GROUPS)}",
              file=sys.stderr)
        return 2
    dbs = kinds()
    info = machine()
    if "postgres" in dbs:
        info["postgresql"] = server_version("postgres")
    results = []
    began = time.perf_counter()
    for name in wanted:
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        results += GROUPS[name](dbs)
        print(f"== {name}: {time.perf_counter() - t0:.0f} s", flush=True)
    save(results, info)
    failed = [r for r in results if r.passed is False]
    print(f"wrote {README} ({len(results)} figures, {len(failed)} below target) in "
          f"{time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
