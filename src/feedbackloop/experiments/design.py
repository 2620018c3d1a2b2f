"""An experiment's design (its pre-registration): checked, normalised, hashed, planned.

The design is JSON stored in ``experiments.design``::

    {"unit": "user" | "session" | "interaction",
     "arms": [{"name": "control", "version": "v1" | null, "weight": 0.5}, ...],
     "control": "control",
     "primary": {"metric": "<signal>", "kind": "proportion" | "mean",
                 "higher_is_better": true, "success": "<label of a categorical signal>"},
     "guardrails": [{"metric", "kind", "higher_is_better", "allowed_change", "relative"}],
     "mde": 0.02, "relative": false, "alpha": 0.05, "power": 0.8, "sides": 2,
     "baseline": null, "sd": null, "cuped": false,
     "sequential": {"method": "asymptotic-cs" | "msprt" | "none", "tuning_n": null},
     "looks": [0.25, 0.5, 0.75, 1.0] | null, "correction": "holm" | "bh",
     "max_days": 28, "max_units": null,
     "planned": {"per_arm", "total", "method", "units_per_day", "expected_days"}}

A metric's kind follows its signal: binary signals are proportions, ordinal and numeric
signals means, a categorical signal is a proportion of one ``success`` label; free text and
pairwise signals cannot be a metric. ``planned`` is computed (:func:`plan`), never taken from
the caller, and is left out of the hash that freezes the design once the experiment starts.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections.abc import Mapping
from typing import Any

import orjson

from ..capture.projects import Signal
from ..errors import InvalidInput

__all__ = [
    "CORRECTIONS",
    "SEQUENTIAL_METHODS",
    "UNITS",
    "arm_names",
    "changed_fields",
    "cumulative_weights",
    "design_hash",
    "metric_kind",
    "metric_signals",
    "normalise_design",
    "plan",
]

UNITS = ("user", "session", "interaction")
SEQUENTIAL_METHODS = ("asymptotic-cs", "msprt", "none")
CORRECTIONS = ("holm", "bh")
_ARM = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,99}")
_TOP = {"unit", "arms", "control", "primary", "guardrails", "mde", "relative", "alpha",
        "power", "sides", "baseline", "sd", "cuped", "sequential", "looks", "correction",
        "max_days", "max_units", "planned"}
_METRIC = {"metric", "kind", "higher_is_better", "success"}
_GUARDRAIL = _METRIC | {"allowed_change", "relative"}
MAX_ARMS = 20
MAX_GUARDRAILS = 20
MAX_PLANNED = 10**12


def _bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{field} must be true or false, not {value!r}", field=field)
    return value


def _number(value: Any, field: str, *, low: float | None = None, high: float | None = None,
            low_open: bool = False, high_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value):
        raise InvalidInput(f"{field} must be a number, not {value!r}", field=field)
    x = float(value)
    if low is not None and (x < low or (low_open and x == low)):
        raise InvalidInput(f"{field} must be {'>' if low_open else '>='} {low:g}, not {x:g}",
                           field=field)
    if high is not None and (x > high or (high_open and x == high)):
        raise InvalidInput(f"{field} must be {'<' if high_open else '<='} {high:g}, "
                           f"not {x:g}", field=field)
    return x


def _whole(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not float(value).is_integer() or not low <= value <= high:
        raise InvalidInput(f"{field} must be a whole number from {low} to {high:,}, not "
                           f"{value!r}", field=field)
    return int(value)


def _object(value: Any, field: str, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{field} must be an object", field=field)
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise InvalidInput(f"{field}: unknown field(s) {', '.join(map(str, unknown))}; "
                           f"known: {', '.join(sorted(allowed))}", field=f"{field}.{unknown[0]}")
    return value


def metric_kind(signal: Signal, success: Any, field: str) -> tuple[str, Any]:
    """The kind of a metric on ``signal`` and its ``success`` label (categorical only).

    Binary → proportion, ordinal/numeric → mean, categorical with a success label →
    proportion; text and pairwise signals are a metric of the wrong type."""
    if signal.type in ("text", "pairwise"):
        raise InvalidInput(
            f"{field}: signal {signal.name!r} is {signal.type}, a metric of the wrong type: "
            "an experiment metric needs a binary, ordinal, numeric or categorical signal",
            field=f"{field}.metric", signal=signal.name, type=signal.type)
    if signal.type == "categorical":
        labels = list(signal.labels or [])
        if success is None:
            raise InvalidInput(
                f"{field}: signal {signal.name!r} is categorical: say which label counts as "
                f"success (one of {', '.join(map(str, labels))})", field=f"{field}.success")
        if success not in labels:
            raise InvalidInput(f"{field}: {success!r} is not a label of {signal.name!r} "
                               f"({', '.join(map(str, labels))})", field=f"{field}.success")
        return "proportion", success
    if success is not None:
        raise InvalidInput(f"{field}: success applies to categorical signals only; "
                           f"{signal.name!r} is {signal.type}", field=f"{field}.success")
    return ("proportion" if signal.type == "binary" else "mean"), None


def _metric(raw: Any, field: str, signals: Mapping[str, Signal],
            allowed: set[str]) -> dict[str, Any]:
    m = _object(raw, field, allowed)
    name = m.get("metric")
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{field}.metric must name a signal", field=f"{field}.metric")
    signal = signals.get(name)
    if signal is None:
        known = ", ".join(sorted(signals)) or "none yet"
        raise InvalidInput(f"{field}.metric: no signal {name!r} in this project (signals: "
                           f"{known})", field=f"{field}.metric", signal=name)
    kind, success = metric_kind(signal, m.get("success"), field)
    given = m.get("kind")
    if given is not None and given != kind:
        raise InvalidInput(f"{field}.kind: signal {name!r} ({signal.type}) is measured as a "
                           f"{kind}, not a {given!r}", field=f"{field}.kind")
    out = {"metric": name, "kind": kind,
           "higher_is_better": _bool(m.get("higher_is_better", True),
                                     f"{field}.higher_is_better")}
    if success is not None:
        out["success"] = success
    return out


def _arms(raw: Any, versions: set[str] | None, component: str | None) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not 2 <= len(raw) <= MAX_ARMS:
        raise InvalidInput(f"arms must be a list of 2 to {MAX_ARMS} arms", field="arms")
    arms: list[dict[str, Any]] = []
    for i, a in enumerate(raw):
        where = f"arms[{i}]"
        a = _object(a, where, {"name", "version", "weight"})
        name = a.get("name")
        if not isinstance(name, str) or not _ARM.fullmatch(name):
            raise InvalidInput(f"{where}.name must be 1-100 letters, digits or _ . : @ + -, "
                               f"starting with a letter or digit, not {name!r}",
                               field=f"{where}.name")
        version = a.get("version")
        if version is not None:
            if not isinstance(version, str) or not version:
                raise InvalidInput(f"{where}.version must be a version name",
                                   field=f"{where}.version")
            if component is None:
                raise InvalidInput(f"{where}: an arm names model version {version!r}; give "
                                   "the component whose version it is", field="component")
            if versions is not None and version not in versions:
                raise InvalidInput(f"{where}: no version {version!r} of component "
                                   f"{component!r} is registered", field=f"{where}.version",
                                   version=version)
        weight = a.get("weight")
        if weight is not None:
            weight = _number(weight, f"{where}.weight", low=0.0, high=1.0, low_open=True)
        arms.append({"name": name, "version": version, "weight": weight})
    names = [a["name"] for a in arms]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise InvalidInput(f"arm name {dup!r} is used twice", field="arms")
    given = [a["weight"] is not None for a in arms]
    if not any(given):
        for a in arms:
            a["weight"] = 1.0 / len(arms)
    elif not all(given):
        raise InvalidInput("give a weight to every arm or to none (equal split)",
                           field="arms")
    else:
        total = sum(a["weight"] for a in arms)
        if abs(total - 1.0) > 1e-6:
            raise InvalidInput(f"arm weights add up to {total:g}, not 1", field="arms")
    return arms


def normalise_design(raw: Any, *, signals: Mapping[str, Signal],
                     versions: set[str] | None = None,
                     component: str | None = None) -> dict[str, Any]:
    """The checked design with every default filled in (``planned`` is left for
    :func:`plan`). ``signals``: the project's signals by name; ``versions``: the names of
    ``component``'s versions (None: not checked). Errors name the field."""
    d = _object(raw, "design", _TOP)
    unit = d.get("unit", "user")
    if unit not in UNITS:
        raise InvalidInput(f"unit must be one of {', '.join(UNITS)}, not {unit!r}",
                           field="unit")
    arms = _arms(d.get("arms"), versions, component)
    names = [a["name"] for a in arms]
    control = d.get("control", names[0])
    if control not in names:
        raise InvalidInput(f"control {control!r} is not one of the arms "
                           f"({', '.join(names)})", field="control")
    if "primary" not in d:
        raise InvalidInput("a design needs a primary metric", field="primary")
    primary = _metric(d["primary"], "primary", signals, _METRIC)
    raw_guards = d.get("guardrails") or []
    if not isinstance(raw_guards, list) or len(raw_guards) > MAX_GUARDRAILS:
        raise InvalidInput(f"guardrails must be a list of at most {MAX_GUARDRAILS}",
                           field="guardrails")
    guardrails: list[dict[str, Any]] = []
    for i, g in enumerate(raw_guards):
        where = f"guardrails[{i}]"
        metric = _metric(g, where, signals, _GUARDRAIL)
        metric["allowed_change"] = _number(g.get("allowed_change", 0.0),
                                           f"{where}.allowed_change", low=0.0)
        metric["relative"] = _bool(g.get("relative", False), f"{where}.relative")
        if metric["metric"] in [primary["metric"], *(m["metric"] for m in guardrails)]:
            raise InvalidInput(f"{where}: signal {metric['metric']!r} is already a metric of "
                               "this design", field=f"{where}.metric")
        guardrails.append(metric)
    if "mde" not in d:
        raise InvalidInput("a design needs the minimum detectable effect (mde)", field="mde")
    mde = _number(d["mde"], "mde", low=0.0, low_open=True)
    relative = _bool(d.get("relative", False), "relative")
    alpha = _number(d.get("alpha", 0.05), "alpha", low=0.0, high=0.5, low_open=True)
    power = _number(d.get("power", 0.8), "power", low=0.0, high=1.0, low_open=True,
                    high_open=True)
    sides = d.get("sides", 2)
    if sides not in (1, 2) or isinstance(sides, bool):
        raise InvalidInput(f"sides must be 1 or 2, not {sides!r}", field="sides")
    baseline = d.get("baseline")
    if baseline is not None:
        baseline = _number(baseline, "baseline")
        if primary["kind"] == "proportion" and not 0.0 < baseline < 1.0:
            raise InvalidInput("baseline of a proportion must be between 0 and 1",
                               field="baseline")
    sd = d.get("sd")
    if sd is not None:
        sd = _number(sd, "sd", low=0.0, low_open=True)
    if relative and primary["kind"] == "proportion" and baseline is not None \
            and baseline * (1 + mde) >= 1:
        raise InvalidInput(f"a relative mde of {mde:g} on a baseline of {baseline:g} goes "
                           "past 1", field="mde")
    seq = _object(d.get("sequential") or {}, "sequential", {"method", "tuning_n"})
    method = seq.get("method", "asymptotic-cs")
    if method not in SEQUENTIAL_METHODS:
        raise InvalidInput(f"sequential.method must be one of "
                           f"{', '.join(SEQUENTIAL_METHODS)}, not {method!r}",
                           field="sequential.method")
    tuning = seq.get("tuning_n")
    if tuning is not None:
        tuning = _whole(tuning, "sequential.tuning_n", 1, 10**12)
    looks = d.get("looks")
    if looks is not None:
        if not isinstance(looks, list) or not 1 <= len(looks) <= 20:
            raise InvalidInput("looks must be a list of 1 to 20 information fractions",
                               field="looks")
        looks = [_number(x, f"looks[{i}]", low=0.0, high=1.0, low_open=True)
                 for i, x in enumerate(looks)]
        if any(b <= a for a, b in itertools.pairwise(looks)) or looks[-1] != 1.0:
            raise InvalidInput("looks must increase and end at 1.0 (the planned sample)",
                               field="looks")
    correction = d.get("correction", "holm")
    if correction not in CORRECTIONS:
        raise InvalidInput(f"correction must be one of {', '.join(CORRECTIONS)}, not "
                           f"{correction!r}", field="correction")
    max_days = _whole(d.get("max_days", 28), "max_days", 1, 3650)
    max_units = d.get("max_units")
    if max_units is not None:
        max_units = _whole(max_units, "max_units", 2, 10**12)
    return {"unit": unit, "arms": arms, "control": control, "primary": primary,
            "guardrails": guardrails, "mde": mde, "relative": relative, "alpha": alpha,
            "power": power, "sides": int(sides), "baseline": baseline, "sd": sd,
            "cuped": _bool(d.get("cuped", False), "cuped"),
            "sequential": {"method": method, "tuning_n": tuning}, "looks": looks,
            "correction": correction, "max_days": max_days, "max_units": max_units}


