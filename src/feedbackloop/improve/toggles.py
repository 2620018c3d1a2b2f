"""Toggles: which model version serves whom.

A toggle belongs to a component (``ranking``, ``generation``, ``classification``…) and holds
ordered rules. A rule matches a unit by its cohort attributes (every condition must hold)
and then splits the matching units between versions by percentage, using a hash of the unit
id salted with the rule's salt, so a unit keeps its version while the rule stands and
different rules split independently. The first rule that matches *and* puts the unit in a
version's share decides; a unit in no share falls through to the next rule, and past the
last rule to the component's default (its live version).

Pure and fast: rules are compiled once (:meth:`Toggle.compile`) and resolving a unit costs
one dictionary lookup per condition and one BLAKE2b hash per rule tried.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidInput

__all__ = ["BUCKETS", "Condition", "Resolution", "Rule", "Toggle", "bucket"]

BUCKETS = 10_000  # percentages resolve to 0.01 %
_OPS = ("eq", "ne", "in", "not_in")
Scalar = str | int | float | bool | None


def bucket(salt: str, unit_id: str) -> int:
    """The unit's bucket in ``[0, BUCKETS)`` for a salt: uniform and stable."""
    digest = hashlib.blake2b(f"{salt}\x00{unit_id}".encode("utf-8", "surrogatepass"),
                             digest_size=8, person=b"fl-toggle").digest()
    return int.from_bytes(digest, "big") % BUCKETS


def _norm(value: Any) -> Any:
    # Attributes arrive from JSON, CSV and query strings: compare booleans and numbers as
    # their text, so "true" matches True and "2" matches 2.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return None if value is None else str(value)


@dataclass(frozen=True)
class Condition:
    """``attribute op value``: ``eq``/``ne`` take a scalar, ``in``/``not_in`` a list. A unit
    without the attribute fails ``eq`` and ``in`` and passes ``ne`` and ``not_in``."""

    attribute: str
    op: str
    value: Scalar | list[Scalar]

    def check(self, where: str) -> None:
        if not self.attribute or not isinstance(self.attribute, str):
            raise InvalidInput(f"{where}: a condition needs an attribute name",
                               field=f"{where}.attribute")
        if self.op not in _OPS:
            raise InvalidInput(f"{where}: unknown operator {self.op!r}; use one of "
                               f"{', '.join(_OPS)}", field=f"{where}.op")
        if self.op in ("in", "not_in"):
            if not isinstance(self.value, list) or not self.value:
                raise InvalidInput(f"{where}: {self.op!r} needs a non-empty list",
                                   field=f"{where}.value")
        elif isinstance(self.value, list | dict):
            raise InvalidInput(f"{where}: {self.op!r} needs a single value",
                               field=f"{where}.value")

    def compiled(self) -> tuple[str, bool, frozenset[Any]]:
        values = self.value if isinstance(self.value, list) else [self.value]
        return self.attribute, self.op in ("eq", "in"), frozenset(_norm(v) for v in values)


@dataclass(frozen=True)
class Rule:
    """Units matching every condition are split by ``split`` ({version: percent}); the
    percentages of one rule may not exceed 100."""

    split: dict[str, float]
    when: tuple[Condition, ...] = ()
    salt: str = ""
    name: str = ""

    def check(self, where: str) -> None:
        for i, c in enumerate(self.when):
            c.check(f"{where}.when[{i}]")
        if not self.split:
            raise InvalidInput(f"{where}: a rule needs at least one version with a percentage",
                               field=f"{where}.split")
        total = 0.0
        for version, pct in self.split.items():
            if not version:
                raise InvalidInput(f"{where}: empty version name", field=f"{where}.split")
            if isinstance(pct, bool) or not isinstance(pct, int | float) or not 0 <= pct <= 100:
                raise InvalidInput(f"{where}: the percentage of {version!r} must be a number "
                                   f"from 0 to 100, not {pct!r}", field=f"{where}.split")
            total += pct
        if total > 100 + 1e-9:
            raise InvalidInput(f"{where}: percentages add up to {total:g} %, more than 100 %",
                               field=f"{where}.split")


@dataclass(frozen=True)
class Resolution:
    version: str | None
    rule: int | None  # index of the deciding rule; None: the default served
    bucket: int | None


@dataclass
class Toggle:
    component: str
    rules: list[Rule] = field(default_factory=list)
    default: str | None = None
    _compiled: list[tuple[tuple[tuple[str, bool, frozenset[Any]], ...], str,
                          list[tuple[int, str]]]] | None = field(default=None, repr=False)

    def compile(self) -> Toggle:
        """Check every rule (errors name the rule) and precompute the lookups."""
        compiled = []
        for i, rule in enumerate(self.rules):
            where = f"rules[{i}]" + (f" ({rule.name})" if rule.name else "")
            rule.check(where)
            cuts, upper = [], 0.0
            for version, pct in rule.split.items():
                upper += pct
                cuts.append((round(upper * BUCKETS / 100), version))
            salt = rule.salt or f"{self.component}:{i}"
            compiled.append((tuple(c.compiled() for c in rule.when), salt, cuts))
        self._compiled = compiled
        return self

    def resolve(self, unit_id: str, attributes: Mapping[str, Any] | None = None
                ) -> Resolution:
        """The version serving this unit, and the rule that decided."""
        if self._compiled is None:
            self.compile()
        assert self._compiled is not None
        attrs = attributes or {}
        for i, (conds, salt, cuts) in enumerate(self._compiled):
            for name, positive, values in conds:
                present = name in attrs
                hit = present and _norm(attrs[name]) in values
                if hit is not positive:
                    break
            else:
                b = bucket(salt, unit_id)
                for upper, version in cuts:
                    if b < upper:
                        return Resolution(version, i, b)
        return Resolution(self.default, None, None)

    @classmethod
    def from_dict(cls, component: str, rules: Sequence[Mapping[str, Any]],
                  default: str | None = None) -> Toggle:
        """Rules as JSON: ``{"when": [{"attribute", "op", "value"}], "split": {v: pct},
        "salt": "...", "name": "..."}``; errors name the rule and field."""
        out = []
        for i, raw in enumerate(rules):
            where = f"rules[{i}]"
            if not isinstance(raw, Mapping):
                raise InvalidInput(f"{where}: a rule is an object", field=where)
            unknown = set(raw) - {"when", "split", "salt", "name"}
            if unknown:
                raise InvalidInput(f"{where}: unknown field(s) {', '.join(sorted(unknown))}",
                                   field=where)
            when = raw.get("when") or []
            if not isinstance(when, list):
                raise InvalidInput(f"{where}.when must be a list", field=f"{where}.when")
            conds = []
            for j, c in enumerate(when):
                if not isinstance(c, Mapping) or set(c) - {"attribute", "op", "value"}:
                    raise InvalidInput(f"{where}.when[{j}]: give attribute, op and value",
                                       field=f"{where}.when[{j}]")
                conds.append(Condition(str(c.get("attribute", "")), str(c.get("op", "eq")),
                                       c.get("value")))
            split = raw.get("split")
            if not isinstance(split, Mapping):
                raise InvalidInput(f"{where}.split must map versions to percentages",
                                   field=f"{where}.split")
            out.append(Rule(dict(split), tuple(conds), str(raw.get("salt") or ""),
                            str(raw.get("name") or "")))
        return cls(component, out, default).compile()
