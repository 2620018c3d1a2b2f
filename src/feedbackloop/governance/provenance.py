"""The provenance graph: feedback → finding → dataset → model version → experiment → release.

Most edges already live in the tables that made them (``finding_feedback``,
``dataset_lineage``, ``model_version_datasets``, training runs, experiment designs whose arms
name a version, ``releases``, ``gates.experiment_id``); :func:`link` writes the ones no other
table holds (a finding a dataset *addresses*, a version a release *released*…) into
``provenance_links``, with an audit entry.

:func:`trace` walks from one node *downstream* (what it led to) and *upstream* (what it came
from), never sideways: from a feedback item it reaches the release that shipped its fix, but
not the other feedback in the same dataset. Wide fan-outs (a dataset built from 10,000
feedback rows) are cut at ``limit`` nodes per step and say how many were left out.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, and_, func, or_, select

from ..capture.projects import Project, get_project
from ..errors import InvalidInput, NotFound
from ..store import Store, utcnow
from ..store.tables import (
    dataset_lineage,
    datasets,
    experiments,
    feedback,
    finding_feedback,
    findings,
    gates,
    interactions,
    model_version_datasets,
    model_versions,
    provenance_links,
    releases,
    signals,
    training_runs,
)
from . import audit

__all__ = ["KINDS", "link", "links_of", "project_of", "trace", "trace_markdown"]

# The node kinds, in the order the loop produces them.
KINDS = ("feedback", "finding", "dataset", "model_version", "experiment", "release")
_RANK = {k: i for i, k in enumerate(KINDS)}
_TABLES = {"feedback": feedback, "finding": findings, "dataset": datasets,
           "model_version": model_versions, "experiment": experiments, "release": releases}
DEFAULT_LIMIT = 25

Key = tuple[str, int]


def _check_kind(kind: Any, field: str) -> str:
    if kind not in _TABLES:
        raise InvalidInput(f"{field} must be one of {', '.join(KINDS)}, not {kind!r}",
                           field=field)
    return str(kind)


def _check_exists(conn: Connection, project_id: int, kind: str, entity_id: int,
                  field: str) -> None:
    t = _TABLES[kind]
    row = conn.execute(select(t.c.id).where(t.c.id == entity_id,
                                            t.c.project_id == project_id)).first()
    if row is None:
        raise NotFound(f"no {kind.replace('_', ' ')} {entity_id} in this project", field=field)


def link(conn: Connection, project_id: int, src_kind: str, src_id: int, dst_kind: str,
         dst_id: int, relation: str, actor: str) -> int:
    """Record that ``src`` led to ``dst`` (``relation``: addresses, released_as…) in the
    caller's write transaction, with an audit entry ``provenance.link``; both ends must
    exist in the project. Linking twice returns the first link's id and records nothing."""
    _check_kind(src_kind, "src_kind")
    _check_kind(dst_kind, "dst_kind")
    if not isinstance(relation, str) or not 1 <= len(relation) <= 30:
        raise InvalidInput("relation must be 1-30 characters", field="relation")
    if (src_kind, src_id) == (dst_kind, dst_id):
        raise InvalidInput("a link needs two different ends", field="dst_id")
    _check_exists(conn, project_id, src_kind, int(src_id), "src_id")
    _check_exists(conn, project_id, dst_kind, int(dst_id), "dst_id")
    pl = provenance_links
    where = and_(pl.c.src_kind == src_kind, pl.c.src_id == int(src_id),
                 pl.c.dst_kind == dst_kind, pl.c.dst_id == int(dst_id),
                 pl.c.relation == relation)
    found = conn.execute(select(pl.c.id).where(where)).first()
    if found is not None:
        return int(found.id)
    new = conn.execute(pl.insert().values(
        project_id=project_id, src_kind=src_kind, src_id=int(src_id), dst_kind=dst_kind,
        dst_id=int(dst_id), relation=relation, created_by=(actor or "")[:100],
        created_at=utcnow())).inserted_primary_key
    link_id = int(new[0])  # type: ignore[index]
    audit.record(conn, actor=actor, action="provenance.link", entity_kind="provenance_link",
                 entity_id=link_id, project_id=project_id,
                 after={"src": f"{src_kind}:{src_id}", "dst": f"{dst_kind}:{dst_id}",
                        "relation": relation})
    return link_id


