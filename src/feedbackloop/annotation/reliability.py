"""Rater reliability on any long-format ratings and on a project's stored human feedback.

:func:`agreement_summary` computes every agreement statistic that fits the level of
measurement (Krippendorff's alpha with a unit-bootstrap interval, Fleiss' kappa, Gwet's
AC1/AC2, Cohen's kappa for two raters, the ICC) and says in ``notes`` why any of them is
``None``. :func:`agreement_from_csv` reads a long-format CSV for it (``feedbackloop
agreement FILE``). :func:`project_agreement` does the same on a signal's feedback from
annotators and experts, optionally one campaign's, and adds each rater's agreement with
the consensus of the others and accuracy on gold items over time, with drift flags.
:func:`calibration_report` lists a calibration campaign's items by disagreement.

The statistics are the pure ones of :mod:`feedbackloop.stats.agreement`; this module
checks and shapes the input and turns bad input into :class:`~feedbackloop.errors.InvalidInput`
naming the record.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, select

from ..capture.prepare import coerce_value
from ..capture.projects import Project, Signal, get_project, get_signal
from ..errors import InvalidInput, NotFound
from ..stats.agreement import (
    cohen_kappa_weighted,
    fleiss_kappa,
    gwet_ac1,
    gwet_ac2,
    icc,
    krippendorff_alpha,
    rater_reliability,
    reliability_matrix,
)
from ..stats.estimate import Estimate
from ..store import Store, as_utc
from ..store.tables import (
    annotation_links,
    assignments,
    campaign_items,
    campaigns,
    feedback,
    interactions,
)

__all__ = [
    "DEFAULT_DRIFT_THRESHOLD",
    "HUMAN_SOURCES",
    "LEVELS",
    "MAX_CATEGORIES",
    "Ratings",
    "agreement_from_csv",
    "agreement_summary",
    "calibration_report",
    "fetch_ratings",
    "level_for",
    "project_agreement",
    "resolve_campaign",
]

LEVELS = ("nominal", "ordinal", "interval", "ratio")
HUMAN_SOURCES = ("annotator", "expert")
DEFAULT_DRIFT_THRESHOLD = 0.6
MAX_CATEGORIES = 100
"""Distinct values up to which Fleiss' kappa, Gwet's AC1/AC2 and Cohen's kappa treat the
values as categories; beyond it (continuous ratings) they are left out with a note."""
_SHOWN = 10


# ------------------------------------------------------------------ agreement_summary


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _where_default(i: int) -> str:
    return f"record {i}"


@dataclass
class _Coded:
    units: list[Hashable]
    raters: list[Hashable]
    values: np.ndarray
    labels: list[Any] | None  # nominal text labels by code, None when values are numbers
    positions: list[int]  # input position of each kept rating
    missing: int


def _code(units: Sequence[Any], raters: Sequence[Any], values: Sequence[Any], level: str,
          scale: tuple[float, float] | None, where: Callable[[int], str]) -> _Coded:
    if level not in LEVELS:
        raise InvalidInput(f"level must be one of {', '.join(LEVELS)}; got {level!r}",
                           field="level")
    units, raters, values = list(units), list(raters), list(values)
    if not len(units) == len(raters) == len(values):
        raise InvalidInput(f"units, raters and values differ in length: {len(units)}, "
                           f"{len(raters)}, {len(values)}", field="values")
    keep: list[int] = []
    for i, (u, r, v) in enumerate(zip(units, raters, values, strict=True)):
        for name, x in (("unit", u), ("rater", r)):
            if _is_missing(x):
                raise InvalidInput(f"{where(i)} has no {name}", field=name)
        if not _is_missing(v):
            keep.append(i)
    if not keep:
        raise InvalidInput("no ratings: every value is missing", field="value")
    _check_duplicates(units, raters, keep, where)
    kept = [values[i] for i in keep]
    numbers = [_number(v) for v in kept]
    labels: list[Any] | None = None
    if all(x is not None for x in numbers):
        coded = np.array(numbers, dtype=float)
        bad = np.flatnonzero(~np.isfinite(coded))
        if bad.size:
            raise InvalidInput(f"{where(keep[int(bad[0])])} has a value that is not a finite "
                               f"number: {kept[int(bad[0])]!r}", field="value")
    elif level != "nominal":
        first = next(i for i, x in enumerate(numbers) if x is None)
        raise InvalidInput(f"{where(keep[first])}: value {kept[first]!r} is not a number; "
                           f"the {level} level needs numbers", field="value")
    else:
        text = [str(v).strip() for v in kept]
        labels = sorted(set(text))
        index = {label: k for k, label in enumerate(labels)}
        coded = np.array([index[t] for t in text], dtype=float)
    if scale is not None:
        lo, hi = float(scale[0]), float(scale[1])
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise InvalidInput(f"the scale must run from a lower to a higher number, got "
                               f"{lo:g} {hi:g}", field="scale")
        if labels is not None:
            raise InvalidInput("a scale needs numeric values; these are text labels",
                               field="scale")
        outside = np.flatnonzero((coded < lo) | (coded > hi))
        if outside.size:
            shown = ", ".join(f"{kept[int(k)]!r} ({where(keep[int(k)])}, unit "
                              f"{units[keep[int(k)]]!r}, rater {raters[keep[int(k)]]!r})"
                              for k in outside[:_SHOWN])
            more = f" and {outside.size - _SHOWN} more" if outside.size > _SHOWN else ""
            raise InvalidInput(f"{outside.size} rating{'s' if outside.size != 1 else ''} "
                               f"outside the scale [{lo:g}, {hi:g}]: {shown}{more}",
                               field="value")
    return _Coded([units[i] for i in keep], [raters[i] for i in keep], coded, labels, keep,
                  len(units) - len(keep))


def _check_duplicates(units: list[Any], raters: list[Any], keep: list[int],
                      where: Callable[[int], str]) -> None:
    first: dict[tuple[Any, Any], int] = {}
    duplicates: list[tuple[int, int]] = []
    for i in keep:
        key = (units[i], raters[i])
        if key in first:
            duplicates.append((first[key], i))
        else:
            first[key] = i
    if duplicates:
        shown = "; ".join(f"unit {units[j]!r}, rater {raters[j]!r} ({where(i)} and "
                          f"{where(j)})" for i, j in duplicates[:_SHOWN])
        more = f" and {len(duplicates) - _SHOWN} more" if len(duplicates) > _SHOWN else ""
        raise InvalidInput(f"duplicate (unit, rater) ratings: {shown}{more}; each rater "
                           "rates a unit once", field="rows")


_NAMES = {"krippendorff_alpha": "Krippendorff's alpha", "fleiss_kappa": "Fleiss' kappa",
          "gwet_ac1": "Gwet's AC1", "gwet_ac2": "Gwet's AC2", "cohen_kappa": "Cohen's kappa",
          "icc": "ICC"}


def agreement_summary(units: Sequence[Any], raters: Sequence[Any], values: Sequence[Any],
                      level: str = "nominal", *, seed: int = 0, n_boot: int = 1000,
                      scale: tuple[float, float] | None = None,
                      where: Callable[[int], str] | None = None) -> dict[str, Any]:
    """Agreement statistics of long-format ratings (one entry per rating).

    ``values`` may be numbers or, at the nominal level, text labels; ``None``, NaN and
    empty strings are missing ratings (left out). ``scale`` (low, high) checks that every
    rating lies on it and, at the ordinal level, fixes the categories of Gwet's AC2 and
    Cohen's kappa. ``n_boot`` resamples of units give the 95 % intervals (0: none);
    ``seed`` makes them reproducible. ``where(i)`` names input record ``i`` in messages.

    Returns the keys ``units``, ``raters`` (counts), ``level``, ``krippendorff_alpha``,
    ``alpha_ci95``, ``fleiss_kappa``, ``gwet_ac1``, ``gwet_ac2``, ``cohen_kappa``, ``icc``
    (each with a ``*_ci95`` interval), ``pairable_units``, ``ratings``,
    ``missing_ratings``, ``methods`` and ``notes`` (why any value is None). Values are
    floats or None, never NaN. Ordered levels use quadratic weights for AC2 and Cohen's
    kappa; the ICC is ICC(2,1) (two-way random, single rater).
    """
    if not 0 <= seed < 2**32:
        raise InvalidInput("seed must be between 0 and 2**32 - 1", field="seed")
    if n_boot < 0 or n_boot > 100_000:
        raise InvalidInput("the number of bootstrap resamples must be 0-100,000",
                           field="n_boot")
    coded = _code(units, raters, values, level, scale, where or _where_default)
    matrix, _unit_ids, rater_ids = reliability_matrix(coded.units, coded.raters, coded.values)
    n_raters, n_units = matrix.shape
    present = ~np.isnan(matrix)
    per_unit = present.sum(axis=0)
    pairable = int(np.count_nonzero(per_unit >= 2))
    categories = np.unique(coded.values)
    notes: list[str] = []
    out: dict[str, Any] = {
        "units": n_units, "raters": n_raters, "n_raters": n_raters, "level": level,
        "ratings": int(present.sum()), "pairable_units": pairable,
        "missing_ratings": int(n_raters * n_units - present.sum()),
        "krippendorff_alpha": None, "alpha_ci95": None,
        "fleiss_kappa": None, "fleiss_kappa_ci95": None,
        "gwet_ac1": None, "gwet_ac1_ci95": None,
        "gwet_ac2": None, "gwet_ac2_ci95": None,
        "cohen_kappa": None, "cohen_kappa_ci95": None,
        "icc": None, "icc_ci95": None,
        "labels": coded.labels, "n_boot": n_boot, "seed": seed, "methods": {}, "notes": notes,
    }
    if coded.missing:
        notes.append(f"{coded.missing} empty value{'s' if coded.missing != 1 else ''} "
                     "treated as missing")
    single = int(np.count_nonzero(per_unit == 1))
    if single:
        notes.append(f"{single} unit{'s have' if single != 1 else ' has'} a single rating: "
                     "not pairable, left out of alpha")
    if n_raters < 2:
        notes.append(f"a single rater ({rater_ids[0]!r}): agreement needs at least two "
                     "raters, so every statistic is undefined")
        return out
    if level == "ratio" and categories[0] < 0:
        first = int(np.flatnonzero(coded.values < 0)[0])
        raise InvalidInput(f"{(where or _where_default)(coded.positions[first])}: value "
                           f"{coded.values[first]:g} is negative; the ratio level needs "
                           "values of 0 or more", field="value")
    if categories.size == 1:
        notes.append(f"all values are identical ({_show(categories[0], coded.labels)}): "
                     "alpha is undefined, as are the other coefficients, since no "
                     "disagreement is expected by chance")
        return out

    def rng(k: int) -> np.random.Generator | None:
        # One stream per statistic, so each interval does not depend on which others ran.
        return np.random.default_rng([seed, k]) if n_boot > 0 else None

    results: dict[str, Estimate] = {}
    resamples = max(n_boot, 1)

    def run(key: str, call: Callable[[], Estimate]) -> None:
        try:
            results[key] = call()
        except ValueError as exc:  # a statistic refusing these data: say why, go on
            results[key] = Estimate(None, None, pairable, _NAMES[key], reason=str(exc))

    run("krippendorff_alpha", lambda: krippendorff_alpha(
        matrix, level, rng=rng(0), n_resamples=resamples))  # type: ignore[arg-type]
    few = categories.size <= MAX_CATEGORIES
    ordered = level != "nominal"
    scale_categories = None
    if level == "ordinal" and scale is not None and float(scale[0]).is_integer() \
            and float(scale[1]).is_integer() and scale[1] - scale[0] < MAX_CATEGORIES:
        scale_categories = np.arange(scale[0], scale[1] + 1)
        if np.setdiff1d(categories, scale_categories).size:
            scale_categories = None  # values between the steps: use the observed ones
    if not few:
        notes.append(f"{categories.size} distinct values: too many to treat as categories "
                     f"(at most {MAX_CATEGORIES}), so Fleiss' kappa, Gwet's AC1/AC2 and "
                     "Cohen's kappa are left out")
    if few and level in ("nominal", "ordinal"):
        run("fleiss_kappa", lambda: fleiss_kappa(matrix, rng=rng(1), n_resamples=resamples))
    elif few:
        notes.append("Fleiss' kappa treats values as unordered categories: left out at the "
                     f"{level} level")
    if few:
        run("gwet_ac1", lambda: gwet_ac1(matrix, rng=rng(2), n_resamples=resamples))
        if ordered:
            run("gwet_ac2", lambda: gwet_ac2(matrix, "quadratic", scale_categories,
                                             rng=rng(3), n_resamples=resamples))
            out["gwet_ac2_weights"] = "quadratic"
    if not ordered:
        notes.append("Gwet's AC2 and the ICC are for ordered values: left out at the "
                     "nominal level")
    if n_raters == 2 and few:
        weights = "quadratic" if ordered else None
        labels = scale_categories if scale_categories is not None else categories
        run("cohen_kappa", lambda: cohen_kappa_weighted(
            matrix[0], matrix[1], weights, labels=labels,  # type: ignore[arg-type]
            rng=rng(4), n_resamples=resamples))
        out["cohen_kappa_weights"] = weights
    elif n_raters != 2:
        notes.append(f"Cohen's kappa is for two raters; there are {n_raters}")
    if level in ("interval", "ratio"):
        run("icc", lambda: icc(matrix, "ICC(2,1)", rng=rng(5), n_resamples=resamples))
        out["icc_kind"] = "ICC(2,1)"
    elif level == "ordinal":
        notes.append("the ICC is for interval or ratio values: left out at the ordinal level")
    for key, est in results.items():
        out[key] = est.value
        out["alpha_ci95" if key == "krippendorff_alpha" else f"{key}_ci95"] = \
            list(est.ci) if est.ci is not None else None
        out["methods"][key] = est.method
        if est.value is None:
            reason = est.reason or "undefined on these data"
            if key == "krippendorff_alpha" and reason == "all ratings are identical":
                reason = "all values are identical: alpha is undefined"
            name = _NAMES[key]
            notes.append(reason if reason.startswith(name) else f"{name}: {reason}")
        elif est.ci is None and n_boot > 0:
            notes.append(f"{_NAMES[key]}: no interval (too few units or resamples "
                         "undefined)")
    return out


def _show(value: float, labels: list[Any] | None) -> str:
    if labels is not None:
        return repr(labels[int(value)])
    return f"{value:g}"


# ------------------------------------------------------------------ CSV


def agreement_from_csv(path: str | Path, *, level: str = "nominal", unit: str = "unit",
                       rater: str = "rater", value: str = "value",
                       scale: tuple[float, float] | None = None, seed: int = 0,
                       n_boot: int = 1000, delimiter: str = ",") -> dict[str, Any]:
    """:func:`agreement_summary` of a long-format CSV file with a header row: one rating
    per row, columns ``unit``, ``rater`` and ``value`` (names configurable); an empty
    value is a missing rating. Messages name the file's line numbers."""
    if len(delimiter) != 1 or delimiter in "\r\n\"":
        raise InvalidInput(f"the delimiter must be one character other than a quote or a "
                           f"line break, got {delimiter!r}", field="delimiter")
    file = Path(path)
    if not file.is_file():
        raise NotFound(f"no file {str(file)!r}", field="file")
    try:
        with file.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle, delimiter=delimiter)
            header = reader.fieldnames
            if not header:
                raise InvalidInput(f"{file.name} is empty: expected a header row with the "
                                   f"columns {unit}, {rater}, {value}", field="file")
            for name, option in ((unit, "unit"), (rater, "rater"), (value, "value")):
                if name not in header:
                    raise InvalidInput(
                        f"unknown column {name!r} (--{option}): {file.name} has the "
                        f"columns {', '.join(repr(h) for h in header)}", field=option)
            us: list[str] = []
            rs: list[str] = []
            vs: list[str] = []
            lines: list[int] = []
            for row in reader:
                if None in row:
                    raise InvalidInput(f"line {reader.line_num} of {file.name} has more "
                                       "fields than the header", field="file")
                if all(not (x or "").strip() for x in row.values()):
                    continue  # a blank line
                us.append((row[unit] or "").strip())
                rs.append((row[rater] or "").strip())
                vs.append((row[value] or "").strip())
                lines.append(reader.line_num)
    except UnicodeDecodeError:
        raise InvalidInput(f"{file.name} is not UTF-8 text", field="file") from None
    except csv.Error as exc:
        raise InvalidInput(f"{file.name} is not a valid CSV file: {exc}", field="file") \
            from None
    if not us:
        raise InvalidInput(f"{file.name} has a header but no rows", field="file")
    result = agreement_summary(us, rs, vs, level, seed=seed, n_boot=n_boot, scale=scale,
                               where=lambda i: f"line {lines[i]}")
    result["file"] = str(file)
    result["columns"] = {"unit": unit, "rater": rater, "value": value}
    return result


