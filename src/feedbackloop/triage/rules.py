"""Triage rules: conditions on one feedback item, checked once and matched many times.

A rule's ``conditions`` is a JSON object; every key given must hold (AND)::

    {"signal": "thumbs" | ["thumbs", "rating"],   # the feedback's signal name(s)
     "value": false | 2 | "rude",                  # the value exactly (as given)
     "value_in": ["rude", "unsafe"],               # one of these values
     "value_max": 2, "value_min": 1,               # numeric bounds (inclusive)
     "source": "end_user" | [...],                 # who gave it
     "text": "password|credit card",               # regex, case-insensitive, searched in
     "text_fields": ["comment", "correction", "output"],   # these texts (default: all 3)
     "attributes": {"locale": "de", "plan": ["pro", "team"]}}  # the interaction's

Rules are tried in ``position`` order; the first that matches routes the item. A rule with
``escalate`` sends what it matches to the role on duty whatever its route.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import InvalidInput

__all__ = ["CONDITION_KEYS", "ROUTES", "TEXT_FIELDS", "check_conditions", "check_route",
           "matches"]

ROUTES = ("ranking", "generation_quality", "factuality", "content_policy", "safety",
          "privacy", "latency", "ux", "other")
TEXT_FIELDS = ("comment", "correction", "output")
CONDITION_KEYS = ("signal", "value", "value_in", "value_max", "value_min", "source", "text",
                  "text_fields", "attributes")
_MAX_PATTERN = 500
# Text searched by a rule's regex is cut here, so a pathological pattern stays bounded.
_MAX_SEARCHED = 20_000


def check_route(route: Any, field: str = "route") -> str:
    if route not in ROUTES:
        raise InvalidInput(f"route must be one of {', '.join(ROUTES)}, not {route!r}",
                           field=field)
    return str(route)


def _names(value: Any, field: str) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str) and 0 < len(v) <= 200 for v in items):
        raise InvalidInput(f"{field} must be a name or a list of names", field=field)
    return list(items)


def _scalar(value: Any, field: str) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        if isinstance(value, float) and value != value:
            raise InvalidInput(f"{field} must not be NaN", field=field)
        if isinstance(value, str) and len(value) > 1000:
            raise InvalidInput(f"{field} longer than 1000 characters", field=field)
        return value
    raise InvalidInput(f"{field} must be a boolean, number or text", field=field)


def check_conditions(raw: Any, *, signals: set[str] | None = None) -> dict[str, Any]:
    """The conditions, validated (errors name ``conditions.<key>``); ``signals`` the
    project's signal names, when known. At least one condition is required."""
    if not isinstance(raw, Mapping):
        raise InvalidInput("conditions must be a JSON object", field="conditions")
    unknown = [k for k in raw if k not in CONDITION_KEYS]
    if unknown:
        raise InvalidInput(f"unknown condition {unknown[0]!r} (known: "
                           f"{', '.join(CONDITION_KEYS)})", field=f"conditions.{unknown[0]}")
    if not any(k != "text_fields" for k in raw):
        raise InvalidInput("a rule needs at least one condition", field="conditions")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        field = f"conditions.{key}"
        if key in ("signal", "source"):
            names = _names(value, field)
            if key == "signal" and signals is not None:
                missing = [n for n in names if n not in signals]
                if missing:
                    raise InvalidInput(f"no signal {missing[0]!r} in this project", field=field)
            out[key] = names
        elif key == "value":
            out[key] = _scalar(value, field)
        elif key == "value_in":
            if not isinstance(value, list) or not value or len(value) > 100:
                raise InvalidInput(f"{field} must be a list of 1-100 values", field=field)
            out[key] = [_scalar(v, field) for v in value]
        elif key in ("value_max", "value_min"):
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or value != value or value in (float("inf"), float("-inf")):
                raise InvalidInput(f"{field} must be a finite number", field=field)
            out[key] = float(value)
        elif key == "text":
            if not isinstance(value, str) or not 0 < len(value) <= _MAX_PATTERN:
                raise InvalidInput(f"{field} must be a regular expression of 1-{_MAX_PATTERN}"
                                   " characters", field=field)
            try:
                re.compile(value)
            except re.error as exc:
                raise InvalidInput(f"{field} is not a valid regular expression: {exc}",
                                   field=field) from None
            out[key] = value
        elif key == "text_fields":
            fields = _names(value, field)
            bad = [f for f in fields if f not in TEXT_FIELDS]
            if bad:
                raise InvalidInput(f"{field}: {bad[0]!r} is not one of "
                                   f"{', '.join(TEXT_FIELDS)}", field=field)
            out[key] = fields
        elif key == "attributes":
            if not isinstance(value, Mapping) or not value:
                raise InvalidInput(f"{field} must be an object of attribute: value(s)",
                                   field=field)
            attrs: dict[str, Any] = {}
            for name, wanted in value.items():
                if not isinstance(name, str) or not 0 < len(name) <= 100:
                    raise InvalidInput(f"{field}: attribute names are 1-100 characters",
                                       field=field)
                attrs[name] = ([_scalar(v, field) for v in wanted]
                               if isinstance(wanted, list) else _scalar(wanted, field))
            out[key] = attrs
    if "value_min" in out and "value_max" in out and out["value_min"] > out["value_max"]:
        raise InvalidInput("value_min is above value_max", field="conditions.value_min")
    return out


def _same(a: Any, b: Any) -> bool:
    # JSON values compare by type too: true is not 1, "2" is not 2.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return bool(a == b)


def matches(conditions: Mapping[str, Any], item: Mapping[str, Any]) -> bool:
    """Whether ``item`` (keys ``signal``, ``value``, ``value_num``, ``source``, ``comment``,
    ``correction``, ``output``, ``attributes``) meets every condition."""
    if "signal" in conditions and item.get("signal") not in conditions["signal"]:
        return False
    if "source" in conditions and item.get("source") not in conditions["source"]:
        return False
    if "value" in conditions and not _same(item.get("value"), conditions["value"]):
        return False
    if "value_in" in conditions and not any(_same(item.get("value"), v)
                                            for v in conditions["value_in"]):
        return False
    number = item.get("value_num")
    if "value_max" in conditions and (number is None or number > conditions["value_max"]):
        return False
    if "value_min" in conditions and (number is None or number < conditions["value_min"]):
        return False
    if "attributes" in conditions:
        attrs = item.get("attributes") or {}
        for name, wanted in conditions["attributes"].items():
            have = attrs.get(name) if isinstance(attrs, Mapping) else None
            options = wanted if isinstance(wanted, list) else [wanted]
            if not any(_same(have, w) for w in options):
                return False
    if "text" in conditions:
        pattern = re.compile(conditions["text"], re.IGNORECASE)
        fields = conditions.get("text_fields") or TEXT_FIELDS
        if not any(pattern.search((item.get(f) or "")[:_MAX_SEARCHED]) for f in fields):
            return False
    return True