def links_of(conn: Connection, kind: str, entity_id: int) -> list[dict[str, Any]]:
    """The ``provenance_links`` rows touching one node, either end."""
    pl = provenance_links
    rows = conn.execute(select(pl).where(or_(
        and_(pl.c.src_kind == kind, pl.c.src_id == entity_id),
        and_(pl.c.dst_kind == kind, pl.c.dst_id == entity_id))).order_by(pl.c.id))
    return [{"id": r.id, "src_kind": r.src_kind, "src_id": r.src_id, "dst_kind": r.dst_kind,
             "dst_id": r.dst_id, "relation": r.relation, "created_by": r.created_by,
             "created_at": r.created_at.isoformat()} for r in rows]


# -- neighbours ---------------------------------------------------------------------------------
# Each returns (neighbour, relation) pairs plus the total before the limit, so the trace can
# say how many it left out.

Step = tuple[list[tuple[Key, str]], int]


def _capped(conn: Connection, q: Any, count_q: Any, kind: str, relation: str,
            limit: int) -> Step:
    ids = [int(r[0]) for r in conn.execute(q.limit(limit))]
    total = len(ids)
    if total >= limit:
        total = int(conn.execute(count_q).scalar_one())
    return [((kind, i), relation) for i in ids], total


def _generic(conn: Connection, project_id: int, key: Key, downstream: bool,
             limit: int) -> list[Step]:
    pl = provenance_links
    kind, eid = key
    if downstream:
        q = select(pl.c.dst_kind, pl.c.dst_id, pl.c.relation).where(
            pl.c.project_id == project_id, pl.c.src_kind == kind, pl.c.src_id == eid)
    else:
        q = select(pl.c.src_kind, pl.c.src_id, pl.c.relation).where(
            pl.c.project_id == project_id, pl.c.dst_kind == kind, pl.c.dst_id == eid)
    out: list[tuple[Key, str]] = []
    for r in conn.execute(q.order_by(pl.c.id).limit(limit * 4)):
        if r[0] in _TABLES:
            out.append(((r[0], int(r[1])), r[2]))
    return [(out, len(out))]


def _versions_named_by(conn: Connection, experiment_id: int) -> list[int]:
    row = conn.execute(select(experiments.c.project_id, experiments.c.component,
                              experiments.c.design)
                       .where(experiments.c.id == experiment_id)).first()
    if row is None or not row.component:
        return []
    names = [a.get("version") for a in (row.design or {}).get("arms", [])
             if isinstance(a, dict) and a.get("version")]
    if not names:
        return []
    mv = model_versions
    return [int(r.id) for r in conn.execute(
        select(mv.c.id).where(mv.c.project_id == row.project_id,
                              mv.c.component == row.component, mv.c.name.in_(names))
        .order_by(mv.c.id))]


def _experiments_naming(conn: Connection, version_id: int) -> list[int]:
    v = conn.execute(select(model_versions.c.project_id, model_versions.c.component,
                            model_versions.c.name)
                     .where(model_versions.c.id == version_id)).first()
    if v is None:
        return []
    out = []
    for r in conn.execute(select(experiments.c.id, experiments.c.design).where(
            experiments.c.project_id == v.project_id,
            experiments.c.component == v.component).order_by(experiments.c.id)):
        arms = (r.design or {}).get("arms", [])
        if any(isinstance(a, dict) and a.get("version") == v.name for a in arms):
            out.append(int(r.id))
    return out