# ------------------------------------------------------------------ stored feedback


def level_for(signal: Signal) -> str:
    """The level of measurement of a signal's values."""
    if signal.type in ("binary", "categorical", "pairwise"):
        return "nominal"
    if signal.type == "ordinal":
        return "ordinal"
    if signal.type == "numeric":
        return "interval"
    raise InvalidInput(f"signal {signal.name!r} is {signal.type}: free text has no "
                       "agreement statistic; use a binary, ordinal, numeric, categorical or "
                       "pairwise signal", field="signal")


def _resolve(conn: Connection, project: Project | str) -> Project:
    return project if isinstance(project, Project) else get_project(conn, project)


def resolve_campaign(conn: Connection, project: Project, campaign: Any) -> Any:
    """The ``campaigns`` row of ``campaign``: a campaign object (with ``id``), an id, or a
    name (a name that is all digits is tried as a name first)."""
    c = campaigns
    q = select(c).where(c.c.project_id == project.id)
    ident = getattr(campaign, "id", None)
    row = None
    if ident is not None:
        row = conn.execute(q.where(c.c.id == int(ident))).first()
    elif isinstance(campaign, int) and not isinstance(campaign, bool):
        row = conn.execute(q.where(c.c.id == campaign)).first()
    elif isinstance(campaign, str):
        row = conn.execute(q.where(c.c.name == campaign)).first()
        if row is None and campaign.isdigit():
            row = conn.execute(q.where(c.c.id == int(campaign))).first()
    if row is None:
        raise NotFound(f"no campaign {getattr(campaign, 'name', campaign)!r} in project "
                       f"{project.name!r}", field="campaign")
    return row


