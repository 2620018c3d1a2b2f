"""Dataset recipes: named, parameterised ways of turning stored feedback into rows.

Each recipe has a parameter model (pydantic, unknown names refused, every error naming the
parameter) and a builder that reads feedback through a :class:`RecipeContext` and returns
:class:`Candidates`: row data, the prompt each row is grouped by, the feedback behind it.
The common steps (filters on interactions and raters, PII re-check, deduplication, splits,
hashing, storing) live in :mod:`feedbackloop.improve.datasets`.

Row data by recipe (binding, see ``store.tables``): preference ``{"prompt", "chosen",
"rejected"}``; sft ``{"prompt", "completion"}``; kto ``{"prompt", "completion", "label"}``;
labels ``{"text", "label", "confidence"}``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import Connection, and_, case, literal, select, true, union

from ..capture.browse import _attribute_equals, _db_ts
from ..capture.projects import Project, Signal, get_signal, list_signals
from ..errors import InvalidInput, NotFound
from ..store import as_utc
from ..store.tables import (
    aggregated_labels,
    aggregations,
    campaign_items,
    campaigns,
    feedback,
    interactions,
)
from .splits import DEFAULT_FRACTIONS

__all__ = [
    "RECIPES",
    "Candidates",
    "CommonParams",
    "KTOParams",
    "LabelsParams",
    "PreferenceParams",
    "Recipe",
    "RecipeContext",
    "SFTParams",
    "get_recipe",
    "parse_params",
]

_SPLIT_NAME = re.compile(r"[A-Za-z0-9_-]{1,20}")


class CommonParams(BaseModel):
    """Filters, deduplication and splits shared by every recipe."""

    model_config = ConfigDict(extra="forbid")

    require_consent: bool = Field(
        True, description="Only interactions whose user consented to training use.")
    attributes: dict[str, str] = Field(
        default_factory=dict, description="Cohort: interaction attributes that must match.")
    since: datetime | None = Field(None, description="Interactions at or after this time.")
    until: datetime | None = Field(None, description="Interactions before this time.")
    model_version: str | None = Field(None, description="Only this model version's outputs.")
    min_agreement: float | None = Field(
        None, ge=0, le=1, description="Minimum share of raters agreeing with a row's label.")
    gold_min_accuracy: float | None = Field(
        None, ge=0, le=1,
        description="Only feedback from raters with at least this accuracy on gold items.")
    gold_min_items: int = Field(1, ge=1, description="Gold items a rater must have answered.")
    pii_check: bool = Field(True, description="Drop rows whose texts still hold PII.")
    dedupe: bool = Field(True, description="Drop duplicates after normalisation.")
    near_duplicates: bool = Field(True, description="Drop near duplicates (MinHash/LSH).")
    near_threshold: float = Field(0.8, gt=0, le=1, description="Jaccard threshold.")
    shingle_size: int = Field(3, ge=1, le=10, description="Words per shingle.")
    num_perm: int = Field(64, ge=8, le=512, description="MinHash signature length.")
    splits: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_FRACTIONS),
                                     description="Split name -> fraction of the prompts.")
    seed: int = Field(0, ge=0, lt=2**63, description="Seed of the split assignment.")
    stratify: bool = Field(False, description="Stratify the splits by label.")
    split_attribute: str | None = Field(
        None, description="Take each row's split from this interaction attribute instead.")

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        return as_utc(v)

    @field_validator("splits")
    @classmethod
    def _splits(cls, v: dict[str, float]) -> dict[str, float]:
        if not v:
            raise ValueError("give at least one split")
        for name, f in v.items():
            if not _SPLIT_NAME.fullmatch(name):
                raise ValueError(f"split name {name!r} must be 1-20 letters, digits, _ or -")
            if not 0 <= f <= 1:
                raise ValueError(f"the fraction of split {name!r} must be between 0 and 1")
        total = sum(v.values())
        if abs(total - 1) > 1e-9:
            raise ValueError(f"split fractions add up to {total:g}, not 1")
        return v

    @field_validator("attributes")
    @classmethod
    def _attrs(cls, v: dict[str, str]) -> dict[str, str]:
        for k, value in v.items():
            if not k or len(k) > 200 or len(value) > 200 or "\x00" in k + value:
                raise ValueError("attribute names and values are 1-200 characters")
        return v

    def check(self) -> None:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise InvalidInput("since must be before until", field="params.since")


class PreferenceParams(CommonParams):
    signal: str | None = Field(None, description="Pairwise signal: pairs by majority vote.")
    rating_signal: str | None = Field(
        None, description="Rated signal: pairs from rating gaps between outputs of a prompt.")
    min_gap: float = Field(1.0, gt=0, description="Minimum gap of mean ratings.")
    max_pairs_per_prompt: int = Field(10, ge=1, description="Rating pairs kept per prompt.")
    min_ratings: int = Field(1, ge=1, description="Ratings an output needs for its mean.")

    def check(self) -> None:
        super().check()
        if self.signal is None and self.rating_signal is None:
            raise InvalidInput("the preference recipe needs a pairwise signal (signal) or a "
                               "rated signal (rating_signal), or both", field="params.signal")


class SFTParams(CommonParams):
    corrections: bool = Field(True, description="Use corrected outputs.")
    correction_signal: str | None = Field(
        None, description="Only corrections given with this signal (default: any).")
    rating_signal: str | None = Field(None, description="Use outputs rated at least min_rating.")
    min_rating: float | None = Field(
        None, description="Mean rating an output needs (default: the top of the scale).")
    min_ratings: int = Field(1, ge=1, description="Ratings an output needs for its mean.")

    def check(self) -> None:
        super().check()
        if not self.corrections and self.rating_signal is None:
            raise InvalidInput("the sft recipe needs corrections or a rated signal "
                               "(rating_signal)", field="params.rating_signal")


class KTOParams(CommonParams):
    signal: str = Field(description="Binary (thumbs) signal; the majority per interaction.")


class LabelsParams(CommonParams):
    signal: str = Field(description="The signal whose aggregated labels to use.")
    aggregation_id: int | None = Field(
        None, description="Which aggregation (default: the signal's latest).")
    min_confidence: float | None = Field(
        None, ge=0, le=1, description="Minimum aggregated confidence of a label.")
    text: Literal["output", "input"] = Field("output", description="The text to label.")


def parse_params(model: type[CommonParams], params: dict[str, Any] | None) -> CommonParams:
    """Validated parameters; the error names the parameter."""
    if params is not None and not isinstance(params, dict):
        raise InvalidInput("params must be an object", field="params")
    try:
        parsed = model.model_validate(params or {})
    except ValidationError as exc:
        e = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in e["loc"]) or "(params)"
        msg = "unknown parameter" if e["type"] == "extra_forbidden" else e["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        raise InvalidInput(f"parameter {loc!r}: {msg}", field=f"params.{loc}") from None
    parsed.check()
    return parsed


# -- reading feedback ---------------------------------------------------------------------

@dataclass
class Interactions:
    """The interactions the recipe may use, by primary key (sorted)."""

    ids: np.ndarray
    inputs: list[str]
    outputs: list[str]
    ok: np.ndarray  # passes every filter
    split: list[str | None]  # split attribute value

    def index(self, keys: np.ndarray) -> np.ndarray:
        """Position of each key in ``ids`` (-1 when absent)."""
        pos = np.searchsorted(self.ids, keys)
        pos = np.minimum(pos, max(self.ids.size - 1, 0))
        found = (self.ids.size > 0) & (self.ids[pos] == keys) if self.ids.size else \
            np.zeros(keys.shape, dtype=bool)
        return np.where(found, pos, -1)

    def prompt_codes(self) -> np.ndarray:
        """One integer per distinct prompt text."""
        codes: dict[str, int] = {}
        return np.fromiter((codes.setdefault(t, len(codes)) for t in self.inputs),
                           dtype=np.int64, count=len(self.inputs))


@dataclass
class Feedback:
    """Feedback rows of one signal as parallel arrays, oldest first (by primary key)."""

    pk: np.ndarray
    client_id: np.ndarray  # object
    a: np.ndarray  # interaction pk
    b: np.ndarray  # second interaction pk, -1 for none
    num: np.ndarray  # value_num, nan for none
    text: np.ndarray  # value_text (object)
    rater: np.ndarray  # object, None for anonymous
    correction: np.ndarray | None = None

    def take(self, mask: np.ndarray) -> Feedback:
        return Feedback(self.pk[mask], self.client_id[mask], self.a[mask], self.b[mask],
                        self.num[mask], self.text[mask], self.rater[mask],
                        None if self.correction is None else self.correction[mask])

    @property
    def n(self) -> int:
        return int(self.pk.size)


@dataclass
class Candidates:
    """What a recipe built: one entry per row."""

    data: list[dict[str, Any]] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)  # grouping text (the prompt)
    feedback_pks: list[list[int]] = field(default_factory=list)
    feedback_ids: list[list[str]] = field(default_factory=list)
    interactions: list[list[int]] = field(default_factory=list)  # for user-given splits
    labels: list[Any] = field(default_factory=list)  # stratum (None when unlabelled)

    def add(self, data: dict[str, Any], prompt: str, pks: list[int], ids: list[str],
            inter: list[int], label: Any = None) -> None:
        self.data.append(data)
        self.prompts.append(prompt)
        self.feedback_pks.append(pks)
        self.feedback_ids.append(ids)
        self.interactions.append(inter)
        self.labels.append(label)

    def __len__(self) -> int:
        return len(self.data)


@dataclass
class RecipeContext:
    """Reads feedback for a recipe and counts what the filters drop."""

    conn: Connection
    project: Project
    params: Any
    dropped_feedback: dict[str, int] = field(default_factory=dict)
    dropped_rows: dict[str, int] = field(default_factory=dict)
    read: int = 0
    aggregation_id: int | None = None
    split_values: dict[int, str | None] = field(default_factory=dict)
    _fetched: dict[tuple[int, int], Feedback] = field(default_factory=dict)
    _reasons: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int8))

    def drop_feedback(self, reason: str, n: int) -> None:
        if n:
            self.dropped_feedback[reason] = self.dropped_feedback.get(reason, 0) + int(n)

    def drop_rows(self, reason: str, n: int = 1) -> None:
        if n:
            self.dropped_rows[reason] = self.dropped_rows.get(reason, 0) + int(n)

    def signal(self, name: str, param: str, types: tuple[str, ...]) -> Signal:
        try:
            sig = get_signal(self.conn, self.project.id, name)
        except NotFound:
            raise NotFound(f"no signal {name!r} in project {self.project.name!r}",
                           field=f"params.{param}") from None
        if sig.type not in types:
            raise InvalidInput(f"signal {name!r} is {sig.type}; parameter {param!r} needs a "
                               f"{' or '.join(types)} signal", field=f"params.{param}")
        return sig

    # -- interactions --------------------------------------------------------------------
    def interactions_for(self, signal_ids: list[int], extra: Any = None) -> Interactions:
        """Every interaction referenced by feedback on the signals (or by ``extra``, a
        subquery of interaction ids), with the filters evaluated per reason."""
        p = self.params
        i, f = interactions, feedback
        # The ids come from the feedback the recipe reads anyway (cached for it). Dense ids
        # (the usual case) are read by one range scan of the primary key and the strays
        # dropped here; sparse ones by a join on the union of the referenced ids.
        found = [np.zeros(0, dtype=np.int64)]
        for sid in signal_ids:
            fb = self._fetched.get((sid, 0))
            if fb is None:
                fb = self._fetched[(sid, 0)] = self._fetch(sid, 0)
            found += [fb.a, fb.b[fb.b >= 0]]
        if extra is not None:
            found.append(np.array(self.conn.execute(extra).scalars().all(), dtype=np.int64))
        referenced = np.unique(np.concatenate(found))
        dense = referenced.size > 0 and \
            int(referenced[-1] - referenced[0]) + 1 <= 4 * referenced.size
        conds = []
        if p.since is not None:
            conds.append(i.c.timestamp >= _db_ts(self.conn, p.since))
        if p.until is not None:
            conds.append(i.c.timestamp < _db_ts(self.conn, p.until))
        date_ok = case((and_(*conds), literal(1)), else_=literal(0)) if conds else literal(1)
        attr = [_attribute_equals(self.conn, k, v) for k, v in p.attributes.items()]
        attrs_ok = case((and_(*attr), literal(1)), else_=literal(0)) if attr else literal(1)
        wanted_cols = [i.c.id, i.c.input, i.c.output, i.c.consent, i.c.model_version,
                       date_ok.label("date_ok"), attrs_ok.label("attrs_ok")]
        if p.split_attribute is not None:
            wanted_cols.append(
                i.c.attributes[p.split_attribute].as_string().label("split_value"))
        q = select(*wanted_cols).where(i.c.project_id == self.project.id).order_by(i.c.id)
        if dense:
            q = q.where(i.c.id.between(int(referenced[0]), int(referenced[-1])))
        else:
            scoped = and_(f.c.project_id == self.project.id, f.c.signal_id.in_(signal_ids))
            parts = [select(f.c.interaction_id.label("iid")).where(scoped),
                     select(f.c.interaction_b_id.label("iid")).where(
                         scoped, f.c.interaction_b_id.is_not(None))]
            if extra is not None:
                parts.append(extra)
            joined = union(*parts).subquery("referenced")
            q = q.join(joined, joined.c.iid == i.c.id)
        rows = self.conn.execute(q).all() if referenced.size else []
        cols: list[Any] = list(zip(*rows, strict=True)) if rows else [()] * len(wanted_cols)
        if dense:
            got = np.array(cols[0], dtype=np.int64)
            mask = np.isin(got, referenced)
            if not mask.all():
                cols = [np.array(c, dtype=object)[mask].tolist() for c in cols]
        n = len(cols[0])
        ids = np.array(cols[0], dtype=np.int64)
        consent = np.array(cols[3], dtype=bool)
        version = np.ones(n, dtype=bool) if p.model_version is None else \
            np.array(cols[4], dtype=object) == p.model_version
        date = np.array(cols[5], dtype=bool)
        attrs = np.array(cols[6], dtype=bool)
        # the first failing filter names the reason
        reason = np.zeros(n, dtype=np.int8)
        for code, passed in ((4, date), (3, attrs), (2, version),
                             (1, consent if p.require_consent else np.ones(n, dtype=bool))):
            reason[~passed] = code
        self._reasons = reason
        split = list(cols[7]) if p.split_attribute is not None else [None] * n
        if p.split_attribute is not None:
            self.split_values.update(zip(ids.tolist(), split, strict=True))
        return Interactions(ids, list(cols[1]), list(cols[2]), reason == 0, split)

    _REASONS = {1: "no_consent", 2: "model_version", 3: "cohort", 4: "date"}

    def filter_by_interactions(self, fb: Feedback, inter: Interactions) -> Feedback:
        """Keep feedback whose interactions (both, for pairs) pass the filters."""
        reasons = self._reasons
        ia = inter.index(fb.a)
        code = np.where(ia >= 0, reasons[np.maximum(ia, 0)], 4)
        has_b = fb.b >= 0
        ib = inter.index(np.where(has_b, fb.b, 0))
        code_b = np.where(has_b & (ib >= 0), reasons[np.maximum(ib, 0)], 0)
        code = np.where(code == 0, code_b, code)
        for c, name in self._REASONS.items():
            self.drop_feedback(name, int((code == c).sum()))
        return fb.take(code == 0)

    # -- feedback ------------------------------------------------------------------------
    def feedback_of(self, signal: Signal, *, corrections: bool = False,
                    only_corrections: bool = False) -> Feedback:
        # The widest read of a build (a million rows): on the driver's cursor, skipping
        # SQLAlchemy's per-row processing, which cost more than the query.
        variant = 2 if only_corrections else 1 if corrections else 0
        found = self._fetched.get((signal.id, variant))
        if found is None:
            found = self._fetched[(signal.id, variant)] = self._fetch(signal.id, variant)
        return self._gold_filter(signal, found)

    def _fetch(self, signal_id: int, variant: int) -> Feedback:
        mark = "?" if self.conn.dialect.name == "sqlite" else "%s"
        only_corrections = variant == 2
        with_corr = variant > 0
        sql = ("SELECT id, client_id, interaction_id, interaction_b_id, value_num, "
               "value_text, rater_id" + (", correction" if with_corr else "") +
               f" FROM feedback WHERE project_id = {mark} AND signal_id = {mark}")
        if only_corrections:
            sql += " AND correction IS NOT NULL AND correction <> ''"
        dbapi = self.conn.connection.dbapi_connection
        assert dbapi is not None
        cur = dbapi.cursor()
        try:
            cur.execute(sql + " ORDER BY id", (self.project.id, signal_id))
            rows = cur.fetchall()
        finally:
            cur.close()
        n = len(rows)
        self.read += n
        cols: list[Any] = list(zip(*rows, strict=True)) if rows else [()] * (8 if with_corr
                                                                            else 7)
        b = np.array(cols[3], dtype=float)
        return Feedback(
            np.array(cols[0], dtype=np.int64), _objects(list(cols[1])),
            np.array(cols[2], dtype=np.int64),
            np.where(np.isnan(b), -1, b).astype(np.int64) if n else np.zeros(0, np.int64),
            np.array(cols[4], dtype=float), _objects(list(cols[5])),
            _objects(list(cols[6])), _objects(list(cols[7])) if with_corr else None)

    def _gold_filter(self, signal: Signal, fb: Feedback) -> Feedback:
        p = self.params
        if p.gold_min_accuracy is None:
            return fb
        passed = self.gold_raters(signal)
        keep = np.fromiter((r is not None and r in passed for r in fb.rater), dtype=bool,
                           count=fb.n)
        self.drop_feedback("not_gold_checked", int((~keep).sum()))
        return fb.take(keep)

    def gold_raters(self, signal: Signal) -> set[str]:
        """Raters whose answers on the gold items of the project's campaigns for this
        signal are right at least ``gold_min_accuracy`` of the time, over at least
        ``gold_min_items`` gold items (their latest answer per item)."""
        p = self.params
        ci, f = campaign_items, feedback
        q = (select(ci.c.interaction_id, ci.c.interaction_b_id, ci.c.gold_value)
             .join(campaigns, campaigns.c.id == ci.c.campaign_id)
             .where(campaigns.c.project_id == self.project.id, ci.c.is_gold.is_(true())))
        gold: dict[tuple[int, int | None], Any] = {}
        for row in self.conn.execute(q):
            value = row.gold_value.get(signal.name) if isinstance(row.gold_value, dict) \
                else None
            if value is not None:
                gold[(row.interaction_id, row.interaction_b_id)] = value
        answers: dict[tuple[str, tuple[int, int | None]], bool] = {}
        if gold:
            ids = sorted({k[0] for k in gold})
            q2 = (select(f.c.rater_id, f.c.interaction_id, f.c.interaction_b_id, f.c.value)
                  .where(f.c.project_id == self.project.id, f.c.signal_id == signal.id,
                         f.c.rater_id.is_not(None), f.c.interaction_id.in_(ids))
                  .order_by(f.c.id))
            for ans in self.conn.execute(q2):
                key = (ans.interaction_id, ans.interaction_b_id)
                if key in gold:
                    answers[(ans.rater_id, key)] = _same(ans.value, gold[key])
        per: dict[str, list[bool]] = {}
        for (rater, _), right in answers.items():
            per.setdefault(rater, []).append(right)
        return {r for r, rights in per.items()
                if len(rights) >= p.gold_min_items
                and sum(rights) / len(rights) >= p.gold_min_accuracy}


def _same(value: Any, gold: Any) -> bool:
    if isinstance(value, bool) or isinstance(gold, bool):
        return str(value).lower() == str(gold).lower()
    if isinstance(value, int | float) and isinstance(gold, int | float):
        return float(value) == float(gold)
    return str(value).strip().lower() == str(gold).strip().lower()


def _objects(values: list[Any]) -> np.ndarray:
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


def _latest_per_rater(fb: Feedback, unit: np.ndarray) -> np.ndarray:
    """Mask keeping, per (unit, rater), only the rater's latest feedback; anonymous
    feedback (no rater) always counts."""
    codes: dict[Any, int] = {}
    rc = np.fromiter((-1 if r is None else codes.setdefault(r, len(codes)) for r in fb.rater),
                     dtype=np.int64, count=fb.n)
    keep = np.ones(fb.n, dtype=bool)
    named = rc >= 0
    if named.any():
        idx = np.nonzero(named)[0]
        key = unit[idx] * (len(codes) + 1) + rc[idx]
        # rows are oldest first: the last index of each key is the latest answer
        _, last = np.unique(key[::-1], return_index=True)
        latest = np.zeros(idx.size, dtype=bool)
        latest[idx.size - 1 - last] = True
        keep[idx] = latest
    return keep


def _groups(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(unique keys, order, boundaries): rows of group g are order[bounds[g]:bounds[g+1]]."""
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    uniq, start = np.unique(sk, return_index=True)
    return uniq, order, np.append(start, sk.size)


