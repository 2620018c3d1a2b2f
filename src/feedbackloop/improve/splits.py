"""Train/validation/test splits grouped by prompt, optionally stratified.

Every row of a group (all rows sharing a prompt) lands in the same split, so no prompt is
seen in training and scored in test. Assignment depends only on the seed and the group key
(a keyed hash orders the groups), never on row order, so the same data give the same split
wherever they come from. With strata (for example the label), the groups of each stratum are
divided by largest remainder, so each split holds its share of every stratum to within one
group.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Hashable, Mapping, Sequence

from ..errors import InvalidInput

__all__ = ["DEFAULT_FRACTIONS", "check_no_leak", "split_groups"]

DEFAULT_FRACTIONS: dict[str, float] = {"train": 0.8, "validation": 0.1, "test": 0.1}


def _order_key(seed: int, group: str) -> bytes:
    return hashlib.blake2b(group.encode("utf-8", "surrogatepass"), digest_size=8,
                           key=seed.to_bytes(8, "big", signed=False),
                           person=b"fl-split").digest()


def _quotas(n: int, fractions: Mapping[str, float]) -> list[tuple[str, int]]:
    raw = {name: n * f for name, f in fractions.items()}
    quotas = {name: int(v) for name, v in raw.items()}
    left = n - sum(quotas.values())
    # Largest remainder; ties go to the split named first, so the result is deterministic.
    order = sorted(fractions, key=lambda k: (-(raw[k] - quotas[k]), list(fractions).index(k)))
    for name in order[:left]:
        quotas[name] += 1
    return [(name, quotas[name]) for name in fractions]


def _check_fractions(fractions: Mapping[str, float]) -> None:
    if not fractions:
        raise InvalidInput("give at least one split", field="fractions")
    for name, f in fractions.items():
        if isinstance(f, bool) or not isinstance(f, int | float) or not 0 <= f <= 1:
            raise InvalidInput(f"the fraction of split {name!r} must be between 0 and 1, "
                               f"not {f!r}", field=f"fractions.{name}")
    total = sum(fractions.values())
    if abs(total - 1) > 1e-9:
        raise InvalidInput(f"split fractions add up to {total:g}, not 1", field="fractions")


def split_groups(groups: Sequence[str], *, fractions: Mapping[str, float] | None = None,
                 seed: int = 0, strata: Sequence[Hashable] | None = None) -> list[str]:
    """The split of each row. ``groups[i]`` is row i's group key (its prompt, or a hash of
    it); ``strata[i]`` its stratum. A group's stratum is its most common one (ties: the
    smallest by text)."""
    fractions = dict(DEFAULT_FRACTIONS if fractions is None else fractions)
    _check_fractions(fractions)
    if not 0 <= seed < 2**63:
        raise InvalidInput("seed must be between 0 and 2**63 - 1", field="seed")
    if strata is not None and len(strata) != len(groups):
        raise InvalidInput(f"{len(strata)} strata for {len(groups)} rows", field="strata")
    by_stratum: dict[Hashable, list[str]] = defaultdict(list)
    if strata is None:
        by_stratum[None] = list(dict.fromkeys(groups))
    else:
        votes: dict[str, Counter[Hashable]] = defaultdict(Counter)
        for g, s in zip(groups, strata, strict=True):
            votes[g][s] += 1
        for g, counter in votes.items():
            top = max(counter.values())
            by_stratum[min((s for s, c in counter.items() if c == top), key=str)].append(g)
    where: dict[str, str] = {}
    for members in by_stratum.values():
        members.sort(key=lambda g: _order_key(seed, g))
        start = 0
        for name, quota in _quotas(len(members), fractions):
            for g in members[start:start + quota]:
                where[g] = name
            start += quota
    return [where[g] for g in groups]


def check_no_leak(groups: Sequence[str], splits: Sequence[str]) -> None:
    """Refuse a split that puts one group (prompt) in two splits; the error names it."""
    seen: dict[str, tuple[str, int]] = {}
    for i, (g, s) in enumerate(zip(groups, splits, strict=True)):
        first = seen.setdefault(g, (s, i))
        if first[0] != s:
            shown = g if len(g) <= 80 else g[:77] + "..."
            raise InvalidInput(
                f"prompt {shown!r} is in split {first[0]!r} (row {first[1]}) and in split "
                f"{s!r} (row {i}): a prompt may be in one split only", field="split",
                row=i)