def _down(conn: Connection, project_id: int, key: Key, limit: int) -> list[Step]:
    kind, eid = key
    steps = _generic(conn, project_id, key, True, limit)
    if kind == "feedback":
        ff, dl = finding_feedback, dataset_lineage
        steps.append(_capped(conn, select(ff.c.finding_id).where(ff.c.feedback_id == eid)
                             .order_by(ff.c.finding_id),
                             select(func.count()).select_from(ff).where(ff.c.feedback_id == eid),
                             "finding", "reported_in", limit))
        steps.append(_capped(conn, select(dl.c.dataset_id).where(dl.c.feedback_id == eid)
                             .order_by(dl.c.dataset_id),
                             select(func.count()).select_from(dl).where(dl.c.feedback_id == eid),
                             "dataset", "included_in", limit))
    elif kind == "dataset":
        mvd, tr, mv = model_version_datasets, training_runs, model_versions
        steps.append(_capped(conn, select(mvd.c.model_version_id)
                             .where(mvd.c.dataset_id == eid).order_by(mvd.c.model_version_id),
                             select(func.count()).select_from(mvd)
                             .where(mvd.c.dataset_id == eid),
                             "model_version", "trained", limit))
        q = (select(mv.c.id).join(tr, tr.c.id == mv.c.training_run_id)
             .where(tr.c.dataset_id == eid).order_by(mv.c.id))
        steps.append(_capped(conn, q, select(func.count()).select_from(q.subquery()),
                             "model_version", "trained", limit))
    elif kind == "model_version":
        ids = _experiments_naming(conn, eid)
        steps.append(([(("experiment", i), "tested_by") for i in ids[:limit]], len(ids)))
        r = releases
        steps.append(_capped(conn, select(r.c.id).where(r.c.model_version_id == eid)
                             .order_by(r.c.id),
                             select(func.count()).select_from(r)
                             .where(r.c.model_version_id == eid),
                             "release", "released_as", limit))
    elif kind == "experiment":
        r, g = releases, gates
        q = (select(r.c.id).join(g, g.c.id == r.c.gate_id)
             .where(g.c.experiment_id == eid).order_by(r.c.id))
        steps.append(_capped(conn, q, select(func.count()).select_from(q.subquery()),
                             "release", "evidence_for", limit))
    return steps


def _up(conn: Connection, project_id: int, key: Key, limit: int) -> list[Step]:
    kind, eid = key
    steps = _generic(conn, project_id, key, False, limit)
    if kind == "finding":
        ff = finding_feedback
        steps.append(_capped(conn, select(ff.c.feedback_id).where(ff.c.finding_id == eid)
                             .order_by(ff.c.feedback_id),
                             select(func.count()).select_from(ff).where(ff.c.finding_id == eid),
                             "feedback", "reported_in", limit))
    elif kind == "dataset":
        dl = dataset_lineage
        steps.append(_capped(conn, select(dl.c.feedback_id).where(dl.c.dataset_id == eid)
                             .order_by(dl.c.feedback_id),
                             select(func.count()).select_from(dl).where(dl.c.dataset_id == eid),
                             "feedback", "included_in", limit))
    elif kind == "model_version":
        mvd, tr, mv = model_version_datasets, training_runs, model_versions
        steps.append(_capped(conn, select(mvd.c.dataset_id)
                             .where(mvd.c.model_version_id == eid).order_by(mvd.c.dataset_id),
                             select(func.count()).select_from(mvd)
                             .where(mvd.c.model_version_id == eid),
                             "dataset", "trained", limit))
        row = conn.execute(select(tr.c.dataset_id).join(mv, mv.c.training_run_id == tr.c.id)
                           .where(mv.c.id == eid)).first()
        if row is not None and row.dataset_id is not None:
            steps.append(([(("dataset", int(row.dataset_id)), "trained")], 1))
    elif kind == "experiment":
        ids = _versions_named_by(conn, eid)
        steps.append(([(("model_version", i), "tested_by") for i in ids[:limit]], len(ids)))
    elif kind == "release":
        row = conn.execute(select(releases.c.model_version_id, gates.c.experiment_id)
                           .select_from(releases.outerjoin(gates,
                                                           gates.c.id == releases.c.gate_id))
                           .where(releases.c.id == eid)).first()
        if row is not None:
            steps.append(([(("model_version", int(row.model_version_id)), "released_as")], 1))
            if row.experiment_id is not None:
                steps.append(([(("experiment", int(row.experiment_id)), "evidence_for")], 1))
    return steps