@dataclass
class Ratings:
    """One signal's human ratings, the latest per (unit, rater), oldest first. A unit is
    an interaction, or an ordered pair of interactions for a pairwise signal."""

    feedback_ids: list[int]
    units: list[tuple[int, int | None]]
    unit_names: list[tuple[str, str | None]]  # client ids
    raters: list[str]
    value: list[Any]  # typed, as stored (None unless fetched with typed=True)
    value_num: list[float | None]
    value_text: list[str | None]
    timestamps: list[datetime]
    comments: list[str | None]  # None unless fetched with typed=True
    items: list[int | None]  # campaign item id (campaign scope only)
    superseded: int  # earlier ratings of the same (unit, rater) left out

    def __len__(self) -> int:
        return len(self.raters)


def fetch_ratings(conn: Connection, project: Project, signal: Signal,
                  campaign_id: int | None = None, *, typed: bool = False) -> Ratings:
    """The signal's ratings from annotators and experts (with a rater id), all or only
    those linked to a campaign's assignments. A rater who rated the same unit again
    counts with the latest rating. ``typed`` also reads the stored JSON value and the
    comment (None otherwise: parsing them is a third of the time on large signals)."""
    f = feedback
    ia, ib = interactions.alias("ia"), interactions.alias("ib")
    columns = [f.c.id, f.c.interaction_id, f.c.interaction_b_id, ia.c.client_id,
               ib.c.client_id.label("client_b"), f.c.rater_id, f.c.value_num,
               f.c.value_text, f.c.timestamp]
    if typed:
        columns += [f.c.value, f.c.comment]
    source = f.join(ia, ia.c.id == f.c.interaction_id).outerjoin(
        ib, ib.c.id == f.c.interaction_b_id)
    if campaign_id is not None:
        link, a = annotation_links, assignments
        source = source.join(link, link.c.feedback_id == f.c.id).join(
            a, a.c.id == link.c.assignment_id)
        columns.append(a.c.item_id)
    q = select(*columns).select_from(source).where(
        f.c.project_id == project.id, f.c.signal_id == signal.id,
        f.c.source.in_(HUMAN_SOURCES), f.c.rater_id.is_not(None))
    if campaign_id is not None:
        q = q.where(annotation_links.c.campaign_id == campaign_id)
    latest: dict[tuple[tuple[int, int | None], str], Any] = {}
    total = 0
    for row in conn.execute(q.order_by(f.c.timestamp, f.c.id)):
        total += 1
        key = ((row.interaction_id, row.interaction_b_id), row.rater_id)
        latest.pop(key, None)  # re-inserted, so the dict keeps the time order of the latest
        latest[key] = row
    rows = list(latest.values())
    return Ratings(
        feedback_ids=[r.id for r in rows],
        units=[(r.interaction_id, r.interaction_b_id) for r in rows],
        unit_names=[(r.client_id, r.client_b) for r in rows],
        raters=[r.rater_id for r in rows],
        value=[r.value for r in rows] if typed else [None] * len(rows),
        value_num=[r.value_num for r in rows],
        value_text=[r.value_text for r in rows],
        timestamps=[as_utc(r.timestamp) for r in rows],  # type: ignore[misc]
        comments=[r.comment for r in rows] if typed else [None] * len(rows),
        items=[r.item_id if campaign_id is not None else None for r in rows],
        superseded=total - len(rows),
    )


