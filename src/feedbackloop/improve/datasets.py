"""Versioned, immutable datasets built from feedback, with per-row lineage.

:func:`build_dataset` runs a recipe (:mod:`feedbackloop.improve.recipes`), then the common
steps in this order: PII re-check (rows whose texts still hold PII are dropped), a
canonical order (by the row's content, so the database's order never matters),
deduplication (:mod:`feedbackloop.improve.dedupe`), splits grouped by prompt
(:mod:`feedbackloop.improve.splits`, or a user-given split from an interaction attribute,
checked for leaks), the content hash, and one transaction that writes the dataset, its rows
(each with the client ids of its feedback) and the reverse lineage index. Any refusal
happens before the transaction: a failed build stores nothing.

The content hash is SHA-256 over canonical JSON (sorted keys) of the recipe, the validated
parameters (defaults included) and the rows sorted by their own canonical JSON, each row
being ``[data, sorted feedback client ids, split]``. Building the same recipe on the same
data gives the same hash, in any database; each build is still a new version of the name.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import orjson
from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError

from ..capture.projects import Project, get_project
from ..capture.redact import PIIFound, Redactor
from ..errors import Conflict, InvalidInput, NotFound
from ..governance import audit
from ..store import Store, as_utc, utcnow
from ..store.tables import dataset_lineage, dataset_rows, datasets, feedback, signals
from .dedupe import dedupe_rows, normalise
from .recipes import RECIPES, Candidates, RecipeContext, get_recipe, parse_params
from .splits import check_no_leak, split_groups

__all__ = [
    "Dataset",
    "build_dataset",
    "datasets_for_feedback",
    "feedback_for_dataset",
    "get_dataset",
    "get_dataset_by_id",
    "iter_rows",
    "list_datasets",
    "render_card",
]

Progress = Callable[[str, int, int], None]
STAGES = ("read", "check", "dedupe", "split", "store")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_SORT = orjson.OPT_SORT_KEYS


@dataclass(frozen=True)
class Dataset:
    id: int
    project_id: int
    name: str
    version: int
    recipe: str
    params: dict[str, Any]
    content_hash: str
    counts: dict[str, Any]
    card: dict[str, Any]
    created_by: str
    created_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "project_id": self.project_id, "name": self.name,
                "version": self.version, "ref": self.ref, "recipe": self.recipe,
                "params": self.params, "content_hash": self.content_hash,
                "counts": self.counts, "card": self.card, "created_by": self.created_by,
                "created_at": self.created_at.isoformat()}


def _dataset(row: Any) -> Dataset:
    return Dataset(row.id, row.project_id, row.name, row.version, row.recipe, row.params,
                   row.content_hash, row.counts, row.card, row.created_by,
                   as_utc(row.created_at))  # type: ignore[arg-type]


def _resolve(conn: Connection, project: Project | str) -> Project:
    return project if isinstance(project, Project) else get_project(conn, project)


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput("a dataset name is 1-100 letters, digits, '_', '.' or '-', "
                           "starting with a letter or digit", field="name")


def _texts(data: dict[str, Any]) -> list[str]:
    return [v for v in data.values() if isinstance(v, str)]


def _row_fields(recipe: str, data: dict[str, Any]) -> tuple[str, ...]:
    """The texts deduplication compares (the label is part of a kto row: the same output
    judged good and bad is a conflict, kept once)."""
    if recipe == "preference":
        return data["prompt"], data["chosen"], data["rejected"]
    if recipe == "sft":
        return data["prompt"], data["completion"]
    if recipe == "kto":
        return data["prompt"], data["completion"]
    return (data["text"],)


def _group_key(prompt: str, cache: dict[str, str]) -> str:
    text = cache.get(prompt)
    if text is None:
        text = cache[prompt] = normalise(prompt)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16,
                           person=b"fl-group").hexdigest()


def _summary(dropped: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(dropped.items())) or "none"


def build_dataset(store: Store, project: Project | str, name: str, recipe: str,
                  params: dict[str, Any] | None = None, *, created_by: str = "",
                  progress: Progress | None = None) -> Dataset:
    """Build the next version of dataset ``name`` with ``recipe``. Refuses (InvalidInput,
    nothing stored) a recipe that yields no rows, a labelled recipe with one class, and a
    user-given split that puts a prompt in two splits."""
    _check_name(name)
    rec = get_recipe(recipe)
    p = parse_params(rec.params, params)
    if p.stratify and not rec.labelled:
        raise InvalidInput(f"the {recipe} recipe has no label to stratify by",
                           field="params.stratify")
    step = progress or (lambda _s, _d, _t: None)
    total = len(STAGES)
    step("read", 0, total)
    with store.read() as conn:
        proj = _resolve(conn, project)
        ctx = RecipeContext(conn, proj, p)
        cands = rec.build(ctx)
    n_candidates = len(cands)
    dropped = dict(ctx.dropped_rows)

    step("check", 1, total)
    keep = np.ones(len(cands), dtype=bool)
    if p.pii_check:
        redactor = Redactor("drop")
        clean: dict[str, bool] = {}  # prompts and outputs recur across rows: check once
        for i, data in enumerate(cands.data):
            for t in _texts(data):
                ok = clean.get(t)
                if ok is None:
                    try:
                        redactor.redact(t)
                        ok = True
                    except PIIFound:
                        ok = False
                    clean[t] = ok
                if not ok:
                    keep[i] = False
                    break
        dropped["pii"] = int((~keep).sum())
    # canonical order: by content, then lineage. A row's canonical JSON is
    # [data, feedback ids, split]; without the split it orders the rows.
    for ids in cands.feedback_ids:
        ids.sort()
    dumps = orjson.dumps
    data_json = [dumps(d, option=_SORT) for d in cands.data]
    ids_json = [dumps(f) for f in cands.feedback_ids]
    keys = [b"[" + d + b"," + f + b"]" for d, f in zip(data_json, ids_json, strict=True)]
    order = [i for i in sorted(range(len(cands)), key=keys.__getitem__) if keep[i]]
    normalised: dict[str, str] = {}

    step("dedupe", 2, total)
    if p.dedupe or p.near_duplicates:
        res = dedupe_rows([_row_fields(recipe, cands.data[i]) for i in order],
                          exact=p.dedupe, near=p.near_duplicates, threshold=p.near_threshold,
                          shingle_size=p.shingle_size, num_perm=p.num_perm,
                          cache=normalised)
        dropped["duplicate"] = res.n_duplicate
        dropped["near_duplicate"] = res.n_near_duplicate
        order = [i for i, k in zip(order, res.keep.tolist(), strict=True) if k]
    dropped = {k: v for k, v in dropped.items() if v}
    if not order:
        raise InvalidInput(
            f"recipe {recipe!r} yielded no rows: {ctx.read:,} feedback records read; "
            f"feedback dropped: {_summary(ctx.dropped_feedback)}; candidate rows "
            f"{n_candidates:,}, dropped: {_summary(dropped)}", field="recipe")
    if rec.labelled:
        classes = Counter(_label_key(cands.labels[i]) for i in order)
        if len(classes) < 2:
            only = next(iter(classes))
            raise InvalidInput(
                f"recipe {recipe!r} yielded one class only ({only}, {classes[only]:,} rows): "
                "a classifier or KTO needs at least two", field="recipe")

    step("split", 3, total)
    keyed: dict[str, str] = {}
    groups = []
    for i in order:
        prompt = cands.prompts[i]
        g = keyed.get(prompt)
        if g is None:
            g = keyed[prompt] = _group_key(prompt, normalised)
        groups.append(g)
    if p.split_attribute is not None:
        splits = _given_splits(ctx, cands, order, p.split_attribute)
        check_no_leak([cands.prompts[i] for i in order], splits)
    else:
        strata = [_label_key(cands.labels[i]) for i in order] if p.stratify else None
        splits = split_groups(groups, fractions=p.splits, seed=p.seed, strata=strata)

    rows = []
    for i, split, group in zip(order, splits, groups, strict=True):
        blob = keys[i][:-1] + b"," + orjson.dumps(split) + b"]"
        rows.append((blob, i, split, group))
    rows.sort(key=lambda r: r[0])
    params_json = p.model_dump(mode="json")
    digest = hashlib.sha256()
    digest.update(orjson.dumps({"recipe": recipe, "params": params_json}, option=_SORT))
    for blob, *_ in rows:
        digest.update(b"\n")
        digest.update(blob)
    content_hash = digest.hexdigest()
    # stored order: by split (as named), then by a keyed hash of the row: shuffled, stable
    split_rank = {s: k for k, s in enumerate(dict.fromkeys([*p.splits, *sorted(set(splits))]))}
    seed_key = p.seed.to_bytes(8, "big")
    rows.sort(key=lambda r: (split_rank[r[2]], hashlib.blake2b(r[0], digest_size=8,
                                                               key=seed_key).digest()))
    split_counts = Counter(splits)
    counts: dict[str, Any] = {
        "rows": len(rows),
        "splits": {s: split_counts.get(s, 0) for s in split_rank},
        "candidates": n_candidates,
        "dropped": dropped,
        "feedback": {"read": ctx.read, "dropped": dict(sorted(ctx.dropped_feedback.items()))},
    }
    if rec.labelled:
        counts["labels"] = dict(sorted(Counter(_label_key(cands.labels[r[1]])
                                               for r in rows).items()))
        counts["labels_by_split"] = {
            s: dict(sorted(Counter(_label_key(cands.labels[r[1]]) for r in rows
                                   if r[2] == s).items())) for s in split_rank}

    step("store", 4, total)
    for attempt in range(3):
        try:
            ds = _store(store, proj, name, recipe, params_json, content_hash, counts, rows,
                        cands, (data_json, ids_json), created_by, ctx.aggregation_id)
            break
        except IntegrityError:
            if attempt == 2:
                raise Conflict(f"dataset {name!r} is being built by someone else; try "
                               "again", field="name") from None
    step("done", total, total)
    return ds


def _label_key(label: Any) -> str:
    if isinstance(label, bool):
        return "true" if label else "false"
    if isinstance(label, float) and label.is_integer():
        return str(int(label))
    return str(label)


def _given_splits(ctx: RecipeContext, cands: Candidates, order: list[int],
                  attribute: str) -> list[str]:
    values = ctx.split_values
    out = []
    for i in order:
        found = {values.get(k) for k in cands.interactions[i]}
        if len(found) > 1:
            shown = ", ".join(sorted(str(v) for v in found))
            raise InvalidInput(f"the interactions of one row sit in different splits "
                               f"({shown}) by attribute {attribute!r}", field="split")
        value = found.pop()
        if value is None or not re.fullmatch(r"[A-Za-z0-9_-]{1,20}", value):
            raise InvalidInput(
                f"interaction of prompt {cands.prompts[i][:60]!r} has no usable split in "
                f"attribute {attribute!r} (got {value!r}): 1-20 letters, digits, _ or -",
                field="params.split_attribute")
        out.append(value)
    return out


def _store(store: Store, proj: Project, name: str, recipe: str, params: dict[str, Any],
           content_hash: str, counts: dict[str, Any], rows: list[tuple[bytes, int, str, str]],
           cands: Candidates, blobs: tuple[list[bytes], list[bytes]], created_by: str,
           aggregation_id: int | None) -> Dataset:
    now = utcnow()
    with store.transaction() as conn:
        prev = conn.execute(
            select(datasets.c.version, datasets.c.content_hash)
            .where(datasets.c.project_id == proj.id, datasets.c.name == name)
            .order_by(datasets.c.version.desc()).limit(1)).first()
        version = 1 if prev is None else int(prev.version) + 1
        new_id = int(conn.execute(datasets.insert().values(
            project_id=proj.id, name=name, version=version, recipe=recipe, params=params,
            content_hash=content_hash, counts=counts, card={}, created_by=created_by,
            created_at=now)).inserted_primary_key[0])  # type: ignore[index]
        data_json, ids_json = blobs
        pks: set[int] = set()
        for r in rows:
            pks.update(cands.feedback_pks[r[1]])
        _bulk(conn, dataset_rows, ("dataset_id", "position", "split", "group_key", "data",
                                   "feedback_ids"),
              ((new_id, pos, split, group, data_json[i].decode(), ids_json[i].decode())
               for pos, (_blob, i, split, group) in enumerate(rows)))
        _bulk(conn, dataset_lineage, ("dataset_id", "feedback_id"),
              ((new_id, pk) for pk in sorted(pks)))
        counts["feedback"]["used"] = len(pks)
        card = _card_facts(conn, proj, new_id, name, version, recipe, params, content_hash,
                           counts, created_by, now, prev, aggregation_id)
        conn.execute(datasets.update().where(datasets.c.id == new_id)
                     .values(card=card, counts=counts))
        audit.record(conn, actor=created_by or "system", action="dataset.build",
                     entity_kind="dataset", entity_id=new_id, project_id=proj.id,
                     after={"name": name, "version": version, "recipe": recipe,
                            "params": params, "content_hash": content_hash,
                            "rows": len(rows), "feedback_used": len(pks)})
        return get_dataset_by_id(conn, proj, new_id)


def _bulk(conn: Connection, table: Any, cols: tuple[str, ...],
          rows: Iterator[tuple[Any, ...]]) -> None:
    """Rows as tuples on the driver's bulk path inside the caller's transaction (COPY on
    PostgreSQL, executemany on SQLite; see ``capture.ingest.insert_rows``, which takes
    dictionaries). JSON columns arrive as JSON text."""
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    names = ", ".join(cols)
    if conn.dialect.name == "postgresql":
        with dbapi.cursor() as cur, cur.copy(  # type: ignore[attr-defined]
                f"COPY {table.name} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    cur = dbapi.cursor()
    try:
        cur.executemany(f"INSERT INTO {table.name} ({names}) VALUES "
                        f"({', '.join('?' for _ in cols)})", rows)  # type: ignore[arg-type]
    finally:
        cur.close()


def _card_facts(conn: Connection, proj: Project, dataset_id: int, name: str, version: int,
                recipe: str, params: dict[str, Any], content_hash: str,
                counts: dict[str, Any], created_by: str, now: datetime, prev: Any,
                aggregation_id: int | None) -> dict[str, Any]:
    f, dl = feedback, dataset_lineage
    q = (select(func.count(func.distinct(f.c.rater_id)), func.count(func.distinct(
        f.c.interaction_id)), func.min(f.c.timestamp), func.max(f.c.timestamp))
         .select_from(dl.join(f, f.c.id == dl.c.feedback_id))
         .where(dl.c.dataset_id == dataset_id))
    raters, n_inter, first, last = conn.execute(q).one()
    sig_q = (select(signals.c.name, f.c.source, func.count())
             .select_from(dl.join(f, f.c.id == dl.c.feedback_id)
                          .join(signals, signals.c.id == f.c.signal_id))
             .where(dl.c.dataset_id == dataset_id)
             .group_by(signals.c.name, f.c.source).order_by(signals.c.name, f.c.source))
    by_signal: dict[str, dict[str, int]] = {}
    for sname, source, n in conn.execute(sig_q):
        by_signal.setdefault(sname, {})[source] = int(n)
    first, last = as_utc(first), as_utc(last)
    facts: dict[str, Any] = {
        "project": proj.name, "name": name, "version": version, "recipe": recipe,
        "description": RECIPES[recipe].description, "params": params,
        "content_hash": content_hash, "counts": counts, "created_by": created_by,
        "created_at": now.isoformat(),
        "lineage": {"feedback": counts["feedback"]["used"], "interactions": int(n_inter),
                    "raters": int(raters), "signals": by_signal,
                    "first_feedback": first.isoformat() if first else None,
                    "last_feedback": last.isoformat() if last else None},
    }
    if aggregation_id is not None:
        facts["lineage"]["aggregation_id"] = aggregation_id
    if prev is not None:
        facts["previous"] = {"version": int(prev.version), "content_hash": prev.content_hash,
                             "same_content": prev.content_hash == content_hash}
    return facts


# -- reading ------------------------------------------------------------------------------

def get_dataset(conn: Connection, project: Project | str, name: str,
                version: int | None = None) -> Dataset:
    """A dataset by name: the given version, or the latest."""
    proj = _resolve(conn, project)
    q = select(datasets).where(datasets.c.project_id == proj.id, datasets.c.name == name)
    if version is not None:
        q = q.where(datasets.c.version == version)
    row = conn.execute(q.order_by(datasets.c.version.desc()).limit(1)).first()
    if row is None:
        what = f"{name!r} version {version}" if version is not None else repr(name)
        raise NotFound(f"no dataset {what} in project {proj.name!r}", field="name")
    return _dataset(row)


def get_dataset_by_id(conn: Connection, project: Project | str, dataset_id: int) -> Dataset:
    proj = _resolve(conn, project)
    row = conn.execute(select(datasets).where(datasets.c.project_id == proj.id,
                                              datasets.c.id == dataset_id)).first()
    if row is None:
        raise NotFound(f"no dataset {dataset_id} in project {proj.name!r}", field="dataset")
    return _dataset(row)


def list_datasets(conn: Connection, project: Project | str) -> list[Dataset]:
    """Every version of every dataset, by name then version."""
    proj = _resolve(conn, project)
    q = select(datasets).where(datasets.c.project_id == proj.id) \
        .order_by(datasets.c.name, datasets.c.version)
    return [_dataset(r) for r in conn.execute(q)]


def iter_rows(conn: Connection, dataset: Dataset, split: str | None = None,
              limit: int | None = None) -> Iterator[dict[str, Any]]:
    """The rows in stored order: ``{"position", "split", "data", "feedback_ids"}``."""
    r = dataset_rows
    q = select(r.c.position, r.c.split, r.c.data, r.c.feedback_ids).where(
        r.c.dataset_id == dataset.id)
    if split is not None:
        if split not in dataset.counts.get("splits", {}):
            raise InvalidInput(f"dataset {dataset.ref} has no split {split!r}; splits: "
                               f"{', '.join(dataset.counts.get('splits', {}))}", field="split")
        q = q.where(r.c.split == split)
    q = q.order_by(r.c.position)
    if limit is not None:
        q = q.limit(limit)
    for row in conn.execute(q.execution_options(yield_per=5000)):
        yield {"position": row.position, "split": row.split, "data": row.data,
               "feedback_ids": row.feedback_ids}


def feedback_for_dataset(conn: Connection, dataset: Dataset) -> list[str]:
    """Lineage forwards: the client ids of every feedback record behind the dataset."""
    q = (select(feedback.c.client_id)
         .select_from(dataset_lineage.join(feedback,
                                           feedback.c.id == dataset_lineage.c.feedback_id))
         .where(dataset_lineage.c.dataset_id == dataset.id).order_by(feedback.c.client_id))
    return [r[0] for r in conn.execute(q)]


def datasets_for_feedback(conn: Connection, project: Project | str,
                          feedback_client_id: str) -> list[Dataset]:
    """Lineage backwards: every dataset version that a feedback record fed."""
    proj = _resolve(conn, project)
    pk = conn.execute(select(feedback.c.id).where(
        feedback.c.project_id == proj.id, feedback.c.client_id == feedback_client_id)
    ).scalar_one_or_none()
    if pk is None:
        raise NotFound(f"no feedback {feedback_client_id!r} in project {proj.name!r}",
                       field="feedback")
    q = (select(datasets).join(dataset_lineage, dataset_lineage.c.dataset_id == datasets.c.id)
         .where(dataset_lineage.c.feedback_id == pk)
         .order_by(datasets.c.name, datasets.c.version))
    return [_dataset(r) for r in conn.execute(q)]


# -- the card -------------------------------------------------------------------------------

def render_card(dataset: Dataset, *, files: dict[str, str] | None = None,
                task: str | None = None, style: str | None = None) -> str:
    """The dataset card in Markdown (a Hugging Face style README). With ``files`` (split ->
    file name) the YAML header lists them, so ``datasets.load_dataset(folder)`` finds the
    splits."""
    c = dataset.card or {}
    counts = dataset.counts
    lines: list[str] = []
    if files:
        lines += ["---", "configs:", "- config_name: default", "  data_files:"]
        for split, path in files.items():
            lines += [f"  - split: {split}", f"    path: {path}"]
        lines += ["---", ""]
    lines += [f"# {dataset.name} (version {dataset.version})", ""]
    desc = c.get("description") or RECIPES[dataset.recipe].description
    lines += [f"Built by feedbackloop from the feedback of project `{c.get('project', '')}` "
              f"with the `{dataset.recipe}` recipe: {desc}.", ""]
    if task:
        lines += [f"Exported for **{task}** training, {style} form.", ""]
    lines += ["| fact | value |", "|---|---|",
              f"| content hash (SHA-256) | `{dataset.content_hash}` |",
              f"| rows | {counts.get('rows', 0):,} |"]
    for split, n in counts.get("splits", {}).items():
        lines.append(f"| rows in {split} | {n:,} |")
    for label, n in (counts.get("labels") or {}).items():
        lines.append(f"| label {label} | {n:,} |")
    lines += [f"| candidate rows | {counts.get('candidates', 0):,} |",
              f"| built | {dataset.created_at.isoformat()} by {dataset.created_by or '-'} |"]
    prev = c.get("previous")
    if prev:
        same = "same content" if prev.get("same_content") else "different content"
        lines.append(f"| previous version | {prev['version']} ({same}) |")
    lines += ["", "## Dropped", ""]
    dropped = counts.get("dropped") or {}
    fdrop = (counts.get("feedback") or {}).get("dropped") or {}
    if not dropped and not fdrop:
        lines.append("Nothing was dropped.")
    for reason, n in dropped.items():
        lines.append(f"- {n:,} candidate rows: {reason.replace('_', ' ')}")
    for reason, n in fdrop.items():
        lines.append(f"- {n:,} feedback records: {reason.replace('_', ' ')}")
    lin = c.get("lineage") or {}
    lines += ["", "## Lineage", "",
              f"Every row names the feedback records it came from (`feedback_ids`). In all, "
              f"{lin.get('feedback', 0):,} feedback records on {lin.get('interactions', 0):,} "
              f"interactions from {lin.get('raters', 0):,} raters, given between "
              f"{lin.get('first_feedback') or '-'} and {lin.get('last_feedback') or '-'}.", ""]
    for sname, sources in (lin.get("signals") or {}).items():
        parts = ", ".join(f"{n:,} from {src}" for src, n in sources.items())
        lines.append(f"- signal `{sname}`: {parts}")
    if lin.get("aggregation_id") is not None:
        lines.append(f"- labels from aggregation {lin['aggregation_id']}")
    lines += ["", "## Recipe parameters", "", "```json",
              orjson.dumps(dataset.params, option=_SORT | orjson.OPT_INDENT_2).decode(),
              "```", ""]
    return "\n".join(lines)
