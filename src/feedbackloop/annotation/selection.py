"""Selection policies: which interactions a campaign puts in front of its raters.

Every policy, built-in or plug-in, is an entry point of the group
``feedbackloop.selection_policies``; the entry point's name is the policy's name and its
value a class (or factory) taking no arguments::

    [project.entry-points."feedbackloop.selection_policies"]
    novelty = "acme_policies:Novelty"

A policy ranks candidates (:meth:`SelectionPolicy.rank`): it returns up to ``limit``
interactions (or pairs) best first, so that any prefix of the ranking is a good selection
of that size. Selection happens once, when the campaign is created; a mix of policies
takes each policy's share of the budget from the top of its ranking, skips what another
policy took already, and fills a policy's shortfall from the others' rankings (the
campaign's selection notes say so). Candidate work runs in SQL and numpy: a project of a
million interactions is ranked in a few seconds.

Options shared by every policy (item filters): ``model_version`` (a name or a list),
``since`` and ``until`` (ISO times bounding the interaction's timestamp, ``until``
exclusive), ``attributes`` ({key: value}, all must match). Pairwise campaigns take
``versions`` ([a, b]: the two model versions to compare).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import EntryPoint
from typing import Any, Protocol, runtime_checkable

import numpy as np
from sqlalchemy import Connection, and_, func, select

from ..capture.browse import _attribute_equals, _db_ts
from ..capture.projects import Project, Signal, get_signal
from ..errors import ConfigurationError, InvalidInput, NotFound
from ..plugins import PluginGroup, origin
from ..store.tables import feedback, interactions

__all__ = [
    "FILTER_OPTIONS",
    "GROUP",
    "Candidates",
    "Ranked",
    "Selection",
    "SelectionContext",
    "SelectionPolicy",
    "available_policies",
    "clear_policy_cache",
    "get_policy",
    "normalise_policy",
    "select_items",
]

GROUP = "feedbackloop.selection_policies"
FILTER_OPTIONS = ("model_version", "since", "until", "attributes", "versions", "gold")
"""Options every campaign accepts besides its policies' own."""
HUMAN_SOURCES = ("end_user", "annotator", "expert")


# -- what policies see and return ------------------------------------------------------------
@dataclass
class Ranked:
    """A policy's ranking, best first: interaction keys (``a``; ``b`` for pairs), and
    optionally a score and a stratum per item."""

    a: np.ndarray
    b: np.ndarray | None = None
    score: np.ndarray | None = None
    stratum: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.a.size)

    def take(self, idx: np.ndarray) -> Ranked:
        return Ranked(self.a[idx], None if self.b is None else self.b[idx],
                      None if self.score is None else self.score[idx],
                      None if self.stratum is None else self.stratum[idx], list(self.notes))


@dataclass
class Candidates:
    """The interactions a campaign may select (after filters and exclusions): primary
    keys ascending; for pairwise campaigns the pairs ``(a, b)`` and their versions."""

    ids: np.ndarray
    b: np.ndarray | None = None
    versions: tuple[np.ndarray, np.ndarray] | None = None


@dataclass
class SelectionContext:
    """What a policy may read: the connection, the project, the campaign's signals, its
    options, and the candidates (fetched on first use)."""

    conn: Connection
    project: Project
    signals: list[Signal]
    options: dict[str, Any]
    seed: int = 0
    exclude: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    _candidates: Candidates | None = None

    @property
    def pairwise(self) -> bool:
        return any(s.type == "pairwise" for s in self.signals)

    def candidates(self) -> Candidates:
        if self._candidates is None:
            self._candidates = _fetch_candidates(self)
        return self._candidates

    def signal(self, name: Any, option: str) -> Signal:
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"option {option} must name a signal", field=f"options.{option}")
        try:
            return get_signal(self.conn, self.project.id, name)
        except NotFound:
            raise NotFound(f"option {option}: no signal {name!r} in this project",
                           field=f"options.{option}") from None

    def default_signal(self, option: str) -> Signal:
        """The campaign's signal when it has exactly one that a policy can use."""
        usable = [s for s in self.signals if s.type not in ("text", "pairwise")]
        if len(usable) != 1:
            raise InvalidInput(f"name the signal with option {option} (the campaign has "
                               f"{len(usable)} candidate signals)", field=f"options.{option}")
        return usable[0]