def _listed(arr: np.ndarray, idx: np.ndarray) -> list[Any]:
    return [arr[i] for i in idx.tolist()]


# -- preference ---------------------------------------------------------------------------

def _pairwise(ctx: RecipeContext, sig: Signal, out: Candidates, inter: Interactions) -> None:
    p = ctx.params
    fb = ctx.filter_by_interactions(ctx.feedback_of(sig), inter)
    # the numeric projection of a pairwise value: a 1, b 0, tie 0.5 (capture.prepare)
    valid = (fb.num == 1.0) | (fb.num == 0.0) | (fb.num == 0.5)
    fb = fb.take(valid)
    lo, hi = np.minimum(fb.a, fb.b), np.maximum(fb.a, fb.b)
    key = lo * (int(max(hi.max(initial=0), 1)) + 1) + hi
    keep = _latest_per_rater(fb, key)
    ctx.drop_feedback("superseded", int((~keep).sum()))
    fb, lo, hi, key = fb.take(keep), lo[keep], hi[keep], key[keep]
    # outcome: 0 = the lower id wins, 1 = the higher id wins, 2 = tie
    a_is_lo = fb.a == lo
    outcome = np.where(fb.num == 0.5, 2, np.where((fb.num == 1.0) == a_is_lo, 0, 1))
    uniq, order, bounds = _groups(key)
    g_of = np.empty(key.size, dtype=np.int64)
    g_of[order] = np.repeat(np.arange(uniq.size), np.diff(bounds))
    votes = np.bincount(g_of * 3 + outcome, minlength=3 * uniq.size).reshape(-1, 3)
    top = votes.max(axis=1)
    split = (votes == top[:, None]).sum(axis=1) > 1
    winner = votes.argmax(axis=1)
    tie = ~split & (winner == 2)
    agreement = top / np.maximum(votes.sum(axis=1), 1)
    low = ~split & ~tie
    low &= (agreement < p.min_agreement) if p.min_agreement is not None else False
    first = order[bounds[:-1]]
    ia, ib = inter.index(lo[first]), inter.index(hi[first])
    codes = inter.prompt_codes()
    differ = ~split & ~tie & ~low & (codes[ia] != codes[ib])
    for reason, mask in (("split_vote", split), ("tie", tie), ("low_agreement", low),
                         ("different_prompts", differ)):
        ctx.drop_rows(reason, int(mask.sum()))
    ok = ~(split | tie | low | differ)
    chosen = np.where(winner == 0, ia, ib).tolist()
    rejected = np.where(winner == 0, ib, ia).tolist()
    pk_s, cid_s = fb.pk[order].tolist(), fb.client_id[order].tolist()
    bl = bounds.tolist()
    ids, inputs, outputs = inter.ids.tolist(), inter.inputs, inter.outputs
    for g in np.nonzero(ok)[0].tolist():
        x, y = chosen[g], rejected[g]
        prompt = inputs[x]
        out.add({"prompt": prompt, "chosen": outputs[x], "rejected": outputs[y]}, prompt,
                pk_s[bl[g]:bl[g + 1]], cid_s[bl[g]:bl[g + 1]], [ids[x], ids[y]])