def _label_codes(signal: Signal, ratings: Ratings) -> tuple[np.ndarray, dict[str, int]]:
    """Numbers for a signal's values: value_num for binary/ordinal/numeric, the label's
    position (the signal's label order, then first appearance) for text labels."""
    if signal.type in ("categorical", "pairwise"):
        known = list(signal.labels or ()) if signal.type == "categorical" else \
            ["a", "b", "tie"]
        index = {label: k for k, label in enumerate(known)}
        for t in ratings.value_text:
            if t is not None:
                index.setdefault(t, len(index))
        return np.array([index[t] if t is not None else np.nan
                         for t in ratings.value_text], dtype=float), index
    return np.array([x if x is not None else np.nan for x in ratings.value_num],
                    dtype=float), {}


def _gold_values(conn: Connection, project: Project, signal: Signal,
                 campaign_id: int | None, index: dict[str, int]
                 ) -> dict[tuple[int, int | None], float]:
    """Gold value (as a number or label code) per unit, from the campaign's gold items
    (every campaign of the project without one); the latest campaign wins."""
    ci, c = campaign_items, campaigns
    q = select(ci.c.interaction_id, ci.c.interaction_b_id, ci.c.gold_value).join(
        c, c.c.id == ci.c.campaign_id).where(c.c.project_id == project.id,
                                             ci.c.is_gold.is_(True))
    if campaign_id is not None:
        q = q.where(ci.c.campaign_id == campaign_id)
    gold: dict[tuple[int, int | None], float] = {}
    spec = signal.spec()
    for row in conn.execute(q.order_by(c.c.id, ci.c.id)):
        raw = (row.gold_value or {}).get(signal.name) if isinstance(row.gold_value, dict) \
            else None
        if raw is None:
            continue
        try:
            _, num, text = coerce_value(spec, raw)
        except ValueError:
            continue  # a gold value that no longer fits the signal: not scored
        if text is not None and signal.type in ("categorical", "pairwise"):
            code = index.setdefault(text, len(index))
            gold[(row.interaction_id, row.interaction_b_id)] = float(code)
        elif num is not None:
            gold[(row.interaction_id, row.interaction_b_id)] = float(num)
    return gold