@runtime_checkable
class SelectionPolicy(Protocol):
    """A selection policy. ``options`` names the options it reads (besides the filters);
    ``pairwise`` says whether it can rank pairs."""

    name: str
    options: tuple[str, ...]
    pairwise: bool

    def rank(self, ctx: SelectionContext, limit: int, rng: np.random.Generator) -> Ranked:
        ...


# -- candidates ---------------------------------------------------------------------------------
def _as_list(value: Any, option: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"option {option} must be a name or a list of names",
                           field=f"options.{option}")
    for v in value:
        if len(v) > 200 or "\x00" in v:
            raise InvalidInput(f"option {option}: at most 200 characters without NUL",
                               field=f"options.{option}")
    return list(value)


def parse_time(value: Any, option: str) -> datetime:
    if isinstance(value, datetime):
        ts = value
    elif isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInput(f"option {option} {value!r} is not an ISO 8601 date or time",
                               field=f"options.{option}") from None
    else:
        raise InvalidInput(f"option {option} must be an ISO 8601 date or time",
                           field=f"options.{option}")
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def check_filters(options: dict[str, Any]) -> None:
    """InvalidInput naming the first malformed filter option."""
    if "model_version" in options:
        _as_list(options["model_version"], "model_version")
    since = parse_time(options["since"], "since") if options.get("since") else None
    until = parse_time(options["until"], "until") if options.get("until") else None
    if since is not None and until is not None and since >= until:
        raise InvalidInput("option since must be before until", field="options.since")
    attrs = options.get("attributes")
    if attrs is not None:
        if not isinstance(attrs, dict):
            raise InvalidInput("option attributes must be an object {key: value}",
                               field="options.attributes")
        for k, v in attrs.items():
            if not isinstance(v, str | int | float | bool) or len(str(k)) > 200 \
                    or len(str(v)) > 200 or "\x00" in str(k) + str(v):
                raise InvalidInput(f"option attributes.{k} must be a short text, number or "
                                   "true/false", field=f"options.attributes.{k}")
    if "versions" in options:
        versions = _as_list(options["versions"], "versions")
        if len(versions) != 2 or versions[0] == versions[1]:
            raise InvalidInput("option versions names two different model versions",
                               field="options.versions")


def _filtered(ctx: SelectionContext, *columns: Any) -> Any:
    i = interactions
    opts = ctx.options
    q = select(*columns).where(i.c.project_id == ctx.project.id)
    if opts.get("model_version"):
        q = q.where(i.c.model_version.in_(_as_list(opts["model_version"], "model_version")))
    if opts.get("since"):
        q = q.where(i.c.timestamp >= _db_ts(ctx.conn, parse_time(opts["since"], "since")))
    if opts.get("until"):
        q = q.where(i.c.timestamp < _db_ts(ctx.conn, parse_time(opts["until"], "until")))
    for key, value in (opts.get("attributes") or {}).items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        q = q.where(_attribute_equals(ctx.conn, str(key), text))
    return q


def fetch_raw(conn: Connection, q: Any) -> list[tuple[Any, ...]]:
    """All rows of ``q`` as the driver's plain tuples. SQLAlchemy binds the parameters;
    the rows skip its per-row processing, which cost ten times the fetch itself on a
    million rows. For plain columns only (ints, text, floats; no JSON or timestamps)."""
    result = conn.execute(q)
    try:
        cursor = result.cursor
        assert cursor is not None
        return list(cursor.fetchall())
    finally:
        result.close()


def _ids(conn: Connection, q: Any) -> np.ndarray:
    rows = fetch_raw(conn, q)
    return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))


def _fetch_candidates(ctx: SelectionContext) -> Candidates:
    i = interactions
    if not ctx.pairwise:
        ids = _ids(ctx.conn, _filtered(ctx, i.c.id).order_by(i.c.id))
        if ctx.exclude.size:
            ids = ids[~np.isin(ids, ctx.exclude)]
        return Candidates(ids)
    return _fetch_pairs(ctx)