def _mean_ratings(ctx: RecipeContext, sig: Signal, inter: Interactions,
                  min_ratings: int) -> tuple[np.ndarray, np.ndarray, Feedback, np.ndarray,
                                             np.ndarray]:
    """(interaction positions, mean rating, feedback, order, bounds) for interactions with
    at least ``min_ratings`` ratings (each rater's latest)."""
    fb = ctx.filter_by_interactions(ctx.feedback_of(sig), inter)
    fb = fb.take(~np.isnan(fb.num))
    keep = _latest_per_rater(fb, fb.a)
    ctx.drop_feedback("superseded", int((~keep).sum()))
    fb = fb.take(keep)
    uniq, order, bounds = _groups(fb.a)
    counts = np.diff(bounds)
    sums = np.add.reduceat(fb.num[order], bounds[:-1]) if uniq.size else np.zeros(0)
    means = sums / np.maximum(counts, 1)
    enough = counts >= min_ratings
    ctx.drop_rows("too_few_ratings", int((~enough).sum()))
    return inter.index(uniq), np.where(enough, means, np.nan), fb, order, bounds


def _rating_gaps(ctx: RecipeContext, sig: Signal, out: Candidates, inter: Interactions) -> None:
    p = ctx.params
    pos, means, fb, order, bounds = _mean_ratings(ctx, sig, inter, p.min_ratings)
    # plain lists: this loop touches every rated output once and every pair of a prompt
    means_l, pos_l, ids = means.tolist(), pos.tolist(), inter.ids.tolist()
    pk_s, cid_s, bl = fb.pk[order].tolist(), fb.client_id[order].tolist(), bounds.tolist()
    inputs, outputs = inter.inputs, inter.outputs
    min_gap, cap = p.min_gap - 1e-12, p.max_pairs_per_prompt
    by_prompt: dict[str, list[int]] = {}
    for g in np.nonzero(~np.isnan(means))[0].tolist():
        by_prompt.setdefault(inputs[pos_l[g]], []).append(g)
    capped = same = 0
    for prompt, members in by_prompt.items():
        if len(members) < 2:
            continue
        # best first; ties by interaction key, so the result does not depend on row order
        members.sort(key=lambda g: (-means_l[g], ids[pos_l[g]]))
        pairs = []
        for i, gi in enumerate(members):
            for gj in members[i + 1:]:
                gap = means_l[gi] - means_l[gj]
                if gap >= min_gap:
                    pairs.append((gap, gi, gj))
        if len(pairs) > 1:
            pairs.sort(key=lambda t: (-t[0], ids[pos_l[t[1]]], ids[pos_l[t[2]]]))
        capped += max(0, len(pairs) - cap)
        for _gap, gi, gj in pairs[:cap]:
            x, y = pos_l[gi], pos_l[gj]
            if outputs[x] == outputs[y]:
                same += 1
                continue
            out.add({"prompt": prompt, "chosen": outputs[x], "rejected": outputs[y]}, prompt,
                    pk_s[bl[gi]:bl[gi + 1]] + pk_s[bl[gj]:bl[gj + 1]],
                    cid_s[bl[gi]:bl[gi + 1]] + cid_s[bl[gj]:bl[gj + 1]], [ids[x], ids[y]])
    ctx.drop_rows("capped", capped)
    ctx.drop_rows("same_output", same)