def design_hash(design: Mapping[str, Any]) -> str:
    """SHA-256 of the design without ``planned`` (derived), keys sorted."""
    frozen = {k: v for k, v in design.items() if k != "planned"}
    return hashlib.sha256(orjson.dumps(frozen, option=orjson.OPT_SORT_KEYS)).hexdigest()


def changed_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Top-level design fields whose values differ (``planned`` ignored)."""
    keys = sorted((set(old) | set(new)) - {"planned"})
    return [k for k in keys if old.get(k) != new.get(k)]


def plan(design: Mapping[str, Any], *, baseline: float | None, sd: float | None,
         units_per_day: float | None, source: str = "design") -> dict[str, Any]:
    """Sample size per arm and in total, and the expected duration at ``units_per_day``.

    Proportions: the pooled two-proportion z-test as R ``power.prop.test``; means: the
    two-sample t-test as R ``power.t.test`` (both from :mod:`feedbackloop.stats.experiments`;
    with more than two arms each comparison at alpha / (arms - 1)); with unequal weights
    the total is what puts that many units in the smallest arm. Returns ``per_arm`` None
    with a ``reason`` when the baseline (proportions) or sd (means) is unknown."""
    from ..stats.experiments import sample_size_means, sample_size_proportions

    arms = design["arms"]
    weights = [float(a["weight"]) for a in arms]
    out: dict[str, Any] = {"per_arm": None, "total": None, "method": None,
                           "units_per_day": round(units_per_day, 3)
                           if units_per_day is not None else None,
                           "expected_days": None, "baseline": baseline, "sd": sd,
                           "source": source}
    common = {"relative": design["relative"], "alpha": design["alpha"],
              "power": design["power"], "sides": design["sides"], "arms": len(arms)}
    try:
        if design["primary"]["kind"] == "proportion":
            if baseline is None or not 0.0 < baseline < 1.0:
                out["reason"] = ("no baseline rate: give baseline, or collect some of the "
                                 "primary signal first")
                return out
            size = sample_size_proportions(baseline, design["mde"], **common)
        else:
            if sd is None or sd <= 0:
                out["reason"] = ("no standard deviation: give sd, or collect some of the "
                                 "primary signal first")
                return out
            if design["relative"] and (baseline is None or baseline == 0):
                out["reason"] = "a relative mde on a mean needs a non-zero baseline mean"
                return out
            size = sample_size_means(sd, design["mde"], baseline=baseline, **common)
    except (ValueError, ArithmeticError) as exc:
        out["reason"] = f"cannot plan: {exc}"
        return out
    if not math.isfinite(float(size.per_arm)) or size.per_arm > MAX_PLANNED:
        out["reason"] = (f"more than {MAX_PLANNED:,} units per arm: the effect is too small "
                         "for this variance to detect")
        return out
    per_arm = int(size.per_arm)
    equal = max(weights) - min(weights) < 1e-9
    total = per_arm * len(arms) if equal else math.ceil(per_arm / min(weights) - 1e-9)
    out.update(per_arm=per_arm, total=total, method=size.method)
    if units_per_day:
        out["expected_days"] = round(total / units_per_day, 1)
    return out


def arm_names(design: Mapping[str, Any]) -> list[str]:
    return [a["name"] for a in design["arms"]]


def cumulative_weights(design: Mapping[str, Any]) -> list[float]:
    acc, out = 0.0, []
    for a in design["arms"]:
        acc += float(a["weight"])
        out.append(acc)
    out[-1] = 1.0
    return out


def metric_signals(design: Mapping[str, Any]) -> list[str]:
    """The signals whose feedback the experiment copies: primary then guardrails."""
    names = [design["primary"]["metric"]]
    for g in design.get("guardrails") or []:
        if g["metric"] not in names:
            names.append(g["metric"])
    return names