def _fetch_pairs(ctx: SelectionContext) -> Candidates:
    """Pairs of interactions with the same input from two different model versions: for
    each input, one pair (of the two ``versions`` when given, else two versions drawn at
    random), each side drawn at random among that version's interactions."""
    i = interactions
    versions = _as_list(ctx.options["versions"], "versions") \
        if ctx.options.get("versions") else None
    inner = _filtered(ctx, i.c.input).where(i.c.model_version.is_not(None))
    if versions:
        inner = inner.where(i.c.model_version.in_(versions))
    shared = inner.group_by(i.c.input).having(func.count(func.distinct(i.c.model_version)) >= 2)
    q = _filtered(ctx, i.c.id, i.c.model_version, i.c.input).where(
        i.c.input.in_(shared.scalar_subquery()), i.c.model_version.is_not(None))
    if versions:
        q = q.where(i.c.model_version.in_(versions))
    rows = ctx.conn.execute(q.order_by(i.c.id)).all()
    excluded = set(ctx.exclude.tolist())
    groups: dict[str, dict[str, list[int]]] = {}
    for pk, version, text in rows:
        if pk in excluded:
            continue
        groups.setdefault(text, {}).setdefault(version, []).append(int(pk))
    rng = np.random.default_rng([ctx.seed, 7])
    a: list[int] = []
    b: list[int] = []
    va: list[str] = []
    vb: list[str] = []
    for text in sorted(groups):
        by_version = groups[text]
        names = sorted(by_version)
        if len(names) < 2:
            continue
        if versions:
            first, second = versions
        else:
            picked = sorted(rng.choice(len(names), size=2, replace=False).tolist())
            first, second = names[picked[0]], names[picked[1]]
        ids_a, ids_b = by_version[first], by_version[second]
        a.append(ids_a[int(rng.integers(len(ids_a)))])
        b.append(ids_b[int(rng.integers(len(ids_b)))])
        va.append(first)
        vb.append(second)
    order = np.argsort(np.array(a, dtype=np.int64), kind="stable")
    return Candidates(np.array(a, dtype=np.int64)[order], np.array(b, dtype=np.int64)[order],
                      (np.array(va, dtype=object)[order], np.array(vb, dtype=object)[order]))