# -- nodes ---------------------------------------------------------------------------------------


def _short(text: Any, n: int = 60) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= n else s[: n - 1] + "…"


def _describe(conn: Connection, project: Project, keys: Iterable[Key]) -> dict[Key, dict[str, Any]]:
    by_kind: dict[str, list[int]] = {}
    for kind, eid in keys:
        by_kind.setdefault(kind, []).append(eid)
    p = "/projects/" + quote(project.name, safe="")
    out: dict[Key, dict[str, Any]] = {}

    def put(kind: str, eid: int, label: str, url: str | None, **extra: Any) -> None:
        out[(kind, eid)] = {"id": f"{kind}:{eid}", "kind": kind, "entity_id": eid,
                            "label": label, "url": url, **extra}

    r: Any
    for kind, ids in by_kind.items():
        if kind == "feedback":
            q = (select(feedback.c.id, feedback.c.value, feedback.c.comment,
                        feedback.c.correction, feedback.c.source, signals.c.name.label("sig"),
                        interactions.c.client_id)
                 .join(signals, signals.c.id == feedback.c.signal_id)
                 .join(interactions, interactions.c.id == feedback.c.interaction_id)
                 .where(feedback.c.id.in_(ids), feedback.c.project_id == project.id))
            for r in conn.execute(q):
                note = r.comment or r.correction
                label = f"feedback {r.id}: {r.sig} = {_short(r.value, 30)}"
                if note:
                    label += f" — “{_short(note)}”"
                put(kind, r.id, label,
                    f"{p}/interactions/{quote(r.client_id, safe='')}",
                    signal=r.sig, source=r.source)
        elif kind == "finding":
            for r in conn.execute(select(findings.c.id, findings.c.title, findings.c.status)
                                  .where(findings.c.id.in_(ids),
                                         findings.c.project_id == project.id)):
                put(kind, r.id, f"finding {r.id}: {_short(r.title)} ({r.status})",
                    f"{p}/findings/{r.id}", status=r.status)
        elif kind == "dataset":
            for r in conn.execute(select(datasets.c.id, datasets.c.name, datasets.c.version,
                                         datasets.c.recipe)
                                  .where(datasets.c.id.in_(ids),
                                         datasets.c.project_id == project.id)):
                put(kind, r.id, f"dataset {r.name} v{r.version} ({r.recipe})",
                    f"{p}/datasets/{quote(r.name, safe='')}/{r.version}")
        elif kind == "model_version":
            for r in conn.execute(select(model_versions.c.id, model_versions.c.component,
                                         model_versions.c.name, model_versions.c.status)
                                  .where(model_versions.c.id.in_(ids),
                                         model_versions.c.project_id == project.id)):
                put(kind, r.id, f"model {r.component}:{r.name} ({r.status})",
                    f"{p}/models/{quote(r.component, safe='')}/{quote(r.name, safe='')}",
                    status=r.status)
        elif kind == "experiment":
            for r in conn.execute(select(experiments.c.id, experiments.c.name,
                                         experiments.c.kind, experiments.c.status)
                                  .where(experiments.c.id.in_(ids),
                                         experiments.c.project_id == project.id)):
                put(kind, r.id, f"experiment {r.name} ({r.status})",
                    f"{p}/experiments/{quote(r.name, safe='')}", status=r.status)
        elif kind == "release":
            q = (select(releases.c.id, releases.c.status, releases.c.component,
                        model_versions.c.name)
                 .join(model_versions, model_versions.c.id == releases.c.model_version_id)
                 .where(releases.c.id.in_(ids), releases.c.project_id == project.id))
            for r in conn.execute(q):
                put(kind, r.id, f"release {r.id}: {r.component}:{r.name} ({r.status})",
                    f"{p}/releases/{r.id}", status=r.status)
    return out