def _scale(signal: Signal) -> tuple[float, float] | None:
    if signal.type == "binary":
        return (0.0, 1.0)
    if signal.scale_min is not None and signal.scale_max is not None:
        return (float(signal.scale_min), float(signal.scale_max))
    return None


def project_agreement(store: Store, project: Project | str, signal: str, *,
                      campaign: Any = None, seed: int = 0, n_boot: int = 1000,
                      level: str | None = None, window: int = 50, min_items: int = 20,
                      drift_threshold: float | None = None) -> dict[str, Any]:
    """Agreement on a signal's stored human ratings (sources annotator and expert), with
    each rater's consensus agreement and gold accuracy over time.

    Returns :func:`agreement_summary`'s keys, with ``raters`` the per-rater list (the count
    is ``n_raters``): ``{"rater", "n", "n_compared", "consensus_agreement", "gold_n",
    "gold_accuracy", "windows": [...], "latest", "drift", "drift_reasons"}`` (see
    :mod:`feedbackloop.stats.agreement.raters`; window ``start``/``end`` are ISO times);
    plus ``project``, ``signal``, ``signal_type``, ``campaign``, ``drift_threshold`` (the
    campaign's, else 0.6), ``window``, ``min_items``, ``superseded`` and ``calibration``
    (the items with the most disagreement, for a calibration campaign; else None).
    """
    if not 1 <= window <= 1_000_000:
        raise InvalidInput("the window must be 1-1,000,000 annotations", field="window")
    if not 1 <= min_items <= 1_000_000:
        raise InvalidInput("min_items must be 1-1,000,000", field="min_items")
    if drift_threshold is not None and not 0.0 <= drift_threshold <= 1.0:
        raise InvalidInput("the drift threshold must be between 0 and 1",
                           field="drift_threshold")
    with store.read() as conn:
        proj = _resolve(conn, project)
        sig = get_signal(conn, proj.id, signal)
        lvl = level or level_for(sig)
        if lvl not in LEVELS:
            raise InvalidInput(f"level must be one of {', '.join(LEVELS)}; got {lvl!r}",
                               field="level")
        if sig.type == "text":
            level_for(sig)
        camp = resolve_campaign(conn, proj, campaign) if campaign is not None else None
        threshold = drift_threshold if drift_threshold is not None else (
            float(camp.drift_threshold) if camp is not None else DEFAULT_DRIFT_THRESHOLD)
        ratings = fetch_ratings(conn, proj, sig, camp.id if camp is not None else None)
        codes, index = _label_codes(sig, ratings)
        gold_map = _gold_values(conn, proj, sig, camp.id if camp is not None else None,
                                index)
    where_name = f"signal {sig.name!r}" + (f" in campaign {camp.name!r}" if camp else "")
    if not len(ratings):
        raise InvalidInput(f"no ratings from annotators or experts on {where_name}",
                           field="signal")
    scale = _scale(sig) if lvl != "nominal" else None
    summary = agreement_summary(
        ratings.units, ratings.raters, codes.tolist(), lvl, seed=seed, n_boot=n_boot,
        scale=scale, where=lambda i: f"feedback {ratings.feedback_ids[i]}")
    if sig.type in ("categorical", "pairwise"):
        summary["labels"] = sorted(index, key=index.__getitem__)
    gold = np.array([gold_map.get(u, np.nan) for u in ratings.units], dtype=float)
    epoch = np.array([t.timestamp() for t in ratings.timestamps], dtype=float)
    per_rater = rater_reliability(
        ratings.units, ratings.raters, codes, epoch, level=lvl, gold=gold, scale=scale,
        window=window, min_items=min_items, threshold=threshold)
    raters_out = []
    for rr in per_rater:
        entry = rr.to_dict()
        for w in [*entry["windows"], entry["latest"]]:
            w["start"] = _iso(w["start"])
            w["end"] = _iso(w["end"])
        raters_out.append(entry)
    summary["raters"] = raters_out
    summary.update({
        "project": proj.name, "signal": sig.name, "signal_type": sig.type,
        "campaign": camp.name if camp is not None else None,
        "drift_threshold": threshold, "window": window, "min_items": min_items,
        "superseded": ratings.superseded, "calibration": None,
    })
    if ratings.superseded:
        summary["notes"].append(
            f"{ratings.superseded} earlier rating{'s' if ratings.superseded != 1 else ''} "
            "of a unit by the same rater replaced by the rater's latest")
    if camp is not None and camp.kind == "calibration":
        summary["calibration"] = calibration_report(store, proj, camp, signal=sig.name)
    return summary