def build_preference(ctx: RecipeContext) -> Candidates:
    p: PreferenceParams = ctx.params
    out = Candidates()
    sigs = []
    if p.signal is not None:
        sigs.append(("pairwise", ctx.signal(p.signal, "signal", ("pairwise",))))
    if p.rating_signal is not None:
        sigs.append(("rating", ctx.signal(p.rating_signal, "rating_signal",
                                          ("binary", "ordinal", "numeric"))))
    inter = ctx.interactions_for([s.id for _, s in sigs])
    for kind, sig in sigs:
        if kind == "pairwise":
            _pairwise(ctx, sig, out, inter)
        else:
            _rating_gaps(ctx, sig, out, inter)
    return out


# -- sft -----------------------------------------------------------------------------------

def build_sft(ctx: RecipeContext) -> Candidates:
    p: SFTParams = ctx.params
    out = Candidates()
    rating = ctx.signal(p.rating_signal, "rating_signal", ("binary", "ordinal", "numeric")) \
        if p.rating_signal is not None else None
    corr_sig = ctx.signal(p.correction_signal, "correction_signal",
                          ("binary", "ordinal", "numeric", "categorical", "pairwise", "text")) \
        if p.correction_signal is not None else None
    f = feedback
    corr_q = select(f.c.interaction_id).where(
        f.c.project_id == ctx.project.id, f.c.correction.is_not(None))
    sig_ids = [s.id for s in (rating, corr_sig) if s is not None]
    inter = ctx.interactions_for(sig_ids, corr_q if p.corrections else None)
    corrected: set[int] = set()
    if p.corrections:
        fb = _corrections(ctx, corr_sig)
        fb = ctx.filter_by_interactions(fb, inter)
        fb = fb.take(fb.b < 0)  # a correction of one output, not of a pair
        uniq, order, bounds = _groups(fb.a)
        pos = inter.index(uniq)
        for g in range(uniq.size):
            # the latest correction of an interaction replaces earlier ones
            last = order[bounds[g + 1] - 1]
            x = int(pos[g])
            prompt = inter.inputs[x]
            text = fb.correction[last] if fb.correction is not None else ""
            ctx.drop_rows("superseded_correction", int(bounds[g + 1] - bounds[g] - 1))
            out.add({"prompt": prompt, "completion": text}, prompt, [int(fb.pk[last])],
                    [fb.client_id[last]], [int(inter.ids[x])])
            corrected.add(int(inter.ids[x]))
    if rating is not None:
        threshold = p.min_rating
        if threshold is None:
            if rating.type == "binary":
                threshold = 1.0
            elif rating.scale_max is not None:
                threshold = float(rating.scale_max)
            else:
                raise InvalidInput(f"signal {rating.name!r} has no scale: give min_rating",
                                   field="params.min_rating")
        pos, means, fb, order, bounds = _mean_ratings(ctx, rating, inter, p.min_ratings)
        for g in range(pos.size):
            if np.isnan(means[g]):
                continue
            if means[g] < threshold - 1e-12:
                ctx.drop_rows("below_min_rating")
                continue
            x = int(pos[g])
            if int(inter.ids[x]) in corrected:
                ctx.drop_rows("corrected")
                continue
            members = order[bounds[g]:bounds[g + 1]]
            out.add({"prompt": inter.inputs[x], "completion": inter.outputs[x]},
                    inter.inputs[x], fb.pk[members].tolist(), _listed(fb.client_id, members),
                    [int(inter.ids[x])])
    return out