def _restrict(keys: np.ndarray, values: np.ndarray, allowed: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    mask = np.isin(keys, allowed, assume_unique=True)
    return keys[mask], values[mask]


def _by_score(keys: np.ndarray, score: np.ndarray, limit: int, rng: np.random.Generator,
              *, descending: bool) -> Ranked:
    """Rank by score (ties in random order), keep the first ``limit``."""
    tiebreak = rng.random(keys.size)
    primary = -score if descending else score
    order = np.lexsort((tiebreak, primary))[:limit]
    return Ranked(keys[order], score=score[order])


def _no_pairs(policy: str) -> InvalidInput:
    return InvalidInput(f"policy {policy!r} cannot select pairs: a pairwise campaign uses "
                        "'random' or 'stratified'", field="policy")


# -- built-in policies ------------------------------------------------------------------------
class RandomPolicy:
    """A uniform random sample of the (filtered) interactions."""

    name = "random"
    options: tuple[str, ...] = ()
    pairwise = True

    def rank(self, ctx: SelectionContext, limit: int, rng: np.random.Generator) -> Ranked:
        cand = ctx.candidates()
        n = cand.ids.size
        k = min(limit, n)
        idx = rng.choice(n, size=k, replace=False) if k else np.empty(0, dtype=np.int64)
        return Ranked(cand.ids[idx], None if cand.b is None else cand.b[idx])


class StratifiedPolicy:
    """Equal allocation across strata (the combinations of the ``by`` keys: cohort
    attributes and/or ``model_version``), random within a stratum; a stratum with too few
    items gives all it has and the rest is shared among the larger ones."""

    name = "stratified"
    options: tuple[str, ...] = ("by",)
    pairwise = True

    def rank(self, ctx: SelectionContext, limit: int, rng: np.random.Generator) -> Ranked:
        by = ctx.options.get("by", ["model_version"])
        by = _as_list(by, "by")
        if len(by) > 5 or len(set(by)) != len(by):
            raise InvalidInput("option by names up to five different keys", field="options.by")
        cand = ctx.candidates()
        if cand.ids.size == 0:
            return Ranked(cand.ids, cand.b)
        i = interactions
        cols: list[Any] = [i.c.id]
        for key in by:
            cols.append(i.c.model_version if key == "model_version"
                        else i.c.attributes[key].as_string())
        rows = fetch_raw(ctx.conn, _filtered(ctx, *cols).order_by(i.c.id))
        # (zip(*rows) is six times slower on a million rows)
        columns = [[r[j] for r in rows] for j in range(len(by) + 1)]
        keys = np.fromiter(columns[0], dtype=np.int64, count=len(rows))
        # Each key's values coded as small ints, combined (mixed radix) into one code per
        # interaction: no string is built per row, only one per stratum.
        combined = np.zeros(len(rows), dtype=np.int64)
        for j in range(1, len(by) + 1):
            seen = {v: k for k, v in enumerate(dict.fromkeys(columns[j]))}
            col = np.fromiter(map(seen.__getitem__, columns[j]), dtype=np.int64,
                              count=len(rows))
            # dense again after each key, so the codes never overflow
            combined = np.unique(combined * max(len(seen), 1) + col, return_inverse=True)[1]
        pos = np.searchsorted(keys, cand.ids)
        combined = combined[pos]
        first_row = pos
        if cand.versions is not None:
            pairs: dict[tuple[str, str], int] = {}
            vcode = np.fromiter((pairs.setdefault((x, y), len(pairs))
                                 for x, y in zip(*cand.versions, strict=True)),
                                dtype=np.int64, count=cand.ids.size)
            combined = combined * max(len(pairs), 1) + vcode
        _uniq, first, codes = np.unique(combined, return_index=True, return_inverse=True)
        names = []
        for f in first:
            r = rows[int(first_row[f])]
            label = "|".join(f"{k}={'' if v is None else v}"
                             for k, v in zip(by, r[1:], strict=True))
            if cand.versions is not None:
                label += f"|versions={cand.versions[0][f]} vs {cand.versions[1][f]}"
            names.append(label)
        strata = np.array(names, dtype=object)[codes]
        # Round robin over strata in a random order, random within each stratum: any
        # prefix of this ranking is an equal allocation (water-filled past small strata).
        shuffle = rng.permutation(len(names))
        stratum_order = np.empty_like(shuffle)
        stratum_order[shuffle] = np.arange(len(names))
        noise = rng.random(codes.size)
        within = np.lexsort((noise, codes))
        rank_in = np.empty(codes.size, dtype=np.int64)
        sorted_codes = codes[within]
        starts = np.searchsorted(sorted_codes, np.arange(len(names)))
        rank_in[within] = np.arange(codes.size) - starts[sorted_codes]
        order = np.lexsort((stratum_order[codes], rank_in))[:limit]
        return Ranked(cand.ids[order], None if cand.b is None else cand.b[order],
                      stratum=strata[order])


def _metric_scale(signal: Signal, values: np.ndarray) -> tuple[float, float]:
    from ..evaluation.service import _scale

    return _scale(signal, values)


class UncertaintyPolicy:
    """Interactions whose automated score (option ``metric``) lies closest to the decision
    threshold (option ``threshold``; default the middle of the metric's scale, or of its
    observed range when it has none). The item's score is the distance to the threshold."""

    name = "uncertainty"
    options: tuple[str, ...] = ("metric", "threshold")
    pairwise = False

    def rank(self, ctx: SelectionContext, limit: int, rng: np.random.Generator) -> Ranked:
        from ..evaluation.pairs import EvaluationFilters, fetch_channel

        if ctx.pairwise:
            raise _no_pairs(self.name)
        if "metric" not in ctx.options:
            raise InvalidInput("policy 'uncertainty' needs option metric (an automated "
                               "signal)", field="options.metric")
        metric = ctx.signal(ctx.options["metric"], "metric")
        if metric.type not in ("binary", "ordinal", "numeric"):
            raise InvalidInput(f"option metric: signal {metric.name!r} is {metric.type}; "
                               "uncertainty needs a binary, ordinal or numeric score",
                               field="options.metric")
        channel = fetch_channel(ctx.conn, ctx.project.id, metric, EvaluationFilters(),
                                aggregate=False)
        assert channel.values is not None
        keys, values = _restrict(channel.keys, channel.values, ctx.candidates().ids)
        threshold = ctx.options.get("threshold")
        if threshold is None:
            lo, hi = _metric_scale(metric, channel.values)
            threshold = (lo + hi) / 2
        elif isinstance(threshold, bool) or not isinstance(threshold, int | float) \
                or not math.isfinite(threshold):
            raise InvalidInput("option threshold must be a finite number",
                               field="options.threshold")
        ranked = _by_score(keys, np.abs(values - float(threshold)), limit, rng,
                           descending=False)
        ranked.notes.append(f"uncertainty: {metric.name} closest to {float(threshold):g}")
        return ranked


def _normalised(signal: Signal, values: np.ndarray) -> np.ndarray:
    lo, hi = _metric_scale(signal, values)
    if hi <= lo:
        return np.zeros_like(values)
    return np.clip((values - lo) / (hi - lo), 0.0, 1.0)


def human_metric_disagreement(ctx: SelectionContext, human: Signal, metric: Signal
                              ) -> tuple[np.ndarray, np.ndarray]:
    """Per interaction: |human - metric| with both normalised to [0, 1] by their scales
    (the human channel is the raters' mean, the metric its latest value, both as the
    two-channel evaluation fetches them); for categorical signals 1 when the majority
    label differs from the metric's label, else 0."""
    from ..evaluation.pairs import EvaluationFilters, fetch_channel
    from ..evaluation.service import check_comparable

    check_comparable(human, metric)
    h = fetch_channel(ctx.conn, ctx.project.id, human, EvaluationFilters(), aggregate=True)
    m = fetch_channel(ctx.conn, ctx.project.id, metric, EvaluationFilters(), aggregate=False)
    keys, hi, mi = np.intersect1d(h.keys, m.keys, assume_unique=True, return_indices=True)
    if human.type == "categorical":
        assert h.labels is not None and m.labels is not None
        score = (h.labels[hi] != m.labels[mi]).astype(float)
    else:
        assert h.values is not None and m.values is not None
        score = np.abs(_normalised(human, h.values)[hi] - _normalised(metric, m.values)[mi])
    return keys, score


def rater_disagreement(ctx: SelectionContext, human: Signal) -> tuple[np.ndarray, np.ndarray]:
    """Per interaction with two or more human labels: the spread of the labels in [0, 1].
    Scales: twice the standard deviation of the values normalised to [0, 1] (1 when two
    raters sit at opposite ends). Categorical: the entropy of the labels divided by the
    log of the number of labels."""
    f = feedback
    where = and_(f.c.project_id == ctx.project.id, f.c.signal_id == human.id,
                 f.c.source.in_(HUMAN_SOURCES), f.c.interaction_b_id.is_(None))
    if human.type == "categorical":
        rows = ctx.conn.execute(select(f.c.interaction_id, f.c.value_text, func.count())
                                .where(where, f.c.value_text.is_not(None))
                                .group_by(f.c.interaction_id, f.c.value_text)).all()
        if not rows:
            return np.empty(0, dtype=np.int64), np.empty(0)
        keys = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        counts = np.fromiter((r[2] for r in rows), dtype=float, count=len(rows))
        uniq, inv = np.unique(keys, return_inverse=True)
        total = np.bincount(inv, weights=counts)
        p = counts / total[inv]
        entropy = np.bincount(inv, weights=-p * np.log(p))
        n_labels = max(len(human.labels or ()), 2)
        keep = total >= 2
        return uniq[keep], np.clip(entropy[keep] / math.log(n_labels), 0.0, 1.0)
    rows = ctx.conn.execute(
        select(f.c.interaction_id, func.count(), func.avg(f.c.value_num),
               func.avg(f.c.value_num * f.c.value_num))
        .where(where, f.c.value_num.is_not(None))
        .group_by(f.c.interaction_id).having(func.count() >= 2)
        .order_by(f.c.interaction_id)).all()
    keys = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    mean = np.fromiter((r[2] for r in rows), dtype=float, count=len(rows))
    sq = np.fromiter((r[3] for r in rows), dtype=float, count=len(rows))
    lo, hi = _metric_scale(human, mean)
    width = hi - lo if hi > lo else 1.0
    sd = np.sqrt(np.maximum(sq - mean * mean, 0.0)) / width
    return keys, np.clip(2 * sd, 0.0, 1.0)


class DisagreementPolicy:
    """The largest disagreement first: between the human signal (option ``human``,
    default the campaign's signal) and an automated one (option ``metric``), between
    raters on the human signal, or the larger of the two (option ``kind``:
    ``human-metric`` | ``rater`` | ``both``, default both; without a metric, both means
    rater only). Only interactions with some disagreement (score > 0) are candidates."""

    name = "disagreement"
    options: tuple[str, ...] = ("metric", "human", "kind")
    pairwise = False

    def rank(self, ctx: SelectionContext, limit: int, rng: np.random.Generator) -> Ranked:
        if ctx.pairwise:
            raise _no_pairs(self.name)
        kind = ctx.options.get("kind", "both")
        if kind not in ("human-metric", "rater", "both"):
            raise InvalidInput("option kind must be human-metric, rater or both",
                               field="options.kind")
        human = ctx.signal(ctx.options["human"], "human") if "human" in ctx.options \
            else ctx.default_signal("human")
        if human.type in ("text", "pairwise"):
            raise InvalidInput(f"option human: signal {human.name!r} is {human.type}; "
                               "disagreement needs a binary, ordinal, numeric or categorical "
                               "signal", field="options.human")
        metric = ctx.signal(ctx.options["metric"], "metric") if "metric" in ctx.options \
            else None
        if kind == "human-metric" and metric is None:
            raise InvalidInput("option kind human-metric needs option metric",
                               field="options.metric")
        if metric is not None and metric.id == human.id:
            raise InvalidInput("options human and metric name the same signal",
                               field="options.metric")
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        if kind in ("human-metric", "both") and metric is not None:
            parts.append(human_metric_disagreement(ctx, human, metric))
        if kind in ("rater", "both"):
            parts.append(rater_disagreement(ctx, human))
        keys = np.unique(np.concatenate([p[0] for p in parts])) if parts \
            else np.empty(0, dtype=np.int64)
        score = np.zeros(keys.size)
        for pk, ps in parts:
            pos = np.searchsorted(keys, pk)
            score[pos] = np.maximum(score[pos], ps)
        keys, score = _restrict(keys, score, ctx.candidates().ids)
        keep = score > 0
        ranked = _by_score(keys[keep], score[keep], limit, rng, descending=True)
        what = {"human-metric": f"{human.name} vs {metric.name if metric else '?'}",
                "rater": f"raters on {human.name}",
                "both": f"{human.name} vs {metric.name} and raters" if metric
                else f"raters on {human.name}"}[kind]
        ranked.notes.append(f"disagreement: {what}; {int(keep.sum()):,} interactions "
                            "disagree")
        return ranked


class RecheckPolicy:
    """Interactions that got human labels on the signal (option ``signal``, default the
    campaign's) before a release time (option ``before``), to be annotated again after it.
    Random order among them."""

    name = "recheck"
    options: tuple[str, ...] = ("before", "signal")
    pairwise = False

    def rank(self, ctx: SelectionContext, limit: int, rng: np.random.Generator) -> Ranked:
        if ctx.pairwise:
            raise _no_pairs(self.name)
        if not ctx.options.get("before"):
            raise InvalidInput("policy 'recheck' needs option before (the release time, ISO "
                               "8601)", field="options.before")
        before = parse_time(ctx.options["before"], "before")
        sig = ctx.signal(ctx.options["signal"], "signal") if "signal" in ctx.options \
            else ctx.default_signal("signal")
        f = feedback
        keys = _ids(ctx.conn, select(f.c.interaction_id).distinct().where(
            f.c.project_id == ctx.project.id, f.c.signal_id == sig.id,
            f.c.source.in_(HUMAN_SOURCES), f.c.timestamp < _db_ts(ctx.conn, before))
            .order_by(f.c.interaction_id))
        keys = keys[np.isin(keys, ctx.candidates().ids, assume_unique=True)]
        k = min(limit, keys.size)
        idx = rng.choice(keys.size, size=k, replace=False) if k else np.empty(0, np.int64)
        ranked = Ranked(keys[idx])
        ranked.notes.append(f"recheck: {keys.size:,} interactions labelled on {sig.name} "
                            f"before {before.isoformat()}")
        return ranked


# -- the registry -----------------------------------------------------------------------------
_PLUGINS = PluginGroup(GROUP, "selection policy", "policy")


def available_policies() -> dict[str, EntryPoint]:
    """Every registered selection policy by name (read once per process)."""
    return _PLUGINS.table()


def clear_policy_cache() -> None:
    _PLUGINS.clear()


def get_policy(name: str) -> SelectionPolicy:
    """The policy registered as ``name``; InvalidInput (field ``policy``) for an unknown
    name, ConfigurationError for a plug-in that cannot be loaded."""
    ep = _PLUGINS.table().get(name)
    if ep is None:
        raise InvalidInput(f"unknown selection policy {name!r}; policies: "
                           f"{', '.join(sorted(_PLUGINS.table()))}", field="policy")
    try:
        factory = ep.load()
        policy = factory()
    except Exception as exc:
        raise ConfigurationError(f"selection policy {name!r} cannot be loaded from "
                                 f"{origin(ep)}: {type(exc).__name__}: {exc}",
                                 policy=name) from exc
    if not isinstance(policy, SelectionPolicy) or policy.name != name:
        raise ConfigurationError(f"selection policy {name!r} from {origin(ep)} is not a "
                                 "SelectionPolicy named so (it needs name, options, pairwise "
                                 "and rank)", policy=name)
    return policy


def normalise_policy(policy: dict[str, float] | str) -> dict[str, float]:
    """``"random"`` → ``{"random": 1.0}``; a mix's weights scaled to sum to 1."""
    if isinstance(policy, str):
        policy = {policy: 1.0}
    if not isinstance(policy, dict) or not policy:
        raise InvalidInput("policy is a name or an object of weights {name: weight}",
                           field="policy")
    for name, w in policy.items():
        if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) \
                or w <= 0:
            raise InvalidInput(f"the weight of policy {name!r} must be a positive number",
                               field=f"policy.{name}")
        get_policy(name)
    total = float(sum(policy.values()))
    return {name: float(w) / total for name, w in policy.items()}