def _iso(epoch: float) -> str:
    from datetime import UTC

    return datetime.fromtimestamp(epoch, UTC).isoformat()


# ------------------------------------------------------------------ calibration


def calibration_report(store: Store, project: Project | str, campaign: Any, *,
                       top: int = 20, signal: str | None = None) -> list[dict[str, Any]]:
    """A calibration campaign's items with the most disagreement, most first, for the
    raters to discuss: each with every rater's value and comment.

    Disagreement of an item is the share of rater pairs that disagree (unordered labels) or
    the mean absolute difference between pairs of raters as a share of the scale (ordered
    values); items with fewer than two ratings are left out. ``signal`` limits it to one of
    the campaign's signals. Works on any campaign; calibration campaigns (all raters label
    the same set) are what it is for.
    """
    if top < 1:
        raise InvalidInput("top must be at least 1", field="top")
    entries: list[dict[str, Any]] = []
    with store.read() as conn:
        proj = _resolve(conn, project)
        camp = resolve_campaign(conn, proj, campaign)
        names = [s.get("signal") for s in (camp.signals or []) if isinstance(s, dict)]
        if signal is not None:
            if signal not in names:
                raise NotFound(f"campaign {camp.name!r} has no signal {signal!r} (signals: "
                               f"{', '.join(str(n) for n in names)})", field="signal")
            names = [signal]
        for name in names:
            sig = get_signal(conn, proj.id, str(name))
            if sig.type == "text":
                continue
            ratings = fetch_ratings(conn, proj, sig, camp.id, typed=True)
            codes, _ = _label_codes(sig, ratings)
            item_rows = {r.id: r for r in conn.execute(
                select(campaign_items).where(campaign_items.c.campaign_id == camp.id))}
            entries += _disagreements(sig, ratings, codes, item_rows)
    entries.sort(key=lambda e: (-e["disagreement"], e["item"] if e["item"] is not None
                                else 0, e["signal"]))
    return entries[:top]