def _start(conn: Connection, project: Project, kind: str, start: Any) -> Key:
    if kind == "model_version" and isinstance(start, str) and not start.isdigit():
        component, sep, name = start.partition(":")
        if not sep or not component or not name:
            raise InvalidInput("a model version is COMPONENT:NAME or its numeric id",
                               field="start_id")
        row = conn.execute(select(model_versions.c.id).where(
            model_versions.c.project_id == project.id,
            model_versions.c.component == component, model_versions.c.name == name)).first()
        if row is None:
            raise NotFound(f"no model version {start!r} in project {project.name!r}",
                           field="start_id")
        return kind, int(row.id)
    if kind == "feedback" and isinstance(start, str) and not start.isdigit():
        row = conn.execute(select(feedback.c.id).where(feedback.c.project_id == project.id,
                                                       feedback.c.client_id == start)).first()
        if row is None:
            raise NotFound(f"no feedback {start!r} in project {project.name!r}",
                           field="start_id")
        return kind, int(row.id)
    try:
        eid = int(start)
    except (TypeError, ValueError):
        raise InvalidInput(f"{kind} id must be a whole number, not {start!r}",
                           field="start_id") from None
    if not 0 < eid < 2**63:
        raise NotFound(f"no {kind.replace('_', ' ')} {start!r} in project {project.name!r}",
                       field="start_id")
    _check_exists(conn, project.id, kind, eid, "start_id")
    return kind, eid


def project_of(conn: Connection, kind: str, start: Any) -> Project:
    """The project a node belongs to, for callers that were given no project: by id for
    every kind, by COMPONENT:NAME for a model version when one project has it."""
    _check_kind(kind, "start_kind")
    t = _TABLES[kind]
    if kind == "model_version" and isinstance(start, str) and not start.isdigit():
        component, _, name = start.partition(":")
        ids = sorted({int(r.project_id) for r in conn.execute(
            select(t.c.project_id).where(t.c.component == component, t.c.name == name))})
        if len(ids) > 1:
            raise InvalidInput(f"model version {start!r} exists in {len(ids)} projects: say "
                               "which (--project)", field="project")
    elif kind == "feedback" and isinstance(start, str) and not start.isdigit():
        ids = sorted({int(r.project_id) for r in conn.execute(
            select(t.c.project_id).where(t.c.client_id == start))})
        if len(ids) > 1:
            raise InvalidInput(f"feedback {start!r} exists in {len(ids)} projects: say which "
                               "(--project)", field="project")
    else:
        try:
            eid = int(start)
        except (TypeError, ValueError):
            raise InvalidInput(f"{kind} id must be a whole number, not {start!r}",
                               field="start_id") from None
        ids = [int(r.project_id) for r in conn.execute(
            select(t.c.project_id).where(t.c.id == eid))] if 0 < eid < 2**63 else []
    if not ids:
        raise NotFound(f"no {kind.replace('_', ' ')} {start!r}", field="start_id")
    return get_project(conn, ids[0])