def _corrections(ctx: RecipeContext, sig: Signal | None) -> Feedback:
    if sig is not None:
        return ctx.feedback_of(sig, only_corrections=True)
    f = feedback
    q = (select(f.c.signal_id).where(f.c.project_id == ctx.project.id,
                                     f.c.correction.is_not(None)).distinct())
    parts = []
    by_id = {s.id: s for s in list_signals(ctx.conn, ctx.project.id)}
    for sid in sorted(r[0] for r in ctx.conn.execute(q)):
        parts.append(ctx.feedback_of(by_id[sid], only_corrections=True))
    if not parts:
        e = np.zeros(0, dtype=np.int64)
        return Feedback(e, _objects([]), e, e, np.zeros(0), _objects([]), _objects([]),
                        _objects([]))
    fb = Feedback(*(np.concatenate([getattr(x, n) for x in parts])
                    for n in ("pk", "client_id", "a", "b", "num", "text", "rater",
                              "correction")))
    order = np.argsort(fb.pk, kind="stable")
    return fb.take(order)


# -- kto -----------------------------------------------------------------------------------

def build_kto(ctx: RecipeContext) -> Candidates:
    p: KTOParams = ctx.params
    sig = ctx.signal(p.signal, "signal", ("binary",))
    inter = ctx.interactions_for([sig.id])
    fb = ctx.filter_by_interactions(ctx.feedback_of(sig), inter)
    fb = fb.take(~np.isnan(fb.num))
    keep = _latest_per_rater(fb, fb.a)
    ctx.drop_feedback("superseded", int((~keep).sum()))
    fb = fb.take(keep)
    out = Candidates()
    uniq, order, bounds = _groups(fb.a)
    if uniq.size:
        up = np.add.reduceat((fb.num[order] >= 0.5).astype(np.int64), bounds[:-1])
    else:
        up = np.zeros(0, dtype=np.int64)
    total = np.diff(bounds)
    pos = inter.index(uniq)
    for g in range(uniq.size):
        yes, n = int(up[g]), int(total[g])
        if 2 * yes == n:
            ctx.drop_rows("tie")
            continue
        label = 2 * yes > n
        agreement = (yes if label else n - yes) / n
        if p.min_agreement is not None and agreement < p.min_agreement:
            ctx.drop_rows("low_agreement")
            continue
        x = int(pos[g])
        members = order[bounds[g]:bounds[g + 1]]
        out.add({"prompt": inter.inputs[x], "completion": inter.outputs[x], "label": label},
                inter.inputs[x], fb.pk[members].tolist(), _listed(fb.client_id, members),
                [int(inter.ids[x])], label)
    return out