def quotas(weights: dict[str, float], budget: int) -> dict[str, int]:
    """Largest-remainder split of ``budget`` by ``weights`` (ties by name)."""
    raw = {k: w * budget for k, w in weights.items()}
    out = {k: math.floor(v) for k, v in raw.items()}
    left = budget - sum(out.values())
    for k in sorted(raw, key=lambda k: (-(raw[k] - out[k]), k))[:left]:
        out[k] += 1
    return out


# -- selection ----------------------------------------------------------------------------------
@dataclass
class Selection:
    """The chosen items in serving order."""

    a: np.ndarray
    b: np.ndarray | None
    policy: list[str]
    score: list[float | None]
    stratum: list[str | None]
    notes: list[str]
    by_policy: dict[str, int]


def _keys(r: Ranked) -> np.ndarray:
    if r.b is None:
        return r.a.astype(np.int64)
    return (r.a.astype(np.int64) << 32) | r.b.astype(np.int64)


def _policy_rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def select_items(ctx: SelectionContext, weights: dict[str, float], budget: int, *,
                 progress: Callable[[str], None] | None = None) -> Selection:
    """Rank with each policy of the mix, take each one's share, fill shortfalls, and
    interleave the policies by their shares (deterministic for a seed)."""
    order = sorted(weights, key=lambda k: (-weights[k], k))
    share = quotas(weights, budget)
    ranked: dict[str, Ranked] = {}
    notes: list[str] = []
    for name in order:
        if progress:
            progress(f"ranking by {name}")
        r = get_policy(name).rank(ctx, budget, _policy_rng(ctx.seed, name))
        ranked[name] = r
        notes += [n for n in r.notes if n not in notes]
    keys = {name: _keys(r) for name, r in ranked.items()}
    taken = np.empty(0, dtype=np.int64)
    picks: dict[str, list[np.ndarray]] = {name: [] for name in order}
    cursor = dict.fromkeys(order, 0)
    shortfall = 0

    def take(name: str, n: int) -> int:
        nonlocal taken
        k = keys[name][cursor[name]:]
        fresh = np.flatnonzero(~np.isin(k, taken))[:n]
        idx = fresh + cursor[name]
        picks[name].append(idx)
        cursor[name] = int(idx[-1]) + 1 if idx.size else cursor[name]
        taken = np.concatenate([taken, keys[name][idx]])
        return int(idx.size)

    exhausted: set[str] = set()
    for name in order:
        got = take(name, share[name])
        if got < share[name]:
            notes.append(f"{name}: {got:,} of {share[name]:,} items found")
            shortfall += share[name] - got
            exhausted.add(name)
    # A shortfall is shared among the policies with items left, by their weights.
    filled = dict.fromkeys(order, 0)
    while shortfall:
        active = [name for name in order if name not in exhausted]
        if not active:
            break
        split = quotas({name: weights[name] for name in active}, shortfall)
        for name in active:
            got = take(name, split[name]) if split[name] else 0
            if got < split[name]:
                exhausted.add(name)
            filled[name] += got
            shortfall -= got
    notes += [f"filled {n:,} item{'s' if n != 1 else ''} from {name}"
              for name, n in filled.items() if n]
    total = int(taken.size)
    if total < budget:
        notes.append(f"selected {total:,} of the budget of {budget:,} items: no more "
                     "interactions match")
    # Interleave: each policy's k-th pick of n goes at (k + 0.5) / n of the way.
    parts = []
    for p, name in enumerate(order):
        idx = np.concatenate(picks[name]) if picks[name] else np.empty(0, dtype=np.int64)
        if idx.size:
            frac = (np.arange(idx.size) + 0.5) / idx.size
            parts.append((name, p, idx, frac))
    if not parts:
        return Selection(np.empty(0, np.int64), None, [], [], [], notes,
                         dict.fromkeys(order, 0))
    frac_all = np.concatenate([x[3] for x in parts])
    pol_all = np.concatenate([np.full(x[2].size, x[1]) for x in parts])
    serve = np.lexsort((pol_all, frac_all))
    chosen = [ranked[x[0]].take(x[2]) for x in parts]
    a = np.concatenate([c.a for c in chosen])[serve]
    pair = ctx.pairwise
    b = np.concatenate([c.b for c in chosen if c.b is not None])[serve] if pair else None
    score: list[float | None] = []
    stratum: list[str | None] = []
    policy: list[str] = []
    for (name, _p, idx, _f), c in zip(parts, chosen, strict=True):
        policy += [name] * idx.size
        score += [None] * idx.size if c.score is None else [float(s) for s in c.score]
        stratum += [None] * idx.size if c.stratum is None else [str(s) for s in c.stratum]
    perm = serve.tolist()
    counts = dict.fromkeys(order, 0)
    for name, _p, idx, _f in parts:
        counts[name] = int(idx.size)
    return Selection(a, b, [policy[k] for k in perm], [score[k] for k in perm],
                     [stratum[k] for k in perm], notes, counts)


def option_names(weights: Sequence[str]) -> set[str]:
    names = set(FILTER_OPTIONS)
    for name in weights:
        names.update(get_policy(name).options)
    return names