def _disagreements(sig: Signal, ratings: Ratings, codes: np.ndarray,
                   item_rows: dict[int, Any]) -> list[dict[str, Any]]:
    by_unit: dict[tuple[int, int | None], list[int]] = {}
    for i, u in enumerate(ratings.units):
        by_unit.setdefault(u, []).append(i)
    ordered = level_for(sig) != "nominal"
    scale = _scale(sig)
    if ordered and scale is None:
        finite = codes[~np.isnan(codes)]
        scale = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    width = (scale[1] - scale[0]) if scale is not None and scale[1] > scale[0] else 1.0
    out = []
    for indices in by_unit.values():
        x = codes[indices]
        if x.size < 2:
            continue
        diff = np.abs(np.subtract.outer(x, x))
        pairs = x.size * (x.size - 1)
        if ordered:
            disagreement = float(diff.sum() / pairs / width)
        else:
            disagreement = float(np.count_nonzero(diff) / pairs)
        first = indices[0]
        item_id = ratings.items[first]
        item = item_rows.get(item_id) if item_id is not None else None
        gold_value = None
        if item is not None and item.is_gold and isinstance(item.gold_value, dict):
            gold_value = item.gold_value.get(sig.name)
        out.append({
            "item": item.position if item is not None else None,
            "item_id": item.id if item is not None else None,
            "interaction": ratings.unit_names[first][0],
            "interaction_b": ratings.unit_names[first][1],
            "signal": sig.name, "disagreement": disagreement, "n_ratings": int(x.size),
            "is_gold": bool(item.is_gold) if item is not None else False,
            "gold_value": gold_value,
            "mean": float(x.mean()) if ordered else None,
            "ratings": [{"rater": ratings.raters[i], "value": ratings.value[i],
                         "comment": ratings.comments[i]} for i in indices],
        })
    return out