# -- labels --------------------------------------------------------------------------------

def build_labels(ctx: RecipeContext) -> Candidates:
    p: LabelsParams = ctx.params
    sig = ctx.signal(p.signal, "signal",
                     ("binary", "ordinal", "numeric", "categorical", "pairwise", "text"))
    ag = aggregations
    q = select(ag.c.id, ag.c.created_at, ag.c.method).where(
        ag.c.project_id == ctx.project.id, ag.c.signal_id == sig.id)
    if p.aggregation_id is not None:
        q = q.where(ag.c.id == p.aggregation_id)
    found = ctx.conn.execute(q.order_by(ag.c.created_at.desc(), ag.c.id.desc())).first()
    if found is None:
        if p.aggregation_id is not None:
            raise NotFound(f"no aggregation {p.aggregation_id} of signal {sig.name!r}",
                           field="params.aggregation_id")
        raise InvalidInput(f"signal {sig.name!r} has no aggregated labels yet: aggregate "
                           "its annotations first", field="params.signal")
    agg_id = int(found.id)
    al = aggregated_labels
    labels = ctx.conn.execute(
        select(al.c.interaction_id, al.c.interaction_b_id, al.c.value, al.c.confidence)
        .where(al.c.aggregation_id == agg_id).order_by(al.c.interaction_id, al.c.id)).all()
    inter = ctx.interactions_for([sig.id], select(al.c.interaction_id).where(
        al.c.aggregation_id == agg_id))
    reasons = ctx._reasons
    fb = ctx.feedback_of(sig)  # lineage and agreement (gold-filtered when asked)
    fb = fb.take(fb.b < 0)
    keep = _latest_per_rater(fb, fb.a)
    fb = fb.take(keep)
    uniq, order, bounds = _groups(fb.a)
    where = {int(k): g for g, k in enumerate(uniq.tolist())}
    out = Candidates()
    for row in labels:
        if row.interaction_b_id is not None:
            ctx.drop_rows("pairwise_label")
            continue
        x = int(inter.index(np.array([row.interaction_id]))[0])
        if reasons[x] != 0:
            ctx.drop_rows(RecipeContext._REASONS[int(reasons[x])])
            continue
        conf = row.confidence
        if p.min_confidence is not None and (conf is None or conf < p.min_confidence):
            ctx.drop_rows("low_confidence")
            continue
        g = where.get(int(row.interaction_id))
        members = order[bounds[g]:bounds[g + 1]] if g is not None else np.zeros(0, np.int64)
        if p.gold_min_accuracy is not None and members.size == 0:
            ctx.drop_rows("not_gold_checked")
            continue
        if p.min_agreement is not None:
            if members.size == 0:
                ctx.drop_rows("low_agreement")
                continue
            agree = sum(_same(_value_of(fb, m), row.value) for m in members.tolist())
            if agree / members.size < p.min_agreement:
                ctx.drop_rows("low_agreement")
                continue
        text = inter.outputs[x] if p.text == "output" else inter.inputs[x]
        out.add({"text": text, "label": row.value,
                 "confidence": None if conf is None else float(conf)},
                inter.inputs[x], fb.pk[members].tolist(), _listed(fb.client_id, members),
                [int(inter.ids[x])], row.value)
    ctx.aggregation_id = agg_id
    return out


def _value_of(fb: Feedback, m: int) -> Any:
    if fb.text[m] is not None:
        return fb.text[m]
    return fb.num[m]


# -- registry ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Recipe:
    name: str
    params: type[CommonParams]
    build: Callable[[RecipeContext], Candidates]
    description: str
    labelled: bool  # rows carry a label (stratifiable; two classes needed)


RECIPES: dict[str, Recipe] = {
    r.name: r for r in (
        Recipe("preference", PreferenceParams, build_preference,
               "(prompt, chosen, rejected) from pairwise votes and rating gaps", False),
        Recipe("sft", SFTParams, build_sft,
               "(prompt, completion) from corrections and top-rated outputs", False),
        Recipe("kto", KTOParams, build_kto,
               "(prompt, completion, label) from binary feedback, majority per output", True),
        Recipe("labels", LabelsParams, build_labels,
               "(text, label, confidence) from a signal's aggregated labels", True),
    )
}


def get_recipe(name: str) -> Recipe:
    recipe = RECIPES.get(name)
    if recipe is None:
        raise InvalidInput(f"unknown recipe {name!r}; recipes: {', '.join(RECIPES)}",
                           field="recipe")
    return recipe

