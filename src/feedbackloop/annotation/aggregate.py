"""Aggregated labels from a signal's human ratings, saved with the method that made them.

Methods (the pure algorithms live in :mod:`feedbackloop.stats.aggregation`):

``majority``
    Binary, categorical, ordinal and pairwise signals. Each item gets its most frequent
    value (ties go to the first value in the signal's order: false before true, the
    lower ordinal value, the label listed first, a before b before tie); ``confidence`` is
    the winning vote share.
``dawid-skene``
    Binary, categorical and ordinal signals. Dawid and Skene's (1979) EM estimates each
    rater's confusion matrix and every item's posterior over the true label; the label
    is the posterior mode and ``confidence`` its posterior probability. The summary holds
    each rater's confusion matrix (rows: true label, columns: given label), the class
    priors and the EM's convergence.
``mean``
    Binary, ordinal and numeric signals. The rater-bias-corrected mean (an additive
    rater-bias model, value = item mean + rater bias + noise); ``se`` is the residual
    standard deviation over the square root of the item's ratings (``None`` when the
    model has no residual degrees of freedom); the summary holds each rater's bias.
``bradley-terry``
    Pairwise signals. Every rating of a pair (a = the item's interaction won, b = the
    second interaction won) is one comparison between the two interactions' MODEL
    VERSIONS; a tie counts half a win to each side (``ties="half"``, the default) or is
    dropped (``ties="drop"``); pairs from the same version, or an interaction without a
    version, are left out. The summary ranks the versions by Bradley-Terry strength with
    Wald 95 % intervals; the per-pair labels are the pair's majority preference.

An aggregation is saved in ``aggregations`` (method, parameters, summary) with one row per
item in ``aggregated_labels``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable
from typing import Any, cast

import numpy as np
from sqlalchemy import Connection, select

from ..capture.projects import Project, Signal, get_project, get_signal
from ..errors import InvalidInput, NotFound
from ..stats.aggregation import BradleyTerry, DawidSkene, MajorityVote, RaterBiasCorrectedMean
from ..store import Store, as_utc, utcnow
from ..store.tables import aggregated_labels, aggregations, campaigns, interactions, signals
from .reliability import Ratings, fetch_ratings, resolve_campaign

__all__ = ["METHODS", "SIGNAL_TYPES", "aggregate", "get_aggregation", "latest_aggregation"]

SIGNAL_TYPES: dict[str, tuple[str, ...]] = {
    "majority": ("binary", "categorical", "ordinal", "pairwise"),
    "dawid-skene": ("binary", "categorical", "ordinal"),
    "mean": ("binary", "ordinal", "numeric"),
    "bradley-terry": ("pairwise",),
}
METHODS = tuple(SIGNAL_TYPES)
_SUGGEST = {"numeric": "mean", "pairwise": "bradley-terry or majority",
            "categorical": "majority or dawid-skene", "binary": "majority or dawid-skene",
            "ordinal": "majority, dawid-skene or mean"}
_CHUNK = 5000


def _resolve(conn: Connection, project: Project | str) -> Project:
    return project if isinstance(project, Project) else get_project(conn, project)


def _check_method(method: str, sig: Signal) -> None:
    if method not in SIGNAL_TYPES:
        raise InvalidInput(f"method must be one of {', '.join(METHODS)}; got {method!r}",
                           field="method")
    if sig.type not in SIGNAL_TYPES[method]:
        hint = f"; for a {sig.type} signal use {_SUGGEST[sig.type]}" \
            if sig.type in _SUGGEST else ""
        raise InvalidInput(f"method {method!r} aggregates {', '.join(SIGNAL_TYPES[method])} "
                           f"signals; signal {sig.name!r} is {sig.type}{hint}",
                           field="method")


def _typed(sig: Signal, key: Any) -> Any:
    """The JSON value of a label key (value_num for numbers, value_text for labels)."""
    if sig.type == "binary":
        return bool(key)
    if sig.type == "ordinal":
        return int(key)
    return key


def _keys(sig: Signal, ratings: Ratings) -> list[Any]:
    if sig.type in ("categorical", "pairwise"):
        return list(ratings.value_text)
    return list(ratings.value_num)


def _label_order(sig: Signal, keys: list[Any]) -> list[Any]:
    if sig.type == "categorical":
        known = list(sig.labels or ())
        return known + sorted({k for k in keys} - set(known))
    if sig.type == "pairwise":
        return ["a", "b", "tie"]
    return sorted(set(keys))


def aggregate(store: Store, project: Project | str, signal: str, method: str, *,
              campaign: Any = None, save: bool = True, created_by: str = "", seed: int = 0,
              ties: str = "half") -> dict[str, Any]:
    """Aggregate the signal's human ratings (sources annotator and expert; a campaign's
    only with ``campaign``) by ``method`` (see the module docstring) and save the result.

    Returns ``{"id", "method", "signal", "campaign", "n_items", "labels": [{"interaction",
    "interaction_b", "value", "confidence", "se", "n_ratings"}], "summary", "params",
    "created_by", "created_at"}``; ``id`` is None with ``save=False``. ``seed`` is kept
    for reproducibility records (the methods are deterministic).
    """
    if ties not in ("half", "drop"):
        raise InvalidInput(f"ties must be 'half' or 'drop', got {ties!r}", field="ties")
    with store.read() as conn:
        proj = _resolve(conn, project)
        sig = get_signal(conn, proj.id, signal)
        _check_method(method, sig)
        camp = resolve_campaign(conn, proj, campaign) if campaign is not None else None
        ratings = fetch_ratings(conn, proj, sig, camp.id if camp is not None else None)
        versions = _versions(conn, ratings) if method == "bradley-terry" else {}
    scope = f"signal {sig.name!r}" + (f" in campaign {camp.name!r}" if camp else "")
    if not len(ratings):
        raise InvalidInput(f"no ratings from annotators or experts on {scope}: nothing to "
                           "aggregate", field="signal")
    if method == "majority":
        labels, summary = _majority(sig, ratings)
    elif method == "dawid-skene":
        labels, summary = _dawid_skene(sig, ratings)
    elif method == "mean":
        labels, summary = _mean(ratings)
    else:
        labels, summary = _bradley_terry(ratings, versions, ties)
    summary["n_ratings"] = len(ratings)
    summary["n_raters"] = len(set(ratings.raters))
    summary["superseded"] = ratings.superseded
    params: dict[str, Any] = {"ties": ties} if method == "bradley-terry" else {}
    params["seed"] = seed
    created_at = utcnow()
    result = {"id": None, "project": proj.name, "method": method, "signal": sig.name,
              "campaign": camp.name if camp is not None else None, "n_items": len(labels),
              "labels": [_public(x) for x in labels], "summary": summary, "params": params,
              "created_by": created_by, "created_at": created_at.isoformat()}
    if not save:
        return result
    with store.transaction() as conn:
        new = conn.execute(aggregations.insert().values(
            project_id=proj.id, signal_id=sig.id, campaign_id=camp.id if camp else None,
            method=method, params=params, summary=summary, n_items=len(labels),
            created_by=created_by, created_at=created_at)).inserted_primary_key
        agg_id = int(new[0])  # type: ignore[index]
        rows = [{"aggregation_id": agg_id, "interaction_id": x["unit"][0],
                 "interaction_b_id": x["unit"][1], "value": x["value"],
                 "value_num": x["value_num"], "confidence": x["confidence"], "se": x["se"],
                 "n_ratings": x["n_ratings"]} for x in labels]
        for start in range(0, len(rows), _CHUNK):
            conn.execute(aggregated_labels.insert(), rows[start:start + _CHUNK])
    result["id"] = agg_id
    return result


def _public(label: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in label.items() if k not in ("unit", "value_num")}


def _label(ratings: Ratings, unit: tuple[int, int | None], value: Any, value_num: Any,
           confidence: float | None, se: float | None, n: int) -> dict[str, Any]:
    return {"unit": unit, "interaction": None, "interaction_b": None, "value": value,
            "value_num": value_num, "confidence": confidence, "se": se, "n_ratings": n}


def _name_units(ratings: Ratings, labels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = dict(zip(ratings.units, ratings.unit_names, strict=True))
    for x in labels:
        x["interaction"], x["interaction_b"] = names[x["unit"]]
    return labels


def _num(sig: Signal, value: Any) -> float | None:
    if sig.type == "pairwise":
        return {"a": 1.0, "b": 0.0, "tie": 0.5}.get(value)
    if isinstance(value, bool | int | float):
        return float(value)
    return None


def _unit(key: Hashable) -> tuple[int, int | None]:
    return cast("tuple[int, int | None]", key)


def _counts(ratings: Ratings) -> Counter[tuple[int, int | None]]:
    return Counter(ratings.units)


def _majority(sig: Signal, ratings: Ratings) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    keys = _keys(sig, ratings)
    order = _label_order(sig, keys)
    rank = {k: i for i, k in enumerate(order)}
    # MajorityVote breaks ties in label order; ranks make that the signal's order.
    mv = MajorityVote().fit(ratings.units, ratings.raters, [rank[k] for k in keys])
    n = _counts(ratings)
    labels, tied = [], 0
    for unit, code in mv.labels_.items():
        unit_t = _unit(unit)
        shares = mv.probas_[unit]
        top = max(shares.values())
        tied += sum(1 for s in shares.values() if s == top) > 1
        value = _typed(sig, order[int(code)])  # type: ignore[call-overload]
        labels.append(_label(ratings, unit_t, value, _num(sig, value),
                             float(mv.confidence_[unit]), None, n[unit_t]))
    counts = Counter(x["value"] for x in labels)
    summary = {"classes": [_typed(sig, k) for k in order],
               "label_counts": {str(_typed(sig, k)): counts.get(_typed(sig, k), 0)
                                for k in order},
               "ties": tied,
               "tie_rule": "a tie goes to the first tied value in the signal's order"}
    return _name_units(ratings, labels), summary


def _dawid_skene(sig: Signal, ratings: Ratings) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    keys = _keys(sig, ratings)
    order = _label_order(sig, keys)
    rank = {k: i for i, k in enumerate(order)}
    ds = DawidSkene().fit(ratings.units, ratings.raters, [rank[k] for k in keys])
    classes = [order[int(c)] for c in ds.classes_]  # type: ignore[call-overload]
    n = _counts(ratings)
    mv = MajorityVote().fit(ratings.units, ratings.raters, [rank[k] for k in keys])
    labels, changed = [], 0
    for unit, code in ds.labels_.items():
        unit_t = _unit(unit)
        value = _typed(sig, order[int(code)])  # type: ignore[call-overload]
        changed += code != mv.labels_[unit]
        labels.append(_label(ratings, unit_t, value, _num(sig, value),
                             float(max(ds.probas_[unit].values())), None,
                             n[unit_t]))
    typed = [_typed(sig, c) for c in classes]
    summary = {
        "classes": typed,
        "priors": {str(t): ds.priors_[c] for t, c in zip(typed, ds.classes_, strict=True)},
        "confusion": {str(rater): np.round(m, 6).tolist() for rater, m in ds.errors_.items()},
        "rater_accuracy": {str(rater): float(np.dot(
            np.array([ds.priors_[c] for c in ds.classes_]), np.diag(m)))
            for rater, m in ds.errors_.items()},
        "confusion_axes": "rows: true label, columns: given label, both in 'classes' order",
        "n_iter": ds.n_iter_, "converged": ds.converged_,
        "log_likelihood": ds.log_likelihood_,
        "changed_from_majority": int(changed),
    }
    return _name_units(ratings, labels), summary


def _mean(ratings: Ratings) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    values = np.array(ratings.value_num, dtype=float)
    model = RaterBiasCorrectedMean().fit(ratings.units, ratings.raters, values)
    n = _counts(ratings)
    means = np.array([model.means_[u] for u in ratings.units])
    biases = np.array([model.biases_[r] for r in ratings.raters])
    residual = values - means - biases
    n_items, n_raters = len(model.means_), len(model.biases_)
    dof = values.size - n_items - n_raters + 1
    sd = float(math.sqrt(float(residual @ residual) / dof)) if dof > 0 else None
    labels = []
    for unit, mu in model.means_.items():
        unit_t = _unit(unit)
        count = n[unit_t]
        se = sd / math.sqrt(count) if sd is not None else None
        labels.append(_label(ratings, unit_t, float(mu), float(mu), None,
                             se, count))
    summary = {"biases": {str(r): float(b) for r, b in model.biases_.items()},
               "residual_sd": sd, "residual_dof": max(dof, 0),
               "n_iter": model.n_iter_, "converged": model.converged_,
               "se_rule": "residual standard deviation / sqrt(ratings of the item)"}
    return _name_units(ratings, labels), summary


def _versions(conn: Connection, ratings: Ratings) -> dict[int, str | None]:
    ids = sorted({i for u in ratings.units for i in u if i is not None})
    out: dict[int, str | None] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        q = select(interactions.c.id, interactions.c.model_version).where(
            interactions.c.id.in_(chunk))
        out.update({r.id: r.model_version for r in conn.execute(q)})
    return out


def _bradley_terry(ratings: Ratings, versions: dict[int, str | None],
                   ties: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    winners: list[Hashable] = []
    losers: list[Hashable] = []
    tie_flags: list[bool] = []
    dropped = Counter[str]()
    record: dict[str, Counter[str]] = {}
    for unit, value in zip(ratings.units, ratings.value_text, strict=True):
        a, b = versions.get(unit[0]), versions.get(unit[1]) if unit[1] is not None else None
        if a is None or b is None:
            dropped["no model version"] += 1
            continue
        if a == b:
            dropped["same model version on both sides"] += 1
            continue
        if value == "tie" and ties == "drop":
            dropped["tie (ties='drop')"] += 1
            continue
        for v in (a, b):
            record.setdefault(v, Counter())
        if value == "tie":
            record[a]["ties"] += 1
            record[b]["ties"] += 1
        else:
            win, lose = (a, b) if value == "a" else (b, a)
            record[win]["wins"] += 1
            record[lose]["losses"] += 1
        winners.append(a if value != "b" else b)
        losers.append(b if value != "b" else a)
        tie_flags.append(value == "tie")
    if len(record) < 2:
        reasons = ", ".join(f"{n} {why}" for why, n in dropped.items()) or "none"
        raise InvalidInput("Bradley-Terry needs comparisons between at least two model "
                           f"versions; left out: {reasons}", field="signal")
    bt = BradleyTerry().fit(winners, losers, tie_flags)
    ranking = []
    for rank, version in enumerate(bt.ranking_, start=1):
        c = record[str(version)]
        ranking.append({"rank": rank, "model_version": version,
                        "score": bt.scores_[version], "se": bt.se_[version],
                        "ci95": list(bt.ci_[version]), "wins": c["wins"],
                        "losses": c["losses"], "ties": c["ties"],
                        "comparisons": c["wins"] + c["losses"] + c["ties"]})
    # Per pair: the majority preference among its raters, confidence = vote share.
    by_unit: dict[tuple[int, int | None], Counter[str]] = {}
    for unit, value in zip(ratings.units, ratings.value_text, strict=True):
        by_unit.setdefault(unit, Counter())[str(value)] += 1
    labels = []
    for unit, votes in by_unit.items():
        total = sum(votes.values())
        best = max(("a", "b", "tie"), key=lambda k: (votes[k], -("a", "b", "tie").index(k)))
        labels.append(_label(ratings, unit, best, _num_pair(best), votes[best] / total,
                             None, total))
    summary = {
        "ranking": ranking, "ties": ties,
        "tie_rule": ("a tie counts half a win to each version" if ties == "half"
                     else "ties are left out"),
        "score_scale": "log-strength, mean zero; P(i beats j) = 1 / (1 + exp(s_j - s_i))",
        "n_comparisons": len(winners), "dropped": dict(dropped),
        "n_iter": bt.n_iter_, "converged": bt.converged_,
    }
    return _name_units(ratings, labels), summary


def _num_pair(value: str) -> float:
    return {"a": 1.0, "b": 0.0, "tie": 0.5}[value]


# ------------------------------------------------------------------ reading back


def _aggregation_dict(conn: Connection, proj: Project, row: Any,
                      labels: bool) -> dict[str, Any]:
    sig_name = conn.execute(select(signals.c.name).where(signals.c.id == row.signal_id)
                            ).scalar_one()
    camp = None
    if row.campaign_id is not None:
        camp = conn.execute(select(campaigns.c.name).where(campaigns.c.id == row.campaign_id)
                            ).scalar_one_or_none()
    out: dict[str, Any] = {
        "id": row.id, "project": proj.name, "method": row.method, "signal": sig_name,
        "campaign": camp, "n_items": row.n_items, "summary": row.summary,
        "params": row.params, "created_by": row.created_by,
        "created_at": as_utc(row.created_at).isoformat(),  # type: ignore[union-attr]
    }
    if labels:
        al = aggregated_labels
        ia, ib = interactions.alias("ia"), interactions.alias("ib")
        q = select(ia.c.client_id, ib.c.client_id.label("client_b"), al.c.value,
                   al.c.confidence, al.c.se, al.c.n_ratings).select_from(
            al.join(ia, ia.c.id == al.c.interaction_id).outerjoin(
                ib, ib.c.id == al.c.interaction_b_id)).where(
            al.c.aggregation_id == row.id).order_by(al.c.id)
        out["labels"] = [{"interaction": r.client_id, "interaction_b": r.client_b,
                          "value": r.value, "confidence": r.confidence, "se": r.se,
                          "n_ratings": r.n_ratings} for r in conn.execute(q)]
    return out


def get_aggregation(conn: Connection, project: Project | str, aggregation_id: int, *,
                    labels: bool = True) -> dict[str, Any]:
    """A saved aggregation with its labels (``labels=False``: without them)."""
    proj = _resolve(conn, project)
    row = conn.execute(select(aggregations).where(
        aggregations.c.id == aggregation_id, aggregations.c.project_id == proj.id)).first()
    if row is None:
        raise NotFound(f"no aggregation {aggregation_id} in project {proj.name!r}",
                       field="aggregation")
    return _aggregation_dict(conn, proj, row, labels)


def latest_aggregation(conn: Connection, project: Project | str, signal: str, *,
                       campaign: Any = None, method: str | None = None,
                       labels: bool = True) -> dict[str, Any] | None:
    """The newest saved aggregation of ``signal`` (of a campaign, of a method), or None."""
    proj = _resolve(conn, project)
    sig = get_signal(conn, proj.id, signal)
    a = aggregations
    q = select(a).where(a.c.project_id == proj.id, a.c.signal_id == sig.id)
    if campaign is not None:
        q = q.where(a.c.campaign_id == resolve_campaign(conn, proj, campaign).id)
    if method is not None:
        if method not in METHODS:
            raise InvalidInput(f"method must be one of {', '.join(METHODS)}; got {method!r}",
                               field="method")
        q = q.where(a.c.method == method)
    row = conn.execute(q.order_by(a.c.created_at.desc(), a.c.id.desc()).limit(1)).first()
    return _aggregation_dict(conn, proj, row, labels) if row is not None else None