def trace(store: Store, project: Project | str, start_kind: str, start_id: Any, *,
          limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """The provenance graph around one node: ``{"start", "nodes", "edges", "truncated"}``.

    Nodes carry ``id`` ("kind:n"), ``kind``, ``entity_id``, ``label``, ``url`` (the page)
    and ``direction`` (start, upstream, downstream); edges go the way the loop runs
    (``src`` produced or fed ``dst``) with their ``relation``. ``truncated`` lists the
    steps cut at ``limit`` with how many neighbours there were. A model version is given
    as COMPONENT:NAME or by id; feedback by id or client id."""
    _check_kind(start_kind, "start_kind")
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit must be between 1 and 1000", field="limit")
    with store.read() as conn:
        proj = project if isinstance(project, Project) else get_project(conn, project)
        start = _start(conn, proj, start_kind, start_id)
        direction: dict[Key, str] = {start: "start"}
        edges: dict[tuple[Key, Key], str] = {}
        truncated: list[dict[str, Any]] = []
        for downstream in (True, False):
            seen = {start}
            todo = deque([start])
            while todo:
                here = todo.popleft()
                steps = (_down if downstream else _up)(conn, proj.id, here, limit)
                for pairs, total in steps:
                    if total > len(pairs):
                        truncated.append({"from": f"{here[0]}:{here[1]}",
                                          "kind": pairs[0][0][0] if pairs else "",
                                          "shown": len(pairs), "total": total})
                    for there, relation in pairs:
                        edge = (here, there) if downstream else (there, here)
                        edges.setdefault(edge, relation)
                        if there not in seen:
                            seen.add(there)
                            direction.setdefault(there,
                                                 "downstream" if downstream else "upstream")
                            todo.append(there)
        described = _describe(conn, proj, direction)
    nodes = []
    for key in sorted(direction, key=lambda k: (_RANK[k[0]], k[1])):
        node = described.get(key)
        if node is None:  # a link to something deleted since
            continue
        nodes.append({**node, "direction": direction[key]})
    present = {(n["kind"], n["entity_id"]) for n in nodes}
    edge_list = [{"src": f"{a[0]}:{a[1]}", "dst": f"{b[0]}:{b[1]}", "relation": rel}
                 for (a, b), rel in sorted(edges.items(),
                                           key=lambda e: (_RANK[e[0][0][0]], e[0][0][1],
                                                          _RANK[e[0][1][0]], e[0][1][1]))
                 if a in present and b in present]
    return {"project": proj.name, "start": f"{start[0]}:{start[1]}", "nodes": nodes,
            "edges": edge_list, "truncated": truncated}


def _md(text: str) -> str:
    out = str(text)
    for ch in "\\`*_[]<>|#":
        out = out.replace(ch, "\\" + ch)
    return out


_HEADINGS = {"feedback": "Feedback", "finding": "Findings", "dataset": "Datasets",
             "model_version": "Model versions", "experiment": "Experiments",
             "release": "Releases"}


def trace_markdown(graph: dict[str, Any], *, base_url: str = "") -> str:
    """The trace as Markdown: one section per kind in loop order, each node with its
    link, then the edges."""
    labels = {n["id"]: n["label"] for n in graph["nodes"]}
    start = graph["start"]
    lines = [f"# Provenance of {_md(labels.get(start, start))}", "",
             f"Project `{graph['project']}`. Upstream: what it came from; downstream: what it "
             "led to.", ""]
    for kind in KINDS:
        of_kind = [n for n in graph["nodes"] if n["kind"] == kind]
        if not of_kind:
            continue
        lines += [f"## {_HEADINGS[kind]}", ""]
        for n in of_kind:
            text = _md(n["label"])
            if n.get("url"):
                text = f"[{text}]({base_url}{n['url']})"
            lines.append(f"- {text} — {n['direction']}")
        lines.append("")
    if graph["edges"]:
        lines += ["## Links", ""]
        lines += [f"- {_md(labels.get(e['src'], e['src']))} → {e['relation']} → "
                  f"{_md(labels.get(e['dst'], e['dst']))}" for e in graph["edges"]]
        lines.append("")
    for t in graph["truncated"]:
        lines.append(f"_{_md(t['from'])}: showing {t['shown']} of {t['total']} "
                     f"{_md(t['kind'])} links._")
    if len(graph["nodes"]) == 1:
        lines.append("Nothing links to or from it yet.")
    return "\n".join(lines).rstrip() + "\n"
